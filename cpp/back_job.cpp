// CPU path, backward: one reduction pass over dy and x (fused with the apply pass where the
// slab fits in L2), the per-column and per-row coefficients of numerics.h's bwdColCoefs /
// bwdRowCoefs, and dgamma/dbeta summed per thread then over threads.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "bln.h"
#include "kernels.h"
#include "plan.h"
#include "threadpool.h"

namespace bln {
namespace cpu {
namespace {

// ------------------------------------------------------------------ backward

struct BackJob {
  Dims d;
  const float *dy, *x, *gamma;
  StatsIn st;
  double eps, wf, wb, invSqrtC;
  float *dx, *dgamma, *dbeta;
  Plan p;
  const KernelTable* k;
  float *gc, *U, *V, *Wc, *P, *Q, *T, *rf, *mu;
  double *rowPart, *colPart, *slotAcc;  // slotAcc: [slot][C]{dgamma, dbeta}
  float* packs;  // fused tiles of one m: per participant, packed x then packed dy
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

  // Columns c0.. c0+n of m through the vectorised finalisation; a run with a variance outside its
  // fast path goes through finCol one by one (the kernel then added nothing).
  void finCols(int64_t m, int64_t c0, int64_t n, const double* Sdy, const double* Sdyxb, const double* Sdyxf, int slot) const {
    const int64_t mc = m * d.C + c0;
    double* acc = slotAcc + static_cast<int64_t>(slot) * d.C * 2;
    const FinBwdCols f{n, st.batchVar + mc, Sdy, Sdyxb, Sdyxf, gamma + c0, d.B, wf, wb, invSqrtC, eps,
                       U + mc, V + mc, Wc + mc, acc + c0, acc + d.C + c0};
    if (!k->finBwdCols(f))
      for (int64_t j = 0; j < n; ++j) finCol(m, c0 + j, Sdy[j], Sdyxb[j], Sdyxf[j], slot);
  }

  // A fused tile's per-row values, item i*km + s for tile row i and segment s (each participant
  // has its own): the feature statistics' coefficients (mu, rf) made per tile from featureMean/Var,
  // the row sums, and P, Q, T. In [B, M] arrays shared by the threads, as the two-pass path keeps
  // them, every tile row's pieces met another thread's within cache lines (backward [25,14,14,6] at
  // two threads: 34.2 -> 29.3 us with them in private arrays).
  struct TileRows {
    double* sums;
    float *mu, *rf, *P, *Q, *T, *fm, *fv;
  };
  // The tile's feature statistics from the caller's arrays (read only: lines shared for reading do
  // not move) into tr, and their coefficients: rf = invStd(featureVar) through the kernels'
  // vectorised finalisation of given statistics at unit scale (items outside its float path
  // redone), mu = featureMean.
  void tileRowCoefs(const TileRows& tr, int64_t r0, int64_t rows, int64_t km) const {
    const int64_t n = rows * km;
    const float *fm = st.featureMean + r0, *fv = st.featureVar + r0;  // (a tile of every m: rows are contiguous)
    if (km < d.M) {
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t s = 0; s < km; ++s) tr.fm[i * km + s] = fm[i * d.M + s], tr.fv[i * km + s] = fv[i * d.M + s];
      fm = tr.fm, fv = tr.fv;
    }
    const float one = 1.f;
    // (P takes the discarded lo parts: finBwdRows writes it after the statistics)
    if (!k->finGiven(FinGiven{n, fm, fv, eps, &one, 0, tr.mu, tr.P, tr.rf}))
      for (int64_t j = 0; j < n; ++j) tr.rf[j] = invStd(fv[j], eps);
  }

  // A tile: `km` consecutive m (segments of n = C columns) where widenTiles made wide tiles. With
  // tr (fused tiles), its per-row values are the tile's own (TileRows), else in the [B, M] arrays.
  void statsTile(int64_t t, int slot, float* packX, float* packDy, const TileRows* tr = nullptr) const {
    const auto [m, c0, seg, km, n, b0, rows, cb, bb, mc, r0] = p.tile(t);
    double s[3][kMaxTileCols];
    if (tr) tileRowCoefs(*tr, r0, rows, km);
    BwdStatsTile bt;
    bt.x = x + r0 * d.C + c0;
    bt.dy = dy + r0 * d.C + c0;
    bt.rows = rows;
    bt.rowStride = d.M * d.C;
    bt.n = n;
    bt.gc = gc + c0;
    bt.mub = st.batchMean + m * d.C + c0;
    bt.muf = mu + r0;
    bt.rf = rf + r0;
    bt.coefStride = d.M;
    bt.colSdy = s[0];
    bt.colSdyxb = s[1];
    bt.colSdyxf = s[2];
    bt.rowOut = rowPart + (r0 * p.nCb + cb) * 2;
    bt.rowOutStride = d.M * p.nCb * 2;
    bt.packX = packX;
    bt.packDy = packDy;
    bt.seg = km > 1 ? seg : 0;
    bt.ahead = p.ahead;
    if (tr) bt.muf = tr->mu, bt.rf = tr->rf, bt.coefStride = km, bt.rowOut = tr->sums, bt.rowOutStride = km * 2;
    k->bwdStats(bt);
    if (p.nBb == 1) {
      for (int64_t q = 0; q < km; ++q) finCols(m + q, c0, seg, s[0] + q * seg, s[1] + q * seg, s[2] + q * seg, slot);
    } else {
      const int64_t MC = d.M * d.C;
      double* p1 = colPart + bb * MC * 3 + m * d.C + c0;
      for (int q = 0; q < 3; ++q) std::memcpy(p1 + q * MC, s[q], sizeof(double) * n);
    }
    if (tr) {
      k->finBwdRows(FinBwdRows{rows * km, tr->rf, tr->sums, d.C, wf, tr->P, tr->Q, tr->T});
    } else if (p.nCb == 1) {
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t r = (b0 + i) * d.M + m;  // the tile row's km rows are r .. r + km - 1
        k->finBwdRows(FinBwdRows{km, rf + r, rowPart + r * 2, d.C, wf, P + r, Q + r, T + r});
      }
    }
  }

  // The apply baton of `rows` rows from feature row r0 (= b*M + m), n columns from c0 (batch
  // statistics from column mc), as read from x and dy; applyTile and applyInOrder adjust it.
  BwdApplyTile applyAt(int64_t r0, int64_t c0, int64_t mc, int64_t rows, int64_t n) const {
    BwdApplyTile at;
    at.x = x + r0 * d.C + c0;
    at.dy = dy + r0 * d.C + c0;
    at.inStride = d.M * d.C;
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
    at.muf = mu + r0;
    at.coefStride = d.M;
    at.stream = stream;
    return at;
  }

  void applyTile(int64_t t, const float* packX, const float* packDy, const TileRows* tr = nullptr) const {
    const auto [m, c0, seg, km, n, b0, rows, cb, bb, mc, r0] = p.tile(t);
    BwdApplyTile at = applyAt(r0, c0, mc, rows, n);
    if (packX) at.x = packX, at.dy = packDy, at.inStride = n;
    if (tr) at.P = tr->P, at.Q = tr->Q, at.T = tr->T, at.muf = tr->mu, at.coefStride = km;
    at.seg = km > 1 ? seg : 0;
    k->bwdApply(at);
  }

  // The two-pass path's apply in memory order (plan.h's canApplyInOrder).
  void applyInOrder() const {
    const int64_t MC = d.M * d.C;
    parallelFor(d.B, inOrderGrain(d), p.slots, [&](int64_t b, int64_t e, int) {
      BwdApplyTile at = applyAt(b * d.M, 0, 0, e - b, MC);
      at.seg = d.M > 1 ? d.C : 0;
      k->bwdApply(at);
    });
  }

  void run() {
    const Dims& D = d;
    const int64_t MC = D.M * D.C, BM = D.B * D.M;
    const int slots = p.slots;
    Arena& ar = tlsArena;
    ar.reset(Arena::bytesFor({sizeof(float) * size_t(D.C), 3 * sizeof(float) * size_t(MC), 5 * sizeof(float) * size_t(BM + kCoefSlack),
                              sizeof(double) * size_t(BM * p.nCb * 2),
                              p.nBb > 1 ? sizeof(double) * size_t(p.nBb * MC * 3) : 0,
                              sizeof(double) * size_t(slots) * size_t(D.C) * 2,
                              p.fused && p.mk == 1 ? 2 * sizeof(float) * size_t(slots) * size_t(D.B * D.C) : 0,
                              p.fused ? size_t(slots) * (size_t(D.B * p.mk) * (2 * sizeof(double) + 8 * sizeof(float)) + 6 * sizeof(float) * kCoefSlack + 8 * 64) : 0,
                              p.fused ? sizeof(TileRows) * size_t(slots) : 0}) +
             12 * 64);
    gc = ar.take<float>(D.C);
    U = ar.take<float>(MC);
    V = ar.take<float>(MC);
    Wc = ar.take<float>(MC);
    // Per-row arrays with kCoefSlack floats of slack (the narrow-segment kernels read a vector
    // from a segment's value on); mu is the caller's featureMean copied for that reason.
    P = ar.take<float>(BM + kCoefSlack);
    Q = ar.take<float>(BM + kCoefSlack);
    T = ar.take<float>(BM + kCoefSlack);
    rf = ar.take<float>(BM + kCoefSlack);
    mu = ar.take<float>(BM + kCoefSlack);
    rowPart = ar.take<double>(BM * p.nCb * 2);
    colPart = p.nBb > 1 ? ar.take<double>(p.nBb * MC * 3) : nullptr;
    slotAcc = ar.take<double>(int64_t(slots) * D.C * 2);
    packs = p.fused && p.mk == 1 ? ar.take<float>(2 * int64_t(slots) * D.B * D.C) : nullptr;
    std::fill(slotAcc, slotAcc + int64_t(slots) * D.C * 2, 0.0);
    for (int64_t c = 0; c < D.C; ++c) gc[c] = static_cast<float>(static_cast<double>(gamma[c]) * invSqrtC);
    std::fill(P + BM, P + BM + kCoefSlack, 0.f), std::fill(Q + BM, Q + BM + kCoefSlack, 0.f);
    std::fill(T + BM, T + BM + kCoefSlack, 0.f), std::fill(rf + BM, rf + BM + kCoefSlack, 0.f);
    std::fill(mu + BM, mu + BM + kCoefSlack, 0.f);
    TileRows* trs = p.fused ? ar.take<TileRows>(slots) : nullptr;
    if (p.fused)
      for (int sl = 0; sl < slots; ++sl) {
        const int64_t nr = D.B * p.mk, ns = nr + kCoefSlack;
        trs[sl] = TileRows{ar.take<double>(2 * nr), ar.take<float>(ns), ar.take<float>(ns), ar.take<float>(ns),
                           ar.take<float>(ns),      ar.take<float>(ns), ar.take<float>(nr), ar.take<float>(nr)};
        for (float* a : {trs[sl].mu, trs[sl].rf, trs[sl].P, trs[sl].Q, trs[sl].T}) std::fill(a + nr, a + ns, 0.f);
      }
    if (!p.fused) parallelFor(BM, 1 << 14, slots, [&](int64_t b, int64_t e, int) {
      // rf = invStd(featureVar), mu = featureMean: the kernels' finalisation of given statistics at
      // unit scale (this file is built for plain x86-64, where the loop ran scalar: 19% of backward
      // [25,14,14,6]); its lo part (0 for float means) is dropped; rows outside invStd's float path
      // are redone.
      const float one = 1.f;
      float lo[1024];
      for (int64_t r0 = b; r0 < e; r0 += 1024) {
        const int64_t n = std::min<int64_t>(1024, e - r0);
        if (!k->finGiven(FinGiven{n, st.featureMean + r0, st.featureVar + r0, eps, &one, 0, mu + r0, lo, rf + r0}))
          for (int64_t r = r0; r < r0 + n; ++r) rf[r] = invStd(st.featureVar[r], eps);
      }
    });

    if (p.fused) {
      parallelFor(p.tiles, p.tileGrain, slots, [&](int64_t b, int64_t e, int slot) {
        // (packed only for tiles of one m: as the forward pass, norm_job.cpp)
        float* px = packs ? packs + 2 * int64_t(slot) * D.B * D.C : nullptr;
        float* pd = packs ? px + D.B * D.C : nullptr;
        for (int64_t t = b; t < e; ++t) statsTile(t, slot, px, pd, &trs[slot]), applyTile(t, px, pd, &trs[slot]);
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
      if (canApplyInOrder(D, k->width)) {
        applyInOrder();
      } else {
        parallelFor(p.tiles, p.tileGrain, slots, [&](int64_t b, int64_t e, int) {
          for (int64_t t = b; t < e; ++t) applyTile(t, nullptr, nullptr);
        });
      }
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
}  // namespace cpu

void cpuBackward(const BackwardArgs& a) {
  checkArgs(a);
  cpu::BackJob j{};
  j.d = a.d;
  j.dy = a.dy, j.x = a.x, j.gamma = a.gamma;
  j.st = a.stats;
  j.eps = a.eps;
  j.wf = weightFeature(a.batchSize);
  j.wb = weightBatch(a.batchSize);
  j.invSqrtC = 1.0 / std::sqrt(static_cast<double>(a.d.C));
  j.dx = a.dx, j.dgamma = a.dgamma, j.dbeta = a.dbeta;
  j.p = cpu::makePlan(a.d, 8);
  j.k = &activeKernels();
  cpu::widenTiles(j.p, 8, j.k->width);
  j.stream = cpu::useStreaming(a.d, j.p, a.dx, cpu::StreamOut::Backward);
  cpu::TrimOnExit trim;
  j.run();
}

}  // namespace bln
