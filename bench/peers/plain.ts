// BLN as a user would write it in plain JavaScript: straightforward loops over Float32Arrays,
// two-pass mean/variance in float64 (the "what I would write myself" peer). Same formulas as
// BLN-SPEC; the benchmark checks its outputs against the native ones before timing.

export interface PlainStats {
  batchMean: Float64Array;
  batchVar: Float64Array;
  featureMean: Float64Array;
  featureVar: Float64Array;
}

function weights(N: number): { wf: number; wb: number } {
  return { wf: 1 / N - 1e-4, wb: 1 - (1 / N + 1e-4) };
}

export function plainStats(x: Float32Array, B: number, M: number, C: number): PlainStats {
  const MC = M * C;
  const bm = new Float64Array(MC);
  const bv = new Float64Array(MC);
  const fm = new Float64Array(B * M);
  const fv = new Float64Array(B * M);
  for (let b = 0; b < B; b++) for (let j = 0; j < MC; j++) bm[j]! += x[b * MC + j]!;
  for (let j = 0; j < MC; j++) bm[j]! /= B;
  for (let b = 0; b < B; b++)
    for (let j = 0; j < MC; j++) {
      const d = x[b * MC + j]! - bm[j]!;
      bv[j]! += d * d;
    }
  for (let j = 0; j < MC; j++) bv[j]! /= B;
  for (let r = 0; r < B * M; r++) {
    const o = r * C;
    let s = 0;
    for (let c = 0; c < C; c++) s += x[o + c]!;
    const mean = s / C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = x[o + c]! - mean;
      v += d * d;
    }
    fm[r] = mean;
    fv[r] = v / C;
  }
  return { batchMean: bm, batchVar: bv, featureMean: fm, featureVar: fv };
}

/** y from statistics of shape [M*C] (batch) and [rows] (feature; rows = B*M, or M with `featurePerM`). */
function apply(x: Float32Array, B: number, M: number, C: number, gamma: Float32Array, beta: Float32Array, N: number, eps: number, s: PlainStats, featurePerM: boolean, y: Float32Array): Float32Array {
  const { wf, wb } = weights(N);
  const MC = M * C;
  const isb = new Float64Array(MC);
  for (let j = 0; j < MC; j++) isb[j] = wb / Math.sqrt(s.batchVar[j]! + eps);
  const g = new Float64Array(C);
  for (let c = 0; c < C; c++) g[c] = gamma[c]! / Math.sqrt(C);
  for (let b = 0; b < B; b++)
    for (let m = 0; m < M; m++) {
      const r = featurePerM ? m : b * M + m;
      const mf = s.featureMean[r]!;
      const isf = wf / Math.sqrt(s.featureVar[r]! + eps);
      const o = (b * M + m) * C;
      for (let c = 0; c < C; c++) {
        const j = m * C + c;
        const v = x[o + c]!;
        y[o + c] = g[c]! * ((v - mf) * isf + (v - s.batchMean[j]!) * isb[j]!) + beta[c]!;
      }
    }
  return y;
}

export function plainForward(x: Float32Array, B: number, M: number, C: number, gamma: Float32Array, beta: Float32Array, N: number, eps: number): { y: Float32Array; stats: PlainStats } {
  const stats = plainStats(x, B, M, C);
  return { y: apply(x, B, M, C, gamma, beta, N, eps, stats, false, new Float32Array(x.length)), stats };
}

/** Inference with all four statistics from the population (feature statistics of length M). */
export function plainInfer(x: Float32Array, B: number, M: number, C: number, gamma: Float32Array, beta: Float32Array, N: number, eps: number, pop: PlainStats): Float32Array {
  return apply(x, B, M, C, gamma, beta, N, eps, pop, true, new Float32Array(x.length));
}

export function plainBackward(dy: Float32Array, x: Float32Array, B: number, M: number, C: number, gamma: Float32Array, N: number, eps: number, s: PlainStats): { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array } {
  const { wf, wb } = weights(N);
  const MC = M * C;
  const n = x.length;
  const sqC = Math.sqrt(C);
  const sb = new Float64Array(MC);
  for (let j = 0; j < MC; j++) sb[j] = Math.sqrt(s.batchVar[j]! + eps);
  // per column (m,c): mean_b(g), mean_b(g*xb); per channel: dbeta, dgamma
  const cg = new Float64Array(MC);
  const cgx = new Float64Array(MC);
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  const dx = new Float32Array(n);
  for (let b = 0; b < B; b++)
    for (let m = 0; m < M; m++) {
      const r = b * M + m;
      const sf = Math.sqrt(s.featureVar[r]! + eps);
      const o = r * C;
      let rg = 0;
      let rgx = 0;
      for (let c = 0; c < C; c++) {
        const j = m * C + c;
        const v = x[o + c]!;
        const xf = (v - s.featureMean[r]!) / sf;
        const xb = (v - s.batchMean[j]!) / sb[j]!;
        const g = (dy[o + c]! * gamma[c]!) / sqC;
        rg += g;
        rgx += g * xf;
        cg[j]! += g;
        cgx[j]! += g * xb;
        dbeta[c]! += dy[o + c]!;
        dgamma[c]! += (dy[o + c]! * (wf * xf + wb * xb)) / sqC;
      }
      rg /= C;
      rgx /= C;
      // layer-norm part now; the batch-norm part needs the column sums, added below
      for (let c = 0; c < C; c++) {
        const xf = (x[o + c]! - s.featureMean[r]!) / sf;
        const g = (dy[o + c]! * gamma[c]!) / sqC;
        dx[o + c] = (wf * (g - rg - xf * rgx)) / sf;
      }
    }
  for (let j = 0; j < MC; j++) {
    cg[j]! /= B;
    cgx[j]! /= B;
  }
  for (let b = 0; b < B; b++)
    for (let j = 0; j < MC; j++) {
      const i = b * MC + j;
      const c = j % C;
      const xb = (x[i]! - s.batchMean[j]!) / sb[j]!;
      const g = (dy[i]! * gamma[c]!) / sqC;
      dx[i] = dx[i]! + (wb * (g - cg[j]! - xb * cgx[j]!)) / sb[j]!;
    }
  return { dx, dgamma: Float32Array.from(dgamma), dbeta: Float32Array.from(dbeta) };
}
