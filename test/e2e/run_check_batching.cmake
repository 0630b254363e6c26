# Compiles MODEL to OUT (the paged forward, kiln-compile's default) and runs
# CHECK on it. With DRAFT (a draft model's ONNX) it also compiles MODEL with
# --draft DRAFT to OUT_DRAFT, with SKIP (a layer count) MODEL with
# --speculative=layer-skip:SKIP to OUT_SKIP, and passes those too. Fails
# when any step fails.
execute_process(COMMAND ${COMPILE} ${MODEL} -o ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kiln-compile failed (${rc})")
endif()
set(drafts)
if(DRAFT)
  execute_process(COMMAND ${COMPILE} ${MODEL} --draft ${DRAFT} -o ${OUT_DRAFT} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "kiln-compile --draft failed (${rc})")
  endif()
  list(APPEND drafts ${OUT_DRAFT})
endif()
if(SKIP)
  execute_process(COMMAND ${COMPILE} ${MODEL} --speculative=layer-skip:${SKIP} -o ${OUT_SKIP} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "kiln-compile --speculative=layer-skip:${SKIP} failed (${rc})")
  endif()
  list(APPEND drafts ${OUT_SKIP})
endif()
execute_process(COMMAND ${CHECK} ${OUT} 2 ${drafts} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_batching failed (${rc})")
endif()
