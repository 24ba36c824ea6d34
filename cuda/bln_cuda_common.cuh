// Shared by every CUDA translation unit: the runtime (or, with BLN_EMU, the host
// emulator of bln_emu.cuh), small device helpers and the kernel launch helper.
#pragma once

#ifdef BLN_EMU
#include "emu/bln_emu.cuh"
#else
#include <cuda_runtime.h>
#endif

#include <cstddef>
#include <cstdint>

#include "bln.h"

#ifdef BLN_EMU
#define BLN_CHECK_ALIGNED16(p) ::bln_emu::checkAligned16(p)
#else
#define BLN_CHECK_ALIGNED16(p) ((void)0)
#endif

#define BLN_DEV __device__ __forceinline__

#ifdef BLN_EMU
#define BLN_DYNAMIC_SMEM(name) unsigned char* name = ::bln_emu::dynamicSmem()
#else
#define BLN_DYNAMIC_SMEM(name)                          \
  extern __shared__ float4 bln_dynamic_smem_storage[]; \
  unsigned char* name = reinterpret_cast<unsigned char*>(bln_dynamic_smem_storage)
#endif

namespace bln {
namespace gpu {

// Every kernel runs 256-thread blocks (8 warps).
constexpr int kThreads = 256;
constexpr unsigned kFullMask = 0xffffffffu;

BLN_HD int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
BLN_HD size_t align16(size_t n) { return (n + 15) & ~size_t(15); }
BLN_HD size_t align256(size_t n) { return (n + 255) & ~size_t(255); }

// invStd, splitHiLo, meanVar, chanMerge, exactMeanVar and the backward coefficients are
// the CPU path's own, from cpp/numerics.h (host + device): the two paths share one source.

// Sum over the `lpr` lanes of an aligned lane group (lpr a power of two <= 32). Every
// lane of the warp must call it (the full mask); every lane of a group gets the sum.
template <class T>
BLN_DEV T groupSum(T v, int lpr) {
  for (int o = lpr >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// The value held by lane 0 of the caller's group of `lpr` lanes (all lanes call it).
BLN_DEV float groupFirst(float v, int lpr) { return __shfl_sync(kFullMask, v, 0, lpr); }

// Vector access of V consecutive floats: V = 4 uses 128-bit accesses (the caller
// guarantees 16-byte alignment), V = 1 plain scalars.
template <int V>
struct Vec;

template <>
struct Vec<4> {
  // Read-only global data (through the non-coherent cache).
  static BLN_DEV void ldg(const float* p, float* o) {
    const float4 t = __ldg(reinterpret_cast<const float4*>(p));
    o[0] = t.x, o[1] = t.y, o[2] = t.z, o[3] = t.w;
  }
  // Shared memory (or any memory written earlier by this kernel).
  static BLN_DEV void ld(const float* p, float* o) {
    BLN_CHECK_ALIGNED16(p);
    const float4 t = *reinterpret_cast<const float4*>(p);
    o[0] = t.x, o[1] = t.y, o[2] = t.z, o[3] = t.w;
  }
  static BLN_DEV void st(float* p, const float* v) {
    BLN_CHECK_ALIGNED16(p);
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  }
  // Streaming store (evict-first): outputs that are not read again soon.
  static BLN_DEV void stcs(float* p, const float* v) { __stcs(reinterpret_cast<float4*>(p), make_float4(v[0], v[1], v[2], v[3])); }
};

template <>
struct Vec<1> {
  static BLN_DEV void ldg(const float* p, float* o) { o[0] = __ldg(p); }
  static BLN_DEV void ld(const float* p, float* o) { o[0] = *p; }
  static BLN_DEV void st(float* p, const float* v) { *p = v[0]; }
  static BLN_DEV void stcs(float* p, const float* v) { __stcs(p, v[0]); }
};

// This thread's lane group: `lpr` lanes per row (a power of two <= 32), `groups` rows at a time.
struct LaneGroup {
  int lpr, lane, group, groups;
};
BLN_DEV LaneGroup laneGroup(int lpr) {
  const int t = static_cast<int>(threadIdx.x);
  return LaneGroup{lpr, t & (lpr - 1), t / lpr, kThreads / lpr};
}

// Row groups of a slab's column pass: one thread per column, or kThreads / C groups of rows
// (merged afterwards) when C < kThreads.
BLN_DEV int columnGroups(int C) { return C >= kThreads ? 1 : kThreads / C; }

// The [B, C] slab of one m (rows M*C floats apart from src = x + m*C) into shared memory at
// dst ([B][C]), V floats at a time, by all the block's threads.
template <int V>
BLN_DEV void loadSlab(const float* src, int B, int64_t M, int C, float* dst) {
  const int nv = C / V;
  for (int i = static_cast<int>(threadIdx.x); i < B * nv; i += kThreads) {
    const int b = i / nv, j = i - b * nv;
    float v[V];
    Vec<V>::ldg(src + static_cast<int64_t>(b) * M * C + j * V, v);
    Vec<V>::st(dst + b * C + j * V, v);
  }
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

inline int nextPow2(int64_t v) {
  int p = 1;
  while (p < v && p < (1 << 30)) p <<= 1;
  return p;
}

// Kernels take one parameter struct by value. Returns the launch error (configuration
// errors, and any error pending from earlier asynchronous work).
template <class P>
cudaError_t launchKernel(void (*kernel)(P), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, const P& params) {
#ifdef BLN_EMU
  return ::bln_emu::launch(grid, block, smem, stream, [&] { kernel(params); });
#else
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  void* args[] = {const_cast<P*>(&params)};
  cudaError_t e = cudaLaunchKernel(reinterpret_cast<const void*>(kernel), grid, block, args, smem, stream);
  if (e != cudaSuccess) return e;
  return cudaGetLastError();
#endif
}

// Grid size for grid-stride loops over `work` blocks' worth of items.
inline unsigned gridFor(int64_t blocksWanted, int64_t cap = int64_t(1) << 30) {
  if (blocksWanted < 1) blocksWanted = 1;
  if (blocksWanted > cap) blocksWanted = cap;
  return static_cast<unsigned>(blocksWanted);
}

}  // namespace gpu
}  // namespace bln
