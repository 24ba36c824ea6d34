// AVX-512F kernels (this file alone is compiled with -mavx512f).
#include <immintrin.h>

#include "kernels.h"

namespace {
#include "simd.h"
#include "kernels_impl.h"
}  // namespace

bln::KernelTable bln::kernelTableAvx512() { return makeKernelTable<VAvx512>(SimdLevel::Avx512); }
