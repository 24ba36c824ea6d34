// libFuzzer target over the portable core's argument, shape and stride handling.
//
// Each input is decoded into one call of the core's public entry points, the way
// binding/addon.cpp makes them: setSimdLevel / setThreads, then cpuForward,
// cpuBackward or cpuInfer on a baton (bln.h) with dims (zeros, negatives and huge
// values included), epsilon, batchSize, infer flags, buffer pointers (null, offset
// by 0..3 floats so rows lose their 16-byte alignment) and stated buffer lengths
// (matching the shape, off by a little, wildly off, or -1 = "not given" where the
// buffer is sized from the shape). Every buffer is its own heap block of exactly the
// stated length, so ASan flags any access outside it.
//
// The harness predicts, independently of the core, whether the call is valid:
//   - invalid  -> the core must throw ArgumentError, and must not have written any output;
//   - valid    -> the core must not throw; inputs must be unchanged; for finite, well-scaled
//                 inputs every output must be finite; and up to kRefMax elements the outputs
//                 are compared with the float64 reference below (BLN-SPEC.md), and infer with
//                 no population flag must equal forward bit for bit.
// Any broken expectation aborts (a crash for libFuzzer). Build: scripts/fuzz-core.sh.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <vector>

#include "../test/reference.h"
#include "bln.h"

namespace {

constexpr int64_t kAllocMax = int64_t(1) << 18;  // largest tensor the harness allocates (floats)
constexpr int64_t kRefMax = int64_t(1) << 16;    // largest tensor compared with the reference

char gCase[256];  // the call being checked, for the report

[[noreturn]] void fail(const char* what, const char* detail = "") {
  std::fprintf(stderr, "fuzz_core: expectation broken: %s %s\n  case: %s\n", what, detail, gCase);
  std::abort();
}

struct Stats {
  uint64_t calls = 0, rejected = 0, ok = 0, finiteChecked = 0, refChecked = 0, bitwise = 0;
  ~Stats() {
    if (std::getenv("BLN_FUZZ_STATS"))
      std::fprintf(stderr,
                   "fuzz_core stats: calls %llu, rejected (ArgumentError) %llu, succeeded %llu, finite-checked %llu, "
                   "reference-checked %llu, infer==forward bitwise %llu\n",
                   (unsigned long long)calls, (unsigned long long)rejected, (unsigned long long)ok,
                   (unsigned long long)finiteChecked, (unsigned long long)refChecked, (unsigned long long)bitwise);
  }
} gStats;

// One buffer: its own malloc block of exactly `alloc` floats after `off` leading floats.
struct Buf {
  float* base = nullptr;
  float* p = nullptr;   // what the baton gets (may be null on purpose)
  int64_t alloc = 0;    // floats addressable from p
  int64_t stated = -1;  // length written into the baton
  void make(int64_t n, int off, bool null) {
    alloc = n;
    base = static_cast<float*>(std::malloc(sizeof(float) * static_cast<size_t>(n + off) + 1));
    if (!base) throw std::bad_alloc();
    p = null ? nullptr : base + off;
  }
  ~Buf() { std::free(base); }
  Buf() = default;
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
};

int64_t pickDim(FuzzedDataProvider& f) {
  static const int64_t edges[] = {0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257,
                                  511, 512, 513, 1023, 1024, 1025, 2047, 2048, 2049, 2050, 2560, 4095, 4096, 4097, 8193};
  switch (f.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return f.ConsumeIntegralInRange<int64_t>(0, 9);
    case 1: return edges[f.ConsumeIntegralInRange<size_t>(0, sizeof(edges) / sizeof(edges[0]) - 1)];
    case 2: return f.ConsumeIntegralInRange<int64_t>(0, 40);
    default: return f.ConsumeIntegralInRange<int64_t>(0, 3000);
  }
}

int64_t pickHugeDim(FuzzedDataProvider& f) {
  const int64_t mx = std::numeric_limits<int64_t>::max(), lim = mx / 16;
  static const int64_t edges[] = {0,           -1,          1,           2,           mx,
                                  mx / 2,      lim,         lim + 1,     lim / 2,     std::numeric_limits<int64_t>::min(),
                                  int64_t(1) << 31,         (int64_t(1) << 32) + 1,   3037000500,  759250125,
                                  int64_t(1) << 20,         (int64_t(1) << 29) + 3,   int64_t(9007199254740991)};
  if (f.ConsumeBool()) return edges[f.ConsumeIntegralInRange<size_t>(0, sizeof(edges) / sizeof(edges[0]) - 1)];
  return f.ConsumeIntegral<int64_t>();
}

double pickEps(FuzzedDataProvider& f, bool adversarial) {
  static const double v[] = {1e-3, 1e-5, 1e-4, 0.5, 1, 1e-6, 1e-3, 1e-2,  // valid and well scaled first
                             0, -1e-3, NAN, INFINITY, -INFINITY, 1e-300, 4.9e-324, 1e-30, 1e30, 1e300,
                             std::numeric_limits<double>::max()};
  if (!adversarial) return v[f.ConsumeIntegralInRange<size_t>(0, 7)];
  if (f.ConsumeIntegralInRange<int>(0, 7) == 0) return f.ConsumeFloatingPoint<double>();
  return v[f.ConsumeIntegralInRange<size_t>(0, sizeof(v) / sizeof(v[0]) - 1)];
}

double pickN(FuzzedDataProvider& f, int64_t B, bool adversarial) {
  static const double v[] = {1, 2, 25, 0.5, 0, -1, NAN, INFINITY, 1e9, 1e300, 1.5, 0.999999};
  switch (f.ConsumeIntegralInRange<int>(0, adversarial ? 3 : 1)) {
    case 0:
    case 1: return B >= 1 && B < (int64_t(1) << 53) ? static_cast<double>(B) : 1.0;
    case 2: return v[f.ConsumeIntegralInRange<size_t>(0, sizeof(v) / sizeof(v[0]) - 1)];
    default: return f.ConsumeFloatingPoint<double>();
  }
}

// Stated length for a buffer whose shape-implied length is `want` (< 0: unknowable, huge).
// `alloc` receives how many floats to allocate: always the stated length, or `want`
// when the stated length is -1 ("not given", only where the harness can size it).
int64_t pickLen(FuzzedDataProvider& f, int64_t want, bool wantAllocatable, bool adversarial, int64_t* alloc) {
  const int mode = f.ConsumeIntegralInRange<int>(0, adversarial ? 15 : 11);
  int64_t s;
  if (wantAllocatable && mode <= 10) {
    s = want;  // the common case: right
  } else if (wantAllocatable && mode == 11) {
    *alloc = want;
    return -1;
  } else if (mode <= 13) {
    s = (wantAllocatable ? want : 0) + f.ConsumeIntegralInRange<int64_t>(-3, 3);
  } else {
    s = f.ConsumeIntegralInRange<int64_t>(0, 64);
  }
  if (s < 0) {
    // A negative stated length other than -1: nothing to allocate.
    *alloc = 0;
    return s == -1 ? -3 : s;
  }
  if (s > kAllocMax + 8) s = kAllocMax + 8;
  *alloc = s;
  return s;
}

// ------------------------------------------------------------------ float64 reference
// cpp/test/reference.h (values with magnitudes; errors measured against the magnitudes).
using blnref::Ref;
using blnref::refBackward;
using blnref::refForward;

void checkClose(const char* what, const float* got, const std::vector<double>& ref, const std::vector<double>& mag,
                double tol) {
  const double e = blnref::relErrMag(got, ref, mag);
  if (!(e <= tol)) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "err=%.3g tol=%.1g", e, tol);
    fail(what, buf);
  }
}

void checkFinite(const char* what, const float* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) fail("non-finite output for finite inputs:", what);
}

const uint32_t kPoison = 0x7fc0dead;  // a NaN pattern no kernel produces
void poison(Buf& b) {
  for (int64_t i = 0; i < b.alloc; ++i) std::memcpy(b.base + (b.p ? b.p - b.base : 0) + i, &kPoison, 4);
}
bool untouched(const Buf& b) {
  const float* q = b.base + (b.p ? b.p - b.base : 0);
  for (int64_t i = 0; i < b.alloc; ++i)
    if (std::memcmp(q + i, &kPoison, 4) != 0) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider f(data, size);
  ++gStats.calls;

  // ---- runtime configuration, as the binding's setSimd / setThreads do it
  {
    const int lvl = f.ConsumeIntegralInRange<int>(0, 3);
    const auto l = static_cast<bln::SimdLevel>(lvl);
    bool threw = false;
    try {
      bln::setSimdLevel(l);
    } catch (const bln::ArgumentError&) {
      threw = true;
    }
    if (threw == bln::simdSupported(l)) fail("setSimdLevel disagrees with simdSupported");
    if (threw) bln::setSimdLevel(bln::bestSimdLevel());
    const int maxT = bln::maxThreads();
    const int t = f.ConsumeIntegralInRange<int>(-1, maxT + 1);
    threw = false;
    try {
      bln::setThreads(t);
    } catch (const bln::ArgumentError&) {
      threw = true;
    }
    if (threw != (t < 1 || t > maxT)) fail("setThreads range check");
    if (threw) bln::setThreads(1);
    if (bln::activeThreads() < 1 || bln::activeThreads() > maxT) fail("activeThreads out of range");
  }

  const int op = f.ConsumeIntegralInRange<int>(0, 2);  // 0 forward, 1 backward, 2 infer
  // Half the inputs bend the arguments (bad lengths, null buffers, bad epsilon/batchSize,
  // huge dims); the other half are valid calls of every shape and layout.
  const bool adversarial = f.ConsumeBool();
  const bool huge = adversarial && f.ConsumeIntegralInRange<int>(0, 3) == 0;
  bln::Dims d;
  if (huge) {
    d.B = pickHugeDim(f), d.M = pickHugeDim(f), d.C = pickHugeDim(f);
  } else {
    d.B = pickDim(f), d.M = f.ConsumeIntegralInRange<int>(0, 3) ? f.ConsumeIntegralInRange<int64_t>(0, 4) : pickDim(f);
    d.C = pickDim(f);
  }
  if (!adversarial) d.B = std::max<int64_t>(d.B, 1), d.M = std::max<int64_t>(d.M, 1), d.C = std::max<int64_t>(d.C, 1);
  const double eps = pickEps(f, adversarial);
  const double N = pickN(f, d.B, adversarial);
  int useMask = op == 2 ? f.ConsumeIntegralInRange<int>(0, 15) : 0;
  bln::InferUse use{(useMask & 1) != 0, (useMask & 2) != 0, (useMask & 4) != 0, (useMask & 8) != 0};
  const int dataMode = f.ConsumeIntegralInRange<int>(0, 4);  // 0 grid, 1 normal, 2 offset 1e4, 3 specials, 4 arbitrary bits
  const bool trueStats = f.ConsumeIntegralInRange<int>(0, 3) != 0;  // backward: the statistics of x
  const uint64_t seed = f.ConsumeIntegral<uint64_t>();

  // ---- what the shape implies, computed without overflow
  const int64_t lim = std::numeric_limits<int64_t>::max() / 16;
  const bool dimsOk = d.B >= 1 && d.M >= 1 && d.C >= 1 && !(d.B > lim / d.M || d.B * d.M > lim / d.C);
  const bool sizeOk = dimsOk && d.numel() <= kAllocMax;
  const int64_t n = sizeOk ? d.numel() : -1, MC = sizeOk ? d.M * d.C : -1, BM = sizeOk ? d.B * d.M : -1;
  const int64_t C = sizeOk ? d.C : -1, M = sizeOk ? d.M : -1;

  // ---- buffers: names and implied lengths per op
  enum { X, DY, G, BE, Y, DX, DG, DB, SBM, SBV, SFM, SFV, NB };
  int64_t want[NB];
  bool present[NB] = {};
  for (auto& w : want) w = -1;
  const bool fwd = op == 0, bwd = op == 1, inf = op == 2;
  want[X] = n, present[X] = true;
  want[G] = C, present[G] = true;
  if (!bwd) want[BE] = C, present[BE] = true, want[Y] = n, present[Y] = true;
  if (bwd) {
    want[DY] = n, want[DX] = n, want[DG] = C, want[DB] = C;
    present[DY] = present[DX] = present[DG] = present[DB] = true;
  }
  const bool statsUsed[4] = {!inf || use.batchMean, !inf || use.batchVar, !inf || use.featureMean, !inf || use.featureVar};
  want[SBM] = MC, want[SBV] = MC, want[SFM] = inf ? M : BM, want[SFV] = inf ? M : BM;
  for (int s = 0; s < 4; ++s) present[SBM + s] = !inf || statsUsed[s] || f.ConsumeBool();

  Buf buf[NB];
  bool expectReject = !dimsOk || !(eps > 0) || !std::isfinite(eps) || !(N >= 1) || !std::isfinite(N);
  for (int i = 0; i < NB; ++i) {
    if (!present[i]) continue;
    const bool used = i < SBM || statsUsed[i - SBM];
    int64_t alloc = 0;
    int64_t stated = pickLen(f, want[i], sizeOk, adversarial, &alloc);
    const int off = f.ConsumeIntegralInRange<int>(0, 7) == 0 ? f.ConsumeIntegralInRange<int>(1, 3) : 0;
    const bool null = adversarial && f.ConsumeIntegralInRange<int>(0, 15) == 0;
    buf[i].make(alloc, off, null);
    buf[i].stated = stated;
    if (used) {
      if (null) expectReject = true;
      if (stated != -1 && stated != want[i]) expectReject = true;
    }
  }

  // ---- contents
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_int_distribution<int> grid(-32, 32);
  static const float specials[] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, 1e-45f, -0.f, 0.f, 1e30f, 1.f};
  auto fillData = [&](Buf& b, float scale, float offset) {
    if (!b.base) return;
    float* q = b.p ? b.p : b.base;
    for (int64_t i = 0; i < b.alloc; ++i) {
      float v;
      switch (dataMode) {
        case 0: v = grid(rng) / 8.f; break;
        case 1: v = nd(rng); break;
        case 2: v = nd(rng); break;
        case 3: v = (rng() % 8 == 0) ? specials[rng() % 10] : nd(rng); break;
        default: {
          const uint32_t bits = static_cast<uint32_t>(rng());
          std::memcpy(&v, &bits, 4);
        }
      }
      q[i] = offset + scale * v;
    }
  };
  const float xOff = dataMode == 2 ? 1e4f : 0.f;
  fillData(buf[X], 1.f, xOff);
  fillData(buf[DY], 1.f, 0.f);
  fillData(buf[G], 0.3f, 1.f);
  fillData(buf[BE], 0.2f, 0.f);
  for (int i : {Y, DX, DG, DB}) poison(buf[i]);
  if (fwd) {
    for (int i : {SBM, SBV, SFM, SFV}) poison(buf[i]);
  } else {
    for (int i : {SBM, SBV, SFM, SFV}) fillData(buf[i], 1.f, 0.f);
    if (dataMode <= 2)  // variances >= 0 where the inputs are meant to be well posed
      for (int i : {SBV, SFV})
        if (buf[i].base)
          for (int64_t k = 0; k < buf[i].alloc; ++k) (buf[i].p ? buf[i].p : buf[i].base)[k] = std::fabs((buf[i].p ? buf[i].p : buf[i].base)[k]);
  }
  // Backward with the true (float-rounded) statistics of x, as forward would give them.
  Ref r;
  const bool wellPosed = !expectReject && dataMode <= 2 && (!bwd || trueStats);
  if (!expectReject && bwd && trueStats) {
    refForward(buf[X].p, buf[G].p, buf[G].p, d.B, d.M, d.C, 1e-3, 1, bln::InferUse{}, bln::StatsIn{}, r);
    for (int64_t k = 0; k < MC; ++k) buf[SBM].p[k] = static_cast<float>(r.mb[k]), buf[SBV].p[k] = static_cast<float>(r.vb[k]);
    for (int64_t k = 0; k < BM; ++k) buf[SFM].p[k] = static_cast<float>(r.mf[k]), buf[SFV].p[k] = static_cast<float>(r.vf[k]);
  }

  // Copies of the inputs, to check they are not modified.
  std::vector<std::vector<float>> before(NB);
  const bool isInput[NB] = {true, true, true, true, false, false, false, false, !fwd, !fwd, !fwd, !fwd};
  for (int i = 0; i < NB; ++i)
    if (isInput[i] && buf[i].p) before[i].assign(buf[i].p, buf[i].p + buf[i].alloc);

  std::snprintf(gCase, sizeof gCase, "op %s dims [%lld,%lld,%lld] eps %g N %g use %d data %d trueStats %d simd %s threads %d",
                fwd ? "forward" : bwd ? "backward" : "infer", (long long)d.B, (long long)d.M, (long long)d.C, eps, N, useMask,
                dataMode, trueStats ? 1 : 0, bln::simdName(bln::activeSimdLevel()), bln::activeThreads());
  // ---- the call, baton filled like binding/addon.cpp does
  bool threw = false;
  std::string what;
  try {
    if (fwd) {
      bln::ForwardArgs a;
      a.d = d;
      a.x = buf[X].p, a.gamma = buf[G].p, a.beta = buf[BE].p, a.y = buf[Y].p;
      a.stats = {buf[SBM].p, buf[SBV].p, buf[SFM].p, buf[SFV].p};
      a.len.x = buf[X].stated, a.len.gamma = buf[G].stated, a.len.beta = buf[BE].stated, a.len.y = buf[Y].stated;
      a.len.batchMean = buf[SBM].stated, a.len.batchVar = buf[SBV].stated;
      a.len.featureMean = buf[SFM].stated, a.len.featureVar = buf[SFV].stated;
      a.eps = eps, a.batchSize = N;
      bln::cpuForward(a);
    } else if (bwd) {
      bln::BackwardArgs a;
      a.d = d;
      a.dy = buf[DY].p, a.x = buf[X].p, a.gamma = buf[G].p;
      a.stats = {buf[SBM].p, buf[SBV].p, buf[SFM].p, buf[SFV].p};
      a.dx = buf[DX].p, a.dgamma = buf[DG].p, a.dbeta = buf[DB].p;
      a.len.dy = buf[DY].stated, a.len.x = buf[X].stated, a.len.gamma = buf[G].stated;
      a.len.batchMean = buf[SBM].stated, a.len.batchVar = buf[SBV].stated;
      a.len.featureMean = buf[SFM].stated, a.len.featureVar = buf[SFV].stated;
      a.len.dx = buf[DX].stated, a.len.dgamma = buf[DG].stated, a.len.dbeta = buf[DB].stated;
      a.eps = eps, a.batchSize = N;
      bln::cpuBackward(a);
    } else {
      bln::InferArgs a;
      a.d = d;
      a.x = buf[X].p, a.gamma = buf[G].p, a.beta = buf[BE].p, a.y = buf[Y].p;
      a.population = {buf[SBM].p, buf[SBV].p, buf[SFM].p, buf[SFV].p};
      a.use = use;
      a.len.x = buf[X].stated, a.len.gamma = buf[G].stated, a.len.beta = buf[BE].stated, a.len.y = buf[Y].stated;
      a.len.batchMean = buf[SBM].stated, a.len.batchVar = buf[SBV].stated;
      a.len.featureMean = buf[SFM].stated, a.len.featureVar = buf[SFV].stated;
      a.eps = eps, a.batchSize = N;
      bln::cpuInfer(a);
    }
  } catch (const bln::ArgumentError& e) {
    threw = true;
    what = e.what();
  }
  // (std::bad_alloc or anything else escapes: an uncaught exception is a crash)

  if (threw != expectReject) {
    std::fprintf(stderr, "op %d dims [%lld,%lld,%lld] eps %g N %g use %d: %s\n", op, (long long)d.B, (long long)d.M,
                 (long long)d.C, eps, N, useMask, threw ? what.c_str() : "no error");
    fail(threw ? "valid call rejected" : "invalid call accepted");
  }
  for (int i = 0; i < NB; ++i)
    if (isInput[i] && buf[i].p && !before[i].empty() && std::memcmp(before[i].data(), buf[i].p, sizeof(float) * before[i].size()) != 0)
      fail("an input was modified");
  if (threw) {
    ++gStats.rejected;
    for (int i : {Y, DX, DG, DB}) if (!untouched(buf[i])) fail("output written by a rejected call");
    if (fwd) for (int i : {SBM, SBV, SFM, SFV}) if (!untouched(buf[i])) fail("statistic written by a rejected call");
    return 0;
  }
  ++gStats.ok;

  // ---- results of a valid call
  const bool epsFinite = eps >= 1e-6 && eps <= 1e6 && N <= 1e12;
  if (wellPosed && epsFinite) {
    ++gStats.finiteChecked;
    if (!bwd) checkFinite("y", buf[Y].p, n);
    if (fwd) {
      checkFinite("batchMean", buf[SBM].p, MC), checkFinite("batchVar", buf[SBV].p, MC);
      checkFinite("featureMean", buf[SFM].p, BM), checkFinite("featureVar", buf[SFV].p, BM);
    }
    if (bwd) checkFinite("dx", buf[DX].p, n), checkFinite("dgamma", buf[DG].p, C), checkFinite("dbeta", buf[DB].p, C);
  }
  if (wellPosed && eps >= 1e-4 && eps <= 1 && N <= 1e9 && n <= kRefMax) {
    ++gStats.refChecked;
    // BLN-SPEC.md's bounds (1e-5 outputs and statistics, 1e-4 gradients, 3e-3 at a 1e4 offset),
    // measured against the magnitudes above.
    const double tv = dataMode == 2 ? 3e-3 : 1e-5, tg = dataMode == 2 ? 3e-3 : 1e-4;
    if (!bwd) {
      bln::StatsIn pop{buf[SBM].p, buf[SBV].p, buf[SFM].p, buf[SFV].p};
      refForward(buf[X].p, buf[G].p, buf[BE].p, d.B, d.M, d.C, eps, N, use, pop, r);
      checkClose(fwd ? "forward y" : "infer y", buf[Y].p, r.y, r.yMag, tv);
      if (fwd) {
        checkClose("batchMean", buf[SBM].p, r.mb, r.mbMag, 1e-5);
        checkClose("batchVar", buf[SBV].p, r.vb, r.vb, tv);
        checkClose("featureMean", buf[SFM].p, r.mf, r.mfMag, 1e-5);
        checkClose("featureVar", buf[SFV].p, r.vf, r.vf, tv);
      }
    } else {
      bln::StatsIn st{buf[SBM].p, buf[SBV].p, buf[SFM].p, buf[SFV].p};
      refBackward(buf[DY].p, buf[X].p, buf[G].p, st, d.B, d.M, d.C, eps, N, r);
      checkClose("dx", buf[DX].p, r.dx, r.dxMag, tg);
      checkClose("dgamma", buf[DG].p, r.dg, r.dgMag, tg);
      checkClose("dbeta", buf[DB].p, r.db, r.dbMag, tg);
    }
  }
  // Infer with no population flag is the training forward, bit for bit.
  if (inf && useMask == 0 && dataMode <= 2) {
    ++gStats.bitwise;
    std::vector<float> y2(n), s(2 * MC + 2 * BM);
    bln::ForwardArgs a;
    a.d = d;
    a.x = buf[X].p, a.gamma = buf[G].p, a.beta = buf[BE].p, a.y = y2.data();
    a.stats = {s.data(), s.data() + MC, s.data() + 2 * MC, s.data() + 2 * MC + BM};
    a.eps = eps, a.batchSize = N;
    bln::cpuForward(a);
    if (std::memcmp(y2.data(), buf[Y].p, sizeof(float) * n) != 0) fail("infer(use none) != forward bitwise");
  }
  return 0;
}
