// Harness of the CUDA path, llm.c dev/cuda style: every kernel version is checked
// against a float64 CPU reference of BLN-SPEC.md before it is timed.
//
//   bln_bench                 all shapes, validation + timing (CUDA events, median)
//   bln_bench --small         tiny shapes only (for compute-sanitizer / the emulator)
//   bln_bench --no-timing     validation only
//   bln_bench --repeats N     timed repeats per kernel (default 30)
//   bln_bench --shape 8,3,33[+1]   only this shape (repeatable; dims, optional float offset of every pointer)
//
// Bounds: ||got - ref|| / ||ref|| <= 1e-5 for forward, inference and statistics, 1e-4
// for backward (well-scaled N(0,1) data); 3e-3 for 1e4 + N(0,1) data. Exit status 1
// when any check fails (timings of failed kernels are not taken), 2 on a CUDA error.
//
// Output: a markdown table (one row per timed kernel) and the same rows as CSV lines
// starting with "csv,". GB/s are printed at 8, 12 and 20 bytes per element (a fused
// forward moves 8, a two-pass forward 12, a fused backward 12, a two-pass backward 20)
// beside a device-to-device cudaMemcpy of the tensor measured in the same run
// (reported as read+write GB/s, i.e. 8 B/element).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bln_cuda.h"
#include "test/reference.h"
#include "bln_kernels.cuh"

using bln::Dims;
using std::string;
using std::vector;
namespace gpu = bln::gpu;

#define CK(call)                                                                                                    \
  do {                                                                                                              \
    cudaError_t e_ = (call);                                                                                        \
    if (e_ != cudaSuccess) {                                                                                        \
      std::fprintf(stderr, "CUDA error %s (%s) at %s:%d: %s\n", cudaGetErrorName(e_), cudaGetErrorString(e_), __FILE__, \
                   __LINE__, #call);                                                                                \
      std::exit(2);                                                                                                 \
    }                                                                                                               \
  } while (0)

namespace {

constexpr double kTolFwd = 1e-5, kTolBwd = 1e-4, kTolOffset = 3e-3;

struct Shape {
  vector<int64_t> dims;
  int offset = 0;  // floats added to every device pointer (misaligned when not a multiple of 4)
  Dims d() const {
    Dims r;
    r.B = dims.front();
    r.C = dims.back();
    r.M = 1;
    for (size_t i = 1; i + 1 < dims.size(); ++i) r.M *= dims[i];
    return r;
  }
  string name() const {
    string s = "[";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
    s += "]";
    if (offset) s += "+" + std::to_string(offset);
    return s;
  }
};

struct Options {
  bool small = false, timing = true;
  int repeats = 30;
  unsigned seed = 1234;
  vector<Shape> extra;
};

int gFailures = 0;
int gChecks = 0;

// ------------------------------------------------------------------ device buffers

struct DBuf {
  float* base = nullptr;
  float* p = nullptr;
  size_t n = 0;
  DBuf() = default;
  DBuf(size_t count, int offset) : n(count) {
    CK(cudaMalloc(&base, (count + offset) * sizeof(float)));  // exact: overruns reach the sanitizers
    p = base + offset;
  }
  DBuf(const DBuf&) = delete;
  DBuf& operator=(const DBuf&) = delete;
  ~DBuf() {
    if (base) cudaFree(base);
  }
  void up(const vector<float>& h) { CK(cudaMemcpy(p, h.data(), n * sizeof(float), cudaMemcpyHostToDevice)); }
  vector<float> down() const {
    vector<float> h(n);
    CK(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
  }
  void poison() { CK(cudaMemset(p, 0xFF, n * sizeof(float))); }  // NaN: unwritten outputs show up
};

struct Workspace {
  void* p = nullptr;
  size_t cap = 0;
  void* get(size_t bytes) {
    if (bytes > cap) {
      if (p) CK(cudaFree(p));
      CK(cudaMalloc(&p, bytes));
      cap = bytes;
    }
    return p;
  }
  ~Workspace() {
    if (p) cudaFree(p);
  }
};

// ------------------------------------------------------------------ reference (float64)
// cpp/test/reference.h, the harnesses' one float64 reference; thin adapters to this file's types.

double relErr(const vector<float>& got, const vector<double>& ref) { return blnref::relErr(got.data(), ref); }

using RefStats = blnref::Ref;  // mb, vb, mf, vf: M*C, M*C, B*M, B*M (biased variances)

RefStats refStats(const vector<float>& x, const Dims& d) {
  RefStats s;
  blnref::refStats(x.data(), d.B, d.M, d.C, s);
  return s;
}

struct Pop {
  vector<float> bm, bv, fm, fv;  // M*C, M*C, M, M
};

// y of the spec; statistics from `s` (mini-batch) or the population where use says so.
vector<double> refNorm(const vector<float>& x, const vector<float>& g, const vector<float>& be, const Dims& d, double eps, double N,
                       const RefStats& s, const Pop* pop, bln::InferUse use) {
  blnref::Ref r = s;
  bln::StatsIn p;
  if (pop) p = {pop->bm.data(), pop->bv.data(), pop->fm.data(), pop->fv.data()};
  blnref::refNorm(x.data(), g.data(), be.data(), d.B, d.M, d.C, eps, N, use, p, r);
  return std::move(r.y);
}

struct RefGrad {
  vector<double> dx, dg, db;
};

// Backward of the spec at the given (float) statistics.
RefGrad refBackward(const vector<float>& dy, const vector<float>& x, const vector<float>& g, const Dims& d, double eps, double N,
                    const vector<float>& bm, const vector<float>& bv, const vector<float>& fm, const vector<float>& fv) {
  blnref::Ref r;
  blnref::refBackward(dy.data(), x.data(), g.data(), {bm.data(), bv.data(), fm.data(), fv.data()}, d.B, d.M, d.C, eps, N, r);
  return RefGrad{std::move(r.dx), std::move(r.dg), std::move(r.db)};
}

vector<float> toFloat(const vector<double>& v) { return vector<float>(v.begin(), v.end()); }

// ------------------------------------------------------------------ timing

struct Timer {
  cudaEvent_t a, b;
  Timer() {
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
  }
  ~Timer() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  // Median milliseconds of `repeats` runs of f (after 3 warm-up runs).
  double median(int repeats, const std::function<void()>& f) {
    for (int i = 0; i < 3; ++i) f();
    CK(cudaDeviceSynchronize());
    vector<float> t;
    for (int i = 0; i < repeats; ++i) {
      CK(cudaEventRecord(a));
      f();
      CK(cudaEventRecord(b));
      CK(cudaEventSynchronize(b));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, a, b));
      t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
};

struct Row {
  string shape, op, kernel;
  int bytesPerElem;
  double ms, err, copyGBs;
  int64_t numel;
};
vector<Row> gRows;

void check(bool ok, const string& what, double err, double tol) {
  ++gChecks;
  if (!ok) {
    ++gFailures;
    std::printf("FAIL  %-60s err %.3e > %.1e\n", what.c_str(), err, tol);
  } else {
    std::printf("ok    %-60s err %.3e\n", what.c_str(), err);
  }
}

// ------------------------------------------------------------------ data

struct Data {
  Dims d;
  vector<float> x, dy, g, be;
  double eps = 1e-3, N = 0;
};

Data makeData(const Shape& sh, unsigned seed, double offset) {
  Data D;
  D.d = sh.d();
  const int64_t n = D.d.numel();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(0.5f, 1.5f);
  D.x.resize(n), D.dy.resize(n), D.g.resize(D.d.C), D.be.resize(D.d.C);
  for (auto& v : D.x) v = static_cast<float>(offset + nd(rng));
  for (auto& v : D.dy) v = nd(rng);
  for (auto& v : D.g) v = ud(rng);
  for (auto& v : D.be) v = 0.1f * nd(rng);
  D.N = static_cast<double>(D.d.B);
  return D;
}

// Device buffers of one forward call (x, y, gamma, beta and the four statistics, each at the
// shape's pointer offset), inputs uploaded from D, and the call's arguments on them.
struct FwdBufs {
  DBuf x, y, g, be, bm, bv, fm, fv;
  gpu::FwdDev a;
  FwdBufs(const Data& D, const Shape& sh)
      : x(D.d.numel(), sh.offset), y(D.d.numel(), sh.offset), g(D.d.C, sh.offset), be(D.d.C, sh.offset),
        bm(D.d.M * D.d.C, sh.offset), bv(D.d.M * D.d.C, sh.offset), fm(D.d.B * D.d.M, sh.offset), fv(D.d.B * D.d.M, sh.offset) {
    x.up(D.x), g.up(D.g), be.up(D.be);
    a.d = D.d, a.x = x.p, a.gamma = g.p, a.beta = be.p, a.y = y.p, a.eps = D.eps, a.batchSize = D.N;
    a.stats.batchMean = bm.p, a.stats.batchVar = bv.p, a.stats.featureMean = fm.p, a.stats.featureVar = fv.p;
  }
};

// The backward call after a forward one (FwdBufs F): the statistics are the reference's,
// rounded to float and uploaded into F's statistics buffers; dy, dx, dgamma, dbeta; the
// reference gradient at those statistics.
struct BwdBufs {
  DBuf dy, dx, dg, db;
  gpu::BwdDev a;
  vector<float> sbm, sbv, sfm, sfv;  // the statistics, as floats (host copies)
  RefGrad ref;
  BwdBufs(const Data& D, const Shape& sh, FwdBufs& F, const RefStats& rs)
      : dy(D.d.numel(), sh.offset), dx(D.d.numel(), sh.offset), dg(D.d.C, sh.offset), db(D.d.C, sh.offset),
        sbm(toFloat(rs.mb)), sbv(toFloat(rs.vb)), sfm(toFloat(rs.mf)), sfv(toFloat(rs.vf)) {
    F.bm.up(sbm), F.bv.up(sbv), F.fm.up(sfm), F.fv.up(sfv);
    ref = refBackward(D.dy, D.x, D.g, D.d, D.eps, D.N, sbm, sbv, sfm, sfv);
    dy.up(D.dy);
    a.d = D.d, a.dy = dy.p, a.x = F.x.p, a.gamma = F.g.p, a.eps = D.eps, a.batchSize = D.N;
    a.stats.batchMean = F.bm.p, a.stats.batchVar = F.bv.p, a.stats.featureMean = F.fm.p, a.stats.featureVar = F.fv.p;
    a.dx = dx.p, a.dgamma = dg.p, a.dbeta = db.p;
  }
};

Pop makePop(const Dims& d, unsigned seed) {
  Pop p;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(0.5f, 2.f);
  p.bm.resize(d.M * d.C), p.bv.resize(d.M * d.C), p.fm.resize(d.M), p.fv.resize(d.M);
  for (auto& v : p.bm) v = 0.3f * nd(rng);
  for (auto& v : p.bv) v = ud(rng);
  for (auto& v : p.fm) v = 0.3f * nd(rng);
  for (auto& v : p.fv) v = ud(rng);
  return p;
}

bln::InferUse useOf(int mask) {
  bln::InferUse u;
  u.batchMean = mask & 1, u.batchVar = mask & 2, u.featureMean = mask & 4, u.featureVar = mask & 8;
  return u;
}

struct Variant {
  const char* name;
  gpu::Path path;
  bool scalar;
};
const Variant kVariants[] = {{"slab/v4", gpu::Path::Slab, false},
                             {"slab/v1", gpu::Path::Slab, true},
                             {"tiled/v4", gpu::Path::Tiled, false},
                             {"tiled/v1", gpu::Path::Tiled, true}};

// ------------------------------------------------------------------ one shape

void runShape(const Shape& sh, const Options& opt, const gpu::DeviceLimits& lim, Workspace& ws, Timer& timer) {
  Data D = makeData(sh, opt.seed, 0.0);
  const Dims d = D.d;
  const int64_t n = d.numel(), MC = d.M * d.C, R = d.B * d.M;
  const string sname = sh.name();
  std::printf("\n## %s  (B=%lld M=%lld C=%lld, %lld elements)\n", sname.c_str(), (long long)d.B, (long long)d.M, (long long)d.C,
              (long long)n);

  const RefStats rs = refStats(D.x, d);
  const vector<double> yRef = refNorm(D.x, D.g, D.be, d, D.eps, D.N, rs, nullptr, bln::InferUse{});

  FwdBufs F(D, sh);
  DBuf &x = F.x, &y = F.y, &g = F.g, &be = F.be, &bm = F.bm, &bv = F.bv, &fm = F.fm, &fv = F.fv;
  gpu::FwdDev& fa = F.a;

  // memcpy baseline of the same size
  double copyGBs = 0;
  if (opt.timing) {
    DBuf c2(n, 0);
    const double ms = timer.median(opt.repeats, [&] { CK(cudaMemcpyAsync(c2.p, x.p, n * sizeof(float), cudaMemcpyDeviceToDevice)); });
    copyGBs = 2.0 * n * sizeof(float) / (ms * 1e6);
    std::printf("cudaMemcpy D2D of %lld floats: %.4f ms, %.1f GB/s (read+write)\n", (long long)n, ms, copyGBs);
  }

  auto timeIt = [&](const string& op, const string& kernel, int bpe, double err, const std::function<void()>& f) {
    if (!opt.timing) return;
    const double ms = timer.median(opt.repeats, f);
    gRows.push_back(Row{sname, op, kernel, bpe, ms, err, copyGBs, n});
  };

  // ---------------- forward
  {
    const gpu::FwdPlan autoPlan = gpu::planForward(fa, lim);
    std::printf("forward auto: %s/v%d (lpr %d, column tiles %lld, row chunks %lld x %lld rows, workspace %zu B)\n",
                gpu::pathName(autoPlan.path), autoPlan.vec, autoPlan.lpr, (long long)autoPlan.nCT, (long long)autoPlan.nChunks,
                (long long)autoPlan.chunkRows, autoPlan.wsBytes);
  }
  for (const Variant& v : kVariants) {
    const gpu::FwdPlan p = gpu::planForward(fa, lim, v.path, v.scalar);
    if (!p.ok || (!v.scalar && p.vec != 4)) continue;
    void* w = ws.get(p.wsBytes);
    y.poison(), bm.poison(), bv.poison(), fm.poison(), fv.poison();
    CK(gpu::launchForward(fa, p, w, 0));
    CK(cudaDeviceSynchronize());
    const double ey = relErr(y.down(), yRef);
    const double e1 = relErr(bm.down(), rs.mb), e2 = relErr(bv.down(), rs.vb), e3 = relErr(fm.down(), rs.mf),
                 e4 = relErr(fv.down(), rs.vf);
    const double es = std::max(std::max(e1, e2), std::max(e3, e4));
    const bool ok = ey <= kTolFwd && es <= kTolFwd;
    char note[64];
    std::snprintf(note, sizeof note, " (y %.1e, stats %.1e)", ey, es);
    check(ok, sname + " forward " + v.name + note, std::max(ey, es), kTolFwd);
    if (ok) timeIt("forward", v.name, p.path == gpu::Path::Slab ? 8 : 12, std::max(ey, es), [&] { CK(gpu::launchForward(fa, p, w, 0)); });
  }

  // ---------------- inference: all 16 population configurations
  const Pop pop = makePop(d, opt.seed + 7);
  DBuf pbm(MC, sh.offset), pbv(MC, sh.offset), pfm(d.M, sh.offset), pfv(d.M, sh.offset);
  pbm.up(pop.bm), pbv.up(pop.bv), pfm.up(pop.fm), pfv.up(pop.fv);
  for (int mask = 0; mask < 16; ++mask) {
    gpu::FwdDev ia;
    ia.d = d, ia.x = x.p, ia.gamma = g.p, ia.beta = be.p, ia.y = y.p, ia.eps = D.eps, ia.batchSize = D.N;
    ia.use = useOf(mask);
    ia.pop.batchMean = pbm.p, ia.pop.batchVar = pbv.p, ia.pop.featureMean = pfm.p, ia.pop.featureVar = pfv.p;
    const vector<double> ref = refNorm(D.x, D.g, D.be, d, D.eps, D.N, rs, &pop, ia.use);
    for (gpu::Path path : {gpu::Path::Auto, gpu::Path::Tiled}) {
      const gpu::FwdPlan p = gpu::planForward(ia, lim, path, false);
      if (!p.ok || (path == gpu::Path::Tiled && gpu::planForward(ia, lim).path == gpu::Path::Tiled)) continue;
      void* w = ws.get(p.wsBytes);
      y.poison();
      CK(gpu::launchForward(ia, p, w, 0));
      CK(cudaDeviceSynchronize());
      const double e = relErr(y.down(), ref);
      const string kname = string(gpu::pathName(p.path)) + "/v" + std::to_string(p.vec);
      check(e <= kTolFwd, sname + " infer use=" + std::to_string(mask) + " " + kname, e, kTolFwd);
      if (e <= kTolFwd && (mask == 0 || mask == 15) && path == gpu::Path::Auto)
        timeIt(mask == 15 ? "infer(pop)" : "infer(batch)", kname, mask == 15 ? 8 : (p.path == gpu::Path::Slab ? 8 : 12), e,
               [&] { CK(gpu::launchForward(ia, p, w, 0)); });
    }
  }

  // ---------------- backward (at the reference statistics, rounded to float)
  BwdBufs Bk(D, sh, F, rs);
  const vector<float> &sbm = Bk.sbm, &sbv = Bk.sbv, &sfm = Bk.sfm, &sfv = Bk.sfv;
  const RefGrad& gr = Bk.ref;
  DBuf &dx = Bk.dx, &dg = Bk.dg, &db = Bk.db;
  gpu::BwdDev& ba = Bk.a;
  {
    const gpu::BwdPlan autoPlan = gpu::planBackward(ba, lim);
    std::printf("backward auto: %s/v%d (workspace %zu B)\n", gpu::pathName(autoPlan.path), autoPlan.vec, autoPlan.wsBytes);
  }
  for (const Variant& v : kVariants) {
    const gpu::BwdPlan p = gpu::planBackward(ba, lim, v.path, v.scalar);
    if (!p.ok || (!v.scalar && p.vec != 4)) continue;
    void* w = ws.get(p.wsBytes);
    dx.poison(), dg.poison(), db.poison();
    CK(gpu::launchBackward(ba, p, w, 0));
    CK(cudaDeviceSynchronize());
    const double e1 = relErr(dx.down(), gr.dx), e2 = relErr(dg.down(), gr.dg), e3 = relErr(db.down(), gr.db);
    const double e = std::max(e1, std::max(e2, e3));
    check(e <= kTolBwd, sname + " backward " + v.name, e, kTolBwd);
    if (e <= kTolBwd) timeIt("backward", v.name, p.path == gpu::Path::Slab ? 12 : 20, e, [&] { CK(gpu::launchBackward(ba, p, w, 0)); });
  }

  // ---------------- host API (host pointers, includes the copies)
  {
    bln::CudaInfo ci = bln::cudaInfo();
    if (ci.available) {
      vector<float> hy(n), hbm(MC), hbv(MC), hfm(R), hfv(R);
      bln::ForwardArgs a;
      a.d = d, a.x = D.x.data(), a.gamma = D.g.data(), a.beta = D.be.data(), a.eps = D.eps, a.batchSize = D.N, a.y = hy.data();
      a.stats.batchMean = hbm.data(), a.stats.batchVar = hbv.data(), a.stats.featureMean = hfm.data(), a.stats.featureVar = hfv.data();
      bln::cudaForward(a);
      double e = std::max(relErr(hy, yRef), std::max(relErr(hbm, rs.mb), relErr(hfv, rs.vf)));
      check(e <= kTolFwd, sname + " host API cudaForward", e, kTolFwd);

      vector<float> hdx(n), hdg(d.C), hdb(d.C);
      bln::BackwardArgs b;
      b.d = d, b.dy = D.dy.data(), b.x = D.x.data(), b.gamma = D.g.data(), b.eps = D.eps, b.batchSize = D.N;
      b.stats.batchMean = sbm.data(), b.stats.batchVar = sbv.data(), b.stats.featureMean = sfm.data(), b.stats.featureVar = sfv.data();
      b.dx = hdx.data(), b.dgamma = hdg.data(), b.dbeta = hdb.data();
      bln::cudaBackward(b);
      e = std::max(relErr(hdx, gr.dx), std::max(relErr(hdg, gr.dg), relErr(hdb, gr.db)));
      check(e <= kTolBwd, sname + " host API cudaBackward", e, kTolBwd);

      for (int mask : {0, 5, 15}) {
        bln::InferArgs ia;
        ia.d = d, ia.x = D.x.data(), ia.gamma = D.g.data(), ia.beta = D.be.data(), ia.eps = D.eps, ia.batchSize = D.N;
        ia.use = useOf(mask), ia.y = hy.data();
        ia.population.batchMean = pop.bm.data(), ia.population.batchVar = pop.bv.data();
        ia.population.featureMean = pop.fm.data(), ia.population.featureVar = pop.fv.data();
        bln::cudaInfer(ia);
        e = relErr(hy, refNorm(D.x, D.g, D.be, d, D.eps, D.N, rs, &pop, ia.use));
        check(e <= kTolFwd, sname + " host API cudaInfer use=" + std::to_string(mask), e, kTolFwd);
      }
    } else {
      check(false, sname + " host API: cudaInfo() says unavailable: " + ci.reason, 0, 0);
    }
  }
}

// 1e4 + N(0,1) data: outputs and gradients within 3e-3 (the kernels aim at ~1e-6).
void runOffset(const Shape& sh, const Options& opt, const gpu::DeviceLimits& lim, Workspace& ws) {
  Data D = makeData(sh, opt.seed + 99, 1e4);
  const Dims d = D.d;
  const string sname = sh.name() + " 1e4+N(0,1)";
  const RefStats rs = refStats(D.x, d);
  const vector<double> yRef = refNorm(D.x, D.g, D.be, d, D.eps, D.N, rs, nullptr, bln::InferUse{});
  FwdBufs F(D, sh);
  DBuf &y = F.y, &bv = F.bv, &fv = F.fv;
  gpu::FwdDev& fa = F.a;
  for (const Variant& v : kVariants) {
    const gpu::FwdPlan p = gpu::planForward(fa, lim, v.path, v.scalar);
    if (!p.ok || (!v.scalar && p.vec != 4)) continue;
    y.poison();
    CK(gpu::launchForward(fa, p, ws.get(p.wsBytes), 0));
    CK(cudaDeviceSynchronize());
    const double e = relErr(y.down(), yRef);
    const double ev = std::max(relErr(bv.down(), rs.vb), relErr(fv.down(), rs.vf));
    char note[64];
    std::snprintf(note, sizeof note, " (variances %.1e)", ev);
    check(e <= kTolOffset && ev <= kTolOffset, sname + " forward " + v.name + note, std::max(e, ev), kTolOffset);
  }
  BwdBufs Bk(D, sh, F, rs);
  const RefGrad& gr = Bk.ref;
  DBuf &dx = Bk.dx, &dg = Bk.dg, &db = Bk.db;
  gpu::BwdDev& ba = Bk.a;
  for (const Variant& v : kVariants) {
    const gpu::BwdPlan p = gpu::planBackward(ba, lim, v.path, v.scalar);
    if (!p.ok || (!v.scalar && p.vec != 4)) continue;
    dx.poison();
    CK(gpu::launchBackward(ba, p, ws.get(p.wsBytes), 0));
    CK(cudaDeviceSynchronize());
    const double e = std::max(relErr(dx.down(), gr.dx), std::max(relErr(dg.down(), gr.dg), relErr(db.down(), gr.db)));
    check(e <= kTolOffset, sname + " backward " + v.name, e, kTolOffset);
  }
}

// A NaN in x reaches exactly the outputs of its row and its column.
void runNaN(const Shape& sh, const Options& opt, const gpu::DeviceLimits& lim, Workspace& ws) {
  Data D = makeData(sh, opt.seed + 5, 0.0);
  const Dims d = D.d;
  const int64_t bi = d.B / 2, mi = d.M / 2, ci = d.C / 2;
  D.x[(bi * d.M + mi) * d.C + ci] = NAN;
  FwdBufs F(D, sh);
  DBuf& y = F.y;
  gpu::FwdDev& fa = F.a;
  for (const Variant& v : kVariants) {
    const gpu::FwdPlan p = gpu::planForward(fa, lim, v.path, v.scalar);
    if (!p.ok || (!v.scalar && p.vec != 4)) continue;
    y.poison();
    CK(gpu::launchForward(fa, p, ws.get(p.wsBytes), 0));
    CK(cudaDeviceSynchronize());
    const vector<float> h = y.down();
    int64_t wrong = 0;
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t m = 0; m < d.M; ++m)
        for (int64_t c = 0; c < d.C; ++c) {
          const bool touched = (b == bi && m == mi) || (m == mi && c == ci);
          const float val = h[(b * d.M + m) * d.C + c];
          if (touched != std::isnan(val)) ++wrong;
        }
    check(wrong == 0, sh.name() + " NaN propagation forward " + v.name + " (" + std::to_string(wrong) + " wrong)", double(wrong), 0);
  }
}

void printTable() {
  if (gRows.empty()) return;
  std::printf("\n| shape | op | kernel | B/elem moved | ms (median) | GB/s @8 B/elem | GB/s @12 B/elem | GB/s @20 B/elem | memcpy GB/s | of memcpy | rel err |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : gRows) {
    const double e = r.numel / (r.ms * 1e6);  // Gelem/s
    const double moved = e * r.bytesPerElem;
    std::printf("| %s | %s | %s | %d | %.4f | %.1f | %.1f | %.1f | %.1f | %.0f%% | %.1e |\n", r.shape.c_str(), r.op.c_str(),
                r.kernel.c_str(), r.bytesPerElem, r.ms, 8 * e, 12 * e, 20 * e, r.copyGBs, 100.0 * moved / r.copyGBs, r.err);
  }
  std::printf("\ncsv,shape,op,kernel,bytes_per_elem,ms,gbs8,gbs12,gbs20,memcpy_gbs,rel_err\n");
  for (const Row& r : gRows) {
    const double e = r.numel / (r.ms * 1e6);
    std::printf("csv,\"%s\",%s,%s,%d,%.5f,%.2f,%.2f,%.2f,%.2f,%.3e\n", r.shape.c_str(), r.op.c_str(), r.kernel.c_str(), r.bytesPerElem,
                r.ms, 8 * e, 12 * e, 20 * e, r.copyGBs, r.err);
  }
}

bool parseShape(const string& s, Shape* out) {
  Shape sh;
  string dims = s;
  const size_t plus = s.find('+');
  if (plus != string::npos) dims = s.substr(0, plus), sh.offset = std::atoi(s.c_str() + plus + 1);
  size_t i = 0;
  while (i < dims.size()) {
    size_t j = dims.find(',', i);
    if (j == string::npos) j = dims.size();
    const long long v = std::atoll(dims.substr(i, j - i).c_str());
    if (v < 1) return false;
    sh.dims.push_back(v);
    i = j + 1;
  }
  if (sh.dims.size() < 2 || sh.offset < 0) return false;
  *out = sh;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const string a = argv[i];
    if (a == "--small") opt.small = true;
    else if (a == "--no-timing") opt.timing = false;
    else if (a == "--repeats" && i + 1 < argc) opt.repeats = std::max(1, std::atoi(argv[++i]));
    else if (a == "--seed" && i + 1 < argc) opt.seed = static_cast<unsigned>(std::atoi(argv[++i]));
    else if (a == "--shape" && i + 1 < argc) {
      Shape sh;
      if (!parseShape(argv[++i], &sh)) {
        std::fprintf(stderr, "bad --shape %s (want B,d1,...,C[+offset])\n", argv[i]);
        return 2;
      }
      opt.extra.push_back(sh);
    } else {
      std::fprintf(stderr, "usage: %s [--small] [--no-timing] [--repeats N] [--seed S] [--shape B,...,C[+off]]...\n", argv[0]);
      return 2;
    }
  }
  if (opt.small) opt.repeats = std::min(opt.repeats, 3);

  const bln::CudaInfo ci = bln::cudaInfo();
  std::printf("# batch-layer-norm CUDA harness\n");
  std::printf("device: %s, compute capability %s, %.1f GiB, driver %s, runtime %s%s%s\n", ci.name.c_str(),
              ci.computeCapability.c_str(), ci.memoryBytes / 1073741824.0, ci.driverVersion.c_str(), ci.runtimeVersion.c_str(),
              ci.available ? "" : "; UNAVAILABLE: ", ci.reason.c_str());
  if (!ci.available) return 2;
  int dev = 0;
  CK(cudaGetDevice(&dev));
  gpu::DeviceLimits lim;
  int sms = 0, smem = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CK(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  lim.smCount = sms, lim.smemOptin = static_cast<size_t>(smem);
  std::printf("SMs %d, shared memory per block (opt-in) %d B%s\n", sms, smem,
#ifdef BLN_EMU
              " -- HOST EMULATOR: timings are meaningless"
#else
              ""
#endif
  );

  vector<Shape> shapes;
  auto add = [&](std::initializer_list<int64_t> dims, int off = 0) { shapes.push_back(Shape{vector<int64_t>(dims), off}); };
  vector<Shape> offsetShapes, nanShapes;
  if (!opt.extra.empty()) {
    shapes = opt.extra;  // --shape: only these
    offsetShapes = nanShapes = opt.extra;
  } else if (opt.small) {
    add({25, 84}), add({1, 1024}), add({1, 7, 33}), add({16, 5, 1}), add({8, 3, 33}), add({3, 4, 8}, 1), add({4, 2, 2, 12}),
        add({512, 1, 40}), add({300, 3, 260}), add({600, 2, 130}, 1), add({2, 100, 5}), add({1, 1100, 3}), add({70, 2, 3}, 2);
    offsetShapes = {shapes[0], shapes[7], shapes[8], shapes[9]};
    nanShapes = {Shape{{25, 84}, 0}, Shape{{300, 3, 260}, 0}, Shape{{8, 3, 33}, 1}};
  } else {
    add({64, 3136, 64}), add({256, 196, 256}), add({32, 512, 1024}), add({4096, 4096}), add({25, 84}), add({1, 1024});
    add({1, 7, 33}), add({16, 5, 1}), add({8, 3, 33}), add({64, 3136, 64}, 1), add({256, 196, 256}, 1), add({4096, 4096}, 2),
        add({2, 700, 5}), add({1, 9000, 3}), add({2, 1100, 3}), add({300, 3, 260}), add({8192, 1, 36}), add({4, 128, 8192});
    offsetShapes = {Shape{{64, 3136, 64}, 0}, Shape{{256, 196, 256}, 0}, Shape{{4096, 4096}, 0}, Shape{{25, 84}, 0},
                    Shape{{300, 3, 260}, 1}};
    nanShapes = {Shape{{25, 84}, 0}, Shape{{300, 3, 260}, 0}, Shape{{8, 3, 33}, 1}};
  }

  Workspace ws;
  Timer timer;
  try {
    for (const Shape& s : shapes) runShape(s, opt, lim, ws, timer);
    std::printf("\n## numerics: 1e4 + N(0,1) (bound %.0e) and NaN propagation\n", kTolOffset);
    for (const Shape& s : offsetShapes) runOffset(s, opt, lim, ws);
    for (const Shape& s : nanShapes) runNaN(s, opt, lim, ws);
  } catch (const std::exception& e) {
    std::printf("FAIL  exception: %s\n", e.what());
    ++gFailures;
  }
  printTable();
  std::printf("\n%d checks, %d failed\n", gChecks, gFailures);
  return gFailures ? 1 : 0;
}
