// The hot loops of the CPU path, one table per SIMD level (kernels_<level>.cpp).
// A "tile" is a block of the [B, M, C] view with m fixed: `rows` rows (batch
// positions b0..b0+rows) of `n` contiguous features (c0..c0+n). Consecutive rows
// are `rowStride` = M*C floats apart. Per-row coefficient arrays are indexed by the
// row r = b*M + m, so inside a tile they advance by `coefStride` = M.
#pragma once

#include <cmath>
#include <cstdint>

#include "bln.h"

namespace bln {

// Features per tile in the two-pass path, and the widest tile any kernel handles
// (a fused slab of up to kMaxTileCols features); column accumulators live on the stack.
constexpr int64_t kTileCols = 512;
constexpr int64_t kMaxTileCols = 2048;
// Rows ahead that the statistics kernels prefetch (rows are M*C floats apart, too
// short and too far apart for the hardware prefetchers when C is small).
constexpr int64_t kPrefetchRows = 4;
// Rows of at least this many floats are left to the hardware prefetchers (kernels_impl.h).
constexpr int64_t kPrefetchMaxRow = 256;
// Column sums are kept in float32 for at most this many rows, then added into double.
constexpr int64_t kColFlushRows = 32;

// Forward statistics by shifted sums. For each column j: S1 = sum_i (x - colShift[j]),
// S2 = sum_i (x - colShift[j])^2; for each row i: the same around rowShift = row[-c0]
// (the row's first element, so every tile of a row uses one shift).
struct FwdStatsTile {
  const float* x;
  int64_t rows, rowStride, n, c0;
  const float* colShift;  // n
  double* colS1;          // n (written)
  double* colS2;          // n (written)
  double* rowOut;         // rowOut[i*rowOutStride + {0,1}] = {S1, S2} (written)
  int64_t rowOutStride;
  float* pack;            // optional: the tile copied contiguously ([rows][n]) for the apply pass
  // Row statistics per segment of `seg` columns (n a multiple of it): a tile of several
  // consecutive m at small C, whose rows are then runs of n contiguous floats. Segment s of
  // row i writes rowOut[i*rowOutStride + s*2 + {0,1}], shifted around its own first element.
  int64_t seg = 0;  // 0: the whole row is one segment
  // Optional: each row segment's shift (the value its sums are taken around) at
  // rowShift[i*rowShiftStride + s], for a finalisation that does not look them up in x.
  float* rowShift = nullptr;
  int64_t rowShiftStride = 0;
  bool ahead = false;  // prefetch the next rows while reading these (Plan::ahead)
};

// Floats of slack past the end of the per-row coefficient arrays (F, mfh, mfl) that callers
// allocate: the narrow-segment apply reads a whole vector from a segment's coefficients on.
constexpr int64_t kCoefSlack = 16;

// y = gc*F*((x - mfh) - mfl) + A*((x - mbh) - mbl) + beta, with hi/lo means.
struct FwdApplyTile {
  const float* x;
  int64_t xStride;  // rowStride, or n when x is a packed tile
  float* y;
  int64_t rows, rowStride, n;
  const float *gc, *beta, *mbh, *mbl, *A;  // per column (n)
  const float *F, *mfh, *mfl;              // per row, stride coefStride
  int64_t coefStride;
  bool stream;  // non-temporal stores: every row of y 16-byte aligned, n % 4 == 0
  // Segments of `seg` columns (several consecutive m): gc/beta are per channel (seg long)
  // and repeat per segment, per-row coefficients of segment s are at F[i*coefStride + s].
  int64_t seg = 0;  // 0: one segment
  // Optional folded form (segments of at least a vector; see NormJob::foldCoefs):
  // y = gc*(F*x - Fm) + (A*x + Qc), Qc per column, Fm per row (stride coefStride).
  const float *Qc = nullptr, *Fm = nullptr;
};

// Backward reductions. Column j: Sdy = sum dy, Sdyxb = sum dy*(x - mub),
// Sdyxf = sum dy*rf*(x - muf). Row i: Rg = sum dy*gc, Rgxf = sum dy*gc*(x - muf).
struct BwdStatsTile {
  const float* x;
  const float* dy;
  int64_t rows, rowStride, n;
  const float *gc, *mub;       // per column (n)
  const float *muf, *rf;       // per row, stride coefStride
  int64_t coefStride;
  double *colSdy, *colSdyxb, *colSdyxf;  // n (written)
  double* rowOut;  // rowOut[i*rowOutStride + {0,1}] = {Rg, Rgxf} (written)
  int64_t rowOutStride;
  float *packX, *packDy;  // optional contiguous copies ([rows][n]) for the apply pass
  // Segments of `seg` columns (several consecutive m, as in FwdStatsTile): gc is per channel (seg
  // long), muf/rf of segment s at [i*coefStride + s], its sums at rowOut[i*rowOutStride + s*2].
  int64_t seg = 0;  // 0: one segment
  bool ahead = false;  // prefetch the next rows while reading these (Plan::ahead)
};

// dx = gc*dy*(P + U) - (Q + V) - T*(x - muf) - Wc*(x - mub)
struct BwdApplyTile {
  const float* x;
  const float* dy;
  int64_t inStride;  // of x and dy: rowStride, or n when they are packed tiles
  float* dx;
  int64_t rows, rowStride, n;
  const float *gc, *U, *V, *Wc, *mub;  // per column (n)
  const float *P, *Q, *T, *muf;        // per row, stride coefStride
  int64_t coefStride;
  bool stream;  // non-temporal stores: every row of dx 16-byte aligned, n % 4 == 0
  int64_t seg = 0;  // segments as in BwdStatsTile (gc per channel; P, Q, T, muf at [i*coefStride + s])
};

// Finalisation of n rows or columns from the statistics kernels' shifted sums (numerics.h's
// meanVar around the item's first value K, splitHiLo, invStd): item j reads K[j*kStride],
// S1[j*sStride], S2[j*sStride], scale[j*scaleStride] and writes mean/var (optional), hi/lo and
// coef = scale * invStd(var, eps) at j. Two forms, told apart by sStride: columns (every stride
// 1) and the rows of a tile row (kStride = C, which may be 1; sums interleaved: sStride 2; one
// scale: scaleStride 0). Returns false where some item needs numerics.h's exact
// path (overflowed sums, var + eps outside float's normal range, NaN): the caller then redoes
// those items one by one.
struct FinRun {
  int64_t n;
  const float* K;
  int64_t kStride;
  const double *S1, *S2;
  int64_t sStride;
  double invN, eps;
  const float* scale;
  int64_t scaleStride;
  float *mean, *var;  // optional
  float *hi, *lo, *coef;
};

// The same from given statistics (inference with population statistics): item j takes mean[j]
// and var[j] and writes hi/lo and coef = scale[j*scaleStride] * invStd(var, eps) (scaleStride 0
// or 1). Returns false where some var + eps is outside invStd's float path.
struct FinGiven {
  int64_t n;
  const float *mean, *var;
  double eps;
  const float* scale;
  int64_t scaleStride;
  float *hi, *lo, *coef;
};

// Backward finalisation of n columns (numerics.h's bwdColCoefs with rb = invStd(batchVar, eps)):
// U, V, W written and this m's dgamma/dbeta terms added to accG/accB, item j at j. Returns false
// where some batchVar + eps is outside invStd's float path (the caller redoes the run one by one,
// before anything is added: nothing is accumulated then).
struct FinBwdCols {
  int64_t n;
  const float* batchVar;
  const double *Sdy, *Sdyxb, *Sdyxf;
  const float* gamma;
  int64_t B;
  double wf, wb, invSqrtC, eps;
  float *U, *V, *W;
  double *accG, *accB;
};
// Backward finalisation of n consecutive rows (bwdRowCoefs): rf[j], sums at S[2j], S[2j+1].
struct FinBwdRows {
  int64_t n;
  const float* rf;
  const double* S;
  int64_t C;
  double wf;
  float *P, *Q, *T;
};

// Inference with every statistic from the population folds each (m, c)'s coefficients into
// y = P*x + Q (one multiply-add and two coefficient loads per element instead of five, and no
// per-segment spreads at small C), where that loses nothing: with every mean within
// kAffineSigmas of its deviation sqrt(var + eps), the float roundings of P*x and Q stay under
// ~1e-6 of the output's scale. For km consecutive m of C columns each (column j of m s at
// s*C + j): P = gc*F + A, Q = beta - gc*F*(mfh + mfl) - A*(mbh + mbl) (in double, then float),
// from the hi/lo coefficients finalisation made. Returns false where some mean is too large (see
// foldable) or some value not finite: the caller then keeps the hi/lo form.
constexpr double kAffineSigmas = 8;
// The folds' one test (this and NormJob::foldCoefs): a coefficient coef = scale/sqrt(var + eps)
// times its mean against kAffineSigmas*|scale|, i.e. |mean| <= kAffineSigmas*sqrt(var + eps),
// from what finalisation made. NaN fails.
inline bool foldable(double coefTimesMean, double scale) { return std::fabs(coefTimesMean) <= kAffineSigmas * std::fabs(scale); }
struct FinAffine {
  int64_t km, C;
  const float *gc, *beta, *gcw;  // per channel (C); A = gcw/sqrt(batchVar + eps)
  const float *A, *mbh, *mbl;    // per column (km*C)
  const float *F, *mfh, *mfl;    // per m (km); F = wff/sqrt(featureVar + eps)
  float wff;
  float *P, *Q;  // km*C (written)
};
// y = P*x + Q over `rows` rows of n floats `rowStride` apart, P and Q per column.
struct AffineTile {
  const float* x;
  float* y;
  int64_t rows, rowStride, n;
  const float *P, *Q;
  bool stream;  // as FwdApplyTile's
};

struct KernelTable {
  SimdLevel level;
  int width;
  // [0]: column and row sums, [1]: column sums only, [2]: row sums only.
  void (*fwdStats[3])(const FwdStatsTile&);
  void (*fwdApply)(const FwdApplyTile&);
  bool (*finAffine)(const FinAffine&);
  void (*affineApply)(const AffineTile&);
  void (*bwdStats)(const BwdStatsTile&);
  void (*bwdApply)(const BwdApplyTile&);
  bool (*finRun)(const FinRun&);
  bool (*finGiven)(const FinGiven&);
  bool (*finBwdCols)(const FinBwdCols&);
  void (*finBwdRows)(const FinBwdRows&);
};

KernelTable kernelTableScalar();
#if defined(BLN_HAVE_X86)
KernelTable kernelTableAvx2();
KernelTable kernelTableAvx512();
#endif
#if defined(BLN_HAVE_NEON)
KernelTable kernelTableNeon();
#endif

const KernelTable& activeKernels();

}  // namespace bln
