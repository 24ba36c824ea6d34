// The float64 reference of BLN-SPEC.md for the C++ harnesses (test machinery, not shipped):
// cpp/test/core_test.cpp, cpp/fuzz/fuzz_core.cpp and cuda/harness/bln_bench.cu. Written from
// the spec, literally, in double; it shares no code with the kernels it checks.
//
// Each output comes with a magnitude: the same sum with every term taken in absolute value.
// Where terms cancel (B = 2 or C = 2: dx is (g - mean g)(1 - xb^2)/sb) float32 cannot do
// better than ~1e-7 of that magnitude, so relErrMag measures against it; relErr is the spec's
// ||got - ref|| / ||ref||.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "bln.h"

namespace blnref {

struct Ref {
  std::vector<double> mb, vb, mf, vf, y, dx, dg, db;
  std::vector<double> mbMag, mfMag, yMag, dxMag, dgMag, dbMag;
};

// The four mini-batch statistics of x (biased variances), with the means' magnitudes.
inline void refStats(const float* x, int64_t B, int64_t M, int64_t C, Ref& r) {
  const int64_t MC = M * C, BM = B * M;
  r.mb.assign(MC, 0), r.vb.assign(MC, 0), r.mf.assign(BM, 0), r.vf.assign(BM, 0);
  r.mbMag.assign(MC, 0), r.mfMag.assign(BM, 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t mc = 0; mc < MC; ++mc) r.mb[mc] += x[b * MC + mc], r.mbMag[mc] += std::fabs(x[b * MC + mc]);
  for (auto& v : r.mb) v /= static_cast<double>(B);
  for (auto& v : r.mbMag) v /= static_cast<double>(B);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t mc = 0; mc < MC; ++mc) {
      const double d = x[b * MC + mc] - r.mb[mc];
      r.vb[mc] += d * d;
    }
  for (auto& v : r.vb) v /= static_cast<double>(B);
  for (int64_t row = 0; row < BM; ++row) {
    double s = 0, q = 0, a = 0;
    for (int64_t c = 0; c < C; ++c) s += x[row * C + c], a += std::fabs(x[row * C + c]);
    s /= static_cast<double>(C);
    r.mfMag[row] = a / static_cast<double>(C);
    for (int64_t c = 0; c < C; ++c) q += (x[row * C + c] - s) * (x[row * C + c] - s);
    r.mf[row] = s, r.vf[row] = q / static_cast<double>(C);
  }
}

// y of the spec from the statistics in r, or the population where `use` says so (population
// feature statistics have length M). Call refStats first.
inline void refNorm(const float* x, const float* g, const float* be, int64_t B, int64_t M, int64_t C, double eps, double N,
                    const bln::InferUse& use, const bln::StatsIn& pop, Ref& r) {
  const int64_t MC = M * C;
  const double wf = bln::weightFeature(N), wb = bln::weightBatch(N), sc = std::sqrt(static_cast<double>(C));
  r.y.assign(B * MC, 0), r.yMag.assign(B * MC, 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t m = 0; m < M; ++m) {
      const int64_t row = b * M + m;
      const double muf = use.featureMean ? pop.featureMean[m] : r.mf[row];
      const double vf = use.featureVar ? pop.featureVar[m] : r.vf[row];
      for (int64_t c = 0; c < C; ++c) {
        const int64_t mc = m * C + c;
        const double mub = use.batchMean ? pop.batchMean[mc] : r.mb[mc];
        const double vb = use.batchVar ? pop.batchVar[mc] : r.vb[mc];
        const double xv = x[row * C + c];
        const double tf = wf * (xv - muf) / std::sqrt(vf + eps), tb = wb * (xv - mub) / std::sqrt(vb + eps);
        r.y[row * C + c] = g[c] * (tf + tb) / sc + be[c];
        r.yMag[row * C + c] = std::fabs(g[c]) * (std::fabs(tf) + std::fabs(tb)) / sc + std::fabs(be[c]);
      }
    }
}

// Statistics, then y (training forward when `use` is all false).
inline void refForward(const float* x, const float* g, const float* be, int64_t B, int64_t M, int64_t C, double eps, double N,
                       const bln::InferUse& use, const bln::StatsIn& pop, Ref& r) {
  refStats(x, B, M, C, r);
  refNorm(x, g, be, B, M, C, eps, N, use, pop, r);
}

// The spec's backward, literally, at the (float) statistics the code under test was given.
inline void refBackward(const float* dy, const float* x, const float* g, const bln::StatsIn& st, int64_t B, int64_t M, int64_t C,
                        double eps, double N, Ref& r) {
  const int64_t MC = M * C, BM = B * M, n = B * MC;
  const double wf = bln::weightFeature(N), wb = bln::weightBatch(N), sc = std::sqrt(static_cast<double>(C));
  std::vector<double> xf(n), xb(n), gg(n);
  r.dx.assign(n, 0), r.dg.assign(C, 0), r.db.assign(C, 0);
  r.dxMag.assign(n, 0), r.dgMag.assign(C, 0), r.dbMag.assign(C, 0);
  for (int64_t row = 0; row < BM; ++row)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = row * C + c, mc = (row % M) * C + c;
      xf[i] = (x[i] - static_cast<double>(st.featureMean[row])) / std::sqrt(static_cast<double>(st.featureVar[row]) + eps);
      xb[i] = (x[i] - static_cast<double>(st.batchMean[mc])) / std::sqrt(static_cast<double>(st.batchVar[mc]) + eps);
      gg[i] = dy[i] * static_cast<double>(g[c]) / sc;
      r.db[c] += dy[i], r.dbMag[c] += std::fabs(dy[i]);
      r.dg[c] += dy[i] * (wf * xf[i] + wb * xb[i]) / sc;
      r.dgMag[c] += std::fabs(dy[i]) * (std::fabs(wf * xf[i]) + std::fabs(wb * xb[i])) / sc;
    }
  for (int64_t row = 0; row < BM; ++row) {
    double s1 = 0, s2 = 0, a1 = 0, a2 = 0;
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = row * C + c;
      s1 += gg[i], s2 += gg[i] * xf[i], a1 += std::fabs(gg[i]), a2 += std::fabs(gg[i] * xf[i]);
    }
    const double sf = std::sqrt(static_cast<double>(st.featureVar[row]) + eps);
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = row * C + c;
      r.dx[i] += wf * (gg[i] - s1 / C - xf[i] * s2 / C) / sf;
      r.dxMag[i] += std::fabs(wf) * (std::fabs(gg[i]) + a1 / C + std::fabs(xf[i]) * a2 / C) / sf;
    }
  }
  for (int64_t mc = 0; mc < MC; ++mc) {
    double s1 = 0, s2 = 0, a1 = 0, a2 = 0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t i = b * MC + mc;
      s1 += gg[i], s2 += gg[i] * xb[i], a1 += std::fabs(gg[i]), a2 += std::fabs(gg[i] * xb[i]);
    }
    const double sb = std::sqrt(static_cast<double>(st.batchVar[mc]) + eps);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t i = b * MC + mc;
      r.dx[i] += wb * (gg[i] - s1 / B - xb[i] * s2 / B) / sb;
      r.dxMag[i] += std::fabs(wb) * (std::fabs(gg[i]) + a1 / B + std::fabs(xb[i]) * a2 / B) / sb;
    }
  }
}

// ||got - ref|| / ||mag|| (mag = ref: the spec's measure); Inf when got has a NaN or Inf.
inline double relErrMag(const float* got, const std::vector<double>& ref, const std::vector<double>& mag) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(got[i]) - ref[i];
    num += d * d, den += mag[i] * mag[i];
  }
  if (!std::isfinite(num)) return INFINITY;
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}
inline double relErr(const float* got, const std::vector<double>& ref) { return relErrMag(got, ref, ref); }

}  // namespace blnref
