// Portable core of batch-layer-norm: no Node headers here.
// The math is ../shared/BLN-SPEC.md: x is viewed as [B, M, C] (C fastest).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

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

// Plain batons: the binding fills them, the core reads them. Lengths are
// carried so the core can check them before touching memory.
struct ForwardArgs {
  Dims d;
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

// Mixing weights of the spec, from the configured batch size N.
inline double weightFeature(double N) { return 1.0 / N - 1e-4; }
inline double weightBatch(double N) { return 1.0 - (1.0 / N + 1e-4); }

// CPU path. Throws ArgumentError on inconsistent arguments, std::bad_alloc when
// scratch cannot be had. Safe to call from several threads at once.
void cpuForward(const ForwardArgs& a);
void cpuBackward(const BackwardArgs& a);
void cpuInfer(const InferArgs& a);

// Validation shared by every path (lengths are the caller's buffer lengths in floats).
void checkDims(const Dims& d);

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

}  // namespace bln
