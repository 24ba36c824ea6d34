// NEON kernels (baseline on arm64).
#include <arm_neon.h>

#include "kernels.h"

namespace {
#include "simd.h"
#include "kernels_impl.h"
}  // namespace

bln::KernelTable bln::kernelTableNeon() { return makeKernelTable<VNeon>(SimdLevel::Neon); }
