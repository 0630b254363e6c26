# ctest kiln-ukernels-freestanding: the ukernels must not need any symbol
# from outside (no libc, no libm, no __stack_chk_guard) once optimized the way
# kiln-compile optimizes them, for every target feature set, on x86_64 and
# aarch64.
#   cmake -DBITCODE=kiln_ukernels.bc -DBITCODE_AARCH64=kiln_ukernels_aarch64.bc
#         -DTOOLS_DIR=/usr/lib/llvm-22/bin -DWORK_DIR=dir -P check_freestanding.cmake
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

# What kiln-compile does, in tools: set the CPU and features on every
# function, O3, PIC object. An optional fifth argument is a feature whose
# functions keep their own features: kiln-compile links the twins of a
# feature (`_avx2`: vpmaddubsw, F16C; `_vnni`: AVX-512 vpdpbusd) only for targets that have it, so on
# a CPU without it they are checked as built (LLVM cannot select them
# otherwise).
function(check_cpu bitcode arch cpu features)
  run(${TOOLS_DIR}/llvm-dis ${bitcode} -o ${WORK_DIR}/${arch}.ll)
  file(READ ${WORK_DIR}/${arch}.ll ir)
  string(REGEX REPLACE "\"target-cpu\"=\"[^\"]*\"" "\"target-cpu\"=\"${cpu}\"" tuned "${ir}")
  if(ARGC GREATER 4)
    string(REGEX REPLACE "\"target-features\"=(\"[^\"]*\\${ARGV4}[^\"]*\")" "\"kiln-kept-features\"=\\1" tuned "${tuned}")
  endif()
  string(REGEX REPLACE "\"target-features\"=\"[^\"]*\"" "\"target-features\"=\"${features}\"" tuned "${tuned}")
  string(REPLACE "\"kiln-kept-features\"=" "\"target-features\"=" tuned "${tuned}")
  file(WRITE ${WORK_DIR}/${cpu}.ll "${tuned}")
  run(${TOOLS_DIR}/opt -O3 ${WORK_DIR}/${cpu}.ll -o ${WORK_DIR}/${cpu}.bc)
  run(${TOOLS_DIR}/llc -O3 -relocation-model=pic -filetype=obj ${WORK_DIR}/${cpu}.bc -o ${WORK_DIR}/${cpu}.o)
  expect_no_undefined(${WORK_DIR}/${cpu}.o "${arch} ${cpu}")
endfunction()

set(haswell "+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+popcnt,+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+cx16,+cmov,+cx8,+fxsr,+mmx,+x87")
check_cpu(${BITCODE} x86_64 x86-64 "+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "+avx2")
check_cpu(${BITCODE} x86_64 haswell "${haswell}" "+avx512vnni")
check_cpu(${BITCODE} x86_64 skylake-avx512 "+avx512f,+avx512bw,+avx512dq,+avx512vl,+avx512cd,${haswell}" "+avx512vnni")
check_cpu(${BITCODE} x86_64 cascadelake "+avx512f,+avx512bw,+avx512dq,+avx512vl,+avx512cd,+avx512vnni,${haswell}")
check_cpu(${BITCODE_AARCH64} aarch64 neoverse-n1 "+neon,+fp-armv8,+v8.2a,+dotprod,+fullfp16")
