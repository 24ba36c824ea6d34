// CPU path, forward and inference: the statistics of each tile (fused with the normalisation
// where the slab fits in L2), their finalisation into per-column and per-row coefficients
// (numerics.h), and the apply pass. The hot loops are kernels_impl.h's; plan.h cuts the tiles.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "bln.h"
#include "kernels.h"
#include "plan.h"
#include "threadpool.h"

namespace bln {
namespace cpu {
namespace {

// ------------------------------------------------------------------ forward/infer

struct NormJob {
  Dims d;
  const float *x, *gamma, *beta;
  double eps, wf, wb, invSqrtC, invB, invC;
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
  float *Qc = nullptr, *Fm = nullptr;  // two-pass path: the folded coefficients (foldCoefs)
  double *rowPart, *colPart;  // row partials [r][cb]{S1,S2}; column partials [bb][mc] S1 then S2

  void finCol(int64_t m, int64_t c, double S1, double S2) const {
    const int64_t mc = m * d.C + c;
    double mean = 0, var = 0;
    if (needCol) statsFromSums(x + mc, d.B, d.M * d.C, invB, S1, S2, &mean, &var);
    if (use.batchMean) mean = pop->batchMean[mc];
    if (use.batchVar) var = pop->batchVar[mc];
    if (out.batchMean) out.batchMean[mc] = static_cast<float>(mean), out.batchVar[mc] = static_cast<float>(var);
    splitHiLo(mean, &mbh[mc], &mbl[mc]);
    A[mc] = gcw[c] * invStd(var, eps);
  }
  // finCol for a run of columns in the training case (every statistic from the mini-batch, all
  // written out), in the kernel table's vectorised finalisation; a run with any item outside its
  // fast path is redone by finCol.
  void finColsTraining(int64_t m, int64_t c0, int64_t n, const double* S1, const double* S2) const {
    const int64_t mc0 = m * d.C + c0;
    const FinRun f{n, x + mc0, 1, S1, S2, 1, invB, eps, gcw + c0, 1, out.batchMean + mc0, out.batchVar + mc0, mbh + mc0, mbl + mc0, A + mc0};
    if (!k->finRun(f))
      for (int64_t j = 0; j < n; ++j) finCol(m, c0 + j, S1[j], S2[j]);
  }
  // finRow for `n` consecutive rows from r0 (a tile row of several m), as finColsTraining.
  void finRowsTraining(int64_t r0, int64_t n) const {
    const double* S = rowPart + r0 * 2;
    const FinRun f{n, x + r0 * d.C, d.C, S, S + 1, 2, invC, eps, &wff, 0, out.featureMean + r0, out.featureVar + r0, mfh + r0, mfl + r0, F + r0};
    if (!k->finRun(f))
      for (int64_t j = 0; j < n; ++j) finRow(r0 + j, S[2 * j], S[2 * j + 1]);
  }
  // Row r's statistics and coefficients, written where the pointers say (mean/var optional).
  void finRowTo(int64_t r, double S1, double S2, float* om, float* ov, float* hi, float* lo, float* f) const {
    double mean = 0, var = 0;
    if (needRow) statsFromSums(x + r * d.C, d.C, 1, invC, S1, S2, &mean, &var);
    if (use.featureMean || use.featureVar) {  // (a 64-bit division per row: only where needed)
      const int64_t m = r % d.M;
      if (use.featureMean) mean = pop->featureMean[m];
      if (use.featureVar) var = pop->featureVar[m];
    }
    if (om) *om = static_cast<float>(mean), *ov = static_cast<float>(var);
    splitHiLo(mean, hi, lo);
    *f = wff * invStd(var, eps);
  }
  void finRow(int64_t r, double S1, double S2) const {
    const bool o = out.featureMean != nullptr;
    finRowTo(r, S1, S2, o ? out.featureMean + r : nullptr, o ? out.featureVar + r : nullptr, mfh + r, mfl + r, F + r);
  }

  // A fused training tile's rows, kept together (rows*km of them, item i*km + s for tile row i,
  // segment s): the statistics kernel writes their sums and shifts there, one vectorised
  // finalisation makes their coefficients (which the apply pass reads with coefStride km), and
  // the statistics are copied out per tile row.
  struct TileRows {
    double* sums;
    float *shift, *F, *mh, *ml, *mean, *var;
  };
  void finTileRows(const TileRows& tr, int64_t r0, int64_t rows, int64_t km) const {
    const int64_t n = rows * km;
    const FinRun f{n, tr.shift, 1, tr.sums, tr.sums + 1, 2, invC, eps, &wff, 0, tr.mean, tr.var, tr.mh, tr.ml, tr.F};
    if (!k->finRun(f))
      for (int64_t i = 0, j = 0; i < rows; ++i)
        for (int64_t s = 0; s < km; ++s, ++j)
          finRowTo(r0 + i * d.M + s, tr.sums[2 * j], tr.sums[2 * j + 1], tr.mean + j, tr.var + j, tr.mh + j, tr.ml + j, tr.F + j);
    for (int64_t i = 0; i < rows; ++i) {
      std::memcpy(out.featureMean + r0 + i * d.M, tr.mean + i * km, sizeof(float) * km);
      std::memcpy(out.featureVar + r0 + i * d.M, tr.var + i * km, sizeof(float) * km);
    }
  }

  // The two-pass apply's folded coefficients: y = gc*(F*x - Fm) + (A*x + Qc) with Qc = beta -
  // A*(mbh + mbl) per column and Fm = F*(mfh + mfl) per row reads three column arrays instead of
  // five (forward [256,4096]: its apply streamed 80 KiB of coefficients per 16 KiB row from L2).
  // Only where every mean is within kAffineSigmas of its deviation (|A*mean| <= K*|gcw|, as A =
  // gcw/sqrt(var + eps); the same for rows), where the fold's roundings stay under ~1e-6 of the
  // output's scale; else (1e4 + N(0,1) data) the hi/lo form. Forward and infer with every flag
  // false make it from the same coefficients, so they stay equal bit for bit.
  bool foldCoefs() const {
    const double K = kAffineSigmas;
    int bad = 0;
    for (int64_t m = 0; m < d.M; ++m) {
      const float* __restrict a = A + m * d.C;
      const float* __restrict hi = mbh + m * d.C;
      const float* __restrict lo = mbl + m * d.C;
      float* __restrict q = Qc + m * d.C;
      for (int64_t c = 0; c < d.C; ++c) {
        const double mb = static_cast<double>(hi[c]) + static_cast<double>(lo[c]), am = static_cast<double>(a[c]) * mb;
        bad |= int(!(std::fabs(am) <= K * std::fabs(static_cast<double>(gcw[c]))));
        q[c] = static_cast<float>(static_cast<double>(beta[c]) - am);
      }
    }
    const int64_t BM = d.B * d.M;
    for (int64_t r = 0; r < BM; ++r) {
      const double fm = static_cast<double>(F[r]) * (static_cast<double>(mfh[r]) + static_cast<double>(mfl[r]));
      bad |= int(!(std::fabs(fm) <= K * std::fabs(static_cast<double>(wff))));
      Fm[r] = static_cast<float>(fm);
    }
    return bad == 0;
  }

  // Statistics of one tile; finalises what the tile alone determines. `pack`, when
  // given, receives a contiguous copy of the tile for applyTile.
  void statsTile(int64_t t, float* pack, const TileRows* tr = nullptr) const {
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
      if (tr) {
        ft.rowOut = tr->sums;
        ft.rowOutStride = km * 2;
        ft.rowShift = tr->shift;
        ft.rowShiftStride = km;
      }
      ft.pack = pack;
      ft.seg = km > 1 ? seg : 0;
      k->fwdStats[needCol && needRow ? 0 : needCol ? 1 : 2](ft);
    }
    if (p.nBb == 1) {
      if (training) {
        finColsTraining(m, c0, n, cs1, cs2);  // the km segments are consecutive in mc (gcw repeats)
      } else {
        for (int64_t s = 0; s < km; ++s)
          for (int64_t j = 0; j < seg; ++j)
            finCol(m + s, c0 + j, needCol ? cs1[s * seg + j] : 0, needCol ? cs2[s * seg + j] : 0);
      }
    } else if (needCol) {
      const int64_t MC = d.M * d.C;
      double* p1 = colPart + bb * MC * 2 + m * d.C + c0;
      std::memcpy(p1, cs1, sizeof(double) * n);
      std::memcpy(p1 + MC, cs2, sizeof(double) * n);
    }
    if (tr) {
      finTileRows(*tr, b0 * d.M + m, rows, km);
    } else if (p.nCb == 1 && training) {
      for (int64_t i = 0; i < rows; ++i) finRowsTraining((b0 + i) * d.M + m, km);
    } else if (p.nCb == 1) {
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t s = 0; s < km; ++s) {
          const int64_t r = (b0 + i) * d.M + m + s;
          finRow(r, needRow ? rowPart[r * 2] : 0, needRow ? rowPart[r * 2 + 1] : 0);
        }
    }
  }

  void applyTile(int64_t t, const float* packed, const TileRows* tr = nullptr) const {
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
    if (tr) at.F = tr->F, at.mfh = tr->mh, at.mfl = tr->ml, at.coefStride = km;
    if (Qc && !packed) at.Qc = Qc + mc, at.Fm = Fm + r0;
    at.stream = stream;
    at.seg = km > 1 ? seg : 0;
    k->fwdApply(at);
  }

  // Every statistic from the population: the coefficients first, then one pass over the tensor
  // in memory order (a tile row is a whole batch row of M*C floats, segments of C), so x and y
  // stream like a copy.
  void runPopulation() {
    const int64_t finGrain = std::max<int64_t>(1024, kChunkElems / 4);
    // Columns: runs of mk consecutive m (gcw repeats that far) through the vectorised kernel; a
    // run with a variance outside its fast path is redone by finCol. (One m per call was 30% of
    // infer [25,14,14,6]: runs of C = 6 never reached the vector loop.)
    const int64_t runs = (d.M + p.mk - 1) / p.mk;
    parallelFor(runs, std::max<int64_t>(1, finGrain / (d.C * p.mk)), p.slots, [&](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t m0 = r * p.mk, mc = m0 * d.C, n = std::min(p.mk, d.M - m0) * d.C;
        const FinGiven f{n, pop->batchMean + mc, pop->batchVar + mc, eps, gcw, 1, mbh + mc, mbl + mc, A + mc};
        if (!k->finGiven(f))
          for (int64_t j = 0; j < n; ++j) finCol(m0 + j / d.C, j % d.C, 0, 0);
      }
    });
    // Rows: their coefficients depend on m alone, so M of them are made and read with
    // coefStride 0 below.
    const FinGiven f{d.M, pop->featureMean, pop->featureVar, eps, &wff, 0, mfh, mfl, F};
    if (!k->finGiven(f))
      for (int64_t m = 0; m < d.M; ++m) finRow(m, 0, 0);
    // Every mean small against its deviation: y = P*x + Q (kernels.h's FinAffine), else hi/lo.
    const int64_t MC = d.M * d.C;
    float* P = tlsArena.take<float>(MC);
    float* Q = tlsArena.take<float>(MC);
    std::atomic<bool> affine{true};
    parallelFor(runs, std::max<int64_t>(1, finGrain / (d.C * p.mk)), p.slots, [&](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e && affine.load(std::memory_order_relaxed); ++r) {
        const int64_t m0 = r * p.mk, mc = m0 * d.C, km = std::min(p.mk, d.M - m0);
        const FinAffine fa{km,          d.C,          gc,      beta,    A + mc, mbh + mc, mbl + mc, pop->batchVar + mc, F + m0,
                           mfh + m0,    mfl + m0,     pop->featureVar + m0, eps, P + mc, Q + mc};
        if (!k->finAffine(fa)) affine.store(false, std::memory_order_relaxed);
      }
    });
    if (!affine.load()) return applyInOrder(true);
    parallelFor(d.B, inOrderGrain(d), p.slots, [&](int64_t b, int64_t e, int) {
      const AffineTile at{x + b * MC, y + b * MC, e - b, MC, MC, P, Q, stream};
      k->affineApply(at);
    });
  }

  // The apply pass in memory order once every coefficient is made: a tile row is a whole batch
  // row of M*C floats (segments of C), so x and y stream like a copy. Row coefficients per row
  // (coefStride M), or per m alone (perM: coefStride 0).
  void applyInOrder(bool perM) const {
    const int64_t MC = d.M * d.C;
    parallelFor(d.B, inOrderGrain(d), p.slots, [&](int64_t b, int64_t e, int) {
      FwdApplyTile at;
      at.x = x + b * MC;
      at.xStride = MC;
      at.y = y + b * MC;
      at.rows = e - b;
      at.rowStride = MC;
      at.n = MC;
      at.gc = gc;
      at.beta = beta;
      at.mbh = mbh;
      at.mbl = mbl;
      at.A = A;
      at.F = perM ? F : F + b * d.M;
      at.mfh = perM ? mfh : mfh + b * d.M;
      at.mfl = perM ? mfl : mfl + b * d.M;
      at.coefStride = perM ? 0 : d.M;
      if (!perM && Qc) at.Qc = Qc, at.Fm = Fm + b * d.M;
      at.stream = stream;
      at.seg = d.M > 1 ? d.C : 0;
      k->fwdApply(at);
    });
  }

  void run() {
    const Dims& D = d;
    const int64_t MC = D.M * D.C, BM = D.B * D.M;
    const bool colParts = needCol && p.nBb > 1;
    const bool tileRows = p.fused && training;
    Arena& ar = tlsArena;
    const int64_t gcwLen = D.C * p.mk;  // gcw repeats per segment of a wide tile (finColsTraining)
    ar.reset(Arena::bytesFor({sizeof(float) * size_t(D.C), sizeof(float) * size_t(gcwLen), 3 * sizeof(float) * size_t(MC), 3 * sizeof(float) * size_t(BM + kCoefSlack),
                              needRow ? sizeof(double) * size_t(BM * p.nCb * 2) : 0,
                              colParts ? sizeof(double) * size_t(p.nBb * MC * 2) : 0,
                              p.fused ? sizeof(float) * size_t(p.slots) * size_t(D.B * D.C * p.mk) : 0,
                              tileRows ? size_t(p.slots) * (size_t(D.B * p.mk) * (2 * sizeof(double) + 6 * sizeof(float)) + 3 * sizeof(float) * kCoefSlack + 7 * 64) : 0,
                              tileRows ? sizeof(TileRows) * size_t(p.slots) : 0,
                              !needCol && !needRow ? 2 * sizeof(float) * size_t(MC) : 0,
                              !p.fused ? sizeof(float) * size_t(MC + BM + kCoefSlack) : 0}) +
             15 * 64);
    gc = ar.take<float>(D.C);
    gcw = ar.take<float>(gcwLen);
    mbh = ar.take<float>(MC);
    mbl = ar.take<float>(MC);
    A = ar.take<float>(MC);
    F = ar.take<float>(BM + kCoefSlack);
    mfh = ar.take<float>(BM + kCoefSlack);
    mfl = ar.take<float>(BM + kCoefSlack);
    rowPart = needRow ? ar.take<double>(BM * p.nCb * 2) : nullptr;
    colPart = colParts ? ar.take<double>(p.nBb * MC * 2) : nullptr;
    packs = p.fused ? ar.take<float>(int64_t(p.slots) * D.B * D.C * p.mk) : nullptr;
    Qc = p.fused ? nullptr : ar.take<float>(MC);
    Fm = p.fused ? nullptr : ar.take<float>(BM + kCoefSlack);
    // (the slack past the per-row coefficient arrays is zeroed: read, never used)
    for (float* a : {F, mfh, mfl}) std::fill(a + BM, a + BM + kCoefSlack, 0.f);
    TileRows* trs = tileRows ? ar.take<TileRows>(p.slots) : nullptr;
    if (tileRows)
      for (int sl = 0; sl < p.slots; ++sl) {
        const int64_t nr = D.B * p.mk;
        trs[sl] = TileRows{ar.take<double>(2 * nr),       ar.take<float>(nr),        ar.take<float>(nr + kCoefSlack),
                           ar.take<float>(nr + kCoefSlack), ar.take<float>(nr + kCoefSlack), ar.take<float>(nr),
                           ar.take<float>(nr)};
        for (float* a : {trs[sl].F, trs[sl].mh, trs[sl].ml}) std::fill(a + nr, a + nr + kCoefSlack, 0.f);
      }
    for (int64_t c = 0; c < D.C; ++c) {
      gc[c] = static_cast<float>(static_cast<double>(gamma[c]) * invSqrtC);
      gcw[c] = static_cast<float>(static_cast<double>(gamma[c]) * invSqrtC * wb);
    }
    // (repeated by doubling copies: the element loop was a store-to-load chain C floats long)
    for (int64_t len = D.C; len < gcwLen; len *= 2) std::memcpy(gcw + len, gcw, sizeof(float) * std::min(len, gcwLen - len));
    invB = 1.0 / static_cast<double>(D.B);
    invC = 1.0 / static_cast<double>(D.C);
    wff = static_cast<float>(wf);

    if (!needCol && !needRow && canApplyInOrder(d, k->width)) return runPopulation();
    if (p.fused) {
      parallelFor(p.tiles, p.tileGrain, p.slots, [&](int64_t b, int64_t e, int slot) {
        float* pack = packs + int64_t(slot) * D.B * D.C * p.mk;
        // With every statistic from the population no statistics pass runs, so
        // nothing is packed: the apply pass then reads x itself.
        float* packed = (needCol || needRow) ? pack : nullptr;
        const TileRows* tr = tileRows ? &trs[slot] : nullptr;
        for (int64_t t = b; t < e; ++t) statsTile(t, packed, tr), applyTile(t, packed, tr);
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
    if (!foldCoefs()) Qc = Fm = nullptr;
    if (canApplyInOrder(d, k->width)) return applyInOrder(false);
    parallelFor(p.tiles, p.tileGrain, p.slots, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) applyTile(t, nullptr);
    });
  }
};

}  // namespace

// Forward (out: the four statistics to write) and inference (pop and use) share one job.
void runNorm(const Dims& d, const float* x, const float* gamma, const float* beta, float* y, double eps, double batchSize,
             const StatsOut& out, const StatsIn* pop, const InferUse& use) {
  NormJob j{};
  j.d = d;
  j.x = x, j.gamma = gamma, j.beta = beta, j.y = y;
  j.eps = eps;
  j.out = out;
  j.pop = pop;
  j.use = use;
  j.wf = weightFeature(batchSize);
  j.wb = weightBatch(batchSize);
  j.invSqrtC = 1.0 / std::sqrt(static_cast<double>(j.d.C));
  j.needCol = !(j.use.batchMean && j.use.batchVar);
  j.needRow = !(j.use.featureMean && j.use.featureVar);
  j.training = j.out.batchMean != nullptr && !j.use.batchMean && !j.use.batchVar;
  j.p = makePlan(j.d, 4);
  if (!j.needCol && !j.needRow && j.d.numel() < kSerialElemsOnePass) j.p.slots = 1;
  j.stream = useStreaming(j.d, j.p, j.y, false);
  widenTiles(j.p, 4);
  j.k = &activeKernels();
  TrimOnExit trim;
  j.run();
}

}  // namespace cpu

void cpuForward(const ForwardArgs& a) {
  checkArgs(a);
  cpu::runNorm(a.d, a.x, a.gamma, a.beta, a.y, a.eps, a.batchSize, a.stats, nullptr, InferUse{});
}

void cpuInfer(const InferArgs& a) {
  checkArgs(a);
  cpu::runNorm(a.d, a.x, a.gamma, a.beta, a.y, a.eps, a.batchSize, StatsOut{}, &a.population, a.use);
}

}  // namespace bln
