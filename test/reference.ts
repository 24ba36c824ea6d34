// Float64 reference implementation of BLN-SPEC.md, written from the spec's formulas
// (not from the C++), plus the helpers the test files share.
//
// Layout: x has shape [B, d1..dk, C], row-major; viewed as [B, M, C] with
// index (b, m, c) -> (b * M + m) * C + c.

import type { Population, Stats } from '../lib';
import { expectClose, expectCloseToScale } from './measure';
import { Rng } from './rng';

export type Num = ArrayLike<number>;

export interface Dims {
  B: number;
  M: number;
  C: number;
  size: number;
}

export function dims(shape: readonly number[]): Dims {
  const B = shape[0]!;
  const C = shape[shape.length - 1]!;
  let size = 1;
  for (const d of shape) size *= d;
  return { B, C, M: size / (B * C), size };
}

export interface RefStats {
  batchMean: Float64Array; // M*C
  batchVar: Float64Array; // M*C, biased
  featureMean: Float64Array; // B*M
  featureVar: Float64Array; // B*M, biased
}

export const DEFAULT_EPS = 1e-3;

/** Mixing weights of the spec: wf = 1/N - 1e-4, wb = 1 - (1/N + 1e-4). */
export function weights(N: number): { wf: number; wb: number } {
  return { wf: 1 / N - 1e-4, wb: 1 - (1 / N + 1e-4) };
}

/** The four biased mini-batch statistics, two-pass in float64. */
export function refStats(x: Num, shape: readonly number[]): RefStats {
  const { B, M, C } = dims(shape);
  const batchMean = new Float64Array(M * C);
  const batchVar = new Float64Array(M * C);
  const featureMean = new Float64Array(B * M);
  const featureVar = new Float64Array(B * M);
  for (let m = 0; m < M; m++)
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let b = 0; b < B; b++) s += x[(b * M + m) * C + c]!;
      const mu = s / B;
      let v = 0;
      for (let b = 0; b < B; b++) {
        const d = x[(b * M + m) * C + c]! - mu;
        v += d * d;
      }
      batchMean[m * C + c] = mu;
      batchVar[m * C + c] = v / B;
    }
  for (let b = 0; b < B; b++)
    for (let m = 0; m < M; m++) {
      const row = (b * M + m) * C;
      let s = 0;
      for (let c = 0; c < C; c++) s += x[row + c]!;
      const mu = s / C;
      let v = 0;
      for (let c = 0; c < C; c++) {
        const d = x[row + c]! - mu;
        v += d * d;
      }
      featureMean[b * M + m] = mu;
      featureVar[b * M + m] = v / C;
    }
  return { batchMean, batchVar, featureMean, featureVar };
}

/**
 * Normalisation with explicit statistics.
 * bm/bv: length M*C. fm/fv: per (b, m); `featurePerM` says they have length M
 * (population feature statistics) rather than B*M.
 */
function normalize(
  x: Num,
  shape: readonly number[],
  gamma: Num,
  beta: Num,
  bm: Num,
  bv: Num,
  fm: Num,
  fv: Num,
  fmPerM: boolean,
  fvPerM: boolean,
  eps: number,
  N: number,
): { y: Float64Array; yhat: Float64Array; xb: Float64Array; xf: Float64Array } {
  const { B, M, C, size } = dims(shape);
  const { wf, wb } = weights(N);
  const y = new Float64Array(size);
  const yhat = new Float64Array(size);
  const xb = new Float64Array(size);
  const xf = new Float64Array(size);
  const rs = 1 / Math.sqrt(C);
  for (let b = 0; b < B; b++)
    for (let m = 0; m < M; m++) {
      const f = b * M + m;
      const mf = fmPerM ? fm[m]! : fm[f]!;
      const sf = Math.sqrt((fvPerM ? fv[m]! : fv[f]!) + eps);
      for (let c = 0; c < C; c++) {
        const i = f * C + c;
        const xbi = (x[i]! - bm[m * C + c]!) / Math.sqrt(bv[m * C + c]! + eps);
        const xfi = (x[i]! - mf) / sf;
        const yh = wf * xfi + wb * xbi;
        xb[i] = xbi;
        xf[i] = xfi;
        yhat[i] = yh;
        y[i] = (gamma[c]! * yh) * rs + beta[c]!;
      }
    }
  return { y, yhat, xb, xf };
}

export interface RefForward {
  y: Float64Array;
  stats: RefStats;
  yhat: Float64Array;
  xb: Float64Array;
  xf: Float64Array;
}

export function refForward(x: Num, shape: readonly number[], gamma: Num, beta: Num, eps = DEFAULT_EPS, N?: number): RefForward {
  const stats = refStats(x, shape);
  const n = normalize(x, shape, gamma, beta, stats.batchMean, stats.batchVar, stats.featureMean, stats.featureVar, false, false, eps, N ?? shape[0]!);
  return { ...n, stats };
}

export interface RefBackward {
  dx: Float64Array;
  dgamma: Float64Array;
  dbeta: Float64Array;
}

/**
 * Backward by the spec's formulas. Statistics are recomputed from x in float64
 * unless given (biased, the forward's).
 */
export function refBackward(dy: Num, x: Num, shape: readonly number[], gamma: Num, eps = DEFAULT_EPS, N?: number, stats?: { batchMean: Num; batchVar: Num; featureMean: Num; featureVar: Num }): RefBackward {
  const { B, M, C, size } = dims(shape);
  const s = stats ?? refStats(x, shape);
  const zeros = new Float64Array(C);
  const { yhat, xb, xf } = normalize(x, shape, gamma, zeros, s.batchMean, s.batchVar, s.featureMean, s.featureVar, false, false, eps, N ?? B);
  const { wf, wb } = weights(N ?? B);
  const rs = 1 / Math.sqrt(C);
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  const g = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const c = i % C;
    dbeta[c]! += dy[i]!;
    dgamma[c]! += (dy[i]! * yhat[i]!) * rs;
    g[i] = (dy[i]! * gamma[c]!) * rs;
  }
  const dxf = new Float64Array(size);
  for (let f = 0; f < B * M; f++) {
    const row = f * C;
    const sf = Math.sqrt(s.featureVar[f]! + eps);
    let mg = 0;
    let mgx = 0;
    for (let c = 0; c < C; c++) {
      mg += g[row + c]!;
      mgx += g[row + c]! * xf[row + c]!;
    }
    mg /= C;
    mgx /= C;
    for (let c = 0; c < C; c++) dxf[row + c] = (g[row + c]! - mg - xf[row + c]! * mgx) / sf;
  }
  const dx = new Float64Array(size);
  for (let m = 0; m < M; m++)
    for (let c = 0; c < C; c++) {
      const sb = Math.sqrt(s.batchVar[m * C + c]! + eps);
      let mg = 0;
      let mgx = 0;
      for (let b = 0; b < B; b++) {
        const i = (b * M + m) * C + c;
        mg += g[i]!;
        mgx += g[i]! * xb[i]!;
      }
      mg /= B;
      mgx /= B;
      for (let b = 0; b < B; b++) {
        const i = (b * M + m) * C + c;
        const dxb = (g[i]! - mg - xb[i]! * mgx) / sb;
        dx[i] = wf * dxf[i]! + wb * dxb;
      }
    }
  return { dx, dgamma, dbeta };
}

export interface Use {
  batchMean: boolean;
  batchVar: boolean;
  featureMean: boolean;
  featureVar: boolean;
}

export interface PopLike {
  batchMean: Num; // M*C
  batchVar: Num; // M*C
  featureMean: Num; // M
  featureVar: Num; // M
}

/** Inference: each statistic from the population where `use` says so, else from x. */
export function refInfer(x: Num, shape: readonly number[], gamma: Num, beta: Num, pop: PopLike, use: Use, eps = DEFAULT_EPS, N?: number, batchStats?: RefStats): Float64Array {
  const s = batchStats ?? refStats(x, shape);
  return normalize(
    x,
    shape,
    gamma,
    beta,
    use.batchMean ? pop.batchMean : s.batchMean,
    use.batchVar ? pop.batchVar : s.batchVar,
    use.featureMean ? pop.featureMean : s.featureMean,
    use.featureVar ? pop.featureVar : s.featureVar,
    use.featureMean,
    use.featureVar,
    eps,
    N ?? shape[0]!,
  ).y;
}

/** All 16 `use` configurations. */
export function allUses(): Use[] {
  const out: Use[] = [];
  for (let k = 0; k < 16; k++)
    out.push({ batchMean: !!(k & 1), batchVar: !!(k & 2), featureMean: !!(k & 4), featureVar: !!(k & 8) });
  return out;
}

/**
 * Population per the spec: averages over steps; batchVar corrected by B/(B-1)
 * (none at B = 1), feature stats averaged over b too and featureVar corrected
 * by C/(C-1) (none at C = 1). B of each step is featureMean.length / M.
 */
export function refPopulation(steps: { batchMean: Num; batchVar: Num; featureMean: Num; featureVar: Num }[], M: number, C: number): { batchMean: Float64Array; batchVar: Float64Array; featureMean: Float64Array; featureVar: Float64Array } {
  const batchMean = new Float64Array(M * C);
  const batchVar = new Float64Array(M * C);
  const featureMean = new Float64Array(M);
  const featureVar = new Float64Array(M);
  const n = steps.length;
  for (const s of steps) {
    const B = s.featureMean.length / M;
    const cb = B === 1 ? 1 : B / (B - 1);
    const cc = C === 1 ? 1 : C / (C - 1);
    for (let i = 0; i < M * C; i++) {
      batchMean[i]! += s.batchMean[i]! / n;
      batchVar[i]! += (s.batchVar[i]! * cb) / n;
    }
    for (let m = 0; m < M; m++) {
      let a = 0;
      let v = 0;
      for (let b = 0; b < B; b++) {
        a += s.featureMean[b * M + m]!;
        v += s.featureVar[b * M + m]!;
      }
      featureMean[m]! += a / B / n;
      featureVar[m]! += ((v / B) * cc) / n;
    }
  }
  return { batchMean, batchVar, featureMean, featureVar };
}

// ------------------------------------------------------------------ helpers

// dgamma[c] = sum over b, m of dy*(wf*xf + wb*xb)/sqrt(C): at B = 2 the batch terms of a
// column come as +-pairs, and their sum can cancel to far below the size of the terms (seen:
// 4.8e-5 from terms of ~0.5). And each term carries x - mu with x and mu in float32 (the
// statistics are float32 outputs), whose rounding is ~1e-7 of |x| + |mu|, not of |x - mu|.
// So the error of dgamma is measured against the size of those pieces, as backward.test.ts's
// termScaledErr does for dx: sum |dy| (|wf| (|x| + |mu_f|) / sf + |wb| (|x| + |mu_b|) / sb) / sqrt(C).
export function dgammaTermScaledErr(got: Float32Array, ref: Float64Array, dy: Float32Array, x: Float32Array, shape: readonly number[], eps: number, N: number): number {
  const { B, M, C } = dims(shape);
  const st = refStats(x, shape);
  const { wf, wb } = weights(N);
  const scale = new Float64Array(C);
  for (let b = 0; b < B; b++)
    for (let m = 0; m < M; m++)
      for (let c = 0; c < C; c++) {
        const i = (b * M + m) * C + c;
        const r = b * M + m;
        const mc = m * C + c;
        const xa = Math.abs(x[i]!);
        // (a branch that is exactly zero, at C = 1 or B = 1, has no rounding to measure)
        const f = C === 1 ? 0 : (Math.abs(wf) * (xa + Math.abs(st.featureMean[r]!))) / Math.sqrt(st.featureVar[r]! + eps);
        const bb = B === 1 ? 0 : (Math.abs(wb) * (xa + Math.abs(st.batchMean[mc]!))) / Math.sqrt(st.batchVar[mc]! + eps);
        scale[c] += (Math.abs(dy[i]!) * (f + bb)) / Math.sqrt(C);
      }
  let num = 0;
  let den = 0;
  for (let c = 0; c < C; c++) {
    if (!Number.isFinite(got[c]!)) return Infinity;
    num += (got[c]! - ref[c]!) ** 2;
    den += scale[c]! ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Throws (with context) when dgammaTermScaledErr exceeds 1e-5. */
export function expectDgammaClose(got: Float32Array, ref: Float64Array, dy: Float32Array, x: Float32Array, shape: readonly number[], eps: number, N: number, context: string): void {
  const e = dgammaTermScaledErr(got, ref, dy, x, shape, eps, N);
  if (!(e <= 1e-5)) throw new Error(`dgamma term-scaled error ${e} > 1e-5 (${context})`);
}

/**
 * The four statistics. Variances: relErr as expectClose. Means: the error against the means'
 * magnitude (the mean of |x| over the same values), because a mean near 0 — at M*C = 1 one mean
 * of 31 draws — makes ||got - ref|| / ||ref|| measure the draw, not the code (seen: 4.1e-5 at
 * [31, 1], 1e-7 of the data's scale).
 */
export function expectStatsClose(got: StatsLike, ref: StatsLike, x: Num, shape: readonly number[], tol: number, context: string): void {
  const { B, M, C } = dims(shape);
  const bMag = new Float64Array(M * C);
  const fMag = new Float64Array(B * M);
  for (let b = 0; b < B; b++)
    for (let m = 0; m < M; m++)
      for (let c = 0; c < C; c++) {
        const a = Math.abs(x[(b * M + m) * C + c]!);
        bMag[m * C + c] += a / B;
        fMag[b * M + m] += a / C;
      }
  expectCloseToScale(got.batchMean, ref.batchMean, bMag, tol, `batchMean (error of the mean |x|) ${context}`);
  expectCloseToScale(got.featureMean, ref.featureMean, fMag, tol, `featureMean (error of the mean |x|) ${context}`);
  expectClose(got.batchVar, ref.batchVar, tol, `batchVar ${context}`);
  expectClose(got.featureVar, ref.featureVar, tol, `featureVar ${context}`);
}

interface StatsLike {
  batchMean: Num;
  batchVar: Num;
  featureMean: Num;
  featureVar: Num;
}

export { mulberry32, Rng } from './rng';
export { expectClose, expectCloseToScale, expectSameBits, relErr, rmsOf, sameBits } from './measure';

/** A seed for tests that are not driven by fast-check (printed on failure by the callers). */
export function freshSeed(): number {
  return (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) >>> 0;
}

/** A Float32Array filled with NaN, to prove every element of an out buffer is written. */
export function poisoned(n: number): Float32Array {
  return new Float32Array(n).fill(NaN);
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Random inputs for one forward/backward/infer call. */
export interface Inputs {
  shape: number[];
  x: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  dy: Float32Array;
}

/** The arguments of forward, backward and infer on one shape: Inputs with statistics and a population. */
export interface CallInputs extends Inputs {
  stats: Stats;
  pop: Population;
}

export function makeInputs(rng: Rng, shape: readonly number[], xMean = 0, xScale = 1): Inputs {
  const size = sizeOf(shape);
  const C = shape[shape.length - 1]!;
  return {
    shape: [...shape],
    x: rng.normals(size, xMean, xScale),
    gamma: rng.normals(C, 1, 0.5),
    beta: rng.normals(C, 0, 0.5),
    dy: rng.normals(size),
  };
}

/** A random population for `shape`: means spread * N(0,1), variances uniform in [varLo, 2]. */
export function randomPop(rng: Rng, shape: readonly number[], spread = 0.5, varLo = 0.3): Population {
  const { M, C } = dims(shape);
  return { batchMean: rng.normals(M * C, 0, spread), batchVar: rng.uniforms(M * C, varLo, 2), featureMean: rng.normals(M, 0, spread), featureVar: rng.uniforms(M, varLo, 2) };
}

/** Copies `a` into a bigger buffer at element offset k and returns the view. */
export function atOffset(a: Float32Array, k: number, fill = 7.25): Float32Array {
  const big = new Float32Array(a.length + k + 5).fill(fill);
  const v = big.subarray(k, k + a.length);
  v.set(a);
  return v;
}

/** A SharedArrayBuffer-backed copy of `a`. */
export function shared(a: Float32Array): Float32Array {
  const v = new Float32Array(new SharedArrayBuffer(a.byteLength));
  v.set(a);
  return v;
}

/** ctx string for failure messages. */
export function ctx(seed: number, shape: readonly number[], extra = ''): string {
  return `seed=${seed} shape=[${shape.join(', ')}]${extra ? ' ' + extra : ''}`;
}
