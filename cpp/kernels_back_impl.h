// Backward kernels. Part of kernels_impl.h (included inside each kernels_<level>.cpp's anonymous
// namespace, after kernels_fwd_impl.h and kernels_apply_impl.h, whose writeRow it uses).
//
// A tile may hold several consecutive m (segments of `seg` = C columns, t.seg > 0): gc then
// repeats per segment, and the per-row values (muf, rf, P, Q, T, row sums) of segment s sit at
// [i*coefStride + s]. Segments narrower than a vector spread those per element (SegTables).

// One column step of bwdStatsKernel for R rows: the packing, the three column partials (loaded
// and stored once for the R rows) and the rows' two sums, into register lanes (g1, g2) or, for
// narrow segments, per element into tu/tt for the segment sums afterwards.
template <class VV, int R, bool NARROW, int W>
inline void bwdStatsStep(const bln::BwdStatsTile& t, const SegTables& sg, const float* const* xr, const float* const* dr,
                         float* const* px, float* const* pd, const float* const* mufr, const float* const* rfr, int64_t j,
                         float (*f)[bln::kMaxTileCols], VV* g1, VV* g2, float (*tu)[bln::kMaxTileCols],
                         float (*tt)[bln::kMaxTileCols]) {
  const VV gc = VV::load(sg.ax + j), mub = VV::load(t.mub + j);
  VV c0 = VV::load(f[0] + j), c1 = VV::load(f[1] + j), c2 = VV::load(f[2] + j);
  for (int q = 0; q < R; ++q) {
    const VV xv = VV::load(xr[q] + j), dv = VV::load(dr[q] + j);
    if (px[q]) xv.store(px[q] + j), dv.store(pd[q] + j);
    const VV muf = NARROW ? sg.spread<VV, W>(mufr[q], j) : VV::set1(mufr[q][0]);
    const VV rf = NARROW ? sg.spread<VV, W>(rfr[q], j) : VV::set1(rfr[q][0]);
    const VV tf = xv - muf, u = dv * gc;
    c0 = c0 + dv;
    c1 = VV::fma(dv, xv - mub, c1);
    c2 = VV::fma(dv * rf, tf, c2);
    if (NARROW) {
      u.store(tu[q] + j);
      (u * tf).store(tt[q] + j);
    } else {
      g1[q] = g1[q] + u;
      g2[q] = VV::fma(u, tf, g2[q]);
    }
  }
  c0.store(f[0] + j), c1.store(f[1] + j), c2.store(f[2] + j);
}

// Segment sums of tu/tt for narrow segments, W segments at a time (lane l: segment l): by a
// transpose where the level has one (VAvx512::segTranspose, SEG = seg), else by gathers (SEG = 0).
template <class V, int SEG>
inline void bwdNarrowRowSums(const float* tu, const float* tt, int64_t n, int64_t seg, const int32_t* gi, double* o) {
  const int64_t nseg = n / seg;
  int64_t s = 0;
  if constexpr (SEG > 0)
    for (; s + V::W <= nseg; s += V::W) {
      V gu[SEG], gt[SEG];
      V::template segTranspose<SEG>(tu + s * SEG, gu);
      V::template segTranspose<SEG>(tt + s * SEG, gt);
      V a1 = V::zero(), a2 = V::zero();
      for (int c = 0; c < SEG; ++c) a1 = a1 + gu[c], a2 = a2 + gt[c];
      V::storePairs(o + s * 2, a1, a2);
    }
  for (; s + V::W <= nseg; s += V::W) {
    V a1 = V::zero(), a2 = V::zero();
    for (int64_t c = 0; c < seg; ++c) a1 = a1 + V::gather(tu + s * seg + c, gi), a2 = a2 + V::gather(tt + s * seg + c, gi);
    V::storePairs(o + s * 2, a1, a2);
  }
  for (; s < nseg; ++s) {
    float a1 = 0.f, a2 = 0.f;
    for (int64_t c = 0; c < seg; ++c) a1 += tu[s * seg + c], a2 += tt[s * seg + c];
    o[s * 2] = (double)a1, o[s * 2 + 1] = (double)a2;
  }
}

// bwdStatsRows' common case: segments of whole vectors. Apart, with every pointer a local (see
// fwdApplySegs); the same arithmetic, the row sums through storeRowSums. gcn: gc repeated over the n columns.
template <class V, int R, bool PACK>
inline void bwdStatsSegs(const float* const* xr, const float* const* dr, float* const* px, float* const* pd,
                         const float* const* mufr, const float* const* rfr, int64_t n, int64_t seg,
                         const float* __restrict gcn, const float* __restrict mub, float (*f)[bln::kMaxTileCols],
                         double* rowOut, int64_t rowOutStride, const float* nextX, const float* nextDy, int64_t nextStride) {
  const float *x[R], *dy[R];
  float *pX[R], *pD[R];
  for (int q = 0; q < R; ++q) x[q] = xr[q], dy[q] = dr[q], pX[q] = px[q], pD[q] = pd[q];
  float *__restrict f0 = f[0], *__restrict f1 = f[1], *__restrict f2 = f[2];
  for (int64_t s0 = 0, s = 0; s0 < n; s0 += seg, ++s) {
    V g1[R], g2[R], muf[R], rf[R];
    for (int q = 0; q < R; ++q) g1[q] = g2[q] = V::zero(), muf[q] = V::set1(mufr[q][s]), rf[q] = V::set1(rfr[q][s]);
    for (int64_t j = s0; j < s0 + seg; j += V::W) {
      const V gc = V::load(gcn + j), mb = V::load(mub + j);
      V c0 = V::load(f0 + j), c1 = V::load(f1 + j), c2 = V::load(f2 + j);
      for (int q = 0; q < R; ++q) {
        if (nextX) __builtin_prefetch(nextX + q * nextStride + j, 0, 3), __builtin_prefetch(nextDy + q * nextStride + j, 0, 3);
        const V xv = V::load(x[q] + j), dv = V::load(dy[q] + j);
        if (PACK) xv.store(pX[q] + j), dv.store(pD[q] + j);
        const V tf = xv - muf[q], u = dv * gc;
        c0 = c0 + dv;
        c1 = V::fma(dv, xv - mb, c1);
        c2 = V::fma(dv * rf[q], tf, c2);
        g1[q] = g1[q] + u;
        g2[q] = V::fma(u, tf, g2[q]);
      }
      c0.store(f0 + j), c1.store(f1 + j), c2.store(f2 + j);
    }
    storeRowSums<V, R>(g1, g2, rowOut + s * 2, rowOutStride);
  }
}

// R rows from row i of a backward statistics tile.
template <class V, int R, bool NARROW>
inline void bwdStatsRows(const bln::BwdStatsTile& t, const SegTables& sg, int64_t i, int64_t seg, const int32_t* gi,
                         float (*f)[bln::kMaxTileCols]) {
  const int64_t n = t.n;
  const float *xr[R], *dr[R], *mufr[R], *rfr[R];
  float *px[R], *pd[R];
  alignas(64) float tu[NARROW ? R : 1][bln::kMaxTileCols], tt[NARROW ? R : 1][bln::kMaxTileCols];
  for (int q = 0; q < R; ++q) {
    xr[q] = t.x + (i + q) * t.rowStride;
    dr[q] = t.dy + (i + q) * t.rowStride;
    px[q] = t.packX ? t.packX + (i + q) * n : nullptr;
    pd[q] = t.packDy ? t.packDy + (i + q) * n : nullptr;
    mufr[q] = t.muf + (i + q) * t.coefStride;
    rfr[q] = t.rf + (i + q) * t.coefStride;
    if (i + q + bln::kPrefetchRows < t.rows) {
      prefetchRow(xr[q] + bln::kPrefetchRows * t.rowStride, n);
      prefetchRow(dr[q] + bln::kPrefetchRows * t.rowStride, n);
    }
  }
  if (NARROW) {
    int64_t j = 0;
    for (; j + V::W <= n; j += V::W) bwdStatsStep<V, R, true, V::W>(t, sg, xr, dr, px, pd, mufr, rfr, j, f, nullptr, nullptr, tu, tt);
    for (; j < n; ++j) bwdStatsStep<VScalar, R, true, V::W>(t, sg, xr, dr, px, pd, mufr, rfr, j, f, nullptr, nullptr, tu, tt);
    withSeg<V>(seg, [&](auto S) {
      for (int q = 0; q < R; ++q)
        bwdNarrowRowSums<V, decltype(S)::value>(tu[q], tt[q], n, seg, gi, t.rowOut + (i + q) * t.rowOutStride);
    });
    return;
  }
  if (seg % V::W == 0) {
    double* ro = t.rowOut + i * t.rowOutStride;
    const bool ahead = t.ahead && i + 2 * R <= t.rows;  // the next R rows, a line per line read (Plan::ahead)
    const float *nx = ahead ? xr[0] + R * t.rowStride : nullptr, *nd = ahead ? dr[0] + R * t.rowStride : nullptr;
    if (t.packX)
      bwdStatsSegs<V, R, true>(xr, dr, px, pd, mufr, rfr, n, seg, sg.ax, t.mub, f, ro, t.rowOutStride, nx, nd, t.rowStride);
    else
      bwdStatsSegs<V, R, false>(xr, dr, px, pd, mufr, rfr, n, seg, sg.ax, t.mub, f, ro, t.rowOutStride, nx, nd, t.rowStride);
    return;
  }
  for (int64_t s0 = 0, si = 0; s0 < n; s0 += seg, ++si) {
    const int64_t se = s0 + seg, n1 = se - seg % V::W;
    V g1[R], g2[R];
    VScalar h1[R], h2[R];
    const float *mufs[R], *rfs[R];
    for (int q = 0; q < R; ++q) {
      g1[q] = g2[q] = V::zero(), h1[q] = h2[q] = VScalar::zero();
      mufs[q] = mufr[q] + si, rfs[q] = rfr[q] + si;
    }
    int64_t j = s0;
    for (; j < n1; j += V::W) bwdStatsStep<V, R, false, V::W>(t, sg, xr, dr, px, pd, mufs, rfs, j, f, g1, g2, nullptr, nullptr);
    for (; j < se; ++j) bwdStatsStep<VScalar, R, false, V::W>(t, sg, xr, dr, px, pd, mufs, rfs, j, f, h1, h2, nullptr, nullptr);
    for (int q = 0; q < R; ++q) {
      double* o = t.rowOut + (i + q) * t.rowOutStride + si * 2;
      o[0] = g1[q].hsum() + (double)h1[q].v;
      o[1] = g2[q].hsum() + (double)h2[q].v;
    }
  }
}

// Rows four at a time (each column's partials loaded and stored once per four rows), added into
// double every kColFlushRows rows.
template <class V>
void bwdStatsKernel(const bln::BwdStatsTile& t) {
  const int64_t n = t.n;
  const int64_t seg = t.seg > 0 ? t.seg : n;
  SegTables sg;
  sg.init<V::W>(t.gc, nullptr, n, seg);
  const bool narrow = SegTables::narrow(n, seg, V::W);
  alignas(64) int32_t gi[V::W];
  for (int l = 0; l < V::W; ++l) gi[l] = static_cast<int32_t>(l * seg);
  alignas(64) float f[3][bln::kMaxTileCols];
  double d[3][bln::kMaxTileCols];
  for (int k = 0; k < 3; ++k)
    for (int64_t j = 0; j < n; ++j) f[k][j] = 0.f, d[k][j] = 0.0;
  constexpr int R = 4;
  int64_t i = 0, sinceFlush = 0;
  for (; i + R <= t.rows; i += R) {
    if (narrow)
      bwdStatsRows<V, R, true>(t, sg, i, seg, gi, f);
    else
      bwdStatsRows<V, R, false>(t, sg, i, seg, gi, f);
    if ((sinceFlush += R) == bln::kColFlushRows) {
      for (int k = 0; k < 3; ++k)
        for (int64_t c = 0; c < n; ++c) d[k][c] += f[k][c], f[k][c] = 0.f;
      sinceFlush = 0;
    }
  }
  for (; i < t.rows; ++i) {
    if (narrow)
      bwdStatsRows<V, 1, true>(t, sg, i, seg, gi, f);
    else
      bwdStatsRows<V, 1, false>(t, sg, i, seg, gi, f);
  }
  double* outs[3] = {t.colSdy, t.colSdyxb, t.colSdyxf};
  for (int k = 0; k < 3; ++k)
    for (int64_t c = 0; c < n; ++c) outs[k][c] = d[k][c] + f[k][c];
}

// bwdApplyKernel's common case, one row: segments of whole vectors, plain stores (see fwdApplySegs).
struct BwdColCoefs {
  const float *gc, *Wc, *mub, *U, *V;  // gc per channel (seg); the rest per column (n)
};
template <class V>
inline void bwdApplySegs(const float* __restrict xr, const float* __restrict dr, float* __restrict out, int64_t n,
                         int64_t seg, BwdColCoefs c, const float* Pr, const float* Qr, const float* Tr, const float* mr) {
  for (int64_t s0 = 0, s = 0; s0 < n; s0 += seg, ++s) {
    const V P = V::set1(Pr[s]), Q = V::set1(Qr[s]), T = V::set1(Tr[s]), muf = V::set1(mr[s]);
    for (int64_t j = 0; j < seg; j += V::W) {
      const int64_t k = s0 + j;
      const V xv = V::load(xr + k), g = V::load(dr + k) * V::load(c.gc + j);
      const V rf = V::fnma(T, xv - muf, V::fma(g, P, V::zero() - Q));
      const V rb = V::fnma(V::load(c.Wc + k), xv - V::load(c.mub + k), V::fma(g, V::load(c.U + k), V::zero() - V::load(c.V + k)));
      (rf + rb).store(out + k);
    }
  }
}

template <class V>
void bwdApplyKernel(const bln::BwdApplyTile& t) {
  const int64_t n = t.n;
  const int64_t seg = t.seg > 0 ? t.seg : n;
  // The tables for narrow segments only (then n <= kMaxTileCols); wide ones index gc per segment.
  const bool narrow = SegTables::narrow(n, seg, V::W);
  SegTables sg;
  if (narrow) sg.init<V::W>(t.gc, nullptr, n, seg);
  for (int64_t i = 0; i < t.rows; ++i) {
    const float* xrow = t.x + i * t.inStride;
    const float* drow = t.dy + i * t.inStride;
    float* orow = t.dx + i * t.rowStride;
    if (i + bln::kPrefetchRows < t.rows) prefetchRowForWrite(orow + bln::kPrefetchRows * t.rowStride, n);
    const int64_t ci = i * t.coefStride;
    // The two branches separately: each cancels within itself (g - mean(g) - ...).
    auto val = [&](auto tag, int64_t j, auto gc, auto P, auto Q, auto T, auto muf) {
      using VV = decltype(tag);
      VV xv = VV::load(xrow + j);
      VV g = VV::load(drow + j) * gc;
      VV rf = VV::fnma(T, xv - muf, VV::fma(g, P, VV::zero() - Q));
      VV rb = VV::fnma(VV::load(t.Wc + j), xv - VV::load(t.mub + j), VV::fma(g, VV::load(t.U + j), VV::zero() - VV::load(t.V + j)));
      return rf + rb;
    };
    if (narrow) {
      const float *Pr = t.P + ci, *Qr = t.Q + ci, *Tr = t.T + ci, *mr = t.muf + ci;
      writeRow<V>(orow, n, t.stream, [&](auto tag, int64_t j) {
        using VV = decltype(tag);
        return val(tag, j, VV::load(sg.ax + j), sg.spread<VV, V::W>(Pr, j), sg.spread<VV, V::W>(Qr, j),
                   sg.spread<VV, V::W>(Tr, j), sg.spread<VV, V::W>(mr, j));
      });
      continue;
    }
    if (!t.stream && seg % V::W == 0) {
      bwdApplySegs<V>(xrow, drow, orow, n, seg, {t.gc, t.Wc, t.mub, t.U, t.V}, t.P + ci, t.Q + ci, t.T + ci, t.muf + ci);
      continue;
    }
    for (int64_t s0 = 0, si = 0; s0 < n; s0 += seg, ++si) {
      const float P = t.P[ci + si], Q = t.Q[ci + si], T = t.T[ci + si], muf = t.muf[ci + si];
      writeRow<V>(orow + s0, seg, t.stream, [&](auto tag, int64_t j) {
        using VV = decltype(tag);
        return val(tag, s0 + j, VV::load(t.gc + j), VV::set1(P), VV::set1(Q), VV::set1(T), VV::set1(muf));
      });
    }
  }
  if (t.stream) V::fence();
}
