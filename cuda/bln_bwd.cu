// Backward kernels of the CUDA path (see bln_kernels.cuh for the design).
//
// With g = dy*gamma/sqrt(C), rf = 1/sqrt(var_f + eps), rb = 1/sqrt(var_b + eps):
//   dx = dy*gamma*(P' + U') - (Q + V) - T*(x - muf) - W*(x - mub)
// per row r:    P' = wf*rf/sqrt(C), Q = wf*rf*mean_c(g), T = wf*rf^3*mean_c(g*(x-muf))
// per column:   U' = wb*rb/sqrt(C), V = wb*rb*mean_b(g), W = wb*rb^3*mean_b(g*(x-mub))
// which is wf*dx_f + wb*dx_b of BLN-SPEC.md. dgamma[c] = sum_m (wf*Sdyxf + wb*rb*Sdyxb)/sqrt(C)
// and dbeta[c] = sum_m Sdy, with the column sums Sdy = sum_b dy, Sdyxb = sum_b dy*(x-mub),
// Sdyxf = sum_b dy*rf*(x-muf). Sums run in float32 over short runs, then in double.
#include <cmath>

#include "bln_kernels.cuh"

namespace bln {
namespace gpu {
namespace {

// Column coefficients from the column sums (numerics.h, as the CPU path); returns the
// (dgamma, dbeta) terms. U is scaled by 1/sqrt(C) here: the apply multiplies by the raw gamma.
BLN_DEV double2 bwdColFinal(const BwdK& k, int64_t c, float rb, double Sdy, double Sdyxb, double Sdyxf, float* U, float* V,
                            float* W) {
  const double g = static_cast<double>(k.gamma[c]) * k.invSqrtC;
  const BwdColCoefs q = bwdColCoefs(k.B, k.wf, k.wb, k.invSqrtC, g, rb, Sdy, Sdyxb, Sdyxf);
  *U = static_cast<float>(q.U * k.invSqrtC);
  *V = static_cast<float>(q.V);
  *W = static_cast<float>(q.W);
  return make_double2(q.dgamma, q.dbeta);
}

// Row coefficients from Rg = sum_c dy*gamma and Rgxf = sum_c dy*gamma*(x - muf) (raw gamma:
// scaled by 1/sqrt(C) into numerics.h's convention; P back for the raw-gamma apply).
BLN_DEV void bwdRowFinal(const BwdK& k, float rf, double Rg, double Rgxf, float* P, float* Q, float* T) {
  const BwdRowCoefs q = bwdRowCoefs(k.C, k.wf, rf, Rg * k.invSqrtC, Rgxf * k.invSqrtC);
  *P = static_cast<float>(q.P * k.invSqrtC);
  *Q = static_cast<float>(q.Q);
  *T = static_cast<float>(q.T);
}

template <int V>
BLN_DEV void bwdApplyV(const float* xv, const float* dv, const float* g, const float* U, const float* Vv, const float* W,
                       const float* mub, float P, float Q, float T, float muf, float* out) {
#pragma unroll
  for (int q = 0; q < V; ++q) {
    const float gg = dv[q] * g[q];
    float r = gg * (P + U[q]) - (Q + Vv[q]);
    r = fmaf(-T, xv[q] - muf, r);
    out[q] = fmaf(-W[q], xv[q] - mub[q], r);
  }
}

// ------------------------------------------------------------------ slab kernel

template <int V>
__global__ void __launch_bounds__(kThreads) bwdSlabKernel(const BwdK k) {
  BLN_DYNAMIC_SMEM(smem);
  const int B = static_cast<int>(k.B), C = static_cast<int>(k.C);
  const int64_t M = k.M;
  const BwdSlabLayout L = bwdSlabLayout(B, C);
  double* red = reinterpret_cast<double*>(smem + L.red);
  float* mufS = reinterpret_cast<float*>(smem + L.muf);
  float* rfS = reinterpret_cast<float*>(smem + L.rf);
  float* mubS = reinterpret_cast<float*>(smem + L.mub);
  float* US = reinterpret_cast<float*>(smem + L.U);
  float* VS = reinterpret_cast<float*>(smem + L.V);
  float* WS = reinterpret_cast<float*>(smem + L.W);
  float* xs = reinterpret_cast<float*>(smem + L.xs);
  float* ds = reinterpret_cast<float*>(smem + L.ds);
  const int tid = threadIdx.x;
  const int nv = C / V;
  const LaneGroup lg = laneGroup(k.lpr);
  const int lpr = lg.lpr, gl = lg.lane, grp = lg.group, nGroups = lg.groups;
  const int G = columnGroups(C);

  for (int64_t m = blockIdx.x; m < M; m += gridDim.x) {
    // x and dy in one pass over the indices (two loadSlab calls spill on sm_80)
    for (int i = tid; i < B * nv; i += kThreads) {
      const int b = i / nv, j = i - b * nv;
      const int64_t off = (static_cast<int64_t>(b) * M + m) * C + j * V;
      float v[V];
      Vec<V>::ldg(k.x + off, v);
      Vec<V>::st(xs + b * C + j * V, v);
      Vec<V>::ldg(k.dy + off, v);
      Vec<V>::st(ds + b * C + j * V, v);
    }
    for (int b = tid; b < B; b += kThreads) {
      const int64_t r = static_cast<int64_t>(b) * M + m;
      mufS[b] = k.fm[r];
      rfS[b] = invStd(k.fv[r], k.eps);
    }
    for (int c = tid; c < C; c += kThreads) mubS[c] = k.bm[m * C + c];
    __syncthreads();

    // column sums
    auto colSums = [&](int c, int b0, int step, double* s0, double* s1, double* s2) {
      const float mub = mubS[c];
      float f0 = 0.f, f1 = 0.f, f2 = 0.f;
      double e0 = 0, e1 = 0, e2 = 0;
      int run = 0;
      for (int b = b0; b < B; b += step) {
        const float dv = ds[b * C + c], xv = xs[b * C + c];
        f0 += dv;
        f1 = fmaf(dv, xv - mub, f1);
        f2 = fmaf(dv * rfS[b], xv - mufS[b], f2);
        if (++run == 32) e0 += f0, e1 += f1, e2 += f2, f0 = f1 = f2 = 0.f, run = 0;
      }
      *s0 = e0 + f0, *s1 = e1 + f1, *s2 = e2 + f2;
    };
    auto colFinish = [&](int c, double s0, double s1, double s2) {
      const int64_t mc = m * C + c;
      k.contrib[mc] = bwdColFinal(k, c, invStd(k.bv[mc], k.eps), s0, s1, s2, &US[c], &VS[c], &WS[c]);
    };
    if (G == 1) {
      for (int c = tid; c < C; c += kThreads) {
        double s0, s1, s2;
        colSums(c, 0, 1, &s0, &s1, &s2);
        colFinish(c, s0, s1, s2);
      }
    } else {
      if (tid < G * C) {
        double s0, s1, s2;
        colSums(tid % C, tid / C, G, &s0, &s1, &s2);
        red[3 * tid] = s0, red[3 * tid + 1] = s1, red[3 * tid + 2] = s2;
      }
      __syncthreads();
      for (int c = tid; c < C; c += kThreads) {
        double s0 = 0, s1 = 0, s2 = 0;
        for (int g = 0; g < G; ++g) {
          const double* p = red + 3 * (g * C + c);
          s0 += p[0], s1 += p[1], s2 += p[2];
        }
        colFinish(c, s0, s1, s2);
      }
    }
    __syncthreads();

    // per row: sums over c (lane group), then dx of the row
    const int rounds = (B + nGroups - 1) / nGroups;
    for (int rd = 0; rd < rounds; ++rd) {
      const int b = rd * nGroups + grp;
      const bool valid = b < B;
      const int bb = valid ? b : 0;
      const float* xr = xs + bb * C;
      const float* dr = ds + bb * C;
      const float muf = mufS[bb];
      float f1 = 0.f, f2 = 0.f;
      double e1 = 0, e2 = 0;
      int run = 0;
      for (int j = gl; j < nv; j += lpr) {
        float xv[V], dv[V], g[V];
        Vec<V>::ld(xr + j * V, xv);
        Vec<V>::ld(dr + j * V, dv);
        Vec<V>::ldg(k.gamma + j * V, g);
#pragma unroll
        for (int q = 0; q < V; ++q) {
          const float u = dv[q] * g[q];
          f1 += u;
          f2 = fmaf(u, xv[q] - muf, f2);
        }
        if (++run == 64 / V) e1 += f1, e2 += f2, f1 = f2 = 0.f, run = 0;
      }
      const double Rg = groupSum(e1 + f1, lpr), Rgxf = groupSum(e2 + f2, lpr);
      if (valid) {
        float P, Q, T;
        bwdRowFinal(k, rfS[b], Rg, Rgxf, &P, &Q, &T);
        float* out = k.dx + (static_cast<int64_t>(b) * M + m) * C;
        for (int j = gl; j < nv; j += lpr) {
          const int c = j * V;
          float xv[V], dv[V], g[V], o[V];
          Vec<V>::ld(xr + c, xv);
          Vec<V>::ld(dr + c, dv);
          Vec<V>::ldg(k.gamma + c, g);
          bwdApplyV<V>(xv, dv, g, US + c, VS + c, WS + c, mubS + c, P, Q, T, muf, o);
          Vec<V>::stcs(out + c, o);
        }
      }
    }
    __syncthreads();
  }
}

// ------------------------------------------------------------------ tiled kernels

__global__ void __launch_bounds__(kThreads) bwdRowInvStdKernel(const BwdK k) {
  const int64_t R = k.B * k.M;
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; r < R; r += step) k.rf[r] = invStd(k.fv[r], k.eps);
}

template <int V>
__global__ void __launch_bounds__(kThreads) bwdStatsKernel(const BwdK k) {
  BLN_DYNAMIC_SMEM(smem);
  double* red0 = reinterpret_cast<double*>(smem);  // [kThreads*V] each
  double* red1 = red0 + kThreads * V;
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

    float g[V], mub[V], f0[V], f1[V], f2[V];
    double e0[V], e1[V], e2[V];
#pragma unroll
    for (int q = 0; q < V; ++q) g[q] = mub[q] = f0[q] = f1[q] = f2[q] = 0.f, e0[q] = e1[q] = e2[q] = 0.0;
    if (cval) {
      Vec<V>::ldg(k.gamma + c, g);
      Vec<V>::ldg(k.bm + m * C + c, mub);
    }

    for (int rd = 0; rd < rounds; ++rd) {
      const int64_t b = b0 + static_cast<int64_t>(rd) * NY + grp;
      const bool rv = b < b1;
      const int64_t r = b * M + m;
      float xv[V], dv[V];
#pragma unroll
      for (int q = 0; q < V; ++q) xv[q] = dv[q] = 0.f;
      float muf = 0.f, rf = 0.f;
      if (rv) {
        muf = __ldg(k.fm + r);
        rf = __ldg(k.rf + r);
        if (cval) {
          Vec<V>::ldg(k.x + r * C + c, xv);
          Vec<V>::ldg(k.dy + r * C + c, dv);
        }
      }
      float r1 = 0.f, r2 = 0.f;
#pragma unroll
      for (int q = 0; q < V; ++q) {
        const float tf = xv[q] - muf;
        const float u = dv[q] * g[q];
        r1 += u;
        r2 = fmaf(u, tf, r2);
        f0[q] += dv[q];
        f1[q] = fmaf(dv[q], xv[q] - mub[q], f1[q]);
        f2[q] = fmaf(dv[q] * rf, tf, f2[q]);
      }
      if ((rd & 31) == 31) {
#pragma unroll
        for (int q = 0; q < V; ++q) e0[q] += f0[q], e1[q] += f1[q], e2[q] += f2[q], f0[q] = f1[q] = f2[q] = 0.f;
      }
      r1 = groupSum(r1, lpr);
      r2 = groupSum(r2, lpr);
      if (gl == 0 && rv) k.rowPart[r * k.nCT + ct] = make_double2(r1, r2);
    }

#pragma unroll
    for (int q = 0; q < V; ++q) {
      red0[tid * V + q] = e0[q] + f0[q];
      red1[tid * V + q] = e1[q] + f1[q];
      red2[tid * V + q] = e2[q] + f2[q];
    }
    __syncthreads();
    for (int j = tid; j < tw; j += kThreads) {
      const int64_t cc = ct * tw + j;
      if (cc < C) {
        double s0 = 0, s1 = 0, s2 = 0;
        for (int y = 0; y < NY; ++y) s0 += red0[y * tw + j], s1 += red1[y * tw + j], s2 += red2[y * tw + j];
        const int64_t at = chunk * MC + m * C + cc;
        k.cp0[at] = s0, k.cp1[at] = s1, k.cp2[at] = s2;
      }
    }
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kThreads) bwdFinalizeColsKernel(const BwdK k) {
  const int64_t MC = k.M * k.C;
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t mc = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; mc < MC; mc += step) {
    const float rb = invStd(k.bv[mc], k.eps);
    double s0 = 0, s1 = 0, s2 = 0;
    for (int64_t ch = 0; ch < k.nChunks; ++ch) s0 += k.cp0[ch * MC + mc], s1 += k.cp1[ch * MC + mc], s2 += k.cp2[ch * MC + mc];
    k.contrib[mc] = bwdColFinal(k, mc % k.C, rb, s0, s1, s2, &k.U[mc], &k.V[mc], &k.W[mc]);
  }
}

__global__ void __launch_bounds__(kThreads) bwdFinalizeRowsKernel(const BwdK k) {
  const int64_t R = k.B * k.M;
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; r < R; r += step) {
    double Rg = 0, Rgxf = 0;
    for (int64_t ct = 0; ct < k.nCT; ++ct) {
      const double2 p = k.rowPart[r * k.nCT + ct];
      Rg += p.x, Rgxf += p.y;
    }
    bwdRowFinal(k, k.rf[r], Rg, Rgxf, &k.P[r], &k.Q[r], &k.T[r]);
  }
}

template <int V>
__global__ void __launch_bounds__(kThreads) bwdApplyKernel(const BwdK k) {
  const int tid = threadIdx.x;
  const int lpr = k.lpr, gl = tid & (lpr - 1), grp = tid / lpr, NY = kThreads / lpr;
  const int64_t R = k.B * k.M, C = k.C, nv = C / V;
  const int64_t step = static_cast<int64_t>(gridDim.x) * NY;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * NY + grp; r < R; r += step) {
    const int64_t cb = (r % k.M) * C;
    const float P = k.P[r], Q = k.Q[r], T = k.T[r], muf = k.fm[r];
    const float* xr = k.x + r * C;
    const float* dr = k.dy + r * C;
    float* out = k.dx + r * C;
    for (int64_t j = gl; j < nv; j += lpr) {
      const int64_t c = j * V;
      float xv[V], dv[V], g[V], U[V], Vv[V], W[V], mub[V], o[V];
      Vec<V>::ldg(xr + c, xv);
      Vec<V>::ldg(dr + c, dv);
      Vec<V>::ldg(k.gamma + c, g);
      Vec<V>::ldg(k.U + cb + c, U);
      Vec<V>::ldg(k.V + cb + c, Vv);
      Vec<V>::ldg(k.W + cb + c, W);
      Vec<V>::ldg(k.bm + cb + c, mub);
      bwdApplyV<V>(xv, dv, g, U, Vv, W, mub, P, Q, T, muf, o);
      Vec<V>::stcs(out + c, o);
    }
  }
}

// dgamma/dbeta: sums over m of contrib [G][C]. Block (32 columns x 8 row lanes) per
// (column tile, chunk of rowsPerChunk rows); partial sums to out, or the final floats.
__global__ void __launch_bounds__(kThreads) reduceRowsKernel(const RedK k) {
  __shared__ double2 part[8][33];
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + tx;
  const int64_t g0 = static_cast<int64_t>(blockIdx.y) * k.rowsPerChunk;
  const int64_t g1 = g0 + k.rowsPerChunk < k.G ? g0 + k.rowsPerChunk : k.G;
  double a = 0, b = 0;
  if (c < k.C)
    for (int64_t g = g0 + ty; g < g1; g += 8) {
      const double2 v = k.in[g * k.C + c];
      a += v.x, b += v.y;
    }
  part[ty][tx] = make_double2(a, b);
  __syncthreads();
  if (ty == 0 && c < k.C) {
    for (int y = 1; y < 8; ++y) a += part[y][tx].x, b += part[y][tx].y;
    if (k.out) {
      k.out[static_cast<int64_t>(blockIdx.y) * k.C + c] = make_double2(a, b);
    } else {
      k.dgamma[c] = static_cast<float>(a);
      k.dbeta[c] = static_cast<float>(b);
    }
  }
}

// Reduction stages over G rows: G > 64 rows go to ceil(G / rows) partial rows first.
struct RedStage {
  int64_t G, rows, nOut;
};
inline RedStage redStage(int64_t G) {
  RedStage s;
  s.G = G;
  if (G <= 64) {
    s.rows = G, s.nOut = 1;
  } else {
    s.rows = ceilDiv(G, 512);
    if (s.rows < 16) s.rows = 16;
    s.nOut = ceilDiv(G, s.rows);
  }
  return s;
}

BwdK makeBwdK(const BwdDev& a, const BwdPlan& p, void* ws) {
  BwdK k{};
  k.dy = a.dy, k.x = a.x, k.gamma = a.gamma;
  k.bm = a.stats.batchMean, k.bv = a.stats.batchVar, k.fm = a.stats.featureMean, k.fv = a.stats.featureVar;
  k.dx = a.dx;
  k.B = a.d.B, k.M = a.d.M, k.C = a.d.C;
  k.eps = a.eps;
  k.wf = weightFeature(a.batchSize);
  k.wb = weightBatch(a.batchSize);
  k.invSqrtC = 1.0 / std::sqrt(static_cast<double>(a.d.C));
  k.lpr = p.lpr;
  k.tw = p.lpr * p.vec;
  k.nCT = p.nCT, k.nChunks = p.nChunks, k.chunkRows = p.chunkRows;
  k.nTiles = a.d.M * p.nCT * p.nChunks;
  char* w = static_cast<char*>(ws);
  const int64_t MC = a.d.M * a.d.C, R = a.d.B * a.d.M;
  k.contrib = reinterpret_cast<double2*>(w + p.offContrib);
  if (p.path == Path::Tiled) {
    k.rf = reinterpret_cast<float*>(w + p.offRf);
    double* cp = reinterpret_cast<double*>(w + p.offColPart);
    k.cp0 = cp, k.cp1 = cp + p.nChunks * MC, k.cp2 = cp + 2 * p.nChunks * MC;
    k.rowPart = reinterpret_cast<double2*>(w + p.offRowPart);
    float* cc = reinterpret_cast<float*>(w + p.offColCoef);
    k.U = cc, k.V = cc + MC, k.W = cc + 2 * MC;
    float* rc = reinterpret_cast<float*>(w + p.offRowCoef);
    k.P = rc, k.Q = rc + R, k.T = rc + 2 * R;
  }
  return k;
}

__global__ void probeKernel(int) {}

}  // namespace

cudaError_t probeKernelImage() {
  cudaFuncAttributes attr;
  return cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(&probeKernel));
}

BwdPlan planBackward(const BwdDev& a, const DeviceLimits& lim, Path force, bool forceScalar) {
  BwdPlan p;
  const int64_t B = a.d.B, M = a.d.M, C = a.d.C, MC = M * C, R = B * M;
  const bool aligned = aligned16(a.x) && aligned16(a.dy) && aligned16(a.dx) && aligned16(a.gamma) && aligned16(a.stats.batchMean);
  p.vec = (!forceScalar && C % 4 == 0 && aligned) ? 4 : 1;
  p.lpr = nextPow2(ceilDiv(C, p.vec));
  if (p.lpr > 32) p.lpr = 32;

  const BwdSlabLayout L = bwdSlabLayout(B, C);
  const bool slabFits = 2 * B * C <= kSlabMaxFloats && L.total <= kSlabMaxBytes && L.total <= lim.smemOptin;
  if (force == Path::Slab && !slabFits) {
    p.ok = false;
    p.why = "the [B, C] slabs of x and dy do not fit in shared memory";
    return p;
  }
  p.path = force != Path::Auto ? force : (slabFits ? Path::Slab : Path::Tiled);

  size_t o = 0;
  auto carve = [&](size_t bytes) {
    const size_t at = align256(o);
    o = at + bytes;
    return at;
  };
  p.offContrib = carve(sizeof(double2) * size_t(MC));
  const RedStage s1 = redStage(M);
  if (s1.nOut > 1) {
    p.offRed1 = carve(sizeof(double2) * size_t(s1.nOut) * size_t(C));
    const RedStage s2 = redStage(s1.nOut);
    if (s2.nOut > 1) p.offRed2 = carve(sizeof(double2) * size_t(s2.nOut) * size_t(C));
  }
  if (p.path == Path::Slab) {
    p.slabSmem = L.total;
    p.grid = M < lim.gridCap(1 << 20) ? M : lim.gridCap(1 << 20);
    p.wsBytes = align256(o);
    return p;
  }

  const int64_t tw = static_cast<int64_t>(p.lpr) * p.vec;
  const int NY = kThreads / p.lpr;
  p.nCT = ceilDiv(C, tw);
  const int64_t tiles0 = M * p.nCT;
  const int64_t target = static_cast<int64_t>(lim.smCount) * 8;
  int64_t nChunks = 1;
  if (tiles0 < target) {
    int64_t maxChunks = B / (NY > 64 ? NY : 64);
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
  p.offRf = carve(sizeof(float) * size_t(R));
  p.offColPart = carve(3 * sizeof(double) * size_t(p.nChunks) * size_t(MC));
  p.offRowPart = carve(sizeof(double2) * size_t(R) * size_t(p.nCT));
  p.offColCoef = carve(3 * sizeof(float) * size_t(MC));
  p.offRowCoef = carve(3 * sizeof(float) * size_t(R));
  p.wsBytes = align256(o);
  return p;
}

cudaError_t launchBackward(const BwdDev& a, const BwdPlan& p, void* ws, cudaStream_t s) {
  if (!p.ok) return cudaErrorInvalidValue;
  const BwdK k = makeBwdK(a, p, ws);
  const int64_t MC = a.d.M * a.d.C, R = a.d.B * a.d.M;
  const dim3 block(kThreads);
  cudaError_t e = cudaSuccess;
  if (p.path == Path::Slab) {
    const unsigned grid = gridFor(p.grid);
    e = p.vec == 4 ? launchKernel(&bwdSlabKernel<4>, grid, block, p.slabSmem, s, k)
                   : launchKernel(&bwdSlabKernel<1>, grid, block, p.slabSmem, s, k);
    if (e != cudaSuccess) return e;
  } else {
    e = launchKernel(&bwdRowInvStdKernel, gridFor(ceilDiv(R, kThreads), 1 << 16), block, 0, s, k);
    if (e != cudaSuccess) return e;
    const size_t smem = 3 * sizeof(double) * kThreads * p.vec;
    e = p.vec == 4 ? launchKernel(&bwdStatsKernel<4>, gridFor(p.grid), block, smem, s, k)
                   : launchKernel(&bwdStatsKernel<1>, gridFor(p.grid), block, smem, s, k);
    if (e != cudaSuccess) return e;
    e = launchKernel(&bwdFinalizeColsKernel, gridFor(ceilDiv(MC, kThreads), 1 << 16), block, 0, s, k);
    if (e != cudaSuccess) return e;
    e = launchKernel(&bwdFinalizeRowsKernel, gridFor(ceilDiv(R, kThreads), 1 << 16), block, 0, s, k);
    if (e != cudaSuccess) return e;
    const unsigned grid = gridFor(ceilDiv(R, kThreads / p.lpr), 1 << 20);
    e = p.vec == 4 ? launchKernel(&bwdApplyKernel<4>, grid, block, 0, s, k)
                   : launchKernel(&bwdApplyKernel<1>, grid, block, 0, s, k);
    if (e != cudaSuccess) return e;
  }
  // dgamma, dbeta: sum the [M][C] terms over m, in at most three stages.
  char* w = static_cast<char*>(ws);
  const double2* in = k.contrib;
  double2* bufs[2] = {reinterpret_cast<double2*>(w + p.offRed1), reinterpret_cast<double2*>(w + p.offRed2)};
  int64_t G = a.d.M;
  for (int stage = 0;; ++stage) {
    const RedStage st = redStage(G);
    RedK r{};
    r.in = in, r.G = G, r.C = a.d.C, r.rowsPerChunk = st.rows;
    r.out = st.nOut > 1 ? bufs[stage] : nullptr;
    r.dgamma = a.dgamma, r.dbeta = a.dbeta;
    const dim3 grid(static_cast<unsigned>(ceilDiv(a.d.C, 32)), static_cast<unsigned>(st.nOut));
    e = launchKernel(&reduceRowsKernel, grid, block, 0, s, r);
    if (e != cudaSuccess || st.nOut == 1) return e;
    in = r.out;
    G = st.nOut;
  }
}

}  // namespace gpu
}  // namespace bln
