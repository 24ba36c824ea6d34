// Kernel bodies, written once over a vector type V (simd.h). Each is instantiated
// for V (full vectors) and finishes a row with VScalar (the tail), so every size,
// C = 1 included, runs the same arithmetic. Included by kernels_<level>.cpp inside
// an anonymous namespace (see simd.h).
//
// Numerics: forward sums are shifted sums (around a sample of the row/column), kept
// in float32 only over short runs (a row tile, or kColFlushRows rows of a column)
// and then added in double. Data with a large common offset (1e4 + N(0,1)) keeps
// ~1e-6 relative accuracy that way.

inline void prefetchRow(const float* p, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) __builtin_prefetch(p + j, 0, 3);
  __builtin_prefetch(p + n - 1, 0, 3);
}
// Asks for an output row ahead of its stores (its read-for-ownership misses then overlap).
inline void prefetchRowForWrite(float* p, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) __builtin_prefetch(p + j, 1, 3);
  __builtin_prefetch(p + n - 1, 1, 3);
}

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
  int64_t sinceFlush = 0;
  auto colStep = [&](auto v, int64_t j) {
    using VV = decltype(v);
    VV d = v - VV::load(t.colShift + j);
    (VV::load(f1 + j) + d).store(f1 + j);
    VV::fma(d, d, VV::load(f2 + j)).store(f2 + j);
  };
  const int64_t seg = t.seg > 0 ? t.seg : n;
  // Segments narrower than a vector (tiles of several m at small C, e.g. C = 6): the column sums
  // and the packing run over the whole row in vectors, and each segment's row sums in float32 over
  // its few values (what the segment loop below would do with them, without its per-segment
  // vector set-up and reductions).
  const bool narrow = seg < n && seg < V::W;
  for (int64_t i = 0; i < t.rows; ++i) {
    const float* r = t.x + i * t.rowStride;
    if (i + bln::kPrefetchRows < t.rows) prefetchRow(r + bln::kPrefetchRows * t.rowStride, n);
    float* pk = t.pack ? t.pack + i * n : nullptr;
    if (narrow) {
      int64_t j = 0;
      for (; j + V::W <= n; j += V::W) {
        V v = V::load(r + j);
        if (pk) v.store(pk + j);
        if (COL) colStep(v, j);
      }
      for (; j < n; ++j) {
        VScalar v = VScalar::load(r + j);
        if (pk) v.store(pk + j);
        if (COL) colStep(v, j);
      }
      if (ROW)
        for (int64_t s0 = 0; s0 < n; s0 += seg) {
          const VScalar ks = VScalar::set1(r[s0 - t.c0]);
          VScalar s1 = VScalar::zero(), s2 = VScalar::zero();
          for (int64_t k = s0; k < s0 + seg; ++k) {
            VScalar e = VScalar::load(r + k) - ks;
            s1 = s1 + e;
            s2 = VScalar::fma(e, e, s2);
          }
          double* o = t.rowOut + i * t.rowOutStride + (s0 / seg) * 2;
          o[0] = (double)s1.v;
          o[1] = (double)s2.v;
        }
    }
    for (int64_t s0 = 0; s0 < n && !narrow; s0 += seg) {
      const int64_t se = s0 + seg;
      const int64_t n2 = se - seg % (2 * V::W);
      const int64_t n1 = se - seg % V::W;
      const float kr = ROW ? r[s0 - t.c0] : 0.f;
      const V ks = V::set1(kr);
      V a1 = V::zero(), a2 = V::zero(), b1 = V::zero(), b2 = V::zero();
      double rs1 = 0, rs2 = 0;
      int64_t j = s0;
      // Row lanes run in float32 over at most kRowRun vectors before going to double.
      constexpr int64_t kRowRun = 64 * V::W;
      while (j < n2) {
        const int64_t segEnd = j + kRowRun < n2 ? j + kRowRun : n2;
        for (; j < segEnd; j += 2 * V::W) {
          V v = V::load(r + j);
          V w = V::load(r + j + V::W);
          if (pk) v.store(pk + j), w.store(pk + j + V::W);
          if (COL) {
            colStep(v, j);
            colStep(w, j + V::W);
          }
          if (ROW) {
            V e = v - ks, g = w - ks;
            a1 = a1 + e;
            a2 = V::fma(e, e, a2);
            b1 = b1 + g;
            b2 = V::fma(g, g, b2);
          }
        }
        if (ROW && j < n2) {
          rs1 += (a1 + b1).hsum(), rs2 += (a2 + b2).hsum();
          a1 = a2 = b1 = b2 = V::zero();
        }
      }
      for (; j < n1; j += V::W) {
        V v = V::load(r + j);
        if (pk) v.store(pk + j);
        if (COL) colStep(v, j);
        if (ROW) {
          V e = v - ks;
          a1 = a1 + e;
          a2 = V::fma(e, e, a2);
        }
      }
      VScalar s1 = VScalar::zero(), s2 = VScalar::zero();
      for (; j < se; ++j) {
        VScalar v = VScalar::load(r + j);
        if (pk) v.store(pk + j);
        if (COL) colStep(v, j);
        if (ROW) {
          VScalar e = v - VScalar::set1(kr);
          s1 = s1 + e;
          s2 = VScalar::fma(e, e, s2);
        }
      }
      if (ROW) {
        double* o = t.rowOut + i * t.rowOutStride + (s0 / seg) * 2;
        o[0] = rs1 + (a1 + b1).hsum() + (double)s1.v;
        o[1] = rs2 + (a2 + b2).hsum() + (double)s2.v;
      }
    }
    if (COL && ++sinceFlush == bln::kColFlushRows) {
      for (int64_t k = 0; k < n; ++k) d1[k] += f1[k], d2[k] += f2[k], f1[k] = f2[k] = 0.f;
      sinceFlush = 0;
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

template <class V>
void fwdApplyKernel(const bln::FwdApplyTile& t) {
  const int64_t n = t.n;
  const int64_t seg = t.seg > 0 ? t.seg : n;
  // Segments narrower than a vector (see fwdStatsKernel): the per-segment coefficients are spread
  // over the row's elements first, so the row is one vector pass with the same arithmetic per element.
  const bool narrow = seg < n && seg < V::W;
  alignas(64) float gcx[bln::kMaxTileCols], bex[bln::kMaxTileCols], Fx[bln::kMaxTileCols], mhx[bln::kMaxTileCols],
      mlx[bln::kMaxTileCols];
  if (narrow)
    for (int64_t s0 = 0; s0 < n; s0 += seg)
      for (int64_t k = 0; k < seg; ++k) gcx[s0 + k] = t.gc[k], bex[s0 + k] = t.beta[k];
  for (int64_t i = 0; i < t.rows; ++i) {
    const float* xrow = t.x + i * t.xStride;
    float* yrow = t.y + i * t.rowStride;
    if (i + bln::kPrefetchRows < t.rows) prefetchRowForWrite(yrow + bln::kPrefetchRows * t.rowStride, n);
    if (narrow) {
      for (int64_t s0 = 0, s = 0; s0 < n; s0 += seg, ++s) {
        const float F = t.F[i * t.coefStride + s], mh = t.mfh[i * t.coefStride + s], ml = t.mfl[i * t.coefStride + s];
        for (int64_t k = 0; k < seg; ++k) Fx[s0 + k] = F, mhx[s0 + k] = mh, mlx[s0 + k] = ml;
      }
      writeRow<V>(yrow, n, t.stream, [&](auto tag, int64_t j) {
        using VV = decltype(tag);
        VV xv = VV::load(xrow + j);
        VV tb = (xv - VV::load(t.mbh + j)) - VV::load(t.mbl + j);
        VV acc = VV::fma(VV::load(t.A + j), tb, VV::load(bex + j));
        VV tf = (xv - VV::load(mhx + j)) - VV::load(mlx + j);
        return VV::fma(VV::load(gcx + j) * VV::load(Fx + j), tf, acc);
      });
      continue;
    }
    for (int64_t s0 = 0, s = 0; s0 < n; s0 += seg, ++s) {
      const float* xr = xrow + s0;
      float* yr = yrow + s0;
      const float* mbh = t.mbh + s0;
      const float* mbl = t.mbl + s0;
      const float* A = t.A + s0;
      const float F = t.F[i * t.coefStride + s];
      const float mh = t.mfh[i * t.coefStride + s];
      const float ml = t.mfl[i * t.coefStride + s];
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
void bwdStatsKernel(const bln::BwdStatsTile& t) {
  const int64_t n = t.n;
  alignas(64) float f[3][bln::kMaxTileCols];
  double d[3][bln::kMaxTileCols];
  for (int k = 0; k < 3; ++k)
    for (int64_t j = 0; j < n; ++j) f[k][j] = 0.f, d[k][j] = 0.0;
  const int64_t n1 = n - n % V::W;
  int64_t sinceFlush = 0;
  for (int64_t i = 0; i < t.rows; ++i) {
    const float* xr = t.x + i * t.rowStride;
    const float* dr = t.dy + i * t.rowStride;
    if (i + bln::kPrefetchRows < t.rows) {
      prefetchRow(xr + bln::kPrefetchRows * t.rowStride, n);
      prefetchRow(dr + bln::kPrefetchRows * t.rowStride, n);
    }
    float* px = t.packX ? t.packX + i * n : nullptr;
    float* pd = t.packDy ? t.packDy + i * n : nullptr;
    const float muf = t.muf[i * t.coefStride];
    const float rf = t.rf[i * t.coefStride];
    V g1 = V::zero(), g2 = V::zero();
    VScalar h1 = VScalar::zero(), h2 = VScalar::zero();
    auto step = [&](auto xv, auto dv, int64_t j, auto& r1, auto& r2) {
      using VV = decltype(xv);
      if (px) xv.store(px + j), dv.store(pd + j);
      VV tf = xv - VV::set1(muf);
      VV u = dv * VV::load(t.gc + j);
      r1 = r1 + u;
      r2 = VV::fma(u, tf, r2);
      (VV::load(f[0] + j) + dv).store(f[0] + j);
      VV::fma(dv, xv - VV::load(t.mub + j), VV::load(f[1] + j)).store(f[1] + j);
      VV::fma(dv * VV::set1(rf), tf, VV::load(f[2] + j)).store(f[2] + j);
    };
    int64_t j = 0;
    for (; j < n1; j += V::W) step(V::load(xr + j), V::load(dr + j), j, g1, g2);
    for (; j < n; ++j) step(VScalar::load(xr + j), VScalar::load(dr + j), j, h1, h2);
    double* o = t.rowOut + i * t.rowOutStride;
    o[0] = g1.hsum() + (double)h1.v;
    o[1] = g2.hsum() + (double)h2.v;
    if (++sinceFlush == bln::kColFlushRows) {
      for (int k = 0; k < 3; ++k)
        for (int64_t c = 0; c < n; ++c) d[k][c] += f[k][c], f[k][c] = 0.f;
      sinceFlush = 0;
    }
  }
  double* outs[3] = {t.colSdy, t.colSdyxb, t.colSdyxf};
  for (int k = 0; k < 3; ++k)
    for (int64_t c = 0; c < n; ++c) outs[k][c] = d[k][c] + f[k][c];
}

template <class V>
void bwdApplyKernel(const bln::BwdApplyTile& t) {
  const int64_t n = t.n;
  for (int64_t i = 0; i < t.rows; ++i) {
    const float* xr = t.x + i * t.inStride;
    const float* dr = t.dy + i * t.inStride;
    float* outr = t.dx + i * t.rowStride;
    if (i + bln::kPrefetchRows < t.rows) prefetchRowForWrite(outr + bln::kPrefetchRows * t.rowStride, n);
    const float P = t.P[i * t.coefStride];
    const float Q = t.Q[i * t.coefStride];
    const float T = t.T[i * t.coefStride];
    const float muf = t.muf[i * t.coefStride];
    writeRow<V>(outr, n, t.stream, [&](auto tag, int64_t j) {
      using VV = decltype(tag);
      VV xv = VV::load(xr + j);
      VV g = VV::load(dr + j) * VV::load(t.gc + j);
      // The two branches separately: each cancels within itself (g - mean(g) - ...).
      VV rf = VV::fnma(VV::set1(T), xv - VV::set1(muf), VV::fma(g, VV::set1(P), VV::zero() - VV::set1(Q)));
      VV rb = VV::fnma(VV::load(t.Wc + j), xv - VV::load(t.mub + j), VV::fma(g, VV::load(t.U + j), VV::zero() - VV::load(t.V + j)));
      return rf + rb;
    });
  }
  if (t.stream) V::fence();
}

template <class V>
bln::KernelTable makeKernelTable(bln::SimdLevel level) {
  bln::KernelTable k;
  k.level = level;
  k.width = V::W;
  k.fwdStats[0] = &fwdStatsKernel<V, true, true>;
  k.fwdStats[1] = &fwdStatsKernel<V, true, false>;
  k.fwdStats[2] = &fwdStatsKernel<V, false, true>;
  k.fwdApply = &fwdApplyKernel<V>;
  k.bwdStats = &bwdStatsKernel<V>;
  k.bwdApply = &bwdApplyKernel<V>;
  return k;
}
