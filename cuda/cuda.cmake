# CUDA path of batch-layer-norm: static library `bln_cuda`, linked into the addon by
# the top-level CMakeLists.txt (which includes this file only when nvcc was found and
# BLN_CUDA is not 0).
#
# Architectures: BLN_CUDA_ARCHS (cache variable or environment), CMake's
# CUDA_ARCHITECTURES syntax. Default: SASS for sm_80 (A100) and sm_90 (H100/H200) plus
# compute_90 PTX, which the driver JIT-compiles for newer GPUs. "90" builds sm_90 SASS
# and PTX only (the fastest build); "native" builds for the GPU of this machine.

if(NOT DEFINED BLN_CUDA_ARCHS)
  if(DEFINED ENV{BLN_CUDA_ARCHS} AND NOT "$ENV{BLN_CUDA_ARCHS}" STREQUAL "")
    set(BLN_CUDA_ARCHS "$ENV{BLN_CUDA_ARCHS}")
  else()
    set(BLN_CUDA_ARCHS "80-real;90-real;90-virtual")
  endif()
endif()
set(BLN_CUDA_ARCHS "${BLN_CUDA_ARCHS}" CACHE STRING "CUDA architectures of the CUDA path (CMake CUDA_ARCHITECTURES syntax)")

# enable_language needs some architecture list before it runs; ours is set on the target.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "${BLN_CUDA_ARCHS}")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

set(BLN_CUDA_DIR ${CMAKE_CURRENT_LIST_DIR})
add_library(bln_cuda STATIC
  ${BLN_CUDA_DIR}/bln_cuda.cu
  ${BLN_CUDA_DIR}/bln_fwd.cu
  ${BLN_CUDA_DIR}/bln_bwd.cu)
set_target_properties(bln_cuda PROPERTIES
  CUDA_ARCHITECTURES "${BLN_CUDA_ARCHS}"
  CUDA_STANDARD 17
  CUDA_STANDARD_REQUIRED ON
  CUDA_SEPARABLE_COMPILATION OFF
  CUDA_RUNTIME_LIBRARY Static
  POSITION_INDEPENDENT_CODE ON)
target_include_directories(bln_cuda PUBLIC ${CMAKE_CURRENT_LIST_DIR}/../cpp ${BLN_CUDA_DIR})
string(REPLACE ";" "," BLN_CUDA_ARCHS_STRING "${BLN_CUDA_ARCHS}")
target_compile_definitions(bln_cuda PRIVATE "BLN_CUDA_ARCHS_STRING=\"${BLN_CUDA_ARCHS_STRING}\"")
# No fast math: the statistics rely on IEEE rounding (shifted sums, hi/lo means,
# correctly rounded sqrt and division).
target_compile_options(bln_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-O3 -Xcompiler=-fPIC --expt-relaxed-constexpr>)
target_link_libraries(bln_cuda PUBLIC CUDA::cudart_static)
