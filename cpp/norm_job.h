// CPU path, forward and inference: the job of one call (internal to the core). norm_job.cpp runs it
// (tiles, statistics, the passes over the tensor); norm_coefs.cpp makes its coefficients
// (finalisation, the folded forms) and the population path's apply.
#pragma once

#include <cstdint>

#include "bln.h"
#include "kernels.h"
#include "plan.h"

namespace bln {
namespace cpu {

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
  float* packs;  // fused tiles of one m: one packed slab per participant (else null)
  float *Qc = nullptr, *Fm = nullptr;  // two-pass path: the folded coefficients (foldCoefs)
  double *rowPart, *colPart;  // row partials [r][cb]{S1,S2}; column partials [bb][mc] S1 then S2

  void finCol(int64_t m, int64_t c, double S1, double S2) const;
  // finCol for a run of columns in the training case (every statistic from the mini-batch, all
  // written out), in the kernel table's vectorised finalisation; a run with any item outside its
  // fast path is redone by finCol.
  void finColsTraining(int64_t m, int64_t c0, int64_t n, const double* S1, const double* S2) const;
  // finRow for `n` consecutive rows from r0 (a tile row of several m), as finColsTraining.
  void finRowsTraining(int64_t r0, int64_t n) const;
  // Row r's statistics and coefficients, written where the pointers say (mean/var optional).
  void finRowTo(int64_t r, double S1, double S2, float* om, float* ov, float* hi, float* lo, float* f) const;
  void finRow(int64_t r, double S1, double S2) const;
  // A fused training tile's rows, kept together (rows*km of them, item i*km + s for tile row i,
  // segment s): the statistics kernel writes their sums and shifts there, one vectorised
  // finalisation makes their coefficients (which the apply pass reads with coefStride km), and
  // the statistics are copied out per tile row.
  struct TileRows {
    double* sums;
    float *shift, *F, *mh, *ml, *mean, *var;
    bool staged = false;  // mean and var are the call's staging area (unstageFeatureStats copies them out)
  };
  void finTileRows(const TileRows& tr, int64_t r0, int64_t rows, int64_t km) const;
  void unstageFeatureStats(const float* stage) const;
  // The two-pass apply's folded coefficients: y = gc*(F*x - Fm) + (A*x + Qc) with Qc = beta -
  // A*(mbh + mbl) per column and Fm = F*(mfh + mfl) per row reads three column arrays instead of
  // five (forward [256,4096]: its apply streamed 80 KiB of coefficients per 16 KiB row from L2).
  // Only where every mean is within kAffineSigmas of its deviation (|A*mean| <= K*|gcw|, as A =
  // gcw/sqrt(var + eps); the same for rows: kernels.h's foldable), where the fold's roundings stay under ~1e-6 of the
  // output's scale; else (1e4 + N(0,1) data) the hi/lo form. Forward and infer with every flag
  // false make it from the same coefficients, so they stay equal bit for bit.
  bool foldCoefs() const;
  // Statistics of one tile; finalises what the tile alone determines. `pack`, when
  // given, receives a contiguous copy of the tile for applyTile.
  void statsTile(int64_t t, float* pack, const TileRows* tr = nullptr) const;
  void applyTile(int64_t t, const float* packed, const TileRows* tr = nullptr) const;
  // The apply baton of `rows` rows from feature row r0 (= b*M + m), n columns from c0 (batch
  // statistics from column mc), as read from x; applyTile and applyInOrder adjust it.
  FwdApplyTile applyAt(int64_t r0, int64_t c0, int64_t mc, int64_t rows, int64_t n) const;
  // Every statistic from the population: the coefficients first, then one pass over the tensor
  // in memory order (a tile row is a whole batch row of M*C floats, segments of C), so x and y
  // stream like a copy.
  void runPopulation();
  // The apply pass in memory order once every coefficient is made: a tile row is a whole batch
  // row of M*C floats (segments of C), so x and y stream like a copy. Row coefficients per row
  // (coefStride M), or per m alone (perM: coefStride 0).
  void applyInOrder(bool perM) const;
  void run();
};

}  // namespace cpu
}  // namespace bln
