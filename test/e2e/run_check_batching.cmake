# Compiles MODEL to OUT (the paged forward, kiln-compile's default) and runs
# CHECK on it; fails when either fails.
execute_process(COMMAND ${COMPILE} ${MODEL} -o ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kiln-compile failed (${rc})")
endif()
execute_process(COMMAND ${CHECK} ${OUT} 2 RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_batching failed (${rc})")
endif()
