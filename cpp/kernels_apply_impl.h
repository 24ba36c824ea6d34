// Forward and inference apply kernels, and writeRow, which the backward ones share.
// Part of kernels_impl.h (included inside each kernels_<level>.cpp's anonymous namespace,
// after kernels_fwd_impl.h).

// Writes val(x, j) for j in [0, n) of one row. With `stream` (only requested when
// the row is 16-byte aligned and n is a multiple of 4, see plan.cpp) every store
// of the row is non-temporal, so no cache line mixes the two kinds of store.
#if defined(__AVX2__) || defined(__AVX512F__)
using VStreamTail = VSse4;
#else
using VStreamTail = VScalar;
#endif
template <class V, class Val>
inline void writeRow(float* out, int64_t n, bool stream, const Val& val) {
  int64_t j = 0;
  if (V::kCanStream && stream) {
    for (; j + V::W <= n; j += V::W) val(V{}, j).stream(out + j);
    for (; j + VStreamTail::W <= n; j += VStreamTail::W) val(VStreamTail{}, j).stream(out + j);
  } else {
    for (; j + V::W <= n; j += V::W) val(V{}, j).store(out + j);
  }
  for (; j < n; ++j) val(VScalar{}, j).store(out + j);
}

// fwdApplyKernel's common case, one row: segments of whole vectors, plain stores. Apart, with
// every pointer a local, so that the segment loop keeps its registers (inside the kernel the
// compiler spilled them, and at C = 16 each one-vector segment paid ~40 instructions of reloads).
struct ColCoefs {
  const float *gc, *beta, *mbh, *mbl, *A;  // gc, beta per channel (seg); the rest per column (n)
};
template <class V>
inline void fwdApplySegs(const float* __restrict xr, float* __restrict yr, int64_t n, int64_t seg, ColCoefs c,
                         const float* Fr, const float* mhr, const float* mlr) {
  for (int64_t s0 = 0, s = 0; s0 < n; s0 += seg, ++s) {
    const V F = V::set1(Fr[s]), mh = V::set1(mhr[s]), ml = V::set1(mlr[s]);
    const float *x = xr + s0, *mbh = c.mbh + s0, *mbl = c.mbl + s0, *A = c.A + s0;
    float* y = yr + s0;
    for (int64_t j = 0; j < seg; j += V::W) {
      const V xv = V::load(x + j);
      const V tb = (xv - V::load(mbh + j)) - V::load(mbl + j);
      const V acc = V::fma(V::load(A + j), tb, V::load(c.beta + j));
      const V tf = (xv - mh) - ml;
      V::fma(V::load(c.gc + j) * F, tf, acc).store(y + j);
    }
  }
}

// fwdApplyKernel's narrow case, one row, plain stores: n/(W*seg) whole groups of W segments (seg
// vectors each), each group's W per-segment coefficients loaded once and spread to its vectors by
// register permutes (SegTables::grp), the same arithmetic per element as the spread form.
template <class V>
inline void fwdApplyGroups(const float* __restrict xr, float* __restrict yr, int64_t n, int64_t seg, const float* mbh,
                           const float* mbl, const float* A, const float* ax, const float* bx, const int32_t (*grp)[16],
                           const float* Fr, const float* mhr, const float* mlr) {
  const int64_t gw = V::W * seg;
  for (int64_t j = 0, s = 0; j + gw <= n; j += gw, s += V::W) {
    const V F = V::load(Fr + s), mh = V::load(mhr + s), ml = V::load(mlr + s);
    for (int64_t v = 0; v < seg; ++v) {
      const int64_t k = j + v * V::W;
      const V xv = V::load(xr + k);
      const V tb = (xv - V::load(mbh + k)) - V::load(mbl + k);
      const V acc = V::fma(V::load(A + k), tb, V::load(bx + k));
      const V tf = (xv - V::permute(mh, grp[v])) - V::permute(ml, grp[v]);
      V::fma(V::load(ax + k) * V::permute(F, grp[v]), tf, acc).store(yr + k);
    }
  }
}

constexpr int64_t kApplyBlockFloats = 256;
template <class V>
void fwdApplyKernel(const bln::FwdApplyTile& t) {
  const int64_t n = t.n;
  const int64_t seg = t.seg > 0 ? t.seg : n;
  // Segments narrower than a vector (see fwdStatsKernel): the row is one vector pass, each element's
  // per-segment coefficients spread to it (SegTables), with the same arithmetic per element.
  const bool narrow = SegTables::narrow(n, seg, V::W);
  SegTables sg;
  if (narrow) sg.init<V::W>(t.gc, t.beta, n, seg);
  // Narrow, plain stores: the whole groups of W segments first, in column blocks of about
  // kApplyBlockFloats over every row, so that a block's five column arrays stay in L1 while the rows
  // stream through (row by row, a wide tile's arrays came from L2 for every row).
  int64_t nGrp = 0;
  if (narrow && !t.stream) {
    const int64_t gw = V::W * seg, blk = (kApplyBlockFloats / gw > 1 ? kApplyBlockFloats / gw : 1) * gw;
    nGrp = n / gw * gw;
    for (int64_t c0 = 0; c0 < nGrp; c0 += blk) {
      const int64_t w = nGrp - c0 < blk ? nGrp - c0 : blk, s0 = c0 / seg;
      for (int64_t i = 0; i < t.rows; ++i) {
        const int64_t ci = i * t.coefStride + s0;
        fwdApplyGroups<V>(t.x + i * t.xStride + c0, t.y + i * t.rowStride + c0, w, seg, t.mbh + c0, t.mbl + c0, t.A + c0,
                          sg.ax + c0, sg.bx + c0, sg.grp, t.F + ci, t.mfh + ci, t.mfl + ci);
      }
    }
    if (nGrp == n) return;  // (every row written: the row loop would only prefetch rows done)
  }
  for (int64_t i = 0; i < t.rows; ++i) {
    const float* xrow = t.x + i * t.xStride;
    float* yrow = t.y + i * t.rowStride;
    if (i + bln::kPrefetchRows < t.rows) prefetchRowForWrite(yrow + bln::kPrefetchRows * t.rowStride, n);
    if (narrow) {
      // The columns after the whole groups (all of them with streaming stores): each element's
      // per-segment coefficients spread from the row's (consecutive) ones.
      const float *Fr = t.F + i * t.coefStride, *mhr = t.mfh + i * t.coefStride, *mlr = t.mfl + i * t.coefStride;
      const float *mbh = t.mbh, *mbl = t.mbl, *A = t.A, *bx = sg.bx;  // (kept in registers)
      const int64_t j0 = nGrp;
      writeRow<V>(yrow + j0, n - j0, t.stream, [&](auto tag, int64_t jr) {
        using VV = decltype(tag);
        const int64_t j = j0 + jr;
        VV xv = VV::load(xrow + j);
        VV tb = (xv - VV::load(mbh + j)) - VV::load(mbl + j);
        VV acc = VV::fma(VV::load(A + j), tb, VV::load(bx + j));
        VV tf = (xv - sg.spread<VV, V::W>(mhr, j)) - sg.spread<VV, V::W>(mlr, j);
        return VV::fma(VV::load(sg.ax + j) * sg.spread<VV, V::W>(Fr, j), tf, acc);
      });
      continue;
    }
    if (t.Qc) {  // the folded form
      for (int64_t s0 = 0, s = 0; s0 < n; s0 += seg, ++s) {
        const float* xr = xrow + s0;
        const float *gc = t.gc, *A = t.A + s0, *Qc = t.Qc + s0;
        const float F = t.F[i * t.coefStride + s], Fm = t.Fm[i * t.coefStride + s];
        writeRow<V>(yrow + s0, seg, t.stream, [&](auto tag, int64_t j) {
          using VV = decltype(tag);
          const VV xv = VV::load(xr + j);
          const VV u = VV::fma(VV::load(A + j), xv, VV::load(Qc + j));
          return VV::fma(VV::load(gc + j), VV::fma(VV::set1(F), xv, VV::set1(-Fm)), u);
        });
      }
      continue;
    }
    const float *Fr = t.F + i * t.coefStride, *mhr = t.mfh + i * t.coefStride, *mlr = t.mfl + i * t.coefStride;
    if (!t.stream && seg % V::W == 0) {
      fwdApplySegs<V>(xrow, yrow, n, seg, {t.gc, t.beta, t.mbh, t.mbl, t.A}, Fr, mhr, mlr);
      continue;
    }
    for (int64_t s0 = 0, s = 0; s0 < n; s0 += seg, ++s) {
      const float* xr = xrow + s0;
      float* yr = yrow + s0;
      const float* mbh = t.mbh + s0;
      const float* mbl = t.mbl + s0;
      const float* A = t.A + s0;
      const float F = Fr[s], mh = mhr[s], ml = mlr[s];
      writeRow<V>(yr, seg, t.stream, [&](auto tag, int64_t j) {
        using VV = decltype(tag);
        VV xv = VV::load(xr + j);
        VV tb = (xv - VV::load(mbh + j)) - VV::load(mbl + j);
        VV acc = VV::fma(VV::load(A + j), tb, VV::load(t.beta + j));
        VV tf = (xv - VV::set1(mh)) - VV::set1(ml);
        return VV::fma(VV::load(t.gc + j) * VV::set1(F), tf, acc);
      });
    }
  }
  if (t.stream) V::fence();
}

template <class V>
void affineApplyKernel(const bln::AffineTile& t) {
  const float *P = t.P, *Q = t.Q;
  for (int64_t i = 0; i < t.rows; ++i) {
    const float* xr = t.x + i * t.rowStride;
    writeRow<V>(t.y + i * t.rowStride, t.n, t.stream, [&](auto tag, int64_t j) {
      using VV = decltype(tag);
      return VV::fma(VV::load(P + j), VV::load(xr + j), VV::load(Q + j));
    });
  }
  if (t.stream) V::fence();
}
