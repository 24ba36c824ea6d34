// Forward and inference statistics kernels (the apply kernels: kernels_apply_impl.h).
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
// every pointer a local, for the reason fwdApplySegs gives (kernels_apply_impl.h); the same
// arithmetic, but the lanes of the row sums go through storeRowSums.
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
