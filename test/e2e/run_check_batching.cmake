# Compiles MODEL to OUT (the paged forward, kiln-compile's default) and runs
# CHECK on it; with DRAFT (a draft model's ONNX), also compiles MODEL with
# --draft DRAFT to OUT_DRAFT and passes that too. Fails when any step fails.
execute_process(COMMAND ${COMPILE} ${MODEL} -o ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kiln-compile failed (${rc})")
endif()
set(draft_artifact)
if(DRAFT)
  execute_process(COMMAND ${COMPILE} ${MODEL} --draft ${DRAFT} -o ${OUT_DRAFT} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "kiln-compile --draft failed (${rc})")
  endif()
  set(draft_artifact ${OUT_DRAFT})
endif()
execute_process(COMMAND ${CHECK} ${OUT} 2 ${draft_artifact} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_batching failed (${rc})")
endif()
