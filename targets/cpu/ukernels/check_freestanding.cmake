# ctest kiln-ukernels-freestanding: the ukernels must not need any symbol
# from outside (no libc, no libm, no __stack_chk_guard) once optimized the way
# kiln-compile optimizes them, for every target feature set, nor on aarch64.
#   cmake -DBITCODE=kiln_ukernels.bc -DTOOLS_DIR=/usr/lib/llvm-22/bin
#         -DCLANG=clang -DSOURCES=a.c|b.c -DFLAGS=-ffreestanding|...
#         -DINCLUDE=dir -DWORK_DIR=dir -P check_freestanding.cmake
string(REPLACE "|" ";" SOURCES "${SOURCES}")
string(REPLACE "|" ";" FLAGS "${FLAGS}")
file(MAKE_DIRECTORY ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
endfunction()

function(expect_no_undefined obj what)
  run(${TOOLS_DIR}/llvm-nm -u ${obj})
  string(STRIP "${run_out}" undefined)
  if(undefined)
    message(FATAL_ERROR "${what}: undefined symbols:\n${undefined}")
  endif()
  message(STATUS "${what}: no undefined symbols")
endfunction()

# x86_64: what kiln-compile does, in tools: set the CPU and features on every
# function, O3, PIC object.
run(${TOOLS_DIR}/llvm-dis ${BITCODE} -o ${WORK_DIR}/ukernels.ll)
file(READ ${WORK_DIR}/ukernels.ll ir)
set(cpus x86-64 haswell skylake-avx512)
set(features_x86-64 "+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87")
set(features_haswell "+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+popcnt,+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+cx16,+cmov,+cx8,+fxsr,+mmx,+x87")
set(features_skylake-avx512 "+avx512f,+avx512bw,+avx512dq,+avx512vl,+avx512cd,${features_haswell}")
foreach(cpu ${cpus})
  string(REGEX REPLACE "\"target-cpu\"=\"[^\"]*\"" "\"target-cpu\"=\"${cpu}\"" tuned "${ir}")
  string(REGEX REPLACE "\"target-features\"=\"[^\"]*\"" "\"target-features\"=\"${features_${cpu}}\"" tuned "${tuned}")
  file(WRITE ${WORK_DIR}/${cpu}.ll "${tuned}")
  run(${TOOLS_DIR}/opt -O3 ${WORK_DIR}/${cpu}.ll -o ${WORK_DIR}/${cpu}.bc)
  run(${TOOLS_DIR}/llc -O3 -relocation-model=pic -filetype=obj ${WORK_DIR}/${cpu}.bc -o ${WORK_DIR}/${cpu}.o)
  expect_no_undefined(${WORK_DIR}/${cpu}.o "x86_64 ${cpu}")
endforeach()

# aarch64 (NEON is part of the base ISA): compile the sources directly.
foreach(src ${SOURCES})
  get_filename_component(name ${src} NAME_WE)
  run(${CLANG} --target=aarch64-linux-gnu -std=c11 -O3 -fPIC ${FLAGS} -I${INCLUDE} -c ${src}
      -o ${WORK_DIR}/aarch64_${name}.o)
  expect_no_undefined(${WORK_DIR}/aarch64_${name}.o "aarch64 ${name}.c")
endforeach()
