// Portable core of batch-layer-norm: no Node headers here.
// The math is ../shared/BLN-SPEC.md: x is viewed as [B, M, C] (C fastest).
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>

#include "numerics.h"

namespace bln {

struct Dims {
  int64_t B = 0;  // batch
  int64_t M = 0;  // product of the middle dims (1 for rank 2)
  int64_t C = 0;  // features (last axis)
  int64_t numel() const { return B * M * C; }
  int64_t batchStatLen() const { return M * C; }
  int64_t featureStatLen() const { return B * M; }
};

// The four statistics, as pointers. Batch stats have M*C entries; feature stats
// B*M for mini-batch statistics, M for population statistics.
struct StatsIn {
  const float* batchMean = nullptr;
  const float* batchVar = nullptr;
  const float* featureMean = nullptr;
  const float* featureVar = nullptr;
};
struct StatsOut {
  float* batchMean = nullptr;
  float* batchVar = nullptr;
  float* featureMean = nullptr;
  float* featureVar = nullptr;
};

// Buffer lengths in floats, as the caller holds them; -1 where the caller does not
// say (C++ callers that size every buffer from d themselves). Every given length is
// checked against d before any memory is touched (ArgumentError otherwise); the
// binding gives all of them. The four statistics are the mini-batch ones (forward,
// backward) or the population (infer, checked only where `use` reads them).
struct Lengths {
  int64_t x = -1, dy = -1, gamma = -1, beta = -1, y = -1, dx = -1, dgamma = -1, dbeta = -1;
  int64_t batchMean = -1, batchVar = -1, featureMean = -1, featureVar = -1;
};

// Plain batons: the binding fills them, the core reads them. Lengths are
// carried so the core can check them before touching memory.
struct ForwardArgs {
  Dims d;
  Lengths len;
  const float* x = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  double eps = 1e-3;
  double batchSize = 0;  // N of the spec: sets the mixing weights
  float* y = nullptr;
  StatsOut stats;  // all four required
};

struct BackwardArgs {
  Dims d;
  Lengths len;
  const float* dy = nullptr;
  const float* x = nullptr;
  const float* gamma = nullptr;
  StatsIn stats;  // mini-batch statistics from forward (biased variances)
  double eps = 1e-3;
  double batchSize = 0;
  float* dx = nullptr;
  float* dgamma = nullptr;
  float* dbeta = nullptr;
};

struct InferUse {
  bool batchMean = false, batchVar = false, featureMean = false, featureVar = false;
};

struct InferArgs {
  Dims d;
  Lengths len;
  const float* x = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  StatsIn population;  // batch stats M*C, feature stats M
  InferUse use;
  double eps = 1e-3;
  double batchSize = 0;
  float* y = nullptr;
};

// Thrown for arguments the core refuses (the binding turns it into a JS error).
struct ArgumentError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// An output that shares memory with another array of the call (the kernels read and write through
// restrict pointers). `first` (an output) and `second` index the call's arrays in checkArgs' order:
// the outputs, then the inputs, as lib/ops.ts names them.
struct OverlapError : ArgumentError {
  int first, second;
  OverlapError(int a, int b, const std::string& what) : ArgumentError(what), first(a), second(b) {}
};

// ---- argument checks: the one owner of what every path (CPU and CUDA) refuses before it
// touches memory. Header-only, so the CUDA host API shares them without linking bln_core.

// Every dimension >= 1, and numel (with room for 16-byte arithmetic on it) fits int64_t.
inline void checkDims(const Dims& d) {
  if (d.B < 1 || d.M < 1 || d.C < 1) throw ArgumentError("every dimension must be at least 1");
  const int64_t lim = std::numeric_limits<int64_t>::max() / 16;
  if (d.B > lim / d.M || d.B * d.M > lim / d.C) throw ArgumentError("shape is too large for the native index type");
}

// A given length (not -1) must be what d implies. Call after checkDims(d): the products
// cannot overflow then.
inline void checkLength(int64_t got, int64_t want, const char* name) {
  if (got != -1 && got != want)
    throw ArgumentError(std::string(name) + " has length " + std::to_string(got) + ", expected " + std::to_string(want));
}

inline void checkScalars(const Dims& d, double eps, double N) {
  checkDims(d);
  if (!(eps > 0) || !std::isfinite(eps)) throw ArgumentError("epsilon must be finite and > 0");
  if (!(N >= 1) || !std::isfinite(N)) throw ArgumentError("batchSize must be a positive integer");
}

inline void requireBuffers(std::initializer_list<const void*> ps, const char* what) {
  for (const void* p : ps)
    if (!p) throw ArgumentError(std::string("missing buffer in ") + what);
}

// n floats from p (p null: absent), for checkNoOverlap.
struct Extent {
  const void* p;
  int64_t n;
  const char* name;
};
// No output (the first nOut of the `count` extents) may share a byte with any other extent: the
// first pair found (i < j) is an OverlapError.
inline void checkNoOverlap(const Extent* e, int count, int nOut) {
  auto lo = [](const Extent& x) { return reinterpret_cast<uintptr_t>(x.p); };
  auto hi = [](const Extent& x) { return reinterpret_cast<uintptr_t>(x.p) + static_cast<uintptr_t>(x.n) * sizeof(float); };
  for (int i = 0; i < nOut; ++i) {
    if (!e[i].p || e[i].n <= 0) continue;
    for (int j = i + 1; j < count; ++j)
      if (e[j].p && e[j].n > 0 && lo(e[i]) < hi(e[j]) && lo(e[j]) < hi(e[i]))
        throw OverlapError(i, j, std::string(e[i].name) + " shares memory with " + e[j].name);
  }
}
// A given length, else the one d implies.
inline int64_t lengthOr(int64_t given, int64_t implied) { return given >= 0 ? given : implied; }

// Everything the core refuses in a call, in the order the paths have always checked it:
// dimensions and scalars, then lengths, then missing buffers, then outputs that share memory with
// another array.
inline void checkArgs(const ForwardArgs& a) {
  checkScalars(a.d, a.eps, a.batchSize);
  const Lengths& l = a.len;
  checkLength(l.x, a.d.numel(), "x"), checkLength(l.y, a.d.numel(), "y");
  checkLength(l.gamma, a.d.C, "gamma"), checkLength(l.beta, a.d.C, "beta");
  checkLength(l.batchMean, a.d.batchStatLen(), "batchMean"), checkLength(l.batchVar, a.d.batchStatLen(), "batchVar");
  checkLength(l.featureMean, a.d.featureStatLen(), "featureMean");
  checkLength(l.featureVar, a.d.featureStatLen(), "featureVar");
  requireBuffers({a.x, a.gamma, a.beta, a.y, a.stats.batchMean, a.stats.batchVar, a.stats.featureMean, a.stats.featureVar},
                 "forward");
  const int64_t n = a.d.numel(), mc = a.d.batchStatLen(), bm = a.d.featureStatLen();
  const Extent e[] = {{a.y, n, "y"},        {a.stats.batchMean, mc, "batchMean"}, {a.stats.batchVar, mc, "batchVar"},
                      {a.stats.featureMean, bm, "featureMean"}, {a.stats.featureVar, bm, "featureVar"},
                      {a.x, n, "x"},        {a.gamma, a.d.C, "gamma"},            {a.beta, a.d.C, "beta"}};
  checkNoOverlap(e, 8, 5);
}
inline void checkArgs(const BackwardArgs& a) {
  checkScalars(a.d, a.eps, a.batchSize);
  const Lengths& l = a.len;
  checkLength(l.dy, a.d.numel(), "dy"), checkLength(l.x, a.d.numel(), "x"), checkLength(l.dx, a.d.numel(), "dx");
  checkLength(l.gamma, a.d.C, "gamma"), checkLength(l.dgamma, a.d.C, "dgamma"), checkLength(l.dbeta, a.d.C, "dbeta");
  checkLength(l.batchMean, a.d.batchStatLen(), "stats.batchMean");
  checkLength(l.batchVar, a.d.batchStatLen(), "stats.batchVar");
  checkLength(l.featureMean, a.d.featureStatLen(), "stats.featureMean");
  checkLength(l.featureVar, a.d.featureStatLen(), "stats.featureVar");
  requireBuffers({a.dy, a.x, a.gamma, a.dx, a.dgamma, a.dbeta, a.stats.batchMean, a.stats.batchVar, a.stats.featureMean,
                  a.stats.featureVar},
                 "backward");
  const int64_t n = a.d.numel(), mc = a.d.batchStatLen(), bm = a.d.featureStatLen();
  const Extent e[] = {{a.dx, n, "dx"},
                      {a.dgamma, a.d.C, "dgamma"},
                      {a.dbeta, a.d.C, "dbeta"},
                      {a.dy, n, "dy"},
                      {a.x, n, "x"},
                      {a.gamma, a.d.C, "gamma"},
                      {a.stats.batchMean, mc, "stats.batchMean"},
                      {a.stats.batchVar, mc, "stats.batchVar"},
                      {a.stats.featureMean, bm, "stats.featureMean"},
                      {a.stats.featureVar, bm, "stats.featureVar"}};
  checkNoOverlap(e, 10, 3);
}
inline void checkArgs(const InferArgs& a) {
  checkScalars(a.d, a.eps, a.batchSize);
  const Lengths& l = a.len;
  checkLength(l.x, a.d.numel(), "x"), checkLength(l.y, a.d.numel(), "y");
  checkLength(l.gamma, a.d.C, "gamma"), checkLength(l.beta, a.d.C, "beta");
  if (a.use.batchMean) checkLength(l.batchMean, a.d.batchStatLen(), "population.batchMean");
  if (a.use.batchVar) checkLength(l.batchVar, a.d.batchStatLen(), "population.batchVar");
  if (a.use.featureMean) checkLength(l.featureMean, a.d.M, "population.featureMean");
  if (a.use.featureVar) checkLength(l.featureVar, a.d.M, "population.featureVar");
  requireBuffers({a.x, a.gamma, a.beta, a.y}, "infer");
  if ((a.use.batchMean && !a.population.batchMean) || (a.use.batchVar && !a.population.batchVar) ||
      (a.use.featureMean && !a.population.featureMean) || (a.use.featureVar && !a.population.featureVar))
    throw ArgumentError("missing population statistic in infer");
  // (population arrays given but not used count too, by their given lengths)
  const Extent e[] = {{a.y, a.d.numel(), "y"},
                      {a.x, a.d.numel(), "x"},
                      {a.gamma, a.d.C, "gamma"},
                      {a.beta, a.d.C, "beta"},
                      {a.population.batchMean, lengthOr(l.batchMean, a.d.batchStatLen()), "population.batchMean"},
                      {a.population.batchVar, lengthOr(l.batchVar, a.d.batchStatLen()), "population.batchVar"},
                      {a.population.featureMean, lengthOr(l.featureMean, a.d.M), "population.featureMean"},
                      {a.population.featureVar, lengthOr(l.featureVar, a.d.M), "population.featureVar"}};
  checkNoOverlap(e, 8, 1);
}

// CPU path. Throws ArgumentError on inconsistent arguments, std::bad_alloc when
// scratch cannot be had. Safe to call from several threads at once.
void cpuForward(const ForwardArgs& a);
void cpuBackward(const BackwardArgs& a);
void cpuInfer(const InferArgs& a);

// ---- runtime configuration (dispatch.cpp / threadpool.cpp)
enum class SimdLevel { Scalar = 0, Neon = 1, Avx2 = 2, Avx512 = 3 };
const char* simdName(SimdLevel l);
SimdLevel bestSimdLevel();            // what this CPU supports
bool simdSupported(SimdLevel l);
SimdLevel activeSimdLevel();
// Force a level (BLN_SIMD does the same at load). Throws ArgumentError if unsupported.
void setSimdLevel(SimdLevel l);
bool parseSimdLevel(const std::string& s, SimdLevel* out);

int maxThreads();         // threads the pool may use (hardware, capped by BLN_THREADS)
int activeThreads();      // current cap (<= maxThreads)
void setThreads(int n);   // 1..maxThreads

// ---- memory (memory.cpp)
// Advises the kernel to back the 2 MiB-aligned interior of [p, p + bytes) with transparent
// huge pages, where the OS has them (Linux, THP in 'madvise' or 'always' mode). For large
// fresh outputs, which the kernels touch first: one fault per 2 MiB instead of per 4 KiB.
// Advice only: returns the bytes advised (0 where nothing was done), never fails.
size_t adviseHugePages(void* p, size_t bytes);

}  // namespace bln
