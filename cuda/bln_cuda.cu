// Host API of the CUDA path (bln_cuda.h): argument checks, the per-thread device
// cache, host <-> device copies, error handling, and cudaInfo().
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "bln_cuda.h"
#include "bln_kernels.cuh"

#ifndef BLN_CUDA_ARCHS_STRING
#define BLN_CUDA_ARCHS_STRING "unknown"
#endif

namespace bln {
namespace {

// ------------------------------------------------------------------ info

std::string versionString(int v) {
  if (v <= 0) return "none";
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

std::string errText(cudaError_t e) { return std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")"; }

struct InfoState {
  CudaInfo info;
  int device = 0;
};

InfoState computeInfo() {
  InfoState s;
  CudaInfo& ci = s.info;
  int rv = 0, dv = 0;
  cudaRuntimeGetVersion(&rv);
  cudaDriverGetVersion(&dv);
  cudaGetLastError();
  ci.runtimeVersion = versionString(rv);
  ci.driverVersion = versionString(dv);
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (dv <= 0)
      ci.reason = "no CUDA device: no NVIDIA driver was found (cudaGetDeviceCount returned " + errText(e) + ")";
    else if (e == cudaErrorInsufficientDriver || dv < rv)
      ci.reason = "the CUDA driver is too old: it supports CUDA " + ci.driverVersion + ", this build of batch-layer-norm needs " +
                  ci.runtimeVersion + " or newer (cudaGetDeviceCount returned " + errText(e) + ")";
    else
      ci.reason = "no CUDA device: cudaGetDeviceCount returned " + errText(e);
    return s;
  }
  if (n <= 0) {
    ci.reason = "no CUDA device: cudaGetDeviceCount found none";
    return s;
  }
  if (const char* env = std::getenv("BLN_CUDA_DEVICE")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || v < 0 || v >= n) {
      ci.reason = std::string("BLN_CUDA_DEVICE=") + env + " does not name one of the " + std::to_string(n) + " CUDA devices";
      return s;
    }
    s.device = static_cast<int>(v);
  }
  e = cudaSetDevice(s.device);
  cudaDeviceProp prop;
  if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, s.device);
  if (e != cudaSuccess) {
    cudaGetLastError();
    ci.reason = "CUDA device " + std::to_string(s.device) + " cannot be used: " + errText(e);
    return s;
  }
  ci.name = prop.name;
  ci.computeCapability = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  ci.memoryBytes = prop.totalGlobalMem;
  e = gpu::probeKernelImage();
  if (e != cudaSuccess) {
    cudaGetLastError();
    ci.reason = "this build of batch-layer-norm has no kernels for " + ci.name + " (compute capability " + ci.computeCapability +
                "; built for " BLN_CUDA_ARCHS_STRING "; rebuild with BLN_CUDA_ARCHS=" + std::to_string(prop.major) +
                std::to_string(prop.minor) + "): " + errText(e);
    return s;
  }
  ci.available = true;
#ifdef BLN_EMU
  ci.emulated = true;
#endif
  return s;
}

const InfoState& infoState() {
  static const InfoState s = computeInfo();
  return s;
}

// ------------------------------------------------------------------ per-thread cache

// Bumped by a device reset (after a sticky error): every thread's cached stream and
// buffer died with it and must be rebuilt, not freed.
std::atomic<unsigned> gGeneration{0};
std::mutex gResetMutex;

struct DeviceCache {
  unsigned generation = 0;
  bool limitsKnown = false;
  gpu::DeviceLimits lim;
  cudaStream_t stream = nullptr;
  void* buf = nullptr;
  size_t cap = 0;

  void release() {
    if (generation == gGeneration.load()) {
      if (buf) cudaFree(buf);
      if (stream) cudaStreamDestroy(stream);
      cudaGetLastError();
    }
    buf = nullptr, cap = 0, stream = nullptr;
  }
  ~DeviceCache() { release(); }
};

struct ThreadCache {
  std::vector<std::unique_ptr<DeviceCache>> devs;  // by device index
};
thread_local ThreadCache tlsCache;

[[noreturn]] void fail(DeviceCache* dc, cudaError_t e, const std::string& what) {
  const std::string msg = std::string("CUDA error: ") + cudaGetErrorString(e) + " (" + what + ")";
  cudaGetLastError();  // clears a non-sticky error
  // A sticky error (a kernel fault) leaves the context unusable: every later call
  // fails the same way. Only a device reset recovers the process.
  if (cudaDeviceSynchronize() != cudaSuccess) {
    std::lock_guard<std::mutex> lock(gResetMutex);
    if (cudaDeviceSynchronize() != cudaSuccess) {
      cudaDeviceReset();
      cudaGetLastError();
      gGeneration.fetch_add(1);
    }
  }
  if (dc) dc->release();
  throw std::runtime_error(msg);
}

// The cache of the device cudaInfo() describes, with a live stream.
DeviceCache& session() {
  const InfoState& is = infoState();
  if (!is.info.available) throw std::runtime_error("CUDA is not usable: " + is.info.reason);
  ThreadCache& tc = tlsCache;
  if (tc.devs.size() <= static_cast<size_t>(is.device)) tc.devs.resize(is.device + 1);
  if (!tc.devs[is.device]) tc.devs[is.device].reset(new DeviceCache());
  DeviceCache& dc = *tc.devs[is.device];
  const unsigned gen = gGeneration.load();
  if (dc.generation != gen) dc.stream = nullptr, dc.buf = nullptr, dc.cap = 0, dc.generation = gen;
  cudaError_t e = cudaSetDevice(is.device);
  if (e != cudaSuccess) fail(&dc, e, "cudaSetDevice");
  if (!dc.limitsKnown) {
    int sms = 0, smem = 0;
    e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, is.device);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, is.device);
    if (e != cudaSuccess) fail(&dc, e, "cudaDeviceGetAttribute");
    dc.lim.smCount = sms > 0 ? sms : 1;
    dc.lim.smemOptin = smem > 0 ? static_cast<size_t>(smem) : 48 * 1024;
    dc.limitsKnown = true;
  }
  if (!dc.stream) {
    e = cudaStreamCreateWithFlags(&dc.stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) dc.stream = nullptr, fail(&dc, e, "cudaStreamCreateWithFlags");
  }
  return dc;
}

// Grow-only device buffer of at least `bytes`.
char* ensure(DeviceCache& dc, size_t bytes) {
  if (bytes <= dc.cap && dc.buf) return static_cast<char*>(dc.buf);
  const size_t old = dc.cap;
  if (dc.buf) {
    cudaError_t e = cudaFree(dc.buf);
    dc.buf = nullptr, dc.cap = 0;
    if (e != cudaSuccess) fail(&dc, e, "cudaFree");
  }
  size_t want = bytes;
  if (old > 0 && old + old / 2 > want) want = old + old / 2;  // growth steps of 1.5x at least
  cudaError_t e = cudaMalloc(&dc.buf, want);
  if (e == cudaErrorMemoryAllocation && want > bytes) {
    cudaGetLastError();
    want = bytes;
    e = cudaMalloc(&dc.buf, want);
  }
  if (e != cudaSuccess) {
    dc.buf = nullptr;
    fail(&dc, e, "cudaMalloc of " + std::to_string(bytes) + " bytes");
  }
  dc.cap = want;
  return static_cast<char*>(dc.buf);
}

// Lays out device buffers in one allocation (256-byte aligned pieces).
struct Layout {
  size_t total = 0;
  size_t add(size_t bytes) {
    const size_t at = gpu::align256(total);
    total = at + bytes;
    return at;
  }
};

// A stand-in 256-byte aligned address for planning before the buffer exists (plans
// only look at alignment, and every piece of the real buffer is 256-byte aligned).
template <class T>
T* alignedStandIn() {
  return reinterpret_cast<T*>(uintptr_t(256));
}

struct Copier {
  DeviceCache& dc;
  void h2d(void* dst, const void* src, size_t bytes) {
    if (!bytes) return;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, dc.stream);
    if (e != cudaSuccess) fail(&dc, e, "cudaMemcpyAsync host to device of " + std::to_string(bytes) + " bytes");
  }
  void d2h(void* dst, const void* src, size_t bytes) {
    if (!bytes) return;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, dc.stream);
    if (e != cudaSuccess) fail(&dc, e, "cudaMemcpyAsync device to host of " + std::to_string(bytes) + " bytes");
  }
  void launched(cudaError_t e, const char* what) {
    if (e != cudaSuccess) fail(&dc, e, what);
  }
  void sync() {
    cudaError_t e = cudaStreamSynchronize(dc.stream);
    if (e != cudaSuccess) fail(&dc, e, "cudaStreamSynchronize after the kernels");
  }
};

constexpr size_t F = sizeof(float);

void runNorm(const Dims& d, const float* x, const float* gamma, const float* beta, float* y, const StatsOut* out,
             const StatsIn* pop, InferUse use, double eps, double batchSize) {
  DeviceCache& dc = session();
  const size_t n = size_t(d.numel()), MC = size_t(d.batchStatLen()), R = size_t(d.featureStatLen()), C = size_t(d.C),
               M = size_t(d.M);

  gpu::FwdDev a;
  a.d = d, a.eps = eps, a.batchSize = batchSize, a.use = use;
  a.x = a.gamma = a.beta = alignedStandIn<const float>();
  a.y = alignedStandIn<float>();
  gpu::FwdPlan plan = gpu::planForward(a, dc.lim);
  if (!plan.ok) throw std::runtime_error(std::string("CUDA error: no kernel plan: ") + plan.why);

  Layout L;
  const size_t oX = L.add(n * F), oY = L.add(n * F), oG = L.add(C * F), oB = L.add(C * F);
  size_t oBm = 0, oBv = 0, oFm = 0, oFv = 0;
  if (out) oBm = L.add(MC * F), oBv = L.add(MC * F), oFm = L.add(R * F), oFv = L.add(R * F);
  size_t oPbm = 0, oPbv = 0, oPfm = 0, oPfv = 0;
  if (pop) {
    if (use.batchMean) oPbm = L.add(MC * F);
    if (use.batchVar) oPbv = L.add(MC * F);
    if (use.featureMean) oPfm = L.add(M * F);
    if (use.featureVar) oPfv = L.add(M * F);
  }
  const size_t oWs = L.add(plan.wsBytes);
  char* base = ensure(dc, L.total);

  auto P = [&](size_t o) { return reinterpret_cast<float*>(base + o); };
  a.x = P(oX), a.y = P(oY), a.gamma = P(oG), a.beta = P(oB);
  if (out) a.stats.batchMean = P(oBm), a.stats.batchVar = P(oBv), a.stats.featureMean = P(oFm), a.stats.featureVar = P(oFv);
  if (pop) {
    if (use.batchMean) a.pop.batchMean = P(oPbm);
    if (use.batchVar) a.pop.batchVar = P(oPbv);
    if (use.featureMean) a.pop.featureMean = P(oPfm);
    if (use.featureVar) a.pop.featureVar = P(oPfv);
  }

  Copier cp{dc};
  cp.h2d(P(oX), x, n * F);
  cp.h2d(P(oG), gamma, C * F);
  cp.h2d(P(oB), beta, C * F);
  if (pop) {
    if (use.batchMean) cp.h2d(P(oPbm), pop->batchMean, MC * F);
    if (use.batchVar) cp.h2d(P(oPbv), pop->batchVar, MC * F);
    if (use.featureMean) cp.h2d(P(oPfm), pop->featureMean, M * F);
    if (use.featureVar) cp.h2d(P(oPfv), pop->featureVar, M * F);
  }
  cp.launched(gpu::launchForward(a, plan, base + oWs, dc.stream), out ? "forward kernels" : "inference kernels");
  cp.d2h(y, P(oY), n * F);
  if (out) {
    cp.d2h(out->batchMean, P(oBm), MC * F);
    cp.d2h(out->batchVar, P(oBv), MC * F);
    cp.d2h(out->featureMean, P(oFm), R * F);
    cp.d2h(out->featureVar, P(oFv), R * F);
  }
  cp.sync();
}

}  // namespace

CudaInfo cudaInfo() { return infoState().info; }

// Arguments: checkArgs of bln.h, the CPU path's own checks.
void cudaForward(const ForwardArgs& a) {
  checkArgs(a);
  runNorm(a.d, a.x, a.gamma, a.beta, a.y, &a.stats, nullptr, InferUse{}, a.eps, a.batchSize);
}

void cudaInfer(const InferArgs& a) {
  checkArgs(a);
  runNorm(a.d, a.x, a.gamma, a.beta, a.y, nullptr, &a.population, a.use, a.eps, a.batchSize);
}

void cudaBackward(const BackwardArgs& a) {
  checkArgs(a);
  DeviceCache& dc = session();
  const Dims& d = a.d;
  const size_t n = size_t(d.numel()), MC = size_t(d.batchStatLen()), R = size_t(d.featureStatLen()), C = size_t(d.C);

  gpu::BwdDev b;
  b.d = d, b.eps = a.eps, b.batchSize = a.batchSize;
  b.dy = b.x = b.gamma = alignedStandIn<const float>();
  b.stats.batchMean = alignedStandIn<const float>();
  b.dx = alignedStandIn<float>();
  gpu::BwdPlan plan = gpu::planBackward(b, dc.lim);
  if (!plan.ok) throw std::runtime_error(std::string("CUDA error: no kernel plan: ") + plan.why);

  Layout L;
  const size_t oDy = L.add(n * F), oX = L.add(n * F), oDx = L.add(n * F), oG = L.add(C * F), oDg = L.add(C * F),
               oDb = L.add(C * F), oBm = L.add(MC * F), oBv = L.add(MC * F), oFm = L.add(R * F), oFv = L.add(R * F),
               oWs = L.add(plan.wsBytes);
  char* base = ensure(dc, L.total);
  auto P = [&](size_t o) { return reinterpret_cast<float*>(base + o); };
  b.dy = P(oDy), b.x = P(oX), b.dx = P(oDx), b.gamma = P(oG), b.dgamma = P(oDg), b.dbeta = P(oDb);
  b.stats.batchMean = P(oBm), b.stats.batchVar = P(oBv), b.stats.featureMean = P(oFm), b.stats.featureVar = P(oFv);

  Copier cp{dc};
  cp.h2d(P(oDy), a.dy, n * F);
  cp.h2d(P(oX), a.x, n * F);
  cp.h2d(P(oG), a.gamma, C * F);
  cp.h2d(P(oBm), a.stats.batchMean, MC * F);
  cp.h2d(P(oBv), a.stats.batchVar, MC * F);
  cp.h2d(P(oFm), a.stats.featureMean, R * F);
  cp.h2d(P(oFv), a.stats.featureVar, R * F);
  cp.launched(gpu::launchBackward(b, plan, base + oWs, dc.stream), "backward kernels");
  cp.d2h(a.dx, P(oDx), n * F);
  cp.d2h(a.dgamma, P(oDg), C * F);
  cp.d2h(a.dbeta, P(oDb), C * F);
  cp.sync();
}

#ifdef BLN_EMU
unsigned long long emuKernelLaunches() { return ::bln_emu::launchCount().load(); }
#endif

void cudaReleaseThreadCache() {
  for (auto& dc : tlsCache.devs)
    if (dc) dc->release();
}

}  // namespace bln
