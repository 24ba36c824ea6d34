// The numerics that the CPU path (cpp/) and the CUDA path (cuda/) share, written once and
// compiled as host code by g++ and as host + device code by nvcc (and by the host emulator).
// Every formula that turns sums into statistics, and statistics into the coefficients the
// kernels apply, lives here: the two paths agree by construction. No standard-library
// calls beyond <cmath> functions that CUDA also provides in device code.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define BLN_HD __host__ __device__ __forceinline__
#else
// Internal linkage on the host: the CPU kernels compiled with -mavx2/-mavx512f call these too,
// and an inline function with external linkage would let the linker keep one of those copies
// for the baseline code as well.
#define BLN_HD static inline
#endif

namespace bln {

// Mixing weights of the spec, from the configured batch size N.
BLN_HD double weightFeature(double N) { return 1.0 / N - 1e-4; }
BLN_HD double weightBatch(double N) { return 1.0 - (1.0 / N + 1e-4); }

// 1/sqrt(var + eps) in float: correctly rounded sqrt and division (never build with fast
// math), ~1e-7 relative. Outside float's normal range var + eps is taken in double:
//  - below FLT_MIN (a valid epsilon like 1e-50 with a zero variance: B = 1, C = 1, constant
//    data) float would give 1/sqrt(0) = Inf and then Inf * 0 = NaN where the spec gives 0;
//    the double result is clamped to 1e30 so its products with the mixing weights stay
//    finite (beyond 1e30 no nonzero deviation has a float32 result anyway);
//  - above FLT_MAX (deviations beyond ~1.8e19: the variance itself overflows float32) the
//    double path keeps 1/sqrt finite, so y stays right where only the statistic overflows.
// NaN stays NaN; an infinite variance gives 0.
// invStd's two parts, for the vectorised finalisation (kernels_impl.h): v = var + eps in
// float's normal range takes the float formula; other v go through invStd itself.
// (`&`, not `&&`: no branch, so the loops that call these vectorise.)
BLN_HD bool invStdFloatRange(double v) { return (v >= double(FLT_MIN)) & (v <= double(FLT_MAX)); }
BLN_HD float invStdFloat(double v) { return 1.0f / std::sqrt(static_cast<float>(v)); }
BLN_HD float invStd(double var, double eps) {
  const double v = var + eps;
  if (invStdFloatRange(v)) return invStdFloat(v);
  const double r = 1.0 / std::sqrt(v);
  return static_cast<float>(r > 1e30 ? 1e30 : r);
}

// A double mean as hi + lo floats, so (x - hi) - lo is x - mean to float accuracy even when
// the mean is large (1e4 + N(0,1) data).
BLN_HD void splitHiLo(double v, float* hi, float* lo) {
  const float h = static_cast<float>(v);
  *hi = h;
  *lo = static_cast<float>(v - static_cast<double>(h));
}

// Mean and biased variance from shifted sums S1 = sum(x - K), S2 = sum((x - K)^2) over n
// values (invN = 1/n). Negative round-off clamps to 0; NaN stays NaN.
BLN_HD void meanVar(double K, double S1, double S2, double invN, double* mean, double* var) {
  const double m1 = S1 * invN;
  const double v = (S2 - S1 * m1) * invN;
  *mean = K + m1;
  *var = v < 0 ? 0.0 : v;
}

// The kernels accumulate squared deviations in float32 over short runs: deviations beyond
// ~3e18 overflow those partials (S2 = Inf) although the data and the true variance are
// finite. A finite S1 (or mean) with a non-finite S2 (or M2) means exactly that (an Inf or
// NaN input makes S1 non-finite too); the statistic is then recomputed by exactMeanVar.
BLN_HD bool sumsOverflowed(double S1, double S2) { return std::isfinite(S1) & !std::isfinite(S2); }

// Mean and biased variance of n floats `stride` apart, two passes in double: the rare
// fallback for sumsOverflowed (float data squared never overflows double).
BLN_HD void exactMeanVar(const float* x, int64_t n, int64_t stride, double* mean, double* var) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i * stride];
  const double m = s / double(n);
  double v = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = x[i * stride] - m;
    v += e * e;
  }
  *mean = m;
  *var = v / double(n);
}

// Mean and biased variance of the n values `stride` apart at x, from the kernels' shifted sums
// around x[0] (invN = 1/n, precomputed: this runs once per row and per column); the overflow
// fallback where those sums overflowed.
BLN_HD void statsFromSums(const float* x, int64_t n, int64_t stride, double invN, double S1, double S2, double* mean,
                          double* var) {
  if (sumsOverflowed(S1, S2))
    exactMeanVar(x, n, stride, mean, var);
  else
    meanVar(x[0], S1, S2, invN, mean, var);
}

// The same from Chan-merged (mean, M2) of all n values (negative round-off clamps to 0).
BLN_HD void statsFromChan(const float* x, int64_t n, int64_t stride, double mean, double m2, double* outMean, double* outVar) {
  if (sumsOverflowed(mean, m2)) {
    exactMeanVar(x, n, stride, outMean, outVar);
    return;
  }
  const double v = m2 / static_cast<double>(n);
  *outMean = mean;
  *outVar = v < 0 ? 0 : v;
}

// Chan's merge of (count, mean, M2) partials, in double.
BLN_HD void chanMerge(double* n, double* mean, double* m2, double nb, double meanb, double m2b) {
  if (*n == 0) {
    *n = nb, *mean = meanb, *m2 = m2b;
    return;
  }
  const double nn = *n + nb;
  const double delta = meanb - *mean;
  *mean += delta * (nb / nn);
  *m2 += m2b + delta * delta * (*n * nb / nn);
  *n = nn;
}

// A (mean, M2) partial of n values from shifted sums around K.
BLN_HD void shiftedToChan(double K, double S1, double S2, double n, double* mean, double* m2) {
  *mean = K + S1 / n;
  *m2 = S2 - S1 * (S1 / n);
}

// ---------------------------------------------------------------- backward coefficients
// With gc = gamma/sqrt(C), rf = 1/sqrt(var_f + eps), rb = 1/sqrt(var_b + eps), the spec's
// gradient wf*dx_f + wb*dx_b is, element by element,
//   dx = gc*dy*(P + U) - (Q + V) - T*(x - mu_f) - W*(x - mu_b)
// with the per-row (P, Q, T) and per-column (U, V, W) coefficients below.

struct BwdColCoefs {
  double U, V, W;
  double dgamma, dbeta;  // this (m, c)'s terms of dgamma[c] and dbeta[c]
};
// Column mc of B rows: Sdy = sum dy, Sdyxb = sum dy*(x - mu_b), Sdyxf = sum dy*rf*(x - mu_f);
// g = gamma[c]/sqrt(C) in double.
BLN_HD BwdColCoefs bwdColCoefs(int64_t B, double wf, double wb, double invSqrtC, double g, double rb, double Sdy,
                               double Sdyxb, double Sdyxf) {
  // At B = 1 the batch branch is exactly zero (xb = 0, g - mean_b(g) = 0); its coefficients
  // are large (wb/sqrt(eps)), so leave it out rather than cancel in float.
  const double u = B > 1 ? wb * rb : 0.0;
  const double invB = 1.0 / static_cast<double>(B);
  BwdColCoefs k;
  k.U = u;
  k.V = u * g * Sdy * invB;
  k.W = u * rb * rb * g * Sdyxb * invB;
  k.dgamma = (wf * Sdyxf + wb * rb * Sdyxb) * invSqrtC;
  k.dbeta = Sdy;
  return k;
}

struct BwdRowCoefs {
  double P, Q, T;
};
// Row of C features: Rg = sum dy*gc, Rgxf = sum dy*gc*(x - mu_f).
BLN_HD BwdRowCoefs bwdRowCoefs(int64_t C, double wf, double rf, double Rg, double Rgxf) {
  const double pp = C > 1 ? wf * rf : 0.0;  // at C = 1 the feature branch is exactly zero
  const double invC = 1.0 / static_cast<double>(C);
  BwdRowCoefs k;
  k.P = pp;
  k.Q = pp * Rg * invC;
  k.T = pp * rf * rf * Rgxf * invC;
  return k;
}

}  // namespace bln
