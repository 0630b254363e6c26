# The shared LLM fixtures (../shared/fixtures beside the repository): one
# test per fixture and model file, each compiling the model and holding
# kiln-generate, kiln-run and kiln-perplexity to the fixture's PyTorch
# references (check_llm_fixture.py). Included from CMakeLists.txt; needs
# kiln-compile, so not in runtime-only builds. Run with: ctest -L e2e
set(KILN_LLM_FIXTURES_DIR ${KILN_SOURCE_DIR}/../shared/fixtures)
if(NOT KILN_RUNTIME_ONLY AND IS_DIRECTORY ${KILN_LLM_FIXTURES_DIR})
  set(KILN_E2E_PYTHON /usr/bin/python3)
  foreach(fixture llama-s llama-draft gpt2-s)
    foreach(model model model_with_past)
      # llama-draft shares llama-s's tokenizer: llama-s also checks it as a draft.
      set(draft_args)
      if(fixture STREQUAL "llama-s")
        set(draft_args --draft ${KILN_LLM_FIXTURES_DIR}/llama-draft/${model}.onnx)
      endif()
      add_test(NAME e2e-llm-${fixture}-${model}
        COMMAND ${KILN_E2E_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_llm_fixture.py
                --fixture ${KILN_LLM_FIXTURES_DIR}/${fixture} --model ${model}.onnx
                --bin-dir ${CMAKE_BINARY_DIR}/bin ${draft_args})
      set_tests_properties(e2e-llm-${fixture}-${model} PROPERTIES TIMEOUT 1800 LABELS "e2e")
    endforeach()
    # kiln-compile --quantize: perplexity, greedy ids and artifact size
    # (check_quantized.py).
    if(NOT fixture STREQUAL "llama-draft")
      add_test(NAME e2e-quant-${fixture}
        COMMAND ${KILN_E2E_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_quantized.py
                --fixture ${KILN_LLM_FIXTURES_DIR}/${fixture} --bin-dir ${CMAKE_BINARY_DIR}/bin)
      set_tests_properties(e2e-quant-${fixture} PROPERTIES TIMEOUT 900 LABELS "e2e")
      # kiln-compile --prune=2:4 (and with --quantize=w8): perplexity
      # bound, 2:4+w8 vs 2:4, greedy runs, artifact size (check_pruned.py).
      add_test(NAME e2e-prune-${fixture}
        COMMAND ${KILN_E2E_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_pruned.py
                --fixture ${KILN_LLM_FIXTURES_DIR}/${fixture} --bin-dir ${CMAKE_BINARY_DIR}/bin)
      set_tests_properties(e2e-prune-${fixture} PROPERTIES TIMEOUT 900 LABELS "e2e")
      # w8a8 with SmoothQuant, on the fixture and on a copy with activation
      # outliers and the same function (check_smoothquant.py).
      add_test(NAME e2e-smoothquant-${fixture}
        COMMAND ${KILN_E2E_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_smoothquant.py
                --fixture ${KILN_LLM_FIXTURES_DIR}/${fixture} --bin-dir ${CMAKE_BINARY_DIR}/bin)
      set_tests_properties(e2e-smoothquant-${fixture} PROPERTIES TIMEOUT 900 LABELS "e2e")
    endif()
  endforeach()
endif()
