// The harness compiled against the host emulator (BLN_EMU builds).
#include "../harness/bln_bench.cu"
