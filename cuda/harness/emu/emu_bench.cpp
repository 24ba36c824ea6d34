// The harness compiled against the host emulator (BLN_EMU builds).
#include "../bln_bench.cu"
