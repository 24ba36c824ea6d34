// Forward and inference kernels, and writeRow, which the backward ones share.
// Part of kernels_impl.h (included inside each kernels_<level>.cpp's anonymous namespace).

// Column j's float32 partials, shifted around colShift, with R rows' values v added (loaded and
// stored once for the R rows).
template <class VV, int R>
inline void addColPartials(const VV* v, const float* __restrict colShift, float* __restrict f1, float* __restrict f2,
                           int64_t j) {
  const VV c = VV::load(colShift + j);
  VV d = v[0] - c;
  VV s1 = d, s2 = VV::fma(d, d, VV::load(f2 + j));
  for (int q = 1; q < R; ++q) {
    d = v[q] - c;
    s1 = s1 + d;
    s2 = VV::fma(d, d, s2);
  }
  (VV::load(f1 + j) + s1).store(f1 + j);
  s2.store(f2 + j);
}

// One step of fwdStatsKernel at column j for R rows (VV: the full vector or the scalar tail): the
// packing, the column partials (loaded and stored once for the R rows) and each row's lanes.
template <class VV, int R, bool COL, bool ROW>
inline void fwdStatsStep(const bln::FwdStatsTile& t, const float* const* r, float* const* pk, int64_t j, float* f1,
                         float* f2, const float* kr, VV* a1, VV* a2) {
  VV v[R];
  for (int q = 0; q < R; ++q) {
    v[q] = VV::load(r[q] + j);
    if (pk[q]) v[q].store(pk[q] + j);
  }
  if (COL) addColPartials<VV, R>(v, t.colShift, f1, f2, j);
  if (ROW)
    for (int q = 0; q < R; ++q) {
      const VV e = v[q] - VV::set1(kr[q]);
      a1[q] = a1[q] + e;
      a2[q] = VV::fma(e, e, a2[q]);
    }
}

// fwdStatsRows' common case: segments of whole vectors, each within one float32 run. Apart, with
// every pointer a local, for the reason fwdApplySegs gives; the same arithmetic, but the lanes of the
// row sums go through storeRowSums.
template <class V, int R, bool COL, bool ROW, bool PACK>
inline void fwdStatsSegs(const float* const* r, float* const* pk, int64_t n, int64_t seg, int64_t c0,
                         const float* __restrict colShift, float* __restrict f1, float* __restrict f2, float* rowShift,
                         int64_t rowShiftStride, double* rowOut, int64_t rowOutStride, const float* next,
                         int64_t nextStride) {
  const float* rr[R];
  float* pp[R];
  for (int q = 0; q < R; ++q) rr[q] = r[q], pp[q] = pk[q];
  for (int64_t s0 = 0, s = 0; s0 < n; s0 += seg, ++s) {
    V k[R], a1[R], a2[R];
    for (int q = 0; q < R; ++q) {
      const float kr = ROW ? rr[q][s0 - c0] : 0.f;
      if (ROW && rowShift) rowShift[q * rowShiftStride + s] = kr;
      k[q] = V::set1(kr), a1[q] = a2[q] = V::zero();
    }
    for (int64_t j = s0; j < s0 + seg; j += V::W) {
      V v[R];
      for (int q = 0; q < R; ++q) {
        if (next) __builtin_prefetch(next + q * nextStride + j, 0, 3);
        v[q] = V::load(rr[q] + j);
        if (PACK) v[q].store(pp[q] + j);
      }
      if (COL) addColPartials<V, R>(v, colShift, f1, f2, j);
      if (ROW)
        for (int q = 0; q < R; ++q) {
          const V e = v[q] - k[q];
          a1[q] = a1[q] + e;
          a2[q] = V::fma(e, e, a2[q]);
        }
    }
    if (ROW) storeRowSums<V, R>(a1, a2, rowOut + s * 2, rowOutStride);
  }
}

// R rows from row i of a statistics tile, segment by segment (`seg` columns; rows: ROW).
template <class V, int R, bool COL, bool ROW>
inline void fwdStatsRows(const bln::FwdStatsTile& t, int64_t i, int64_t seg, float* f1, float* f2) {
  const int64_t n = t.n;
  const float* r[R];
  float* pk[R];
  for (int q = 0; q < R; ++q) {
    r[q] = t.x + (i + q) * t.rowStride;
    pk[q] = t.pack ? t.pack + (i + q) * n : nullptr;
    if (i + q + bln::kPrefetchRows < t.rows) prefetchRow(r[q] + bln::kPrefetchRows * t.rowStride, n);
  }
  // Row lanes run in float32 over at most kRowRun columns before going to double.
  constexpr int64_t kRowRun = 32 * V::W;
  // The next R rows, asked for a line per line read here (Plan::ahead).
  const float* next = t.ahead && i + 2 * R <= t.rows ? r[0] + R * t.rowStride : nullptr;
  if (seg % V::W == 0 && seg <= kRowRun) {
    float* rs = ROW && t.rowShift ? t.rowShift + i * t.rowShiftStride : nullptr;
    double* ro = ROW ? t.rowOut + i * t.rowOutStride : nullptr;
    if (t.pack)
      fwdStatsSegs<V, R, COL, ROW, true>(r, pk, n, seg, t.c0, t.colShift, f1, f2, rs, t.rowShiftStride, ro, t.rowOutStride,
                                         next, t.rowStride);
    else
      fwdStatsSegs<V, R, COL, ROW, false>(r, pk, n, seg, t.c0, t.colShift, f1, f2, rs, t.rowShiftStride, ro, t.rowOutStride,
                                          next, t.rowStride);
    return;
  }
  for (int64_t s0 = 0, si = 0; s0 < n; s0 += seg, ++si) {
    const int64_t se = s0 + seg, n1 = se - seg % V::W;
    float kr[R];
    V a1[R], a2[R];
    VScalar h1[R], h2[R];
    double rs1[R], rs2[R];
    for (int q = 0; q < R; ++q) {
      kr[q] = ROW ? r[q][s0 - t.c0] : 0.f;
      if (ROW && t.rowShift) t.rowShift[(i + q) * t.rowShiftStride + si] = kr[q];
      a1[q] = a2[q] = V::zero();
      h1[q] = h2[q] = VScalar::zero();
      rs1[q] = rs2[q] = 0;
    }
    int64_t j = s0;
    while (j < n1) {
      const int64_t runEnd = j + kRowRun < n1 ? j + kRowRun : n1;
      for (; j < runEnd; j += V::W) {
        if (next)
          for (int q = 0; q < R; ++q) __builtin_prefetch(next + q * t.rowStride + j, 0, 3);
        fwdStatsStep<V, R, COL, ROW>(t, r, pk, j, f1, f2, kr, a1, a2);
      }
      if (ROW)
        for (int q = 0; q < R; ++q) rs1[q] += a1[q].hsum(), rs2[q] += a2[q].hsum(), a1[q] = a2[q] = V::zero();
    }
    for (; j < se; ++j) fwdStatsStep<VScalar, R, COL, ROW>(t, r, pk, j, f1, f2, kr, h1, h2);
    if (ROW)
      for (int q = 0; q < R; ++q) {
        double* o = t.rowOut + (i + q) * t.rowOutStride + si * 2;
        o[0] = rs1[q] + (double)h1[q].v;
        o[1] = rs2[q] + (double)h2[q].v;
      }
  }
}

// Row sums of `seg`-wide segments narrower than a vector (fwdStatsKernel's narrow case; the row
// is in L1 from the column pass): W segments at a time, lane l taking segment l's values (by a
// transpose where the level has one, VAvx512::segTranspose with SEG = seg, else by gathers: SEG =
// 0), each lane summing in float32 in the same order as the scalar tail.
template <class V, int SEG>
inline void fwdStatsNarrowRows(const bln::FwdStatsTile& t, int64_t i, int64_t seg, const int32_t* gi) {
  const float* r = t.x + i * t.rowStride;
  double* o = t.rowOut + i * t.rowOutStride;
  const int64_t nseg = t.n / seg;
  int64_t s = 0;
  if constexpr (SEG > 0)
    for (; t.c0 == 0 && s + V::W <= nseg; s += V::W) {
      V g[SEG];
      V::template segTranspose<SEG>(r + s * SEG, g);
      if (t.rowShift) g[0].store(t.rowShift + i * t.rowShiftStride + s);
      V a1 = V::zero(), a2 = V::zero();
      for (int c = 0; c < SEG; ++c) {
        const V e = g[c] - g[0];
        a1 = a1 + e;
        a2 = V::fma(e, e, a2);
      }
      V::storePairs(o + s * 2, a1, a2);
    }
  for (; s + V::W <= nseg; s += V::W) {
    const float* base = r + s * seg;
    const V k = V::gather(base - t.c0, gi);
    if (t.rowShift) k.store(t.rowShift + i * t.rowShiftStride + s);
    V a1 = V::zero(), a2 = V::zero();
    for (int64_t c = 0; c < seg; ++c) {
      const V e = V::gather(base + c, gi) - k;
      a1 = a1 + e;
      a2 = V::fma(e, e, a2);
    }
    V::storePairs(o + s * 2, a1, a2);
  }
  for (; s < nseg; ++s) {
    const float* base = r + s * seg;
    const VScalar k = VScalar::set1(base[-t.c0]);
    if (t.rowShift) t.rowShift[i * t.rowShiftStride + s] = k.v;
    VScalar a1 = VScalar::zero(), a2 = VScalar::zero();
    for (int64_t c = 0; c < seg; ++c) {
      const VScalar e = VScalar::load(base + c) - k;
      a1 = a1 + e;
      a2 = VScalar::fma(e, e, a2);
    }
    o[s * 2] = (double)a1.v;
    o[s * 2 + 1] = (double)a2.v;
  }
}

// Rows go four at a time, so each column's float32 partials are loaded and stored once per four
// rows; the partials are added into double every kColFlushRows rows (a multiple of four).
template <class V, bool COL, bool ROW>
void fwdStatsKernel(const bln::FwdStatsTile& t) {
  const int64_t n = t.n;
  alignas(64) float f1[bln::kMaxTileCols];
  alignas(64) float f2[bln::kMaxTileCols];
  double d1[bln::kMaxTileCols];
  double d2[bln::kMaxTileCols];
  if (COL) {
    for (int64_t j = 0; j < n; ++j) f1[j] = f2[j] = 0.f, d1[j] = d2[j] = 0.0;
  }
  const int64_t seg = t.seg > 0 ? t.seg : n;
  // Segments narrower than a vector (tiles of several m at small C, e.g. C = 6): the column sums
  // and the packing run over the whole row in vectors, and each segment's row sums apart.
  const bool narrow = SegTables::narrow(n, seg, V::W);
  alignas(64) int32_t gi[V::W];  // narrow: lane l reads segment l
  for (int l = 0; l < V::W; ++l) gi[l] = static_cast<int32_t>(l * seg);
  auto narrowRows = [&](int64_t i0, int64_t nr) {
    withSeg<V>(seg, [&](auto S) {
      for (int64_t q = 0; q < nr; ++q) fwdStatsNarrowRows<V, decltype(S)::value>(t, i0 + q, seg, gi);
    });
  };
  constexpr int64_t R = 4;
  static_assert(bln::kColFlushRows % R == 0, "row blocks must not straddle a flush");
  int64_t i = 0, sinceFlush = 0;
  auto flush = [&] {
    for (int64_t k = 0; k < n; ++k) d1[k] += f1[k], d2[k] += f2[k], f1[k] = f2[k] = 0.f;
    sinceFlush = 0;
  };
  for (; i + R <= t.rows; i += R) {
    if (narrow) {
      fwdStatsRows<V, R, COL, false>(t, i, n, f1, f2);
      if (ROW) narrowRows(i, R);
    } else {
      fwdStatsRows<V, R, COL, ROW>(t, i, seg, f1, f2);
    }
    if (COL && (sinceFlush += R) == bln::kColFlushRows) flush();
  }
  for (; i < t.rows; ++i) {
    if (narrow) {
      fwdStatsRows<V, 1, COL, false>(t, i, n, f1, f2);
      if (ROW) narrowRows(i, 1);
    } else {
      fwdStatsRows<V, 1, COL, ROW>(t, i, seg, f1, f2);
    }
  }
  if (COL) {
    for (int64_t k = 0; k < n; ++k) {
      t.colS1[k] = d1[k] + f1[k];
      t.colS2[k] = d2[k] + f2[k];
    }
  }
}

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
