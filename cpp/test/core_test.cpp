// C++ check of the core against a float64 reference of BLN-SPEC.md, at every SIMD
// level this CPU runs and at 1 and all threads. Used by valgrind/sanitizer runs
// (no Node involved). Exit status 0 when every case is within the spec's bounds.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <thread>
#include <cstdlib>
#include <cstdio>
#include <random>
#include <vector>

#include "bln.h"
#include "reference.h"
#include "threadpool.h"

using std::vector;

static double relErr(const vector<float>& got, const vector<double>& ref) { return blnref::relErr(got.data(), ref); }

// Regression (found by the fuzz harness, cpp/fuzz/fuzz_core.cpp): the batons carried no buffer
// lengths, so the core read and wrote past buffers shorter than the shape. Every stated length
// that disagrees with the shape must now be an ArgumentError before any output is written.
static int lengthChecks(int* checks) {
  int failures = 0;
  const int64_t B = 4, M = 3, C = 8, n = B * M * C;
  vector<float> x(n, 1.f), dy(n, 1.f), g(C, 1.f), be(C, 0.f), y(n, NAN), mb(M * C, 1.f), vb(M * C, 1.f),
      mf(B * M, 1.f), vf(B * M, 1.f), dx(n, NAN), dg(C, NAN), db(C, NAN);
  for (int i = 0; i < 5; ++i) x[i] = (float)i;
  auto untouched = [](const vector<float>& v) {
    for (float f : v)
      if (!std::isnan(f)) return false;
    return true;
  };
  auto expect = [&](const char* what, bool wantThrow, auto&& call) {
    ++*checks;
    std::fill(y.begin(), y.end(), NAN), std::fill(dx.begin(), dx.end(), NAN);
    std::fill(dg.begin(), dg.end(), NAN), std::fill(db.begin(), db.end(), NAN);
    bool threw = false;
    try {
      call();
    } catch (const bln::ArgumentError&) {
      threw = true;
    }
    const bool ok = threw == wantThrow && (!threw || (untouched(y) && untouched(dx) && untouched(dg) && untouched(db)));
    if (!ok) ++failures;
    if (!ok || std::getenv("VERBOSE")) std::printf("%s length check: %s\n", ok ? "ok  " : "FAIL", what);
  };
  auto fwd = [&]() {
    bln::ForwardArgs a;
    a.d = {B, M, C};
    a.x = x.data(), a.gamma = g.data(), a.beta = be.data(), a.y = y.data(), a.stats = {mb.data(), vb.data(), mf.data(), vf.data()};
    a.len.x = n, a.len.gamma = C, a.len.beta = C, a.len.y = n;
    a.len.batchMean = a.len.batchVar = M * C, a.len.featureMean = a.len.featureVar = B * M;
    a.batchSize = B;
    return a;
  };
  auto bwd = [&]() {
    bln::BackwardArgs a;
    a.d = {B, M, C};
    a.dy = dy.data(), a.x = x.data(), a.gamma = g.data(), a.stats = {mb.data(), vb.data(), mf.data(), vf.data()};
    a.dx = dx.data(), a.dgamma = dg.data(), a.dbeta = db.data();
    a.len.dy = a.len.x = a.len.dx = n, a.len.gamma = a.len.dgamma = a.len.dbeta = C;
    a.len.batchMean = a.len.batchVar = M * C, a.len.featureMean = a.len.featureVar = B * M;
    a.batchSize = B;
    return a;
  };
  auto inf = [&]() {
    bln::InferArgs a;
    a.d = {B, M, C};
    a.x = x.data(), a.gamma = g.data(), a.beta = be.data(), a.y = y.data();
    a.population = {mb.data(), vb.data(), mf.data(), vf.data()};
    a.use = {true, true, true, true};
    a.len.x = n, a.len.gamma = C, a.len.beta = C, a.len.y = n;
    a.len.batchMean = a.len.batchVar = M * C, a.len.featureMean = a.len.featureVar = M;
    a.batchSize = B;
    return a;
  };
  expect("forward, all lengths right", false, [&] { bln::cpuForward(fwd()); });
  expect("backward, all lengths right", false, [&] { bln::cpuBackward(bwd()); });
  expect("infer, all lengths right", false, [&] { bln::cpuInfer(inf()); });
  expect("forward, lengths not given (-1)", false, [&] { bln::ForwardArgs a = fwd(); a.len = {}; bln::cpuForward(a); });
  int64_t bln::Lengths::*fields[] = {&bln::Lengths::x,  &bln::Lengths::dy, &bln::Lengths::gamma, &bln::Lengths::beta,
                                     &bln::Lengths::y,  &bln::Lengths::dx, &bln::Lengths::dgamma, &bln::Lengths::dbeta,
                                     &bln::Lengths::batchMean, &bln::Lengths::batchVar, &bln::Lengths::featureMean,
                                     &bln::Lengths::featureVar};
  for (auto f : fields)
    for (int64_t delta : {-1, 1}) {
      bln::ForwardArgs fa = fwd();
      const bool fUsed = fa.len.*f != -1;
      if (fUsed) fa.len.*f += delta;
      expect("forward, one length off by one", fUsed, [&] { bln::cpuForward(fa); });
      bln::BackwardArgs ba = bwd();
      const bool bUsed = ba.len.*f != -1;
      if (bUsed) ba.len.*f += delta;
      expect("backward, one length off by one", bUsed, [&] { bln::cpuBackward(ba); });
      bln::InferArgs ia = inf();
      const bool iUsed = ia.len.*f != -1;
      if (iUsed) ia.len.*f += delta;
      expect("infer, one length off by one", iUsed, [&] { bln::cpuInfer(ia); });
      // A population statistic that `use` does not read is not checked (the binding passes none).
      ia.use = {false, false, false, false};
      expect("infer, unused population statistic with a wrong length", f == &bln::Lengths::x || f == &bln::Lengths::gamma ||
             f == &bln::Lengths::beta || f == &bln::Lengths::y, [&] { bln::cpuInfer(ia); });
    }
  // A shape whose tensors could not exist, with short buffers: rejected by length, never touched.
  expect("forward, huge shape with short buffers", true, [&] {
    bln::ForwardArgs a = fwd();
    a.d = {int64_t(1) << 40, 1, 8};
    bln::cpuForward(a);
  });
  return failures;
}

// An output sharing memory with another array of the call is an OverlapError naming the pair by
// index (outputs first, then inputs: lib/ops.ts names them from that order), before any output
// is written; arrays that only touch are accepted.
static int overlapChecks(int* checks) {
  int failures = 0;
  const int64_t B = 4, M = 3, C = 8, n = B * M * C, R = 2 * n + 64;  // each array in its own region of R floats
  vector<float> buf(12 * R, 1.f);
  auto at = [&](int k) { return buf.data() + k * R; };
  auto expect = [&](const char* what, int first, int second, auto&& call) {
    ++*checks;
    int got[2] = {-1, -1};
    try {
      call();
    } catch (const bln::OverlapError& e) {
      got[0] = e.first, got[1] = e.second;
    }
    const bool ok = got[0] == first && got[1] == second;
    if (!ok) ++failures;
    if (!ok || std::getenv("VERBOSE")) std::printf("%s overlap check: %s (got %d, %d)\n", ok ? "ok  " : "FAIL", what, got[0], got[1]);
  };
  bln::ForwardArgs f;
  f.d = {B, M, C};
  f.y = at(1), f.stats = {at(2), at(3), at(4), at(5)}, f.x = at(6), f.gamma = at(7), f.beta = at(8), f.batchSize = B;
  expect("forward, apart", -1, -1, [&] { bln::cpuForward(f); });
  expect("forward, y is x", 0, 5, [&] { bln::ForwardArgs a = f; a.y = at(6); bln::cpuForward(a); });
  expect("forward, y ends one float into featureVar", 0, 4, [&] { bln::ForwardArgs a = f; a.y = at(5) - n + 1; bln::cpuForward(a); });
  expect("forward, y ends where featureVar starts", -1, -1, [&] { bln::ForwardArgs a = f; a.y = at(5) - n; bln::cpuForward(a); });
  expect("forward, batchMean over gamma", 1, 6, [&] { bln::ForwardArgs a = f; a.stats.batchMean = at(7) + 2; bln::cpuForward(a); });
  bln::BackwardArgs b;
  b.d = {B, M, C};
  b.dx = at(1), b.dgamma = at(2), b.dbeta = at(3), b.dy = at(4), b.x = at(5), b.gamma = at(6);
  b.stats = {at(7), at(8), at(9), at(10)}, b.batchSize = B;
  expect("backward, apart", -1, -1, [&] { bln::cpuBackward(b); });
  expect("backward, dx is dy", 0, 3, [&] { bln::BackwardArgs a = b; a.dx = at(4); bln::cpuBackward(a); });
  expect("backward, dbeta over stats.batchMean", 2, 6, [&] { bln::BackwardArgs a = b; a.dbeta = at(7) + M * C - 3; bln::cpuBackward(a); });
  bln::InferArgs i;
  i.d = {B, M, C};
  i.y = at(1), i.x = at(2), i.gamma = at(3), i.beta = at(4), i.population = {at(5), at(6), at(7), at(8)};
  i.use = {true, true, false, false}, i.batchSize = B;
  expect("infer, apart", -1, -1, [&] { bln::cpuInfer(i); });
  expect("infer, y over an unused population.featureVar", 0, 7, [&] { bln::InferArgs a = i; a.y = at(8) - n + 1; bln::cpuInfer(a); });
  return failures;
}

// The pool hands every chunk to exactly one participant, whatever the split into per-participant
// ranges (more ranges than threads, more slots than ranges, one chunk), with several callers at
// once, and an exception in one chunk comes back to the caller without a hang.
static int poolChecks(int* checks) {
  int failures = 0;
  auto check = [&](const char* what, bool ok, long long n, long long grain, int slots) {
    ++*checks;
    if (!ok) ++failures, std::printf("FAIL pool %s n=%lld grain=%lld slots=%d\n", what, n, grain, slots);
  };
  for (int slots : {2, 3, 8, 16, 40})
    for (int64_t n : {1, 2, 7, 100, 1000, 4097})
      for (int64_t grain : {1, 3, 64}) {
        vector<std::atomic<int>> hits(static_cast<size_t>(n));
        bln::parallelFor(n, grain, slots, [&](int64_t b, int64_t e, int slot) {
          if (slot < 0 || slot >= slots) throw std::logic_error("slot out of range");
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        });
        bool once = true;
        for (auto& h : hits) once = once && h.load() == 1;
        check("each item once", once, n, grain, slots);
      }
  // Four callers at once, each with its own job.
  std::atomic<int> bad{0};
  vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep) {
        vector<std::atomic<int>> hits(999);
        bln::parallelFor(999, 7, 4, [&](int64_t b, int64_t e, int) {
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        });
        for (auto& h : hits)
          if (h.load() != 1) bad.fetch_add(1);
      }
    });
  for (auto& c : callers) c.join();
  check("concurrent callers", bad.load() == 0, 999, 7, 4);
  bool thrown = false;
  try {
    bln::parallelFor(100, 1, 4, [&](int64_t b, int64_t, int) {
      if (b == 37) throw std::runtime_error("chunk 37");
    });
  } catch (const std::runtime_error&) {
    thrown = true;
  }
  check("exception rethrown", thrown, 100, 1, 4);
  return failures;
}

int main(int argc, char** argv) {
  std::mt19937_64 rng(argc > 1 ? std::atoll(argv[1]) : 12345);
  struct Case { int64_t B, M, C; double offset; };
  vector<Case> cases = {{1, 1, 1, 0},   {25, 1, 84, 0},  {3, 7, 13, 0},    {1, 5, 33, 0},    {40, 3, 1, 0},
                        {25, 196, 6, 0}, {7, 2, 1100, 0}, {130, 1, 17, 0},  {300, 1, 9, 0},   {64, 5, 600, 0},
                        {33, 4, 31, 1e4}, {9, 1, 2049, 1e4}, {100, 2, 515, 0}, {2, 3000, 5, 0},
                        {4096, 1, 100, 0}, {70, 1, 1500, 0}, {1, 1, 5000, 0}, {200, 1, 700, 1e4},
                        {50, 3, 1500, 0}, {48, 2, 2100, 1e4},
                        // narrow segments (C < 16: fused tiles of many m) at every transposed width
                        {4, 400, 1, 0}, {3, 500, 2, 0}, {8, 300, 3, 0}, {20, 400, 3, 0}, {6, 200, 7, 1e4},
                        {5, 160, 15, 0}, {9, 64, 8, 0},
                        // (each width below 16 is its own instance of the transposes: every one of them)
                        {5, 64, 4, 0}, {5, 64, 5, 0}, {7, 48, 9, 0}, {5, 64, 10, 1e4}, {3, 80, 11, 0}, {5, 40, 12, 0},
                        {6, 33, 13, 0}, {5, 48, 14, 0},
                        // from 2 MiB on the statistics kernels prefetch the next rows (kAheadBytes)
                        {64, 130, 64, 0}, {150, 1, 3600, 1e4}};
  int checks = 0;
  int failures = lengthChecks(&checks);
  failures += overlapChecks(&checks);
  failures += poolChecks(&checks);
  vector<bln::SimdLevel> levels;
  for (int l = 0; l < 4; ++l)
    if (bln::simdSupported((bln::SimdLevel)l)) levels.push_back((bln::SimdLevel)l);
  for (auto lvl : levels)
    for (int threads : {1, bln::maxThreads()})
      for (const Case& cs : cases) {
        bln::setSimdLevel(lvl);
        bln::setThreads(threads);
        const int64_t B = cs.B, M = cs.M, C = cs.C, n = B * M * C;
        std::normal_distribution<float> nd(0.f, 1.f);
        vector<float> x(n), dy(n), g(C), be(C);
        for (auto& v : x) v = (float)(cs.offset + nd(rng));
        for (auto& v : dy) v = nd(rng);
        for (auto& v : g) v = 1.f + 0.3f * nd(rng);
        for (auto& v : be) v = 0.2f * nd(rng);
        const double eps = 1e-3, N = (double)B;
        blnref::Ref r;
        blnref::refForward(x.data(), g.data(), be.data(), B, M, C, eps, N, bln::InferUse{}, bln::StatsIn{}, r);
        vector<float> y(n, NAN), mb(M * C, NAN), vb(M * C, NAN), mf(B * M, NAN), vf(B * M, NAN);
        bln::ForwardArgs fa;
        fa.d = {B, M, C};
        fa.x = x.data(), fa.gamma = g.data(), fa.beta = be.data(), fa.eps = eps, fa.batchSize = N, fa.y = y.data();
        fa.stats = {mb.data(), vb.data(), mf.data(), vf.data()};
        bln::cpuForward(fa);
        vector<float> dx(n, NAN), dg(C, NAN), db(C, NAN);
        bln::BackwardArgs ba;
        ba.d = fa.d;
        ba.dy = dy.data(), ba.x = x.data(), ba.gamma = g.data(), ba.eps = eps, ba.batchSize = N;
        ba.stats = {mb.data(), vb.data(), mf.data(), vf.data()};
        ba.dx = dx.data(), ba.dgamma = dg.data(), ba.dbeta = db.data();
        bln::cpuBackward(ba);
        blnref::refBackward(dy.data(), x.data(), g.data(), {mb.data(), vb.data(), mf.data(), vf.data()}, B, M, C, eps, N, r);
        vector<float> yi(n, NAN);
        bln::InferArgs ia;
        ia.d = fa.d;
        ia.x = x.data(), ia.gamma = g.data(), ia.beta = be.data(), ia.eps = eps, ia.batchSize = N, ia.y = yi.data();
        bln::cpuInfer(ia);
        const double tv = cs.offset ? 3e-3 : 1e-5, tg = cs.offset ? 3e-3 : 1e-4;
        // Means against their magnitude (mean |x|): a single mean near 0 ([1,1,5000]) makes
        // ||got - ref|| / ||ref|| measure the data's draw, not the kernel (AVX-512's 16-lane
        // partials land 2.5e-7 from a mean of 0.014 there: 1.8e-5 relative, 2e-8 of mean |x|).
        struct { const char* name; double err, tol; } res[] = {
            {"y", relErr(y, r.y), tv},
            {"batchMean", blnref::relErrMag(mb.data(), r.mb, r.mbMag), 1e-5},
            {"batchVar", relErr(vb, r.vb), tv},
            {"featMean", blnref::relErrMag(mf.data(), r.mf, r.mfMag), 1e-5},
            {"featVar", relErr(vf, r.vf), tv},
            {"infer", relErr(yi, r.y), tv},
            {"dx", relErr(dx, r.dx), tg},
            {"dgamma", relErr(dg, r.dg), tg},
            {"dbeta", relErr(db, r.db), tg}};
        for (auto& e : res) {
          ++checks;
          bool ok = e.err <= e.tol;
          if (!ok) ++failures;
          if (!ok || std::getenv("VERBOSE"))
            std::printf("%s %-6s t=%d [%lld,%lld,%lld]+%g %-9s err=%.3g tol=%.0e\n", ok ? "ok  " : "FAIL",
                        bln::simdName(lvl), threads, (long long)B, (long long)M, (long long)C, cs.offset, e.name, e.err, e.tol);
        }
      }
  std::printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
