# Cross-builds the kiln runtime (KILN_RUNTIME_ONLY=ON) for 64-bit ARM Linux
# with Debian's gcc-aarch64-linux-gnu. The binaries run on an ARM board, or
# here under qemu-user (scripts/build-aarch64.sh, docs/targets.md).
#
#   cmake -S . -B build-aarch64 -DKILN_RUNTIME_ONLY=ON \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
#
# Libraries come from Debian's arm64 multiarch packages in
# /usr/lib/aarch64-linux-gnu (scripts/setup.sh --aarch64 installs them);
# libsentencepiece0, which Debian does not mark multiarch, is unpacked into
# KILN_AARCH64_LIBS instead. Headers are architecture-independent and shared
# with the host's /usr/include; programs (flatc, protoc) are the host's.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

if(NOT KILN_AARCH64_LIBS)
  if(DEFINED ENV{KILN_AARCH64_LIBS})
    set(KILN_AARCH64_LIBS $ENV{KILN_AARCH64_LIBS})
  elseif(DEFINED ENV{HOME} AND NOT "$ENV{HOME}" STREQUAL "")
    set(KILN_AARCH64_LIBS $ENV{HOME}/.cache/kiln/aarch64-libs)
  else() # as scripts/setup.sh: ${HOME:-/root}
    set(KILN_AARCH64_LIBS /root/.cache/kiln/aarch64-libs)
  endif()
endif()
set(KILN_AARCH64_LIBS ${KILN_AARCH64_LIBS} CACHE PATH
  "unpacked arm64 libraries that cannot be installed next to the host's")
list(APPEND CMAKE_PREFIX_PATH ${KILN_AARCH64_LIBS}/usr)
# Their dependencies are resolved at link time through the same directories.
set(CMAKE_EXE_LINKER_FLAGS_INIT
  "-Wl,-rpath-link,${KILN_AARCH64_LIBS}/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,/usr/lib/aarch64-linux-gnu")
set(CMAKE_SHARED_LINKER_FLAGS_INIT ${CMAKE_EXE_LINKER_FLAGS_INIT})

# Run the test programs (gtest discovery) under qemu-user.
find_program(KILN_QEMU_AARCH64 qemu-aarch64)
if(KILN_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${KILN_QEMU_AARCH64})
endif()
