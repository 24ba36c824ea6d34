# Cross-compiles for linux-arm64 (glibc) with Debian's cross toolchain:
#   apt-get install g++-aarch64-linux-gnu binutils-aarch64-linux-gnu
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake ...
# Used by scripts/prebuild.sh (prebuilds/linux-arm64-glibc) and scripts/arm64-check.sh.
# BLN_AARCH64_PREFIX overrides the tool prefix (default aarch64-linux-gnu-).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(DEFINED ENV{BLN_AARCH64_PREFIX})
  set(_bln_prefix "$ENV{BLN_AARCH64_PREFIX}")
else()
  set(_bln_prefix aarch64-linux-gnu-)
endif()
find_program(CMAKE_C_COMPILER ${_bln_prefix}gcc)
find_program(CMAKE_CXX_COMPILER ${_bln_prefix}g++)
if(NOT CMAKE_CXX_COMPILER)
  message(FATAL_ERROR "${_bln_prefix}g++ not found: apt-get install g++-aarch64-linux-gnu binutils-aarch64-linux-gnu")
endif()

# Debian's multiarch cross root; only the target's libraries and headers are searched there.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Never look for nvcc: the arm64 build is the CPU path only.
set(BLN_CUDA 0 CACHE STRING "" FORCE)
