// Kernel bodies, written once over a vector type V (simd.h). Each is instantiated
// for V (full vectors) and finishes a row with VScalar (the tail), so every size,
// C = 1 included, runs the same arithmetic. Included by kernels_<level>.cpp inside
// an anonymous namespace (see simd.h).
//
// Numerics: forward sums are shifted sums (around a sample of the row/column), kept
// in float32 only over short runs (a row tile, or kColFlushRows rows of a column)
// and then added in double. Data with a large common offset (1e4 + N(0,1)) keeps
// ~1e-6 relative accuracy that way.

// ---- helpers of both passes' kernels

// Software prefetch of rows ahead only for short rows: from kPrefetchMaxRow floats on, the
// hardware prefetchers follow a row and the extra requests only fill the miss queues (forward
// [64,32,32,64] 1.73 -> 1.55x a copy without them on the AVX-512 Xeon; backward's 64-float rows
// need them: 4.46 -> 5.24x without).
inline void prefetchRow(const float* p, int64_t n) {
  if (n >= bln::kPrefetchMaxRow) return;
  for (int64_t j = 0; j < n; j += 16) __builtin_prefetch(p + j, 0, 3);
  __builtin_prefetch(p + n - 1, 0, 3);
}
// Asks for an output row ahead of its stores (its read-for-ownership misses then overlap).
inline void prefetchRowForWrite(float* p, int64_t n) {
  if (n >= bln::kPrefetchMaxRow) return;
  for (int64_t j = 0; j < n; j += 16) __builtin_prefetch(p + j, 1, 3);
  __builtin_prefetch(p + n - 1, 1, 3);
}

// A tile's tables for segments of `seg` columns (several consecutive m): per-channel arrays
// repeated per segment (ax, and bx where given; for one segment, the arrays themselves) and, for
// segments narrower than a vector, each element's segment (segOf) and that less the segment of its
// vector's first element (rel), which spread() uses.
struct SegTables {
  alignas(64) float a[bln::kMaxTileCols], b[bln::kMaxTileCols];
  alignas(64) int32_t segOf[bln::kMaxTileCols + 16];
  alignas(64) int32_t rel[bln::kMaxTileCols + 16];
  // A group of W segments is seg vectors (W*seg floats): lane l of its vector v is in the group's
  // segment grp[v][l] (set where seg < W <= 16).
  alignas(64) int32_t grp[16][16];
  const float *ax = nullptr, *bx = nullptr;
  static bool narrow(int64_t n, int64_t seg, int W) { return seg < n && seg < W; }
  // n <= kMaxTileCols; b0 may be null.
  template <int W>
  void init(const float* a0, const float* b0, int64_t n, int64_t seg) {
    ax = a0, bx = b0;
    if (seg >= n) return;
    for (int64_t s0 = 0, s = 0; s0 < n; s0 += seg, ++s)
      for (int64_t k = 0; k < seg; ++k) {
        a[s0 + k] = a0[k], segOf[s0 + k] = static_cast<int32_t>(s);
        if (b0) b[s0 + k] = b0[k];
      }
    for (int64_t j = 0; j < n; ++j) rel[j] = segOf[j] - segOf[j - j % W];
    if (seg < W)
      for (int64_t v = 0, at = 0, s = 0; v < seg; ++v)
        for (int l = 0; l < W; ++l, ++at) {
          if (at == (s + 1) * seg) ++s;
          grp[v][l] = static_cast<int32_t>(s);
        }
    ax = a, bx = b0 ? b : nullptr;
  }
  // Element j's value of a per-segment array c (a row's consecutive segments): a full vector
  // permutes the W values from its first element's segment on (c has kCoefSlack floats of slack
  // past its end), a tail gathers.
  template <class VV, int W>
  VV spread(const float* c, int64_t j) const {
    if constexpr (VV::W == W && W > 1)
      return VV::permute(VV::load(c + segOf[j]), rel + j);
    else
      return VV::gather(c, segOf + j);
  }
};

// Calls f(SegW<S>{}) with S = seg where the level transposes segments of that width as a constant
// (VAvx512::segTranspose; 1 <= seg < W), else with S = 0 (the narrow kernels then gather).
template <int S>
struct SegW {
  static constexpr int value = S;
};
template <class V, int S = 1, class F>
inline void withSeg(int64_t seg, F&& f) {
  if constexpr (V::kSegTranspose && S < V::W) {
    if (seg == S) return f(SegW<S>{});
    return withSeg<V, S + 1>(seg, f);
  } else {
    f(SegW<0>{});
  }
}

// The R rows' sums of one segment, o[q*stride + {0,1}] = {sum a1[q], sum a2[q]} (the statistics
// kernels of both passes). Four rows' eight sums at once where the level has hsum8.
template <class V, int R>
inline void storeRowSums(const V* a1, const V* a2, double* o, int64_t stride) {
  if constexpr (R == 4 && V::kHsum8) {
    const V v[8] = {a1[0], a2[0], a1[1], a2[1], a1[2], a2[2], a1[3], a2[3]};
    alignas(64) double h[8];
    V::hsum8(v, h);
    for (int q = 0; q < R; ++q) o[q * stride] = h[2 * q], o[q * stride + 1] = h[2 * q + 1];
  } else {
    for (int q = 0; q < R; ++q) o[q * stride] = a1[q].hsum(), o[q * stride + 1] = a2[q].hsum();
  }
}

#include "kernels_fwd_impl.h"
#include "kernels_apply_impl.h"
#include "kernels_back_impl.h"

// Plain loops that the compiler vectorises at this file's SIMD level: UNIT (columns) has unit
// strides throughout; the other form (rows) reads sums interleaved (sStride 2) and one scale, and K
// every kStride floats (KUNIT: kStride 1, the shifts of a fused tile's rows). The optional outputs
// are hoisted out of the loop.
template <bool STATS, bool UNIT, bool KUNIT>
bool finRunLoop(int64_t n, const float* __restrict K, int64_t kStride, const double* __restrict S1, const double* __restrict S2,
                double invN, double eps, const float* __restrict sc, float* __restrict om, float* __restrict ov,
                float* __restrict hi, float* __restrict lo, float* __restrict co) {
  const int64_t ks = KUNIT ? 1 : kStride, ss = UNIT ? 1 : 2;
  int bad = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double s1 = S1[j * ss], s2 = S2[j * ss];
    double mean, var;
    bln::meanVar(K[j * ks], s1, s2, invN, &mean, &var);
    const double v = var + eps;
    // Non-finite sums (NaN or Inf data, or overflowed partials) go to the exact path, which alone
    // owns those cases.
    bad |= int(!bln::invStdFloatRange(v)) | int(!std::isfinite(s1)) | int(!std::isfinite(s2));
    const float h = static_cast<float>(mean);
    if (STATS) om[j] = h, ov[j] = static_cast<float>(var);
    hi[j] = h;
    lo[j] = static_cast<float>(mean - static_cast<double>(h));
    co[j] = (UNIT ? sc[j] : sc[0]) * bln::invStdFloat(v);
  }
  return bad == 0;
}
bool finRunKernel(const bln::FinRun& f) {
  auto run = [&](auto loop) {
    return loop(f.n, f.K, f.kStride, f.S1, f.S2, f.invN, f.eps, f.scale, f.mean, f.var, f.hi, f.lo, f.coef);
  };
  if (f.sStride == 1) return f.mean ? run(finRunLoop<true, true, true>) : run(finRunLoop<false, true, true>);
  if (f.kStride == 1) return f.mean ? run(finRunLoop<true, false, true>) : run(finRunLoop<false, false, true>);
  return f.mean ? run(finRunLoop<true, false, false>) : run(finRunLoop<false, false, false>);
}

template <bool UNIT>
bool finGivenLoop(int64_t n, const float* __restrict mean, const float* __restrict var, double eps,
                  const float* __restrict sc, float* __restrict hi, float* __restrict lo, float* __restrict co) {
  int bad = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double v = static_cast<double>(var[j]) + eps;
    bad |= int(!bln::invStdFloatRange(v));
    bln::splitHiLo(static_cast<double>(mean[j]), hi + j, lo + j);
    co[j] = (UNIT ? sc[j] : sc[0]) * bln::invStdFloat(v);
  }
  return bad == 0;
}
bool finGivenKernel(const bln::FinGiven& f) {
  return (f.scaleStride ? finGivenLoop<true> : finGivenLoop<false>)(f.n, f.mean, f.var, f.eps, f.scale, f.hi, f.lo, f.coef);
}

// One m's C columns of FinAffine (a plain loop the compiler vectorises); nonzero where some item is bad.
int finAffineLoop(int64_t n, const float* __restrict gc, const float* __restrict beta, const float* __restrict gcw,
                  const float* __restrict A, const float* __restrict mbh, const float* __restrict mbl, float F, double mf,
                  float* __restrict P, float* __restrict Q) {
  int bad = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double mb = static_cast<double>(mbh[j]) + static_cast<double>(mbl[j]), am = static_cast<double>(A[j]) * mb;
    const float g = gc[j] * F;  // (the same float product as the hi/lo apply's)
    const double p = static_cast<double>(g) + static_cast<double>(A[j]);
    const double q = static_cast<double>(beta[j]) - static_cast<double>(g) * mf - am;
    bad |= int(!bln::foldable(am, static_cast<double>(gcw[j]))) | int(!std::isfinite(p)) | int(!std::isfinite(q));
    P[j] = static_cast<float>(p);
    Q[j] = static_cast<float>(q);
  }
  return bad;
}
bool finAffineKernel(const bln::FinAffine& f) {
  int bad = 0;
  for (int64_t s = 0; s < f.km; ++s) {
    const double mf = static_cast<double>(f.mfh[s]) + static_cast<double>(f.mfl[s]);
    bad |= int(!bln::foldable(static_cast<double>(f.F[s]) * mf, static_cast<double>(f.wff)));
    const int64_t o = s * f.C;
    bad |= finAffineLoop(f.C, f.gc, f.beta, f.gcw, f.A + o, f.mbh + o, f.mbl + o, f.F[s], mf, f.P + o, f.Q + o);
  }
  return bad == 0;
}

bool finBwdColsLoop(int64_t n, const float* __restrict bv, const double* __restrict Sdy, const double* __restrict Sdyxb,
                    const double* __restrict Sdyxf, const float* __restrict gamma, int64_t B, double wf, double wb,
                    double invSqrtC, double eps, float* __restrict U, float* __restrict V, float* __restrict W,
                    double* __restrict accG, double* __restrict accB) {
  int bad = 0;
  for (int64_t j = 0; j < n; ++j) bad |= int(!bln::invStdFloatRange(static_cast<double>(bv[j]) + eps));
  if (bad) return false;
  for (int64_t j = 0; j < n; ++j) {
    const double g = static_cast<double>(gamma[j]) * invSqrtC;
    const float rb = bln::invStdFloat(static_cast<double>(bv[j]) + eps);
    const bln::BwdColCoefs k = bln::bwdColCoefs(B, wf, wb, invSqrtC, g, rb, Sdy[j], Sdyxb[j], Sdyxf[j]);
    U[j] = static_cast<float>(k.U);
    V[j] = static_cast<float>(k.V);
    W[j] = static_cast<float>(k.W);
    accG[j] += k.dgamma;
    accB[j] += k.dbeta;
  }
  return true;
}
bool finBwdColsKernel(const bln::FinBwdCols& f) {
  return finBwdColsLoop(f.n, f.batchVar, f.Sdy, f.Sdyxb, f.Sdyxf, f.gamma, f.B, f.wf, f.wb, f.invSqrtC, f.eps, f.U, f.V, f.W,
                        f.accG, f.accB);
}
void finBwdRowsLoop(int64_t n, const float* __restrict rf, const double* __restrict S, int64_t C, double wf,
                    float* __restrict P, float* __restrict Q, float* __restrict T) {
  for (int64_t j = 0; j < n; ++j) {
    const bln::BwdRowCoefs k = bln::bwdRowCoefs(C, wf, rf[j], S[2 * j], S[2 * j + 1]);
    P[j] = static_cast<float>(k.P);
    Q[j] = static_cast<float>(k.Q);
    T[j] = static_cast<float>(k.T);
  }
}
void finBwdRowsKernel(const bln::FinBwdRows& f) { finBwdRowsLoop(f.n, f.rf, f.S, f.C, f.wf, f.P, f.Q, f.T); }

template <class V>
bln::KernelTable makeKernelTable(bln::SimdLevel level) {
  bln::KernelTable k;
  k.level = level;
  k.width = V::W;
  k.fwdStats[0] = &fwdStatsKernel<V, true, true>;
  k.fwdStats[1] = &fwdStatsKernel<V, true, false>;
  k.fwdStats[2] = &fwdStatsKernel<V, false, true>;
  k.fwdApply = &fwdApplyKernel<V>;
  k.finAffine = &finAffineKernel;
  k.affineApply = &affineApplyKernel<V>;
  k.bwdStats = &bwdStatsKernel<V>;
  k.bwdApply = &bwdApplyKernel<V>;
  k.finRun = &finRunKernel;
  k.finGiven = &finGivenKernel;
  k.finBwdCols = &finBwdColsKernel;
  k.finBwdRows = &finBwdRowsKernel;
  return k;
}
