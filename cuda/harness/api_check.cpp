// Checks of the host API of the CUDA path (bln_cuda.h), plain C++ linked to bln_cuda:
//
//   bln_api_check [--expect-available | --expect-unavailable] [--oom]
//
// Prints cudaInfo(). Without a usable device every entry point must throw
// std::runtime_error with the reason (never crash) and bad arguments must still be
// ArgumentError. With a device: results against a float64 reference, repeated calls
// of growing and shrinking sizes (the cached buffers), four threads at once, and the
// process going on after errors. --oom (for the emulator with a small BLN_EMU_MEMORY):
// a call too large for the device fails with "CUDA error: out of memory (...)" and a
// small call afterwards still works. Exit status 0 when everything behaves.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bln_cuda.h"

using std::vector;

static int failures = 0;
#define EXPECT(cond, ...)                  \
  do {                                     \
    if (!(cond)) {                         \
      ++failures;                          \
      std::printf("FAIL  " __VA_ARGS__);   \
      std::printf("\n");                   \
    }                                      \
  } while (0)

struct Problem {
  bln::Dims d;
  vector<float> x, dy, g, be, y, bm, bv, fm, fv, dx, dg, db;
  explicit Problem(int64_t B, int64_t M, int64_t C, unsigned seed = 7) {
    d.B = B, d.M = M, d.C = C;
    const int64_t n = d.numel();
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    x.resize(n), dy.resize(n), g.resize(C), be.resize(C);
    for (auto& v : x) v = nd(rng);
    for (auto& v : dy) v = nd(rng);
    for (auto& v : g) v = 1.f + 0.2f * nd(rng);
    for (auto& v : be) v = 0.1f * nd(rng);
    y.assign(n, 0), dx.assign(n, 0), bm.assign(M * C, 0), bv.assign(M * C, 0), fm.assign(B * M, 0), fv.assign(B * M, 0);
    dg.assign(C, 0), db.assign(C, 0);
  }
  bln::ForwardArgs fwd() {
    bln::ForwardArgs a;
    a.d = d, a.x = x.data(), a.gamma = g.data(), a.beta = be.data(), a.eps = 1e-3, a.batchSize = double(d.B), a.y = y.data();
    a.stats.batchMean = bm.data(), a.stats.batchVar = bv.data(), a.stats.featureMean = fm.data(), a.stats.featureVar = fv.data();
    return a;
  }
  bln::BackwardArgs bwd() {
    bln::BackwardArgs a;
    a.d = d, a.dy = dy.data(), a.x = x.data(), a.gamma = g.data(), a.eps = 1e-3, a.batchSize = double(d.B);
    a.stats.batchMean = bm.data(), a.stats.batchVar = bv.data(), a.stats.featureMean = fm.data(), a.stats.featureVar = fv.data();
    a.dx = dx.data(), a.dgamma = dg.data(), a.dbeta = db.data();
    return a;
  }
  bln::InferArgs inf(int mask) {
    bln::InferArgs a;
    a.d = d, a.x = x.data(), a.gamma = g.data(), a.beta = be.data(), a.eps = 1e-3, a.batchSize = double(d.B), a.y = y.data();
    a.use.batchMean = mask & 1, a.use.batchVar = mask & 2, a.use.featureMean = mask & 4, a.use.featureVar = mask & 8;
    a.population.batchMean = bm.data(), a.population.batchVar = bv.data();
    a.population.featureMean = fm.data(), a.population.featureVar = fv.data();  // first M entries serve as length-M stats
    return a;
  }
  // ||y - ref|| / ||ref|| for the training forward (float64 reference of the spec).
  double forwardError() const {
    const int64_t B = d.B, M = d.M, C = d.C;
    const double N = double(B), wf = 1.0 / N - 1e-4, wb = 1.0 - (1.0 / N + 1e-4), sc = std::sqrt(double(C)), eps = 1e-3;
    double num = 0, den = 0;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = 0; c < C; ++c) {
        double mu = 0, v = 0;
        for (int64_t b = 0; b < B; ++b) mu += x[(b * M + m) * C + c];
        mu /= B;
        for (int64_t b = 0; b < B; ++b) v += std::pow(x[(b * M + m) * C + c] - mu, 2);
        v /= B;
        for (int64_t b = 0; b < B; ++b) {
          const int64_t r = b * M + m;
          double fmu = 0, fvv = 0;
          for (int64_t k = 0; k < C; ++k) fmu += x[r * C + k];
          fmu /= C;
          for (int64_t k = 0; k < C; ++k) fvv += std::pow(x[r * C + k] - fmu, 2);
          fvv /= C;
          const double xi = x[r * C + c];
          const double ref = g[c] * (wf * (xi - fmu) / std::sqrt(fvv + eps) + wb * (xi - mu) / std::sqrt(v + eps)) / sc + be[c];
          num += (y[r * C + c] - ref) * (y[r * C + c] - ref);
          den += ref * ref;
        }
      }
    return std::sqrt(num / den);
  }
};

template <class F>
std::string throwsWhat(F&& f, bool* threw, bool* argErr) {
  *threw = false, *argErr = false;
  try {
    f();
  } catch (const bln::ArgumentError& e) {
    *threw = true, *argErr = true;
    return e.what();
  } catch (const std::exception& e) {
    *threw = true;
    return e.what();
  }
  return "";
}

int main(int argc, char** argv) {
  bool expectAvail = false, expectUnavail = false, oom = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--expect-available")) expectAvail = true;
    else if (!std::strcmp(argv[i], "--expect-unavailable")) expectUnavail = true;
    else if (!std::strcmp(argv[i], "--oom")) oom = true;
    else {
      std::fprintf(stderr, "usage: %s [--expect-available | --expect-unavailable] [--oom]\n", argv[0]);
      return 2;
    }
  }
  const bln::CudaInfo ci = bln::cudaInfo();
  std::printf("cudaInfo(): available=%s\n  reason=\"%s\"\n  name=\"%s\" computeCapability=\"%s\" memoryBytes=%zu\n"
              "  driverVersion=\"%s\" runtimeVersion=\"%s\"\n",
              ci.available ? "true" : "false", ci.reason.c_str(), ci.name.c_str(), ci.computeCapability.c_str(), ci.memoryBytes,
              ci.driverVersion.c_str(), ci.runtimeVersion.c_str());
  EXPECT(!expectAvail || ci.available, "expected a usable device");
  EXPECT(!expectUnavail || !ci.available, "expected no usable device");
  EXPECT(ci.available == ci.reason.empty(), "reason must be set exactly when unavailable");
  EXPECT(!ci.runtimeVersion.empty() && !ci.driverVersion.empty(), "versions must be filled in");
  const bln::CudaInfo again = bln::cudaInfo();
  EXPECT(again.available == ci.available && again.reason == ci.reason, "cudaInfo() must be stable");

  bool threw, argErr;
  std::string what;
  {
    // Bad arguments are ArgumentError whether or not a device exists.
    Problem p(2, 1, 4);
    bln::ForwardArgs a = p.fwd();
    a.d.B = 0;
    what = throwsWhat([&] { bln::cudaForward(a); }, &threw, &argErr);
    EXPECT(threw && argErr, "B = 0 must be an ArgumentError (got: %s)", what.c_str());
    a = p.fwd();
    a.eps = 0;
    what = throwsWhat([&] { bln::cudaForward(a); }, &threw, &argErr);
    EXPECT(threw && argErr, "eps = 0 must be an ArgumentError (got: %s)", what.c_str());
    bln::BackwardArgs b = p.bwd();
    b.dx = nullptr;
    what = throwsWhat([&] { bln::cudaBackward(b); }, &threw, &argErr);
    EXPECT(threw && argErr, "missing dx must be an ArgumentError (got: %s)", what.c_str());
    bln::InferArgs ia = p.inf(15);
    ia.population.featureVar = nullptr;
    what = throwsWhat([&] { bln::cudaInfer(ia); }, &threw, &argErr);
    EXPECT(threw && argErr, "missing population statistic must be an ArgumentError (got: %s)", what.c_str());
  }

  if (!ci.available) {
    for (int round = 0; round < 2; ++round) {
      Problem p(4, 3, 8);
      what = throwsWhat([&] { bln::cudaForward(p.fwd()); }, &threw, &argErr);
      std::printf("cudaForward threw: %s\n", what.c_str());
      EXPECT(threw && !argErr && what.find(ci.reason) != std::string::npos, "cudaForward must throw runtime_error with the reason");
      what = throwsWhat([&] { bln::cudaBackward(p.bwd()); }, &threw, &argErr);
      EXPECT(threw && !argErr, "cudaBackward must throw runtime_error (got: %s)", what.c_str());
      what = throwsWhat([&] { bln::cudaInfer(p.inf(5)); }, &threw, &argErr);
      EXPECT(threw && !argErr, "cudaInfer must throw runtime_error (got: %s)", what.c_str());
    }
    bln::cudaReleaseThreadCache();
    std::printf("%s\n", failures ? "api_check: FAILED" : "api_check: ok (no usable device; every entry point threw)");
    return failures ? 1 : 0;
  }

  if (oom) {
    // Only this (the device is meant to be small): too large a call fails with the CUDA
    // text, and the process goes on.
    Problem big(256, 64, 64);
    what = throwsWhat([&] { bln::cudaForward(big.fwd()); }, &threw, &argErr);
    std::printf("large forward threw: %s\n", what.c_str());
    EXPECT(threw && !argErr && what.rfind("CUDA error: out of memory (cudaMalloc of ", 0) == 0,
           "a forward too large for the device must fail with the CUDA out-of-memory text");
    Problem small(4, 3, 8);
    what = throwsWhat([&] { bln::cudaForward(small.fwd()); }, &threw, &argErr);
    EXPECT(!threw, "a small forward after the failure must work (got: %s)", what.c_str());
    if (!threw) EXPECT(small.forwardError() <= 1e-5, "small forward after the failure is wrong");
    bln::cudaReleaseThreadCache();
    std::printf("%s\n", failures ? "api_check: FAILED" : "api_check: ok (out of memory)");
    return failures ? 1 : 0;
  }

  // Results, buffer reuse across sizes (grow, shrink, grow).
  for (auto s : vector<vector<int64_t>>{{4, 3, 8}, {64, 10, 96}, {5, 2, 7}, {300, 4, 130}, {16, 1, 1024}}) {
    Problem p(s[0], s[1], s[2]);
    bln::cudaForward(p.fwd());
    const double e = p.forwardError();
    std::printf("forward [%lld,%lld,%lld]: rel err %.3e\n", (long long)s[0], (long long)s[1], (long long)s[2], e);
    EXPECT(e <= 1e-5, "forward error %.3e", e);
    bln::cudaBackward(p.bwd());
    double sdb = 0, ref = 0;
    for (int64_t c = 0; c < p.d.C; ++c) {
      double t = 0;
      for (int64_t i = c; i < p.d.numel(); i += p.d.C) t += p.dy[i];
      sdb += std::fabs(p.db[c] - t), ref += std::fabs(t);
    }
    EXPECT(sdb <= 1e-5 * (ref + 1), "dbeta must be the column sums of dy");
    bool finite = true;
    for (float v : p.dx) finite = finite && std::isfinite(v);
    EXPECT(finite, "dx must be finite");
    vector<float> y0 = p.y;
    bln::cudaInfer(p.inf(0));
    double dmax = 0;
    for (size_t i = 0; i < y0.size(); ++i) dmax = std::max(dmax, double(std::fabs(y0[i] - p.y[i])));
    EXPECT(dmax <= 1e-5, "infer with no population statistics must equal forward (max diff %.3e)", dmax);
  }

  // Four threads at once, each with its own cached buffers.
  {
    vector<std::thread> ts;
    vector<double> errs(4, 1);
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&, t] {
        try {
          for (int it = 0; it < 3; ++it) {
            Problem p(32 + 8 * t, 3, 40 + 4 * t, 100 + t);
            bln::cudaForward(p.fwd());
            errs[t] = p.forwardError();
          }
        } catch (const std::exception& e) {
          std::printf("thread %d: %s\n", t, e.what());
        }
        bln::cudaReleaseThreadCache();
      });
    for (auto& th : ts) th.join();
    for (int t = 0; t < 4; ++t) EXPECT(errs[t] <= 1e-5, "thread %d forward error %.3e", t, errs[t]);
  }

  bln::cudaReleaseThreadCache();
  std::printf("%s\n", failures ? "api_check: FAILED" : "api_check: ok");
  return failures ? 1 : 0;
}
