// Host emulation of the small part of CUDA that cuda/*.cu uses (BLN_EMU builds only;
// nvcc builds never include this file). It lets the kernels, the launchers, the host
// API and the harness run on a machine without a GPU, compiled by g++:
//
//  - a block runs as blockDim fibers on the calling thread; __syncthreads is a barrier,
//    warp shuffles exchange through per-warp slots between two warp barriers; blocks
//    of a grid run one after another (shared memory is per block, as on a GPU); the
//    order of the fibers between barriers is BLN_EMU_SCHEDULE (forward, reverse, or
//    random: one fiber at a time, warps released at once so one warp can run ahead of
//    the others), so a missing barrier gives wrong results in some order (racecheck);
//  - dynamic shared memory is a fresh allocation of exactly the launch's size, filled
//    with 0xFF bytes (NaN) so reads of unwritten shared memory show up as NaN;
//  - device memory is host memory of exactly the requested size, so AddressSanitizer
//    sees out-of-bounds accesses (memcheck);
//  - 128-bit accesses check their 16-byte alignment (a GPU faults on a misaligned one).
//
// Not emulated: the memory model of a real GPU beyond barriers, warp-synchronous code
// without shuffles (there is none here), performance. Timings under emulation mean
// nothing. Environment: BLN_EMU_SMS (SM count, default 4), BLN_EMU_MEMORY (device
// bytes, default 4 GiB), BLN_EMU_NO_DEVICE=1 (cudaGetDeviceCount fails), and injected
// faults for the tests of the callers' error handling: BLN_EMU_FAULT=launch (every launch
// fails with cudaErrorLaunchFailure) or BLN_EMU_FAULT=mismatch (every device-to-host copy
// comes back with its first float off by one: wrong results, no error).
#pragma once

#ifdef __CUDACC__
#error "bln_emu.cuh is for host-only (BLN_EMU) builds"
#endif

#include <math.h>
#include <ucontext.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) double2 {
  double x, y;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline double2 make_double2(double x, double y) { return double2{x, y}; }

inline thread_local dim3 threadIdx{0, 0, 0};
inline thread_local dim3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};

// ------------------------------------------------------------------ runtime types
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInsufficientDriver = 35,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
};
typedef struct BlnEmuStream* cudaStream_t;
typedef struct BlnEmuEvent* cudaEvent_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
#define cudaStreamNonBlocking 0x01
struct cudaDeviceProp {
  char name[256];
  int major, minor;
  size_t totalGlobalMem;
  int multiProcessorCount;
  size_t sharedMemPerBlockOptin;
  int l2CacheSize;
};
struct cudaFuncAttributes {
  int numRegs;
  size_t sharedSizeBytes;
};
struct BlnEmuEvent {
  std::chrono::steady_clock::time_point t;
};

namespace bln_emu {

inline thread_local cudaError_t lastError = cudaSuccess;
inline cudaError_t setError(cudaError_t e) {
  if (e != cudaSuccess) lastError = e;
  return e;
}
inline int envInt(const char* name, long long def) {
  const char* s = std::getenv(name);
  return s ? std::atoi(s) : static_cast<int>(def);
}
inline size_t memoryLimit() {
  const char* s = std::getenv("BLN_EMU_MEMORY");
  return s ? static_cast<size_t>(std::strtoull(s, nullptr, 10)) : (size_t(4) << 30);
}
inline std::atomic<size_t>& memoryUsed() {
  static std::atomic<size_t> used{0};
  return used;
}
inline std::mutex& allocMutex() {
  static std::mutex m;
  return m;
}
inline std::vector<std::pair<void*, size_t>>& allocations() {
  static std::vector<std::pair<void*, size_t>> a;
  return a;
}
constexpr size_t kSmemOptin = 227 * 1024;

// Injected faults (BLN_EMU_FAULT): 0 none, 1 launch, 2 mismatch.
inline int faultMode() {
  static const int mode = [] {
    const char* s = std::getenv("BLN_EMU_FAULT");
    if (!s || !*s) return 0;
    if (!std::strcmp(s, "launch")) return 1;
    if (!std::strcmp(s, "mismatch")) return 2;
    std::fprintf(stderr, "bln_emu: unknown BLN_EMU_FAULT=%s (launch or mismatch)\n", s);
    std::abort();
  }();
  return mode;
}
inline std::atomic<unsigned long long>& launchCount() {
  static std::atomic<unsigned long long> n{0};
  return n;
}

[[noreturn]] inline void fault(const char* what) {
  std::fprintf(stderr, "bln_emu: device fault: %s\n", what);
  std::abort();
}
inline void checkAligned16(const void* p) {
  if (reinterpret_cast<uintptr_t>(p) & 15u) fault("misaligned 128-bit access");
}

// A block runs as blockDim fibers (ucontext) on the calling thread. A fiber runs until
// it reaches a barrier or returns; when every live thread of the block (of the warp,
// for a shuffle) waits at the barrier, they are released. The order in which fibers run
// within a phase is BLN_EMU_SCHEDULE = forward (default) or reverse (each runs every fiber to
// its next barrier, warps in lockstep), or random (one random runnable fiber at a time, a warp
// released the moment its last lane arrives, so warps drift apart up to a __syncthreads): a
// missing __syncthreads shows up as a wrong result (or NaN from the poisoned shared memory)
// in at least one of the orders.
enum class Wait : int { None = 0, Block = 1, Warp = 2 };

// Context switch: a few instructions of assembly on x86-64 (swapcontext makes a system
// call per switch), ucontext elsewhere and under AddressSanitizer (which intercepts it).
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define BLN_EMU_ASM_SWITCH 1
extern "C" void bln_emu_ctx_switch(void** saveSp, void* loadSp);
asm(".text\n.weak bln_emu_ctx_switch\n.type bln_emu_ctx_switch,@function\nbln_emu_ctx_switch:\n"
    "pushq %rbp\npushq %rbx\npushq %r12\npushq %r13\npushq %r14\npushq %r15\n"
    "movq %rsp, (%rdi)\nmovq %rsi, %rsp\n"
    "popq %r15\npopq %r14\npopq %r13\npopq %r12\npopq %rbx\npopq %rbp\nret\n"
    ".size bln_emu_ctx_switch, .-bln_emu_ctx_switch\n");
struct Context {
  void* sp = nullptr;
};
#else
struct Context {
  ucontext_t uc;
};
#endif

struct Fiber {
  Context ctx;
  Wait wait = Wait::None;
  bool done = false;
};

struct Block {
  unsigned nthreads = 0;
  dim3 block, grid, idx;
  std::vector<Fiber> fibers;
  std::vector<uint64_t> slots;
  unsigned char* smem = nullptr;
  const std::function<void()>* body = nullptr;
  Context sched;
  unsigned current = 0;
};
inline thread_local Block* tBlock = nullptr;
inline thread_local unsigned tLinear = 0;

inline unsigned char* dynamicSmem() { return tBlock->smem; }

inline void setThreadVars(Block& b, unsigned t) {
  tBlock = &b;
  tLinear = t;
  b.current = t;
  threadIdx = dim3(t % b.block.x, (t / b.block.x) % b.block.y, t / (b.block.x * b.block.y));
  blockIdx = b.idx;
  blockDim = b.block;
  gridDim = b.grid;
}

// Fiber side: wait at a barrier (gives control back to the scheduler).
inline void switchTo(Context* save, Context* load) {
#ifdef BLN_EMU_ASM_SWITCH
  bln_emu_ctx_switch(&save->sp, load->sp);
#else
  swapcontext(&save->uc, &load->uc);
#endif
}

inline void waitAt(Wait w) {
  Block& b = *tBlock;
  const unsigned me = tLinear;
  b.fibers[me].wait = w;
  switchTo(&b.fibers[me].ctx, &b.sched);
  setThreadVars(b, me);  // the scheduler switched the thread variables to other fibers meanwhile
}

inline void fiberEntry() {
  Block& b = *tBlock;
  const unsigned me = tLinear;
  (*b.body)();
  b.fibers[me].done = true;
  switchTo(&b.fibers[me].ctx, &b.sched);  // never resumed
  std::abort();
}

inline void initFiber(Fiber& f, char* stack, size_t bytes) {
#ifdef BLN_EMU_ASM_SWITCH
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t(15);
  uint64_t* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = 0;                                          // fake return address of fiberEntry
  *--sp = reinterpret_cast<uint64_t>(&fiberEntry);    // where the first switch returns to
  for (int i = 0; i < 6; ++i) *--sp = 0;              // rbp rbx r12 r13 r14 r15
  f.ctx.sp = sp;
#else
  getcontext(&f.ctx.uc);
  f.ctx.uc.uc_stack.ss_sp = stack;
  f.ctx.uc.uc_stack.ss_size = bytes;
  f.ctx.uc.uc_link = nullptr;
  makecontext(&f.ctx.uc, fiberEntry, 0);
#endif
}

inline std::vector<std::unique_ptr<char[]>>& stacks() {
  static thread_local std::vector<std::unique_ptr<char[]>> s;
  return s;
}
constexpr size_t kStackBytes = 256 * 1024;

inline std::mutex& deviceMutex() {
  static std::mutex m;
  return m;
}

inline int scheduleMode() {
  static const int mode = [] {
    const char* s = std::getenv("BLN_EMU_SCHEDULE");
    if (!s) return 0;
    if (!std::strcmp(s, "reverse")) return 1;
    if (!std::strcmp(s, "random")) return 2;
    return 0;
  }();
  return mode;
}

inline void runBlock(Block& b) {
  const unsigned n = b.nthreads;
  auto& st = stacks();
  while (st.size() < n) st.emplace_back(new char[kStackBytes]);
  b.fibers.assign(n, Fiber{});
  for (unsigned t = 0; t < n; ++t) initFiber(b.fibers[t], st[t].get(), kStackBytes);
  std::vector<unsigned> order(n), runnable;
  for (unsigned t = 0; t < n; ++t) order[t] = t;
  static thread_local uint64_t rng = 0x9E3779B97F4A7C15ull;
  const int mode = scheduleMode();
  auto warpComplete = [&](unsigned w) {
    for (unsigned t = w * 32; t < w * 32 + 32 && t < n; ++t)
      if (!b.fibers[t].done && b.fibers[t].wait != Wait::Warp) return false;
    return true;
  };
  for (;;) {
    bool ran = false;
    if (mode == 2) {
      // Warps in a random priority order, fresh at each __syncthreads: the first warp runs
      // (its lanes in random order, released the moment its last lane arrives at a shuffle)
      // until it reaches the next __syncthreads or ends, then the next warp, and so on. One
      // warp thus runs as far ahead of the others as a GPU ever lets it, so a barrier missing
      // between two uses of shared memory shows.
      const unsigned nw = (n + 31) / 32;
      std::vector<unsigned> warps(nw);
      for (unsigned w = 0; w < nw; ++w) warps[w] = w;
      for (unsigned w = nw - 1; w > 0; --w) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        std::swap(warps[w], warps[rng % (w + 1)]);
      }
      for (unsigned w : warps) {
        for (;;) {
          runnable.clear();
          for (unsigned t = w * 32; t < w * 32 + 32 && t < n; ++t)
            if (!b.fibers[t].done && b.fibers[t].wait == Wait::None) runnable.push_back(t);
          if (runnable.empty()) break;
          for (size_t k = runnable.size() - 1; k > 0; --k) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            std::swap(runnable[k], runnable[rng % (k + 1)]);
          }
          for (unsigned t : runnable) {
            setThreadVars(b, t);
            switchTo(&b.sched, &b.fibers[t].ctx);
            ran = true;
          }
          if (!warpComplete(w)) break;  // lanes wait at a __syncthreads (or have ended)
          bool any = false;
          for (unsigned t = w * 32; t < w * 32 + 32 && t < n; ++t)
            if (!b.fibers[t].done) b.fibers[t].wait = Wait::None, any = true;
          if (!any) break;
        }
      }
    } else {
      if (mode == 1)
        for (unsigned t = 0; t < n; ++t) order[t] = n - 1 - t;
      for (unsigned t : order) {
        Fiber& f = b.fibers[t];
        if (f.done || f.wait != Wait::None) continue;
        setThreadVars(b, t);
        switchTo(&b.sched, &f.ctx);
        ran = true;
      }
    }
    // Release barriers whose every live participant has arrived.
    bool live = false, released = false;
    bool blockAll = true;
    for (unsigned t = 0; t < n; ++t) {
      if (b.fibers[t].done) continue;
      live = true;
      if (b.fibers[t].wait != Wait::Block) blockAll = false;
    }
    if (!live) break;
    if (blockAll) {
      for (auto& f : b.fibers)
        if (!f.done) f.wait = Wait::None;
      released = true;
    }
    for (unsigned w = 0; w * 32 < n && !released; ++w) {
      bool any = false, all = true;
      for (unsigned t = w * 32; t < w * 32 + 32; ++t) {
        if (b.fibers[t].done) continue;
        any = true;
        if (b.fibers[t].wait != Wait::Warp) all = false;
      }
      if (any && all) {
        for (unsigned t = w * 32; t < w * 32 + 32; ++t) b.fibers[t].wait = Wait::None;
        released = true;
      }
    }
    if (!released && !ran) fault("deadlock: the threads of a block wait at different barriers");
  }
  tBlock = nullptr;
}

template <class Body>
cudaError_t launch(dim3 grid, dim3 block, size_t smem, cudaStream_t, const Body& body) {
  const unsigned n = block.x * block.y * block.z;
  if (n == 0 || n > 1024 || n % 32 != 0 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
    return setError(cudaErrorInvalidConfiguration);
  if (smem > kSmemOptin) return setError(cudaErrorInvalidValue);
  if (faultMode() == 1) return setError(cudaErrorLaunchFailure);
  launchCount().fetch_add(1);
  std::lock_guard<std::mutex> lock(deviceMutex());  // one kernel at a time, as static __shared__ is one object
  const std::function<void()> fn = [&] { body(); };
  std::unique_ptr<unsigned char, void (*)(void*)> mem(static_cast<unsigned char*>(std::malloc(smem ? smem : 1)), std::free);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        Block blk;
        blk.nthreads = n;
        blk.block = block, blk.grid = grid, blk.idx = dim3(bx, by, bz);
        blk.slots.assign(n, 0);
        std::memset(mem.get(), 0xFF, smem);  // fresh, NaN-filled shared memory per block
        blk.smem = mem.get();
        blk.body = &fn;
        runBlock(blk);
      }
  return cudaSuccess;
}

template <class T>
T shflFrom(T v, unsigned srcOfLane) {
  static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
  Block& b = *tBlock;
  const unsigned warp = tLinear / 32;
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  b.slots[tLinear] = bits;
  waitAt(Wait::Warp);
  const uint64_t got = b.slots[warp * 32 + srcOfLane];
  waitAt(Wait::Warp);
  T out;
  std::memcpy(&out, &got, sizeof(T));
  return out;
}

}  // namespace bln_emu

// ------------------------------------------------------------------ device functions
inline void __syncthreads() { bln_emu::waitAt(bln_emu::Wait::Block); }

template <class T>
T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32) {
  if (mask != 0xffffffffu) bln_emu::fault("partial-warp shuffle (not emulated)");
  const unsigned lane = bln_emu::tLinear % 32;
  unsigned src = lane ^ static_cast<unsigned>(laneMask);
  if ((src & ~static_cast<unsigned>(width - 1)) != (lane & ~static_cast<unsigned>(width - 1))) src = lane;
  return bln_emu::shflFrom(v, src);
}
template <class T>
T __shfl_sync(unsigned mask, T v, int srcLane, int width = 32) {
  if (mask != 0xffffffffu) bln_emu::fault("partial-warp shuffle (not emulated)");
  const unsigned lane = bln_emu::tLinear % 32;
  const unsigned w = static_cast<unsigned>(width);
  const unsigned src = (lane & ~(w - 1)) | (static_cast<unsigned>(srcLane) & (w - 1));
  return bln_emu::shflFrom(v, src);
}

inline float __ldg(const float* p) { return *p; }
inline float4 __ldg(const float4* p) {
  bln_emu::checkAligned16(p);
  return *p;
}
inline void __stcs(float* p, float v) { *p = v; }
inline void __stcs(float4* p, float4 v) {
  bln_emu::checkAligned16(p);
  *p = v;
}

// ------------------------------------------------------------------ runtime API
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = bln_emu::lastError;
  bln_emu::lastError = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return bln_emu::lastError; }
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceCount(int* n) {
  if (std::getenv("BLN_EMU_NO_DEVICE")) {
    *n = 0;
    return bln_emu::setError(cudaErrorNoDevice);
  }
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : bln_emu::setError(cudaErrorInvalidValue); }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return bln_emu::setError(cudaErrorInvalidValue);
  std::memset(p, 0, sizeof(*p));
  std::snprintf(p->name, sizeof(p->name), "%s", "bln host emulator");
  p->major = 9, p->minor = 0;
  p->totalGlobalMem = bln_emu::memoryLimit();
  p->multiProcessorCount = bln_emu::envInt("BLN_EMU_SMS", 4);
  p->sharedMemPerBlockOptin = bln_emu::kSmemOptin;
  p->l2CacheSize = 50 << 20;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d) {
  if (d != 0) return bln_emu::setError(cudaErrorInvalidValue);
  *v = a == cudaDevAttrMultiProcessorCount ? bln_emu::envInt("BLN_EMU_SMS", 4) : static_cast<int>(bln_emu::kSmemOptin);
  return cudaSuccess;
}
inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, const void*) {
  a->numRegs = 0, a->sharedSizeBytes = 0;
  return cudaSuccess;
}
inline cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  std::lock_guard<std::mutex> lock(bln_emu::allocMutex());
  if (bytes == 0) bytes = 1;
  if (bln_emu::memoryUsed() + bytes > bln_emu::memoryLimit()) return bln_emu::setError(cudaErrorMemoryAllocation);
  void* q = nullptr;
  if (posix_memalign(&q, 256, bytes) != 0) return bln_emu::setError(cudaErrorMemoryAllocation);
  bln_emu::memoryUsed() += bytes;
  bln_emu::allocations().push_back({q, bytes});
  *p = q;
  return cudaSuccess;
}
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
inline cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(bln_emu::allocMutex());
  auto& a = bln_emu::allocations();
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].first == p) {
      bln_emu::memoryUsed() -= a[i].second;
      a.erase(a.begin() + static_cast<long>(i));
      std::free(p);
      return cudaSuccess;
    }
  return bln_emu::setError(cudaErrorInvalidValue);
}
inline cudaError_t cudaMemGetInfo(size_t* freeB, size_t* total) {
  *total = bln_emu::memoryLimit();
  *freeB = *total - bln_emu::memoryUsed();
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind k) {
  if (n) std::memcpy(d, s, n);
  if (k == cudaMemcpyDeviceToHost && n >= sizeof(float) && bln_emu::faultMode() == 2) static_cast<float*>(d)[0] += 1.0f;
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, cudaStream_t = nullptr) {
  return cudaMemcpy(d, s, n, k);
}
inline cudaError_t cudaMemset(void* d, int v, size_t n) {
  if (n) std::memset(d, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t = nullptr) { return cudaMemset(d, v, n); }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  static char token;
  *s = reinterpret_cast<cudaStream_t>(&token);
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaDeviceReset() { return cudaSuccess; }
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new BlnEmuEvent();
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = nullptr) {
  e->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}
