// Baseline kernels: plain C++ at the target's baseline ISA.
#include "kernels.h"

namespace {
#include "simd.h"
#include "kernels_impl.h"
}  // namespace

bln::KernelTable bln::kernelTableScalar() { return makeKernelTable<VScalar>(SimdLevel::Scalar); }
