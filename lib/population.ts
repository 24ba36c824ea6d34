// Population statistics accumulated over an epoch (BLN-SPEC "Population statistics").
import * as is from './is';
import { parseShape } from './shape';
import type { Population, Stats } from './types';

/**
 * Averages of the mini-batch statistics over the training steps of an epoch.
 * Sums are kept in float64; `result()` returns float32 arrays for `infer`.
 *
 * - batchMean[m,c] = mean over steps of mu_b
 * - batchVar[m,c]  = mean over steps of var_b * B/(B-1)          (no correction at B = 1)
 * - featureMean[m] = mean over steps of (mean over b of mu_f[b,m])
 * - featureVar[m]  = mean over steps of (mean over b of var_f[b,m]) * C/(C-1)   (none at C = 1)
 *
 * B is read from each step's feature statistics (length B*M), so a smaller last
 * batch is handled; every step weighs the same.
 */
export class PopulationStats {
  readonly shape: readonly number[];
  private readonly M: number;
  private readonly C: number;
  private readonly sums: Record<keyof Stats, Float64Array>;
  private steps = 0;

  constructor(shape: readonly number[]) {
    const v = parseShape(shape);
    this.shape = v.shape;
    this.M = v.M;
    this.C = v.C;
    const mc = v.M * v.C;
    try {
      this.sums = {
        batchMean: new Float64Array(mc),
        batchVar: new Float64Array(mc),
        featureMean: new Float64Array(v.M),
        featureVar: new Float64Array(v.M),
      };
    } catch (e) {
      // beyond the typed-array limit, or the allocator said no: name the shape
      throw new RangeError(
        `Expected shape whose accumulators (2 x ${mc} + 2 x ${v.M} float64) can be allocated but received [${v.shape.join(', ')}]: ${(e as Error).message}`,
      );
    }
  }

  /** Steps accumulated since construction or the last reset. */
  get count(): number {
    return this.steps;
  }

  /** Adds one training step's mini-batch statistics (what `forward` returned). */
  update(stats: Stats): this {
    if (!is.plainObject(stats)) throw is.invalidType('object with batchMean, batchVar, featureMean, featureVar', 'stats', stats);
    const { M, C } = this;
    const s = stats as unknown as Record<string, unknown>;
    const bm = is.float32OfLength(s.batchMean, 'stats.batchMean', M * C);
    const bv = is.float32OfLength(s.batchVar, 'stats.batchVar', M * C);
    const fm = is.float32(s.featureMean, 'stats.featureMean');
    const fv = is.float32(s.featureVar, 'stats.featureVar');
    if (fm.length === 0 || fm.length % M !== 0)
      throw is.invalidRange(`Float32Array whose length is a positive multiple of ${M} (B*M)`, 'stats.featureMean', fm);
    const B = fm.length / M;
    is.float32OfLength(fv, 'stats.featureVar', B * M);
    const cb = B > 1 ? B / (B - 1) : 1;
    const cc = C > 1 ? C / (C - 1) : 1;
    const S = this.sums;
    for (let i = 0; i < M * C; i++) {
      S.batchMean[i]! += bm[i]!;
      S.batchVar[i]! += bv[i]! * cb;
    }
    for (let m = 0; m < M; m++) {
      let a = 0;
      let b = 0;
      for (let k = 0; k < B; k++) {
        a += fm[k * M + m]!;
        b += fv[k * M + m]!;
      }
      S.featureMean[m]! += a / B;
      S.featureVar[m]! += (b / B) * cc;
    }
    this.steps++;
    return this;
  }

  /** The population statistics; an Error before any update. */
  result(): Population {
    if (this.steps === 0) throw new Error('PopulationStats.result() called before any update(): there is no population yet');
    const n = this.steps;
    const avg = (a: Float64Array) => Float32Array.from(a, (v) => v / n);
    return {
      batchMean: avg(this.sums.batchMean),
      batchVar: avg(this.sums.batchVar),
      featureMean: avg(this.sums.featureMean),
      featureVar: avg(this.sums.featureVar),
    };
  }

  /** Clears the accumulators (call at the start of each epoch). */
  reset(): this {
    for (const a of Object.values(this.sums)) a.fill(0);
    this.steps = 0;
    return this;
  }
}
