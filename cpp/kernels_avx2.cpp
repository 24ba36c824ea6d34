// AVX2 + FMA kernels (this file alone is compiled with -mavx2 -mfma).
#include <immintrin.h>

#include "kernels.h"

namespace {
#include "simd.h"
#include "kernels_impl.h"
}  // namespace

bln::KernelTable bln::kernelTableAvx2() { return makeKernelTable<VAvx2>(SimdLevel::Avx2); }
