// Forward and inference kernels of the CUDA path (see bln_kernels.cuh for the design).
//
// Numerics (BLN-SPEC.md, "Numerics"): sums are shifted sums around a sample of the
// row/column (the data minus one of its own values), accumulated in float32 over
// short runs (<= 32 rows of a column, <= 64 elements of a lane's share of a row) and
// then in double; partials of different tiles are merged as (count, mean, M2) with
// Chan's formula in double. Means reach the output as hi + lo float pairs. Data with
// a large common offset (1e4 + N(0,1)) keeps ~1e-6 relative accuracy.
#include <cmath>

#include "bln_kernels.cuh"

namespace bln {
namespace gpu {
namespace {

// Column coefficients of the output from a column's mean and biased variance (after
// the population overrides of inference); writes the forward statistics.
BLN_DEV void colFinal(const FwdK& k, int64_t mc, int64_t c, double mean, double var, float* h, float* l, float* A) {
  if (k.useBm) mean = k.popBm[mc];
  if (k.useBv) var = k.popBv[mc];
  if (k.outBm) k.outBm[mc] = static_cast<float>(mean), k.outBv[mc] = static_cast<float>(var);
  splitHiLo(mean, h, l);
  const float gcw = static_cast<float>(static_cast<double>(k.gamma[c]) * k.invSqrtC * k.wb);
  *A = gcw * invStd(var, k.eps);
}

// Row coefficients; `write` selects the one lane that stores the statistics.
BLN_DEV void rowFinal(const FwdK& k, int64_t r, double mean, double var, bool write, float* h, float* l, float* F) {
  if (k.useFm || k.useFv) {
    const int64_t m = r % k.M;
    if (k.useFm) mean = k.popFm[m];
    if (k.useFv) var = k.popFv[m];
  }
  if (write && k.outFm) k.outFm[r] = static_cast<float>(mean), k.outFv[r] = static_cast<float>(var);
  splitHiLo(mean, h, l);
  *F = k.fScale * invStd(var, k.eps);
}

// y = gamma*F*((x - mfh) - mfl) + A*((x - mbh) - mbl) + beta, for V columns.
template <int V>
BLN_DEV void applyV(const float* xv, const float* g, const float* be, const float* bh, const float* bl, const float* A,
                    float F, float fh, float fl, float* out) {
#pragma unroll
  for (int q = 0; q < V; ++q) {
    const float tb = (xv[q] - bh[q]) - bl[q];
    const float acc = fmaf(A[q], tb, be[q]);
    const float tf = (xv[q] - fh) - fl;
    out[q] = fmaf(g[q] * F, tf, acc);
  }
}

// ------------------------------------------------------------------ slab kernel
// One block per m (grid-stride over m). Shared memory: see fwdSlabLayout.
template <int V>
__global__ void __launch_bounds__(kThreads) fwdSlabKernel(const FwdK k) {
  BLN_DYNAMIC_SMEM(smem);
  const int B = static_cast<int>(k.B), C = static_cast<int>(k.C);
  const int64_t M = k.M;
  const FwdSlabLayout L = fwdSlabLayout(B, C);
  double* red = reinterpret_cast<double*>(smem + L.red);
  float* colH = reinterpret_cast<float*>(smem + L.colH);
  float* colL = reinterpret_cast<float*>(smem + L.colL);
  float* colA = reinterpret_cast<float*>(smem + L.colA);
  float* slab = reinterpret_cast<float*>(smem + L.slab);
  const int tid = threadIdx.x;
  const int nv = C / V;  // vectors per row
  const LaneGroup lg = laneGroup(k.lpr);
  const int lpr = lg.lpr, gl = lg.lane, grp = lg.group, nGroups = lg.groups;
  const int G = columnGroups(C);

  for (int64_t m = blockIdx.x; m < M; m += gridDim.x) {
    // 1. the slab, once from global memory
    loadSlab<V>(k.x + m * C, B, M, C, slab);
    __syncthreads();

    // 2. column statistics (G groups of rows per column when C < kThreads)
    auto colSums = [&](int c, int b0, int step, double* S1, double* S2) {
      const float K = slab[c];
      float f1 = 0.f, f2 = 0.f;
      double d1 = 0, d2 = 0;
      int run = 0;
      for (int b = b0; b < B; b += step) {
        const float d = slab[b * C + c] - K;
        f1 += d;
        f2 = fmaf(d, d, f2);
        if (++run == 32) d1 += f1, d2 += f2, f1 = f2 = 0.f, run = 0;
      }
      *S1 = d1 + f1, *S2 = d2 + f2;
    };
    auto colFinish = [&](int c, double S1, double S2) {
      double mean = 0, var = 0;
      if (k.needCol) statsFromSums(slab + c, B, C, 1.0 / B, S1, S2, &mean, &var);
      colFinal(k, m * C + c, c, mean, var, &colH[c], &colL[c], &colA[c]);
    };
    if (G == 1) {
      for (int c = tid; c < C; c += kThreads) {
        double S1 = 0, S2 = 0;
        if (k.needCol) colSums(c, 0, 1, &S1, &S2);
        colFinish(c, S1, S2);
      }
    } else {
      if (k.needCol && tid < G * C) {
        double S1, S2;
        colSums(tid % C, tid / C, G, &S1, &S2);
        red[2 * tid] = S1, red[2 * tid + 1] = S2;
      }
      __syncthreads();
      for (int c = tid; c < C; c += kThreads) {
        double S1 = 0, S2 = 0;
        if (k.needCol)
          for (int g = 0; g < G; ++g) S1 += red[2 * (g * C + c)], S2 += red[2 * (g * C + c) + 1];
        colFinish(c, S1, S2);
      }
    }
    __syncthreads();

    // 3. per row: statistics (a group of lpr lanes), then that row's output. The round
    // count is the same for every thread so that whole warps run the shuffles.
    const int rounds = (B + nGroups - 1) / nGroups;
    for (int rd = 0; rd < rounds; ++rd) {
      const int b = rd * nGroups + grp;
      const bool valid = b < B;
      const float* row = slab + (valid ? b : 0) * C;
      const int64_t r = static_cast<int64_t>(valid ? b : 0) * M + m;
      double mean = 0, var = 0;
      if (k.needRow) {
        const float K = row[0];
        float f1 = 0.f, f2 = 0.f;
        double d1 = 0, d2 = 0;
        int run = 0;
        for (int j = gl; j < nv; j += lpr) {
          float v[V];
          Vec<V>::ld(row + j * V, v);
#pragma unroll
          for (int q = 0; q < V; ++q) {
            const float d = v[q] - K;
            f1 += d;
            f2 = fmaf(d, d, f2);
          }
          if (++run == 64 / V) d1 += f1, d2 += f2, f1 = f2 = 0.f, run = 0;
        }
        const double S1 = groupSum(d1 + f1, lpr), S2 = groupSum(d2 + f2, lpr);
        statsFromSums(row, C, 1, 1.0 / C, S1, S2, &mean, &var);
      }
      if (valid) {
        float fh, fl, F;
        rowFinal(k, r, mean, var, gl == 0, &fh, &fl, &F);
        float* yr = k.y + r * C;
        for (int j = gl; j < nv; j += lpr) {
          const int c = j * V;
          float xv[V], g[V], be[V], out[V];
          Vec<V>::ld(row + c, xv);
          Vec<V>::ldg(k.gamma + c, g);
          Vec<V>::ldg(k.beta + c, be);
          applyV<V>(xv, g, be, colH + c, colL + c, colA + c, F, fh, fl, out);
          Vec<V>::stcs(yr + c, out);
        }
      }
    }
    __syncthreads();  // the next m reuses the shared memory
  }
}

// ------------------------------------------------------------------ tiled: statistics
// Tile t = ((m * nChunks) + chunk) * nCT + ct: rows [chunk*chunkRows, +chunkRows) of
// columns [ct*tw, +tw) of one m. Lane group (lpr lanes, V columns each) per row.
template <int V>
__global__ void __launch_bounds__(kThreads) fwdStatsKernel(const FwdK k) {
  BLN_DYNAMIC_SMEM(smem);
  double* red1 = reinterpret_cast<double*>(smem);  // [kThreads*V]: row group y, column j at y*tw + j
  double* red2 = red1 + kThreads * V;
  const int tid = threadIdx.x;
  const int lpr = k.lpr, gl = tid & (lpr - 1), grp = tid / lpr, NY = kThreads / lpr, tw = k.tw;
  const int64_t B = k.B, M = k.M, C = k.C, MC = M * C;

  for (int64_t t = blockIdx.x; t < k.nTiles; t += gridDim.x) {
    const int64_t ct = t % k.nCT;
    const int64_t rest = t / k.nCT;
    const int64_t chunk = rest % k.nChunks;
    const int64_t m = rest / k.nChunks;
    const int64_t c = ct * tw + static_cast<int64_t>(gl) * V;
    const bool cval = c < C;
    const int64_t b0 = chunk * k.chunkRows;
    const int64_t b1 = b0 + k.chunkRows < B ? b0 + k.chunkRows : B;
    const int rounds = static_cast<int>((b1 - b0 + NY - 1) / NY);
    const float* xm = k.x + m * C;
    const int64_t nRowCols = C - ct * tw < tw ? C - ct * tw : tw;

    float Kc[V], f1[V], f2[V];
    double d1[V], d2[V];
#pragma unroll
    for (int q = 0; q < V; ++q) Kc[q] = 0.f, f1[q] = f2[q] = 0.f, d1[q] = d2[q] = 0.0;
    if (k.needCol && cval) Vec<V>::ldg(xm + b0 * MC + c, Kc);

    for (int rd = 0; rd < rounds; ++rd) {
      const int64_t b = b0 + static_cast<int64_t>(rd) * NY + grp;
      const bool rv = b < b1;
      float v[V];
#pragma unroll
      for (int q = 0; q < V; ++q) v[q] = 0.f;
      if (rv && cval) Vec<V>::ldg(xm + b * MC + c, v);
      if (k.needCol) {
        if (rv && cval) {
#pragma unroll
          for (int q = 0; q < V; ++q) {
            const float d = v[q] - Kc[q];
            f1[q] += d;
            f2[q] = fmaf(d, d, f2[q]);
          }
        }
        if ((rd & 31) == 31) {
#pragma unroll
          for (int q = 0; q < V; ++q) d1[q] += f1[q], d2[q] += f2[q], f1[q] = f2[q] = 0.f;
        }
      }
      if (k.needRow) {
        const float Kr = groupFirst(v[0], lpr);  // x[b, m, ct*tw]
        float r1 = 0.f, r2 = 0.f;
        if (cval) {
#pragma unroll
          for (int q = 0; q < V; ++q) {
            const float d = v[q] - Kr;
            r1 += d;
            r2 = fmaf(d, d, r2);
          }
        }
        r1 = groupSum(r1, lpr);
        r2 = groupSum(r2, lpr);
        if (gl == 0 && rv) {
          double pm, pm2;
          shiftedToChan(Kr, r1, r2, static_cast<double>(nRowCols), &pm, &pm2);
          k.rowPart[(b * M + m) * k.nCT + ct] = make_double2(pm, pm2);
        }
      }
    }

    if (k.needCol) {
#pragma unroll
      for (int q = 0; q < V; ++q) {
        red1[tid * V + q] = d1[q] + f1[q];
        red2[tid * V + q] = d2[q] + f2[q];
      }
      __syncthreads();
      for (int j = tid; j < tw; j += kThreads) {
        const int64_t cc = ct * tw + j;
        if (cc < C) {
          double S1 = 0, S2 = 0;
          for (int y = 0; y < NY; ++y) S1 += red1[y * tw + j], S2 += red2[y * tw + j];
          double pm, pm2;
          shiftedToChan(xm[b0 * MC + cc], S1, S2, static_cast<double>(b1 - b0), &pm, &pm2);
          k.colPart[chunk * MC + m * C + cc] = make_double2(pm, pm2);
        }
      }
      __syncthreads();  // red is reused by the next tile
    }
  }
}

// ------------------------------------------------------------------ tiled: finalize

// Mean and biased variance of the n values `stride` apart at x, from nParts (mean, M2) partials
// `partStride` apart, part i holding min(per, n - i*per) of them (Chan merges; the overflow
// fallback reads x).
BLN_DEV void mergedStats(const double2* part, int64_t partStride, int64_t nParts, int64_t per, const float* x, int64_t n,
                         int64_t stride, double* mean, double* var) {
  double cnt = 0, mu = 0, m2 = 0;
  for (int64_t i = 0; i < nParts; ++i) {
    const int64_t len = n - i * per < per ? n - i * per : per;
    const double2 p = part[i * partStride];
    chanMerge(&cnt, &mu, &m2, static_cast<double>(len), p.x, p.y);
  }
  statsFromChan(x, n, stride, mu, m2, mean, var);
}

__global__ void __launch_bounds__(kThreads) fwdFinalizeColsKernel(const FwdK k) {
  const int64_t MC = k.M * k.C;
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t mc = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; mc < MC; mc += step) {
    double mean = 0, var = 0;
    if (k.needCol) mergedStats(k.colPart + mc, MC, k.nChunks, k.chunkRows, k.x + mc, k.B, MC, &mean, &var);
    colFinal(k, mc, mc % k.C, mean, var, &k.mbh[mc], &k.mbl[mc], &k.A[mc]);
  }
}

__global__ void __launch_bounds__(kThreads) fwdFinalizeRowsKernel(const FwdK k) {
  const int64_t R = k.B * k.M;
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; r < R; r += step) {
    double mean = 0, var = 0;
    if (k.needRow) mergedStats(k.rowPart + r * k.nCT, 1, k.nCT, k.tw, k.x + r * k.C, k.C, 1, &mean, &var);
    rowFinal(k, r, mean, var, true, &k.mfh[r], &k.mfl[r], &k.F[r]);
  }
}

// ------------------------------------------------------------------ tiled: apply

template <int V>
__global__ void __launch_bounds__(kThreads) fwdApplyKernel(const FwdK k) {
  const int tid = threadIdx.x;
  const int lpr = k.lpr, gl = tid & (lpr - 1), grp = tid / lpr, NY = kThreads / lpr;
  const int64_t R = k.B * k.M, C = k.C, nv = C / V;
  const int64_t step = static_cast<int64_t>(gridDim.x) * NY;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * NY + grp; r < R; r += step) {
    const int64_t cb = (r % k.M) * C;
    const float F = k.F[r], fh = k.mfh[r], fl = k.mfl[r];
    const float* xr = k.x + r * C;
    float* yr = k.y + r * C;
    for (int64_t j = gl; j < nv; j += lpr) {
      const int64_t c = j * V;
      float xv[V], g[V], be[V], bh[V], bl[V], A[V], out[V];
      Vec<V>::ldg(xr + c, xv);
      Vec<V>::ldg(k.gamma + c, g);
      Vec<V>::ldg(k.beta + c, be);
      Vec<V>::ldg(k.mbh + cb + c, bh);
      Vec<V>::ldg(k.mbl + cb + c, bl);
      Vec<V>::ldg(k.A + cb + c, A);
      applyV<V>(xv, g, be, bh, bl, A, F, fh, fl, out);
      Vec<V>::stcs(yr + c, out);
    }
  }
}

FwdK makeFwdK(const FwdDev& a, const FwdPlan& p, void* ws) {
  FwdK k{};
  k.x = a.x, k.gamma = a.gamma, k.beta = a.beta, k.y = a.y;
  k.outBm = a.stats.batchMean, k.outBv = a.stats.batchVar, k.outFm = a.stats.featureMean, k.outFv = a.stats.featureVar;
  if (!k.outBm || !k.outBv) k.outBm = k.outBv = nullptr;
  if (!k.outFm || !k.outFv) k.outFm = k.outFv = nullptr;
  k.popBm = a.pop.batchMean, k.popBv = a.pop.batchVar, k.popFm = a.pop.featureMean, k.popFv = a.pop.featureVar;
  k.useBm = a.use.batchMean, k.useBv = a.use.batchVar, k.useFm = a.use.featureMean, k.useFv = a.use.featureVar;
  k.needCol = p.needCol, k.needRow = p.needRow;
  k.B = a.d.B, k.M = a.d.M, k.C = a.d.C;
  k.eps = a.eps;
  k.wb = weightBatch(a.batchSize);
  k.invSqrtC = 1.0 / std::sqrt(static_cast<double>(a.d.C));
  k.fScale = static_cast<float>(weightFeature(a.batchSize) * k.invSqrtC);
  k.lpr = p.lpr;
  k.tw = p.lpr * p.vec;
  k.nCT = p.nCT, k.nChunks = p.nChunks, k.chunkRows = p.chunkRows;
  k.nTiles = a.d.M * p.nCT * p.nChunks;
  char* w = static_cast<char*>(ws);
  const int64_t MC = a.d.M * a.d.C, R = a.d.B * a.d.M;
  if (p.path == Path::Tiled) {
    k.colPart = p.needCol ? reinterpret_cast<double2*>(w + p.offColPart) : nullptr;
    k.rowPart = p.needRow ? reinterpret_cast<double2*>(w + p.offRowPart) : nullptr;
    float* cc = reinterpret_cast<float*>(w + p.offColCoef);
    k.mbh = cc, k.mbl = cc + MC, k.A = cc + 2 * MC;
    float* rc = reinterpret_cast<float*>(w + p.offRowCoef);
    k.mfh = rc, k.mfl = rc + R, k.F = rc + 2 * R;
  }
  return k;
}

}  // namespace

// ------------------------------------------------------------------ host side

FwdPlan planForward(const FwdDev& a, const DeviceLimits& lim, Path force, bool forceScalar) {
  FwdPlan p;
  const int64_t B = a.d.B, M = a.d.M, C = a.d.C, MC = M * C, R = B * M;
  p.needCol = !(a.use.batchMean && a.use.batchVar);
  p.needRow = !(a.use.featureMean && a.use.featureVar);
  const bool aligned = aligned16(a.x) && aligned16(a.y) && aligned16(a.gamma) && aligned16(a.beta);
  p.vec = (!forceScalar && C % 4 == 0 && aligned) ? 4 : 1;
  p.lpr = nextPow2(ceilDiv(C, p.vec));
  if (p.lpr > 32) p.lpr = 32;

  const FwdSlabLayout L = fwdSlabLayout(B, C);
  const bool slabFits = B * C <= kSlabMaxFloats && L.total <= kSlabMaxBytes && L.total <= lim.smemOptin;
  const bool slabUseful = p.needCol || p.needRow;  // with all four population statistics there is nothing to fuse
  if (force == Path::Slab && !slabFits) {
    p.ok = false;
    p.why = "the [B, C] slab does not fit in shared memory";
    return p;
  }
  p.path = force != Path::Auto ? force : (slabFits && slabUseful ? Path::Slab : Path::Tiled);
  if (p.path == Path::Slab) {
    p.slabSmem = L.total;
    p.grid = M < lim.gridCap(1 << 20) ? M : lim.gridCap(1 << 20);
    p.wsBytes = 0;
    return p;
  }

  const int64_t tw = static_cast<int64_t>(p.lpr) * p.vec;
  const int NY = kThreads / p.lpr;
  p.nCT = ceilDiv(C, tw);
  // Split the rows of a column into chunks when tiles alone would not fill the GPU;
  // a chunk keeps >= 64 rows so the partials stay a few percent of the traffic.
  const int64_t tiles0 = M * p.nCT;
  const int64_t target = static_cast<int64_t>(lim.smCount) * 8;
  int64_t nChunks = 1;
  if (tiles0 < target) {
    const int64_t minRows = p.needCol ? (NY > 64 ? NY : 64) : NY;
    int64_t maxChunks = B / minRows;
    if (maxChunks < 1) maxChunks = 1;
    nChunks = ceilDiv(target, tiles0);
    if (nChunks > maxChunks) nChunks = maxChunks;
  }
  p.chunkRows = ceilDiv(B, nChunks);
  p.nChunks = ceilDiv(B, p.chunkRows);
  {
    const int64_t tiles = M * p.nCT * p.nChunks, cap = lim.gridCap(int64_t(1) << 30);
    p.grid = tiles < cap ? tiles : cap;
  }

  size_t o = 0;
  auto carve = [&](size_t bytes) {
    const size_t at = align256(o);
    o = at + bytes;
    return at;
  };
  p.offColPart = p.needCol ? carve(sizeof(double2) * size_t(p.nChunks) * size_t(MC)) : 0;
  p.offRowPart = p.needRow ? carve(sizeof(double2) * size_t(R) * size_t(p.nCT)) : 0;
  p.offColCoef = carve(3 * sizeof(float) * size_t(MC));
  p.offRowCoef = carve(3 * sizeof(float) * size_t(R));
  p.wsBytes = align256(o);
  return p;
}

cudaError_t launchForward(const FwdDev& a, const FwdPlan& p, void* ws, cudaStream_t s) {
  if (!p.ok) return cudaErrorInvalidValue;
  const FwdK k = makeFwdK(a, p, ws);
  const int64_t MC = a.d.M * a.d.C, R = a.d.B * a.d.M;
  const dim3 block(kThreads);
  cudaError_t e = cudaSuccess;
  if (p.path == Path::Slab) {
    const unsigned grid = gridFor(p.grid);
    e = p.vec == 4 ? launchKernel(&fwdSlabKernel<4>, grid, block, p.slabSmem, s, k)
                   : launchKernel(&fwdSlabKernel<1>, grid, block, p.slabSmem, s, k);
    return e;
  }
  if (p.needCol || p.needRow) {
    const size_t smem = p.needCol ? 2 * sizeof(double) * kThreads * p.vec : 0;
    const unsigned grid = gridFor(p.grid);
    e = p.vec == 4 ? launchKernel(&fwdStatsKernel<4>, grid, block, smem, s, k)
                   : launchKernel(&fwdStatsKernel<1>, grid, block, smem, s, k);
    if (e != cudaSuccess) return e;
  }
  e = launchKernel(&fwdFinalizeColsKernel, gridFor(ceilDiv(MC, kThreads), 1 << 16), block, 0, s, k);
  if (e != cudaSuccess) return e;
  e = launchKernel(&fwdFinalizeRowsKernel, gridFor(ceilDiv(R, kThreads), 1 << 16), block, 0, s, k);
  if (e != cudaSuccess) return e;
  const int NY = kThreads / p.lpr;
  const unsigned grid = gridFor(ceilDiv(R, NY), 1 << 20);
  e = p.vec == 4 ? launchKernel(&fwdApplyKernel<4>, grid, block, 0, s, k)
                 : launchKernel(&fwdApplyKernel<1>, grid, block, 0, s, k);
  return e;
}

}  // namespace gpu
}  // namespace bln
