# The CUDA path compiled by the host compiler against the emulator (bln_emu.cuh): target
# `bln_cuda_emu`, a stand-in for `bln_cuda` on machines without a GPU or nvcc. Test
# machinery only: the emulated addon (top-level -DBLN_CUDA_EMU=ON, `npm run build:cuda-emu`)
# and the emulated harness (cuda/harness, -DBLN_EMU=ON) link it; nothing shipped does.
#
# BLN_EMU_SANITIZE (address, undefined, ...) instruments it.
set(BLN_EMU_DIR ${CMAKE_CURRENT_LIST_DIR})
find_package(Threads REQUIRED)
add_library(bln_cuda_emu STATIC ${BLN_EMU_DIR}/emu_cuda.cpp ${BLN_EMU_DIR}/emu_fwd.cpp ${BLN_EMU_DIR}/emu_bwd.cpp)
set_target_properties(bln_cuda_emu PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
target_include_directories(bln_cuda_emu PUBLIC ${BLN_EMU_DIR}/../../cpp ${BLN_EMU_DIR}/..)
target_compile_definitions(bln_cuda_emu PUBLIC BLN_EMU=1 "BLN_CUDA_ARCHS_STRING=\"host emulator\"")
target_compile_options(bln_cuda_emu PRIVATE -O2 -Wall -Wextra -Wno-unknown-pragmas)
if(BLN_EMU_SANITIZE)
  target_compile_options(bln_cuda_emu PUBLIC -fsanitize=${BLN_EMU_SANITIZE} -fno-omit-frame-pointer -g)
  target_link_options(bln_cuda_emu PUBLIC -fsanitize=${BLN_EMU_SANITIZE})
endif()
target_link_libraries(bln_cuda_emu PUBLIC Threads::Threads)
