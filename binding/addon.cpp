// N-API glue only: argument unpacking into plain batons, one AsyncWorker per
// operation, and the export table. lib/ has validated everything already and owns the
// messages users see; this file only translates types (a Float32Array into a pointer and
// its length, a number into an integer), and the core (checkArgs of cpp/bln.h) owns the
// checks of dimensions, lengths and outputs that share memory with another array, before it
// touches memory. Its ArgumentError reaches JS as a RangeError (an OverlapError's pair as the
// error's `overlap`, which lib turns into its message).
#include <napi.h>

#include <cmath>
#include <cstdio>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "bln.h"
#ifdef BLN_WITH_CUDA
#include "bln_cuda.h"
#endif

namespace {

// Inputs and outputs the worker keeps alive until it is done (at most 16 arrays per op;
// a fixed array, so that the synchronous path allocates nothing).
struct Keep {
  napi_value v[16];
  size_t n = 0;
  void push(napi_value x) {
    if (n == 16) throw std::logic_error("too many arrays");
    v[n++] = x;
  }
};

int64_t dimArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("native: ") + name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 1) || d != std::floor(d) || d > 9007199254740991.0)
    throw Napi::RangeError::New(info.Env(), std::string("native: ") + name + " must be a positive integer");
  return static_cast<int64_t>(d);
}

double numArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("native: ") + name + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

// A Float32Array (or, when optional, undefined/null): its data and, in *len, its length for
// the core to check. One napi_get_typedarray_info call gives type, length and data: this runs
// for every array of every call, and the typed wrappers' repeated queries were a quarter of a
// small call.
template <class T>
T* f32Arg(const Napi::CallbackInfo& info, size_t i, const char* name, Keep& keep, int64_t* len, bool optional = false) {
  napi_env env = info.Env();
  napi_value v = info[i];
  if (optional) {
    napi_valuetype t;
    if (napi_typeof(env, v, &t) == napi_ok && (t == napi_undefined || t == napi_null)) return nullptr;
  }
  // (napi_get_typedarray_info itself refuses a value that is not a typed array: napi_invalid_arg)
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_float32_array)
    throw Napi::TypeError::New(env, std::string("native: ") + name + " must be a Float32Array");
  if (!data) throw Napi::TypeError::New(env, std::string("native: ") + name + " is detached");
  keep.push(v);
  *len = static_cast<int64_t>(length);
  return static_cast<T*>(data);
}

bln::Dims dimsArg(const Napi::CallbackInfo& info, size_t i) {
  return bln::Dims{dimArg(info, i, "B"), dimArg(info, i + 1, "M"), dimArg(info, i + 2, "C")};
}

enum class Device { Cpu = 0, Cuda = 1 };

Device deviceArg(const Napi::CallbackInfo& info, size_t i) {
  double d = numArg(info, i, "device");
  if (d == 0) return Device::Cpu;
#ifdef BLN_WITH_CUDA
  if (d == 1) return Device::Cuda;
#endif
  throw Napi::Error::New(info.Env(), "native: CUDA is not available in this build of batch-layer-norm");
}

// --------------------------------------------------------------- batons

struct ForwardOp {
  bln::ForwardArgs a;
  Device dev = Device::Cpu;
  static constexpr const char* kName = "bln:forward";
  // (x, B, M, C, gamma, beta, eps, N, device, y, bm, bv, fm, fv)
  void parse(const Napi::CallbackInfo& info, Keep& keep) {
    a.d = dimsArg(info, 1);
    a.x = f32Arg<const float>(info, 0, "x", keep, &a.len.x);
    a.gamma = f32Arg<const float>(info, 4, "gamma", keep, &a.len.gamma);
    a.beta = f32Arg<const float>(info, 5, "beta", keep, &a.len.beta);
    a.eps = numArg(info, 6, "epsilon");
    a.batchSize = numArg(info, 7, "batchSize");
    dev = deviceArg(info, 8);
    a.y = f32Arg<float>(info, 9, "y", keep, &a.len.y);
    a.stats.batchMean = f32Arg<float>(info, 10, "batchMean", keep, &a.len.batchMean);
    a.stats.batchVar = f32Arg<float>(info, 11, "batchVar", keep, &a.len.batchVar);
    a.stats.featureMean = f32Arg<float>(info, 12, "featureMean", keep, &a.len.featureMean);
    a.stats.featureVar = f32Arg<float>(info, 13, "featureVar", keep, &a.len.featureVar);
  }
  void run() const {
#ifdef BLN_WITH_CUDA
    if (dev == Device::Cuda) return bln::cudaForward(a);
#endif
    bln::cpuForward(a);
  }
};

struct BackwardOp {
  bln::BackwardArgs a;
  Device dev = Device::Cpu;
  static constexpr const char* kName = "bln:backward";
  // (dy, x, B, M, C, gamma, bm, bv, fm, fv, eps, N, device, dx, dgamma, dbeta)
  void parse(const Napi::CallbackInfo& info, Keep& keep) {
    a.d = dimsArg(info, 2);
    a.dy = f32Arg<const float>(info, 0, "dy", keep, &a.len.dy);
    a.x = f32Arg<const float>(info, 1, "x", keep, &a.len.x);
    a.gamma = f32Arg<const float>(info, 5, "gamma", keep, &a.len.gamma);
    a.stats.batchMean = f32Arg<const float>(info, 6, "stats.batchMean", keep, &a.len.batchMean);
    a.stats.batchVar = f32Arg<const float>(info, 7, "stats.batchVar", keep, &a.len.batchVar);
    a.stats.featureMean = f32Arg<const float>(info, 8, "stats.featureMean", keep, &a.len.featureMean);
    a.stats.featureVar = f32Arg<const float>(info, 9, "stats.featureVar", keep, &a.len.featureVar);
    a.eps = numArg(info, 10, "epsilon");
    a.batchSize = numArg(info, 11, "batchSize");
    dev = deviceArg(info, 12);
    a.dx = f32Arg<float>(info, 13, "dx", keep, &a.len.dx);
    a.dgamma = f32Arg<float>(info, 14, "dgamma", keep, &a.len.dgamma);
    a.dbeta = f32Arg<float>(info, 15, "dbeta", keep, &a.len.dbeta);
  }
  void run() const {
#ifdef BLN_WITH_CUDA
    if (dev == Device::Cuda) return bln::cudaBackward(a);
#endif
    bln::cpuBackward(a);
  }
};

struct InferOp {
  bln::InferArgs a;
  Device dev = Device::Cpu;
  static constexpr const char* kName = "bln:infer";
  // (x, B, M, C, gamma, beta, pbm, pbv, pfm, pfv, useMask, eps, N, device, y)
  void parse(const Napi::CallbackInfo& info, Keep& keep) {
    a.d = dimsArg(info, 1);
    a.x = f32Arg<const float>(info, 0, "x", keep, &a.len.x);
    a.gamma = f32Arg<const float>(info, 4, "gamma", keep, &a.len.gamma);
    a.beta = f32Arg<const float>(info, 5, "beta", keep, &a.len.beta);
    const double mask = numArg(info, 10, "use");
    // (casting NaN or an out-of-range double to int is undefined behaviour)
    if (!(mask >= 0 && mask <= 15) || mask != std::floor(mask))
      throw Napi::RangeError::New(info.Env(), "native: use must be an integer mask in 0..15");
    const int u = static_cast<int>(mask);
    a.use.batchMean = u & 1, a.use.batchVar = u & 2, a.use.featureMean = u & 4, a.use.featureVar = u & 8;
    a.population.batchMean = f32Arg<const float>(info, 6, "population.batchMean", keep, &a.len.batchMean, !a.use.batchMean);
    a.population.batchVar = f32Arg<const float>(info, 7, "population.batchVar", keep, &a.len.batchVar, !a.use.batchVar);
    a.population.featureMean = f32Arg<const float>(info, 8, "population.featureMean", keep, &a.len.featureMean, !a.use.featureMean);
    a.population.featureVar = f32Arg<const float>(info, 9, "population.featureVar", keep, &a.len.featureVar, !a.use.featureVar);
    a.eps = numArg(info, 11, "epsilon");
    a.batchSize = numArg(info, 12, "batchSize");
    dev = deviceArg(info, 13);
    a.y = f32Arg<float>(info, 14, "y", keep, &a.len.y);
  }
  void run() const {
#ifdef BLN_WITH_CUDA
    if (dev == Device::Cuda) return bln::cudaInfer(a);
#endif
    bln::cpuInfer(a);
  }
};

// Runs op.run(), turning C++ failures into a message. No N-API inside. The message goes
// into a fixed buffer: after a bad_alloc, building a std::string may throw again.
constexpr size_t kErrLen = 256;
constexpr const char* kOutOfMemory = "out of memory: the native buffers for this call could not be allocated";

struct Failure {
  char msg[kErrLen] = {0};  // empty: no failure
  bool argument = false;    // the core refused the arguments (bln::ArgumentError): a RangeError
  int overlap[2] = {-1, -1};  // bln::OverlapError's pair, passed on as the error's `overlap` (lib names them)
  Napi::Error toJs(Napi::Env env) const {
    Napi::Error e = argument ? Napi::Error(Napi::RangeError::New(env, msg)) : Napi::Error::New(env, msg);
    if (overlap[0] >= 0) {
      Napi::Array pair = Napi::Array::New(env, 2);
      pair.Set(0u, Napi::Number::New(env, overlap[0]));
      pair.Set(1u, Napi::Number::New(env, overlap[1]));
      e.Set("overlap", pair);
    }
    return e;
  }
};

// (The message is copied inside each catch block: the exception object, and the string
// what() points into, are destroyed when the block ends.)
template <class Op>
bool runCaught(const Op& op, Failure& f) {
  f.argument = false;
  f.overlap[0] = f.overlap[1] = -1;
  f.msg[0] = 0;
  try {
    op.run();
    return true;
  } catch (const std::bad_alloc&) {
    std::snprintf(f.msg, kErrLen, "%s", kOutOfMemory);
  } catch (const bln::OverlapError& e) {
    std::snprintf(f.msg, kErrLen, "%s", e.what());
    f.argument = true;
    f.overlap[0] = e.first, f.overlap[1] = e.second;
  } catch (const bln::ArgumentError& e) {
    std::snprintf(f.msg, kErrLen, "%s", e.what());
    f.argument = true;
  } catch (const std::exception& e) {
    std::snprintf(f.msg, kErrLen, "%s", e.what());
  } catch (...) {
    std::snprintf(f.msg, kErrLen, "%s", "unknown native error");
  }
  if (!f.msg[0]) std::snprintf(f.msg, kErrLen, "%s", "native error without a message");
  return false;
}

template <class Op>
class OpWorker : public Napi::AsyncWorker {
 public:
  OpWorker(Napi::Env env, Op op, const Keep& keep)
      : Napi::AsyncWorker(env, Op::kName), op_(op), deferred_(Napi::Promise::Deferred::New(env)) {
    refs_.reserve(keep.n);
    for (size_t k = 0; k < keep.n; ++k) refs_.push_back(Napi::Persistent(Napi::Value(env, keep.v[k])));
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override { runCaught(op_, fail_); }

  // Settles the promise. When the environment is going away (a worker_thread that
  // exits or is terminated while the call runs) N-API calls fail: nobody can await
  // the result any more, so the failure is dropped instead of aborting the process.
  void OnWorkComplete(Napi::Env env, napi_status status) override {
    if (status != napi_cancelled) {
      try {
        Napi::HandleScope scope(env);
        if (!fail_.msg[0])
          deferred_.Resolve(env.Undefined());
        else
          deferred_.Reject(fail_.toJs(env).Value());
      } catch (...) {
      }
    }
    Destroy();
  }

 private:
  Op op_;
  Failure fail_;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::Reference<Napi::Value>> refs_;
};

// Parsing and queueing allocate a little (error strings, the worker, its references); under
// memory pressure that is a JS Error like the call's own out-of-memory, never an abort.
template <class Op>
Napi::Value Sync(const Napi::CallbackInfo& info) {
  Keep keep;
  Op op;
  Failure fail;
  try {
    op.parse(info, keep);
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), kOutOfMemory);
  }
  if (!runCaught(op, fail)) throw fail.toJs(info.Env());
  return info.Env().Undefined();
}

template <class Op>
Napi::Value Async(const Napi::CallbackInfo& info) {
  Keep keep;
  Op op;
  try {
    op.parse(info, keep);
    auto* w = new OpWorker<Op>(info.Env(), op, keep);
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), kOutOfMemory);
  }
}

Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("simd", bln::simdName(bln::activeSimdLevel()));
  Napi::Array levels = Napi::Array::New(env);
  uint32_t k = 0;
  for (int l = 0; l < 4; ++l)
    if (bln::simdSupported(static_cast<bln::SimdLevel>(l))) levels.Set(k++, bln::simdName(static_cast<bln::SimdLevel>(l)));
  o.Set("simdSupported", levels);
  o.Set("threads", bln::activeThreads());
  o.Set("maxThreads", bln::maxThreads());
  Napi::Object cuda = Napi::Object::New(env);
#ifdef BLN_WITH_CUDA
  bln::CudaInfo ci = bln::cudaInfo();
  cuda.Set("built", true);
  cuda.Set("available", ci.available);
  if (!ci.available) cuda.Set("reason", ci.reason);
  if (ci.available) {
    cuda.Set("name", ci.name);
    cuda.Set("computeCapability", ci.computeCapability);
    cuda.Set("memoryBytes", static_cast<double>(ci.memoryBytes));
  }
  cuda.Set("emulated", ci.emulated);
  cuda.Set("driverVersion", ci.driverVersion);
  cuda.Set("runtimeVersion", ci.runtimeVersion);
#else
  cuda.Set("built", false);
  cuda.Set("available", false);
  cuda.Set("reason", "this build of batch-layer-norm has no CUDA support (nvcc was not found at build time, or BLN_CUDA=0)");
#endif
  o.Set("cuda", cuda);
  return o;
}

Napi::Value SetSimd(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "native: simd level must be a string");
  bln::SimdLevel l;
  if (!bln::parseSimdLevel(info[0].As<Napi::String>().Utf8Value(), &l) || !bln::simdSupported(l))
    throw Napi::RangeError::New(info.Env(), "native: unsupported simd level");
  bln::setSimdLevel(l);
  return info.Env().Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const double n = numArg(info, 0, "threads");
  if (!(n >= 1) || n > bln::maxThreads() || n != std::floor(n))
    throw Napi::RangeError::New(info.Env(), "native: threads out of range");
  bln::setThreads(static_cast<int>(n));
  return info.Env().Undefined();
}

// adviseHugePages(array): huge-page advice for a fresh output (lib calls it for large ones).
Napi::Value AdviseHugePages(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  bool isTyped = false;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_is_typedarray(env, info[0], &isTyped) != napi_ok || !isTyped ||
      napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_float32_array)
    throw Napi::TypeError::New(env, "native: adviseHugePages takes a Float32Array");
  return Napi::Number::New(env, static_cast<double>(data ? bln::adviseHugePages(data, length * sizeof(float)) : 0));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("forward", Napi::Function::New(env, Sync<ForwardOp>, "forward"));
  exports.Set("forwardAsync", Napi::Function::New(env, Async<ForwardOp>, "forwardAsync"));
  exports.Set("backward", Napi::Function::New(env, Sync<BackwardOp>, "backward"));
  exports.Set("backwardAsync", Napi::Function::New(env, Async<BackwardOp>, "backwardAsync"));
  exports.Set("infer", Napi::Function::New(env, Sync<InferOp>, "infer"));
  exports.Set("inferAsync", Napi::Function::New(env, Async<InferOp>, "inferAsync"));
  exports.Set("backendInfo", Napi::Function::New(env, BackendInfo, "backendInfo"));
  exports.Set("setSimd", Napi::Function::New(env, SetSimd, "setSimd"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("adviseHugePages", Napi::Function::New(env, AdviseHugePages, "adviseHugePages"));
#ifdef BLN_EMU
  // Emulated builds only (test machinery): kernels launched so far, for counting the tests
  // that ran on the CUDA path.
  exports.Set("emuKernelLaunches", Napi::Function::New(
                                       env, [](const Napi::CallbackInfo& i) {
                                         return Napi::Number::New(i.Env(), static_cast<double>(bln::emuKernelLaunches()));
                                       },
                                       "emuKernelLaunches"));
#endif
  return exports;
}

}  // namespace

// Node-API modules are context-aware: this loads in worker_threads too.
NODE_API_MODULE(bln, Init)
