// CPU path, forward and inference: the coefficients of a NormJob (norm_job.h) from its statistics
// (numerics.h's finalisation, per column and per row, vectorised in the kernel table where it can
// be), the folded forms, and the population path with its apply in memory order.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "norm_job.h"
#include "threadpool.h"

namespace bln {
namespace cpu {

void NormJob::finCol(int64_t m, int64_t c, double S1, double S2) const {
  const int64_t mc = m * d.C + c;
  double mean = 0, var = 0;
  if (needCol) statsFromSums(x + mc, d.B, d.M * d.C, invB, S1, S2, &mean, &var);
  if (use.batchMean) mean = pop->batchMean[mc];
  if (use.batchVar) var = pop->batchVar[mc];
  if (out.batchMean) out.batchMean[mc] = static_cast<float>(mean), out.batchVar[mc] = static_cast<float>(var);
  splitHiLo(mean, &mbh[mc], &mbl[mc]);
  A[mc] = gcw[c] * invStd(var, eps);
}

void NormJob::finColsTraining(int64_t m, int64_t c0, int64_t n, const double* S1, const double* S2) const {
  const int64_t mc0 = m * d.C + c0;
  const FinRun f{n, x + mc0, 1, S1, S2, 1, invB, eps, gcw + c0, 1, out.batchMean + mc0, out.batchVar + mc0, mbh + mc0, mbl + mc0, A + mc0};
  if (!k->finRun(f))
    for (int64_t j = 0; j < n; ++j) finCol(m, c0 + j, S1[j], S2[j]);
}

void NormJob::finRowsTraining(int64_t r0, int64_t n) const {
  const double* S = rowPart + r0 * 2;
  const FinRun f{n, x + r0 * d.C, d.C, S, S + 1, 2, invC, eps, &wff, 0, out.featureMean + r0, out.featureVar + r0, mfh + r0, mfl + r0, F + r0};
  if (!k->finRun(f))
    for (int64_t j = 0; j < n; ++j) finRow(r0 + j, S[2 * j], S[2 * j + 1]);
}

void NormJob::finRowTo(int64_t r, double S1, double S2, float* om, float* ov, float* hi, float* lo, float* f) const {
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

void NormJob::finRow(int64_t r, double S1, double S2) const {
  const bool o = out.featureMean != nullptr;
  finRowTo(r, S1, S2, o ? out.featureMean + r : nullptr, o ? out.featureVar + r : nullptr, mfh + r, mfl + r, F + r);
}

void NormJob::finTileRows(const TileRows& tr, int64_t r0, int64_t rows, int64_t km) const {
  const int64_t n = rows * km;
  const FinRun f{n, tr.shift, 1, tr.sums, tr.sums + 1, 2, invC, eps, &wff, 0, tr.mean, tr.var, tr.mh, tr.ml, tr.F};
  if (!k->finRun(f))
    for (int64_t i = 0, j = 0; i < rows; ++i)
      for (int64_t s = 0; s < km; ++s, ++j)
        finRowTo(r0 + i * d.M + s, tr.sums[2 * j], tr.sums[2 * j + 1], tr.mean + j, tr.var + j, tr.mh + j, tr.ml + j, tr.F + j);
  if (tr.staged) return;
  for (int64_t i = 0; i < rows; ++i) {
    std::memcpy(out.featureMean + r0 + i * d.M, tr.mean + i * km, sizeof(float) * km);
    std::memcpy(out.featureVar + r0 + i * d.M, tr.var + i * km, sizeof(float) * km);
  }
}

bool NormJob::foldCoefs() const {
  int bad = 0;
  for (int64_t m = 0; m < d.M; ++m) {
    const float* __restrict a = A + m * d.C;
    const float* __restrict hi = mbh + m * d.C;
    const float* __restrict lo = mbl + m * d.C;
    float* __restrict q = Qc + m * d.C;
    for (int64_t c = 0; c < d.C; ++c) {
      const double mb = static_cast<double>(hi[c]) + static_cast<double>(lo[c]), am = static_cast<double>(a[c]) * mb;
      bad |= int(!foldable(am, static_cast<double>(gcw[c])));
      q[c] = static_cast<float>(static_cast<double>(beta[c]) - am);
    }
  }
  const int64_t BM = d.B * d.M;
  for (int64_t r = 0; r < BM; ++r) {
    const double fm = static_cast<double>(F[r]) * (static_cast<double>(mfh[r]) + static_cast<double>(mfl[r]));
    bad |= int(!foldable(fm, static_cast<double>(wff)));
    Fm[r] = static_cast<float>(fm);
  }
  return bad == 0;
}

void NormJob::runPopulation() {
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
      const FinAffine fa{km, d.C, gc, beta, gcw, A + mc, mbh + mc, mbl + mc, F + m0, mfh + m0, mfl + m0, wff, P + mc, Q + mc};
      if (!k->finAffine(fa)) affine.store(false, std::memory_order_relaxed);
    }
  });
  if (!affine.load()) return applyInOrder(true);
  parallelFor(d.B, inOrderGrain(d), p.slots, [&](int64_t b, int64_t e, int) {
    const AffineTile at{x + b * MC, y + b * MC, e - b, MC, MC, P, Q, stream};
    k->affineApply(at);
  });
}

void NormJob::applyInOrder(bool perM) const {
  const int64_t MC = d.M * d.C;
  parallelFor(d.B, inOrderGrain(d), p.slots, [&](int64_t b, int64_t e, int) {
    FwdApplyTile at = applyAt(b * d.M, 0, 0, e - b, MC);
    if (perM) at.F = F, at.mfh = mfh, at.mfl = mfl, at.coefStride = 0;
    if (!perM && Qc) at.Qc = Qc, at.Fm = Fm + b * d.M;
    at.seg = d.M > 1 ? d.C : 0;
    k->fwdApply(at);
  });
}

}  // namespace cpu
}  // namespace bln
