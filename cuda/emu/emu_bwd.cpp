// The bwd translation unit of the CUDA path, compiled by the host compiler against the
// emulator (bln_emu.cuh). BLN_EMU is defined by the build.
#include "../bln_bwd.cu"
