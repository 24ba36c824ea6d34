// CPU path: tiling, threads and the finalisation of statistics. The hot loops are
// in kernels_impl.h; this file decides which tiles exist and in what order.
//
// Every [B, C] slab (one m) holds both the batch statistics of its columns and the
// feature statistics of its rows, so the work splits cleanly by m. A slab is cut
// into column blocks of at most kTileCols features (and, where too few tiles would
// exist to feed the threads, into row blocks). When a whole slab is one tile and
// fits in L2, the statistics and the normalisation run back to back on it, so x
// is read from memory once (8 B/element). Otherwise a statistics pass and an apply
// pass run over the tensor (12 B/element).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

#include "bln.h"
#include "kernels.h"
#include "threadpool.h"

namespace bln {

namespace {

constexpr int64_t kFuseBytes = 256 * 1024;    // slab size that stays in L2 between passes
constexpr int64_t kSerialElems = 1 << 15;      // below this, one thread
constexpr int64_t kChunkElems = 1 << 14;       // work per parallel chunk, at least

// Per-thread scratch, reused across calls (no heap traffic per call once warm).
class Arena {
 public:
  void reset(size_t bytes) {
    if (bytes > cap_) {
      buf_.reset();  // free first: the old block is never needed again
      cap_ = std::max(bytes, cap_ + cap_ / 2);
      buf_.reset(static_cast<char*>(::operator new(cap_, std::align_val_t(64))));
    }
    used_ = 0;
  }
  template <class T>
  T* take(int64_t n) {
    size_t off = (used_ + 63) & ~size_t(63);
    used_ = off + sizeof(T) * static_cast<size_t>(n);
    return reinterpret_cast<T*>(buf_.get() + off);
  }
  static size_t bytesFor(std::initializer_list<size_t> sizes) {
    size_t s = 0;
    for (size_t x : sizes) s += ((x + 63) & ~size_t(63));
    return s;
  }
  // Big arenas are returned to the allocator after the call.
  void trim() {
    if (cap_ > (size_t(64) << 20)) buf_.reset(), cap_ = 0;
  }

 private:
  struct Free {
    void operator()(char* p) const { ::operator delete(p, std::align_val_t(64)); }
  };
  std::unique_ptr<char, Free> buf_;
  size_t cap_ = 0, used_ = 0;
};

thread_local Arena tlsArena;

struct TrimOnExit {
  ~TrimOnExit() { tlsArena.trim(); }
};

struct Plan {
  int64_t B, M, C;
  int64_t cw, nCb;  // column blocks
  int64_t bt, nBb;  // row blocks
  int64_t tiles;
  bool fused;
  int slots;
  int64_t tileGrain;  // tiles per parallel chunk
  int64_t mk = 1;     // consecutive m per tile (forward/infer fused path at small C; see widenTiles)

  void tileAt(int64_t t, int64_t* m, int64_t* c0, int64_t* n, int64_t* b0, int64_t* rows) const {
    const int64_t cb = t % nCb;
    const int64_t bb = (t / nCb) % nBb;
    *m = t / (nCb * nBb) * mk;
    *c0 = cb * cw;
    *n = std::min(cw, C - *c0);
    *b0 = bb * bt;
    *rows = std::min(bt, B - *b0);
  }
};

Plan makePlan(const Dims& d, int64_t bytesPerElem) {
  Plan p;
  p.B = d.B, p.M = d.M, p.C = d.C;
  const int64_t numel = d.numel();
  p.slots = numel < kSerialElems ? 1 : activeThreads();
  // One tile per slab where the slab fits in L2: statistics and normalisation then
  // run back to back on it (the statistics pass packs it contiguously for the second).
  p.fused = d.C <= kMaxTileCols && d.B * d.C * bytesPerElem <= kFuseBytes;
  if (p.fused) {
    p.cw = d.C, p.nCb = 1, p.bt = d.B, p.nBb = 1;
  } else {
    const int64_t blocks = (d.C + kTileCols - 1) / kTileCols;
    p.cw = std::min<int64_t>(kTileCols, (((d.C + blocks - 1) / blocks) + 15) / 16 * 16);
    p.cw = std::min(p.cw, d.C);
    p.nCb = (d.C + p.cw - 1) / p.cw;
    p.nBb = 1;
    if (p.slots > 1 && d.M * p.nCb < 4 * p.slots && d.B >= 2 * kColFlushRows) {
      const int64_t want = (4 * p.slots + d.M * p.nCb - 1) / (d.M * p.nCb);
      p.nBb = std::min<int64_t>(want, d.B / kColFlushRows);
    }
    p.bt = (d.B + p.nBb - 1) / p.nBb;
    p.nBb = (d.B + p.bt - 1) / p.bt;
  }
  p.tiles = d.M * p.nCb * p.nBb;
  const int64_t tileElems = std::max<int64_t>(1, p.bt * p.cw);
  p.tileGrain = std::max<int64_t>(1, kChunkElems / tileElems);
  // Keep at least a few chunks per thread where there is work for them.
  if (p.slots > 1) p.tileGrain = std::min(p.tileGrain, std::max<int64_t>(1, p.tiles / (4 * p.slots)));
  return p;
}

// At small C a slab's rows are short runs (C floats) M*C floats apart: [64,32,32,64] reads
// and writes 64 runs of 256 B, 256 KiB apart, per slab, which the hardware prefetchers do
// not follow. Fused tiles then take k consecutive m, so each row of a tile is k*C contiguous
// floats (the kernels keep row statistics per C-wide segment), while the tile still fits the
// fused budget and there are tiles enough for the threads.
constexpr int64_t kWideRunFloats = 1024;  // aim: rows of 4 KiB
void widenTiles(Plan& p, int64_t bytesPerElem) {
  if (!p.fused || p.nCb != 1 || p.nBb != 1 || p.C >= kWideRunFloats / 4) return;
  int64_t k = std::min<int64_t>(kWideRunFloats / p.C, kMaxTileCols / p.C);
  k = std::min<int64_t>(k, kFuseBytes / (p.B * p.C * bytesPerElem));
  k = std::min<int64_t>(k, std::max<int64_t>(1, p.M / (4 * p.slots)));
  if (k <= 1) return;
  p.mk = k;
  p.tiles = (p.M + k - 1) / k;
  p.tileGrain = std::max<int64_t>(1, kChunkElems / (p.B * p.C * k));
  if (p.slots > 1) p.tileGrain = std::min(p.tileGrain, std::max<int64_t>(1, p.tiles / (4 * p.slots)));
}

// Large outputs with long rows are written with non-temporal stores (they would only
// evict the inputs from cache, and the stores skip the read-for-ownership), where
// every row starts 16-byte aligned so a row's stores are all of one kind. Measured on
// the 2-core EPYC (bench/results): forward [1024,16384] 16.7 -> 14.4 ms; but short rows
// ([64,32,32,64]: 4.5 -> 7.7 ms), outputs that fit in L3 ([256,4096]) and backward
// ([1024,16384] 22.9 -> 25.5 ms) got slower, so those keep plain stores.
// BLN_STREAM_BYTES sets the size threshold for both (tests set 0 to exercise the path).
constexpr int64_t kStreamMinRow = 256;
int64_t streamBytes(bool backward) {
  static const int64_t env = [] {
    const char* s = std::getenv("BLN_STREAM_BYTES");
    char* end = nullptr;
    const long long b = s ? std::strtoll(s, &end, 10) : -1;
    return (s && end != s && b >= 0) ? static_cast<int64_t>(b) : int64_t(-1);
  }();
  if (env >= 0) return env;
  return backward ? std::numeric_limits<int64_t>::max() : int64_t(32) << 20;
}
inline bool useStreaming(const Dims& d, const Plan& p, const float* out, bool backward) {
  const bool forced = streamBytes(backward) == 0;
  return d.numel() * int64_t(sizeof(float)) >= streamBytes(backward) && (forced || p.cw >= kStreamMinRow) &&
         d.C % 4 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
}

// ------------------------------------------------------------------ forward/infer

struct NormJob {
  Dims d;
  const float *x, *gamma, *beta;
  double eps, wf, wb, invSqrtC, invB;
  float wff;
  float* y;
  StatsOut out;            // forward: the four mini-batch statistics (else null)
  const StatsIn* pop;      // infer: the population (else null)
  InferUse use;
  bool needCol, needRow;
  bool training;  // forward: all statistics from the mini-batch and written out
  bool stream;    // non-temporal stores for y
  Plan p;
  const KernelTable* k;
  // scratch
  float *gc, *gcw, *mbh, *mbl, *A, *F, *mfh, *mfl;  // gcw = gamma*wb/sqrt(C)
  float* packs;  // fused path: one packed slab per participant
  double *rowPart, *colPart;  // row partials [r][cb]{S1,S2}; column partials [bb][mc] S1 then S2

  void finCol(int64_t m, int64_t c, double S1, double S2) const {
    const int64_t mc = m * d.C + c;
    double mean = 0, var = 0;
    if (needCol) statsFromSums(x + mc, d.B, d.M * d.C, S1, S2, &mean, &var);
    if (use.batchMean) mean = pop->batchMean[mc];
    if (use.batchVar) var = pop->batchVar[mc];
    if (out.batchMean) out.batchMean[mc] = static_cast<float>(mean), out.batchVar[mc] = static_cast<float>(var);
    splitHiLo(mean, &mbh[mc], &mbl[mc]);
    A[mc] = gcw[c] * invStd(var, eps);
  }
  // finCol for a run of columns in the training case (every statistic from the
  // mini-batch, all written out): the same arithmetic without branches, so the
  // compiler vectorises it.
  void finColsTraining(int64_t m, int64_t c0, int64_t n, const double* __restrict S1, const double* __restrict S2) const {
    const int64_t mc0 = m * d.C + c0;
    const float* __restrict K = x + mc0;
    const float* __restrict gw = gcw + c0;
    float* __restrict om = out.batchMean + mc0;
    float* __restrict ov = out.batchVar + mc0;
    float* __restrict hi = mbh + mc0;
    float* __restrict lo = mbl + mc0;
    float* __restrict a = A + mc0;
    for (int64_t j = 0; j < n; ++j) {
      double mean, var;
      meanVar(K[j], S1[j], S2[j], invB, &mean, &var);
      const float h = static_cast<float>(mean);
      om[j] = h;
      ov[j] = static_cast<float>(var);
      hi[j] = h;
      lo[j] = static_cast<float>(mean - static_cast<double>(h));
      a[j] = gw[j] * invStd(var, eps);
    }
    for (int64_t j = 0; j < n; ++j)
      if (sumsOverflowed(S1[j], S2[j])) finCol(m, c0 + j, S1[j], S2[j]);
  }
  void finRow(int64_t r, double S1, double S2) const {
    const int64_t m = r % d.M;
    double mean = 0, var = 0;
    if (needRow) statsFromSums(x + r * d.C, d.C, 1, S1, S2, &mean, &var);
    if (use.featureMean) mean = pop->featureMean[m];
    if (use.featureVar) var = pop->featureVar[m];
    if (out.featureMean) out.featureMean[r] = static_cast<float>(mean), out.featureVar[r] = static_cast<float>(var);
    splitHiLo(mean, &mfh[r], &mfl[r]);
    F[r] = wff * invStd(var, eps);
  }

  // Statistics of one tile; finalises what the tile alone determines. `pack`, when
  // given, receives a contiguous copy of the tile for applyTile.
  void statsTile(int64_t t, float* pack) const {
    int64_t m, c0, n, b0, rows;
    p.tileAt(t, &m, &c0, &n, &b0, &rows);
    const int64_t km = std::min(p.mk, d.M - m);  // consecutive m in this tile (segments of n)
    const int64_t seg = n;
    n *= km;
    const int64_t cb = c0 / p.cw, bb = b0 / p.bt;
    double cs1[kMaxTileCols], cs2[kMaxTileCols];
    if (needCol || needRow) {
      FwdStatsTile ft;
      ft.x = x + (b0 * d.M + m) * d.C + c0;
      ft.rows = rows;
      ft.rowStride = d.M * d.C;
      ft.n = n;
      ft.c0 = c0;
      ft.colShift = x + m * d.C + c0;
      ft.colS1 = cs1;
      ft.colS2 = cs2;
      ft.rowOut = needRow ? rowPart + ((b0 * d.M + m) * p.nCb + cb) * 2 : nullptr;
      ft.rowOutStride = d.M * p.nCb * 2;
      ft.pack = pack;
      ft.seg = km > 1 ? seg : 0;
      k->fwdStats[needCol && needRow ? 0 : needCol ? 1 : 2](ft);
    }
    if (p.nBb == 1) {
      for (int64_t s = 0; s < km; ++s) {
        const double* s1 = cs1 + s * seg;
        const double* s2 = cs2 + s * seg;
        if (training)
          finColsTraining(m + s, c0, seg, s1, s2);
        else
          for (int64_t j = 0; j < seg; ++j) finCol(m + s, c0 + j, needCol ? s1[j] : 0, needCol ? s2[j] : 0);
      }
    } else if (needCol) {
      const int64_t MC = d.M * d.C;
      double* p1 = colPart + bb * MC * 2 + m * d.C + c0;
      std::memcpy(p1, cs1, sizeof(double) * n);
      std::memcpy(p1 + MC, cs2, sizeof(double) * n);
    }
    if (p.nCb == 1) {
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t s = 0; s < km; ++s) {
          const int64_t r = (b0 + i) * d.M + m + s;
          finRow(r, needRow ? rowPart[r * 2] : 0, needRow ? rowPart[r * 2 + 1] : 0);
        }
    }
  }

  void applyTile(int64_t t, const float* packed) const {
    int64_t m, c0, n, b0, rows;
    p.tileAt(t, &m, &c0, &n, &b0, &rows);
    const int64_t km = std::min(p.mk, d.M - m);
    const int64_t seg = n;
    n *= km;
    const int64_t mc = m * d.C + c0;
    const int64_t r0 = b0 * d.M + m;
    FwdApplyTile at;
    at.x = packed ? packed : x + r0 * d.C + c0;
    at.xStride = packed ? n : d.M * d.C;
    at.y = y + r0 * d.C + c0;
    at.rows = rows;
    at.rowStride = d.M * d.C;
    at.n = n;
    at.gc = gc + c0;
    at.beta = beta + c0;
    at.mbh = mbh + mc;
    at.mbl = mbl + mc;
    at.A = A + mc;
    at.F = F + r0;
    at.mfh = mfh + r0;
    at.mfl = mfl + r0;
    at.coefStride = d.M;
    at.stream = stream;
    at.seg = km > 1 ? seg : 0;
    k->fwdApply(at);
  }

  void run() {
    const Dims& D = d;
    const int64_t MC = D.M * D.C, BM = D.B * D.M;
    const bool colParts = needCol && p.nBb > 1;
    Arena& ar = tlsArena;
    ar.reset(Arena::bytesFor({2 * sizeof(float) * size_t(D.C), 3 * sizeof(float) * size_t(MC), 3 * sizeof(float) * size_t(BM),
                              needRow ? sizeof(double) * size_t(BM * p.nCb * 2) : 0,
                              colParts ? sizeof(double) * size_t(p.nBb * MC * 2) : 0,
                              p.fused ? sizeof(float) * size_t(p.slots) * size_t(D.B * D.C * p.mk) : 0}) +
             9 * 64);
    gc = ar.take<float>(D.C);
    gcw = ar.take<float>(D.C);
    mbh = ar.take<float>(MC);
    mbl = ar.take<float>(MC);
    A = ar.take<float>(MC);
    F = ar.take<float>(BM);
    mfh = ar.take<float>(BM);
    mfl = ar.take<float>(BM);
    rowPart = needRow ? ar.take<double>(BM * p.nCb * 2) : nullptr;
    colPart = colParts ? ar.take<double>(p.nBb * MC * 2) : nullptr;
    packs = p.fused ? ar.take<float>(int64_t(p.slots) * D.B * D.C * p.mk) : nullptr;
    for (int64_t c = 0; c < D.C; ++c) {
      gc[c] = static_cast<float>(static_cast<double>(gamma[c]) * invSqrtC);
      gcw[c] = static_cast<float>(static_cast<double>(gamma[c]) * invSqrtC * wb);
    }
    invB = 1.0 / static_cast<double>(D.B);
    wff = static_cast<float>(wf);

    if (p.fused) {
      parallelFor(p.tiles, p.tileGrain, p.slots, [&](int64_t b, int64_t e, int slot) {
        float* pack = packs + int64_t(slot) * D.B * D.C * p.mk;
        // With every statistic from the population no statistics pass runs, so
        // nothing is packed: the apply pass then reads x itself.
        float* packed = (needCol || needRow) ? pack : nullptr;
        for (int64_t t = b; t < e; ++t) statsTile(t, packed), applyTile(t, packed);
      });
      return;
    }
    parallelFor(p.tiles, p.tileGrain, p.slots, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) statsTile(t, nullptr);
    });
    const int64_t finGrain = std::max<int64_t>(1024, kChunkElems / 4);
    if (p.nBb > 1) {
      parallelFor(MC, finGrain, p.slots, [&](int64_t b, int64_t e, int) {
        for (int64_t mc = b; mc < e; ++mc) {
          double S1 = 0, S2 = 0;
          if (needCol)
            for (int64_t bb = 0; bb < p.nBb; ++bb) S1 += colPart[bb * MC * 2 + mc], S2 += colPart[bb * MC * 2 + MC + mc];
          finCol(mc / D.C, mc % D.C, S1, S2);
        }
      });
    }
    if (p.nCb > 1) {
      parallelFor(BM, finGrain, p.slots, [&](int64_t b, int64_t e, int) {
        for (int64_t r = b; r < e; ++r) {
          double S1 = 0, S2 = 0;
          if (needRow)
            for (int64_t cb = 0; cb < p.nCb; ++cb) S1 += rowPart[(r * p.nCb + cb) * 2], S2 += rowPart[(r * p.nCb + cb) * 2 + 1];
          finRow(r, S1, S2);
        }
      });
    }
    parallelFor(p.tiles, p.tileGrain, p.slots, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) applyTile(t, nullptr);
    });
  }
};

// ------------------------------------------------------------------ backward

struct BackJob {
  Dims d;
  const float *dy, *x, *gamma;
  StatsIn st;
  double eps, wf, wb, invSqrtC;
  float *dx, *dgamma, *dbeta;
  Plan p;
  const KernelTable* k;
  float *gc, *U, *V, *Wc, *P, *Q, *T, *rf;
  double *rowPart, *colPart, *slotAcc;  // slotAcc: [slot][C]{dgamma, dbeta}
  float* packs;  // fused path: per participant, packed x then packed dy
  bool stream;   // non-temporal stores for dx

  void finCol(int64_t m, int64_t c, double Sdy, double Sdyxb, double Sdyxf, int slot) const {
    const int64_t mc = m * d.C + c;
    const double g = static_cast<double>(gamma[c]) * invSqrtC;
    const BwdColCoefs k = bwdColCoefs(d.B, wf, wb, invSqrtC, g, invStd(st.batchVar[mc], eps), Sdy, Sdyxb, Sdyxf);
    U[mc] = static_cast<float>(k.U);
    V[mc] = static_cast<float>(k.V);
    Wc[mc] = static_cast<float>(k.W);
    double* acc = slotAcc + static_cast<int64_t>(slot) * d.C * 2;
    acc[c] += k.dgamma;
    acc[d.C + c] += k.dbeta;
  }
  void finRow(int64_t r, double Rg, double Rgxf) const {
    const BwdRowCoefs k = bwdRowCoefs(d.C, wf, rf[r], Rg, Rgxf);
    P[r] = static_cast<float>(k.P);
    Q[r] = static_cast<float>(k.Q);
    T[r] = static_cast<float>(k.T);
  }

  void statsTile(int64_t t, int slot, float* packX, float* packDy) const {
    int64_t m, c0, n, b0, rows;
    p.tileAt(t, &m, &c0, &n, &b0, &rows);
    const int64_t cb = c0 / p.cw, bb = b0 / p.bt;
    const int64_t r0 = b0 * d.M + m;
    double s[3][kMaxTileCols];
    BwdStatsTile bt;
    bt.x = x + r0 * d.C + c0;
    bt.dy = dy + r0 * d.C + c0;
    bt.rows = rows;
    bt.rowStride = d.M * d.C;
    bt.n = n;
    bt.gc = gc + c0;
    bt.mub = st.batchMean + m * d.C + c0;
    bt.muf = st.featureMean + r0;
    bt.rf = rf + r0;
    bt.coefStride = d.M;
    bt.colSdy = s[0];
    bt.colSdyxb = s[1];
    bt.colSdyxf = s[2];
    bt.rowOut = rowPart + (r0 * p.nCb + cb) * 2;
    bt.rowOutStride = d.M * p.nCb * 2;
    bt.packX = packX;
    bt.packDy = packDy;
    k->bwdStats(bt);
    if (p.nBb == 1) {
      for (int64_t j = 0; j < n; ++j) finCol(m, c0 + j, s[0][j], s[1][j], s[2][j], slot);
    } else {
      const int64_t MC = d.M * d.C;
      double* p1 = colPart + bb * MC * 3 + m * d.C + c0;
      for (int q = 0; q < 3; ++q) std::memcpy(p1 + q * MC, s[q], sizeof(double) * n);
    }
    if (p.nCb == 1) {
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t r = (b0 + i) * d.M + m;
        finRow(r, rowPart[r * 2], rowPart[r * 2 + 1]);
      }
    }
  }

  void applyTile(int64_t t, const float* packX, const float* packDy) const {
    int64_t m, c0, n, b0, rows;
    p.tileAt(t, &m, &c0, &n, &b0, &rows);
    const int64_t mc = m * d.C + c0;
    const int64_t r0 = b0 * d.M + m;
    BwdApplyTile at;
    at.x = packX ? packX : x + r0 * d.C + c0;
    at.dy = packX ? packDy : dy + r0 * d.C + c0;
    at.inStride = packX ? n : d.M * d.C;
    at.dx = dx + r0 * d.C + c0;
    at.rows = rows;
    at.rowStride = d.M * d.C;
    at.n = n;
    at.gc = gc + c0;
    at.U = U + mc;
    at.V = V + mc;
    at.Wc = Wc + mc;
    at.mub = st.batchMean + mc;
    at.P = P + r0;
    at.Q = Q + r0;
    at.T = T + r0;
    at.muf = st.featureMean + r0;
    at.coefStride = d.M;
    at.stream = stream;
    k->bwdApply(at);
  }

  void run() {
    const Dims& D = d;
    const int64_t MC = D.M * D.C, BM = D.B * D.M;
    const int slots = p.slots;
    Arena& ar = tlsArena;
    ar.reset(Arena::bytesFor({sizeof(float) * size_t(D.C), 3 * sizeof(float) * size_t(MC), 4 * sizeof(float) * size_t(BM),
                              sizeof(double) * size_t(BM * p.nCb * 2),
                              p.nBb > 1 ? sizeof(double) * size_t(p.nBb * MC * 3) : 0,
                              sizeof(double) * size_t(slots) * size_t(D.C) * 2,
                              p.fused ? 2 * sizeof(float) * size_t(slots) * size_t(D.B * D.C) : 0}) +
             11 * 64);
    gc = ar.take<float>(D.C);
    U = ar.take<float>(MC);
    V = ar.take<float>(MC);
    Wc = ar.take<float>(MC);
    P = ar.take<float>(BM);
    Q = ar.take<float>(BM);
    T = ar.take<float>(BM);
    rf = ar.take<float>(BM);
    rowPart = ar.take<double>(BM * p.nCb * 2);
    colPart = p.nBb > 1 ? ar.take<double>(p.nBb * MC * 3) : nullptr;
    slotAcc = ar.take<double>(int64_t(slots) * D.C * 2);
    packs = p.fused ? ar.take<float>(2 * int64_t(slots) * D.B * D.C) : nullptr;
    std::fill(slotAcc, slotAcc + int64_t(slots) * D.C * 2, 0.0);
    for (int64_t c = 0; c < D.C; ++c) gc[c] = static_cast<float>(static_cast<double>(gamma[c]) * invSqrtC);
    parallelFor(BM, 1 << 14, slots, [&](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e; ++r) rf[r] = invStd(st.featureVar[r], eps);
    });

    if (p.fused) {
      parallelFor(p.tiles, p.tileGrain, slots, [&](int64_t b, int64_t e, int slot) {
        float* px = packs + 2 * int64_t(slot) * D.B * D.C;
        float* pd = px + D.B * D.C;
        for (int64_t t = b; t < e; ++t) statsTile(t, slot, px, pd), applyTile(t, px, pd);
      });
    } else {
      parallelFor(p.tiles, p.tileGrain, slots, [&](int64_t b, int64_t e, int slot) {
        for (int64_t t = b; t < e; ++t) statsTile(t, slot, nullptr, nullptr);
      });
      if (p.nBb > 1) {
        // By column (all m of a column in one chunk) so each slot's accumulators see
        // whole columns; the chunks split the feature axis.
        const int64_t cg = std::max<int64_t>(16, (kChunkElems / 4) / std::max<int64_t>(1, D.M));
        parallelFor(D.C, cg, slots, [&](int64_t b, int64_t e, int slot) {
          for (int64_t m = 0; m < D.M; ++m)
            for (int64_t c = b; c < e; ++c) {
              const int64_t mc = m * D.C + c;
              double s[3] = {0, 0, 0};
              for (int64_t bb = 0; bb < p.nBb; ++bb)
                for (int q = 0; q < 3; ++q) s[q] += colPart[bb * MC * 3 + q * MC + mc];
              finCol(m, c, s[0], s[1], s[2], slot);
            }
        });
      }
      if (p.nCb > 1) {
        parallelFor(BM, 4096, slots, [&](int64_t b, int64_t e, int) {
          for (int64_t r = b; r < e; ++r) {
            double Rg = 0, Rgxf = 0;
            for (int64_t cb = 0; cb < p.nCb; ++cb) Rg += rowPart[(r * p.nCb + cb) * 2], Rgxf += rowPart[(r * p.nCb + cb) * 2 + 1];
            finRow(r, Rg, Rgxf);
          }
        });
      }
      parallelFor(p.tiles, p.tileGrain, slots, [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; ++t) applyTile(t, nullptr, nullptr);
      });
    }
    for (int64_t c = 0; c < D.C; ++c) {
      double g = 0, bsum = 0;
      for (int s = 0; s < slots; ++s) g += slotAcc[int64_t(s) * D.C * 2 + c], bsum += slotAcc[int64_t(s) * D.C * 2 + D.C + c];
      dgamma[c] = static_cast<float>(g);
      dbeta[c] = static_cast<float>(bsum);
    }
  }
};

}  // namespace

static void runNorm(NormJob& j, double batchSize) {
  j.wf = weightFeature(batchSize);
  j.wb = weightBatch(batchSize);
  j.invSqrtC = 1.0 / std::sqrt(static_cast<double>(j.d.C));
  j.needCol = !(j.use.batchMean && j.use.batchVar);
  j.needRow = !(j.use.featureMean && j.use.featureVar);
  j.training = j.out.batchMean != nullptr && !j.use.batchMean && !j.use.batchVar;
  j.p = makePlan(j.d, 4);
  j.stream = useStreaming(j.d, j.p, j.y, false);
  widenTiles(j.p, 4);
  j.k = &activeKernels();
  TrimOnExit trim;
  j.run();
}

void cpuForward(const ForwardArgs& a) {
  checkArgs(a);
  NormJob j{};
  j.d = a.d;
  j.x = a.x, j.gamma = a.gamma, j.beta = a.beta, j.y = a.y;
  j.eps = a.eps;
  j.out = a.stats;
  j.pop = nullptr;
  runNorm(j, a.batchSize);
}

void cpuInfer(const InferArgs& a) {
  checkArgs(a);
  NormJob j{};
  j.d = a.d;
  j.x = a.x, j.gamma = a.gamma, j.beta = a.beta, j.y = a.y;
  j.eps = a.eps;
  j.pop = &a.population;
  j.use = a.use;
  runNorm(j, a.batchSize);
}

void cpuBackward(const BackwardArgs& a) {
  checkArgs(a);
  BackJob j{};
  j.d = a.d;
  j.dy = a.dy, j.x = a.x, j.gamma = a.gamma;
  j.st = a.stats;
  j.eps = a.eps;
  j.wf = weightFeature(a.batchSize);
  j.wb = weightBatch(a.batchSize);
  j.invSqrtC = 1.0 / std::sqrt(static_cast<double>(a.d.C));
  j.dx = a.dx, j.dgamma = a.dgamma, j.dbeta = a.dbeta;
  j.p = makePlan(a.d, 8);
  j.stream = useStreaming(a.d, j.p, a.dx, true);
  j.k = &activeKernels();
  TrimOnExit trim;
  j.run();
}

}  // namespace bln
