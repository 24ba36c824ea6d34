// CPU path, forward and inference: a NormJob (norm_job.h) run over its tiles: the statistics of
// each tile (fused with the normalisation where the slab fits in L2), their finalisation
// (norm_coefs.cpp) and the apply pass. The hot loops are kernels_impl.h's; plan.h cuts the tiles.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "norm_job.h"
#include "threadpool.h"

namespace bln {
namespace cpu {

void NormJob::statsTile(int64_t t, float* pack, const TileRows* tr) const {
  const auto [m, c0, seg, km, n, b0, rows, cb, bb, mc, r0] = p.tile(t);
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
    ft.ahead = p.ahead;
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
FwdApplyTile NormJob::applyAt(int64_t r0, int64_t c0, int64_t mc, int64_t rows, int64_t n) const {
  FwdApplyTile at;
  at.x = x + r0 * d.C + c0;
  at.xStride = d.M * d.C;
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
  return at;
}
void NormJob::applyTile(int64_t t, const float* packed, const TileRows* tr) const {
  const auto [m, c0, seg, km, n, b0, rows, cb, bb, mc, r0] = p.tile(t);
  FwdApplyTile at = applyAt(r0, c0, mc, rows, n);
  if (packed) at.x = packed, at.xStride = n;
  if (tr) at.F = tr->F, at.mfh = tr->mh, at.mfl = tr->ml, at.coefStride = km;
  if (Qc && !packed) at.Qc = Qc + mc, at.Fm = Fm + r0;
  at.seg = km > 1 ? seg : 0;
  k->fwdApply(at);
}
// Up to this many rows ([B, M] feature statistics of 128 KiB each), unstageFeatureStats' copy
// costs less than the lines it saves from moving ([64,32,32,64] beyond it: neutral at 2 threads).
constexpr int64_t kStageFeatureRows = int64_t(1) << 15;

// The feature statistics of a call whose tiles ran on several threads, staged tile by tile
// (TileRows::staged: tile t's rows x km values from D.B*m on), written out in their [B, M] order
// by the caller alone. Each of the B rows of out.featureMean/Var holds pieces of several tiles:
// written by the tiles' threads, the lines where two threads' pieces met moved between the cores
// on every call (forward [25,14,14,6] at two threads: 18.9 -> 13.0 us without those writes).
void NormJob::unstageFeatureStats(const float* stage) const {
  const int64_t BM = d.B * d.M;
  for (int64_t t = 0; t < p.tiles; ++t) {
    const int64_t m = p.tile(t).m, km = p.tile(t).km;
    const float* __restrict sm = stage + d.B * m;
    const float* __restrict sv = sm + BM;
    for (int64_t b = 0; b < d.B; ++b) {
      float* __restrict om = out.featureMean + b * d.M + m;
      float* __restrict ov = out.featureVar + b * d.M + m;
      for (int64_t s = 0; s < km; ++s) om[s] = sm[b * km + s], ov[s] = sv[b * km + s];
    }
  }
}

void NormJob::run() {
  const Dims& D = d;
  const int64_t MC = D.M * D.C, BM = D.B * D.M;
  const bool colParts = needCol && p.nBb > 1;
  const bool tileRows = p.fused && training;
  const bool staged = tileRows && p.slots > 1 && BM <= kStageFeatureRows;
  Arena& ar = tlsArena;
  const int64_t gcwLen = D.C * p.mk;  // gcw repeats per segment of a wide tile (finColsTraining)
  ar.reset(Arena::bytesFor({sizeof(float) * size_t(D.C), sizeof(float) * size_t(gcwLen), 3 * sizeof(float) * size_t(MC), 3 * sizeof(float) * size_t(BM + kCoefSlack),
                            needRow ? sizeof(double) * size_t(BM * p.nCb * 2) : 0,
                            colParts ? sizeof(double) * size_t(p.nBb * MC * 2) : 0,
                            p.fused && p.mk == 1 ? sizeof(float) * size_t(p.slots) * size_t(D.B * D.C) : 0,
                            tileRows ? size_t(p.slots) * (size_t(D.B * p.mk) * (2 * sizeof(double) + 6 * sizeof(float)) + 3 * sizeof(float) * kCoefSlack + 7 * 64) : 0,
                            tileRows ? sizeof(TileRows) * size_t(p.slots) : 0,
                            staged ? 2 * sizeof(float) * size_t(BM) : 0,
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
  packs = p.fused && p.mk == 1 ? ar.take<float>(int64_t(p.slots) * D.B * D.C) : nullptr;
  Qc = p.fused ? nullptr : ar.take<float>(MC);
  Fm = p.fused ? nullptr : ar.take<float>(BM + kCoefSlack);
  // (the slack past the per-row coefficient arrays is zeroed: read, never used)
  for (float* a : {F, mfh, mfl}) std::fill(a + BM, a + BM + kCoefSlack, 0.f);
  TileRows* trs = tileRows ? ar.take<TileRows>(p.slots) : nullptr;
  float* stage = staged ? ar.take<float>(2 * BM) : nullptr;
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
      // The statistics pass packs a tile of one m (rows of C floats, M*C apart) for the apply
      // pass; a wide tile's rows are k*C contiguous floats, which the apply reads from x itself
      // at no loss, and without a second copy of the tile in L2 (forward [64,32,32,64] -16%,
      // [256,64,16] -28%, [25,14,14,6] -8% at one thread). With every statistic from the
      // population no statistics pass runs, so nothing is packed either.
      float* packed = (needCol || needRow) && packs ? packs + int64_t(slot) * D.B * D.C : nullptr;
      const TileRows* tr = tileRows ? &trs[slot] : nullptr;
      for (int64_t t = b; t < e; ++t) {
        TileRows st;
        if (stage) {
          const int64_t m = p.tile(t).m;
          st = *tr, st.mean = stage + D.B * m, st.var = stage + BM + D.B * m, st.staged = true;
        }
        statsTile(t, packed, stage ? &st : tr), applyTile(t, packed, stage ? &st : tr);
      }
    });
    if (stage) unstageFeatureStats(stage);
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
  j.k = &activeKernels();
  widenTiles(j.p, 4, j.k->width);
  j.stream = useStreaming(j.d, j.p, j.y, j.needCol || j.needRow ? StreamOut::Forward : StreamOut::Population);
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
