// Population statistics (accumulation over an epoch) and inference with the 16 `use` flags.
import fc from 'fast-check';

import * as bln from '../lib';
import { seedArb, shapeArb } from './arbitraries';
import {
  allUses,
  ctx,
  dims,
  expectClose,
  expectCloseToScale,
  expectSameBits,
  freshSeed,
  makeInputs,
  poisoned,
  randomPop,
  refForward,
  refInfer,
  refPopulation,
  rmsOf,
  Rng,
  sizeOf,
  Use,
} from './reference';

const KEYS = bln.STAT_KEYS;

/**
 * Leaves other data of the same shape in the addon's per-thread scratch, so a kernel
 * that reads scratch it did not write this call gives a visibly wrong answer instead
 * of the right one by luck (as it would right after a call on the same x).
 */
const scrubCache = new Map<string, ReturnType<typeof makeInputs>>();
function scrub(shape: readonly number[]): void {
  const key = shape.join(',');
  let inp = scrubCache.get(key);
  if (!inp) scrubCache.set(key, (inp = makeInputs(new Rng(0x5eed), shape, 50, 30)));
  bln.forward(inp.x, shape, inp.gamma, inp.beta);
}
const useName = (u: Use) => KEYS.map((k) => (u[k] ? k : '-')).join(',');

/** Trains a population over `batches` (list of B per step) with varying data. */
function train(rng: Rng, mid: number[], C: number, batches: number[], N?: number) {
  const pop = new bln.PopulationStats([batches[0]!, ...mid, C]);
  const libStats: bln.Stats[] = [];
  const refStats: ReturnType<typeof refForward>['stats'][] = [];
  const gamma = rng.normals(C, 1, 0.3);
  const beta = rng.normals(C, 0, 0.3);
  for (const B of batches) {
    const shape = [B, ...mid, C];
    // every step sees different data: its own offset and scale
    const { x } = makeInputs(rng, shape, 2 * rng.normal(), 0.5 + 2 * rng.uniform());
    const fwd = bln.forward(x, shape, gamma, beta, N === undefined ? undefined : { batchSize: N });
    pop.update(fwd.stats);
    libStats.push(fwd.stats);
    refStats.push(refForward(x, shape, gamma, beta).stats);
  }
  return { pop, libStats, refStats, gamma, beta };
}

describe('PopulationStats accumulation', () => {
  test.each([
    ['rank 3 with a smaller last batch', [4, 5], 10, [6, 6, 6, 6, 2]],
    ['rank 2', [], 17, [8, 8, 8]],
    ['rank 4, last batch of 1', [2, 3], 9, [5, 5, 1]],
    ['C = 1', [3], 1, [4, 4, 3]],
    ['B = 1 every step', [2], 6, [1, 1, 1, 1]],
    ['one step', [7], 33, [12]],
  ] as [string, number[], number, number[]][])('%s', (_name, mid, C, batches) => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const { pop, libStats, refStats } = train(rng, mid, C, batches);
    const M = mid.reduce((a, b) => a * b, 1);
    expect(pop.count).toBe(batches.length);
    const got = pop.result();
    expect(got.batchMean.length).toBe(M * C);
    expect(got.batchVar.length).toBe(M * C);
    expect(got.featureMean.length).toBe(M);
    expect(got.featureVar.length).toBe(M);
    const context = ctx(seed, [batches[0]!, ...mid, C], `batches=${batches}`);
    // the spec formulas applied to exactly the statistics that were fed in
    const fromLib = refPopulation(libStats, M, C);
    // and to float64 statistics of the same data
    const fromRef = refPopulation(refStats, M, C);
    // Means against the RMS of the values they average (sqrt(mean^2 + var)): a population mean near 0
    // ([1,2,6] at B = 1) would make ||got - ref|| / ||ref|| measure the draw, not the arithmetic.
    for (const k of KEYS) {
      expectClose(got[k], fromLib[k], 1e-6, `${k} vs spec formulas ${context}`);
      if (k === 'batchMean' || k === 'featureMean') {
        const v = k === 'batchMean' ? fromRef.batchVar : fromRef.featureVar;
        expectCloseToScale(got[k], fromRef[k], rmsOf(fromRef[k], v), 1e-5, `${k} vs float64, of its values' RMS ${context}`);
      } else {
        expectClose(got[k], fromRef[k], 1e-5, `${k} vs float64 ${context}`);
      }
    }
  });

  test('hand-computed corrections: B/(B-1) on batchVar, C/(C-1) on featureVar, none at B = 1 or C = 1', () => {
    const stats = (B: number, M: number, C: number, bm: number, bv: number, fm: number, fv: number): bln.Stats => ({
      batchMean: new Float32Array(M * C).fill(bm),
      batchVar: new Float32Array(M * C).fill(bv),
      featureMean: new Float32Array(B * M).fill(fm),
      featureVar: new Float32Array(B * M).fill(fv),
    });
    // B = 4, C = 5: batchVar 3 * 4/3 = 4, featureVar 2 * 5/4 = 2.5
    let p = new bln.PopulationStats([4, 2, 5]).update(stats(4, 2, 5, 1, 3, 7, 2));
    let r = p.result();
    expect(Array.from(r.batchMean)).toEqual(new Array(10).fill(1));
    expect(Array.from(r.batchVar)).toEqual(new Array(10).fill(4));
    expect(Array.from(r.featureMean)).toEqual([7, 7]);
    expect(Array.from(r.featureVar)).toEqual([2.5, 2.5]);
    // B = 1: no batch correction; C = 1: no feature correction
    p = new bln.PopulationStats([1, 1]).update(stats(1, 1, 1, 1, 3, 7, 2));
    r = p.result();
    expect(Array.from(r.batchVar)).toEqual([3]);
    expect(Array.from(r.featureVar)).toEqual([2]);
    // two steps of different B (4 then 2): averages of corrected values per step
    // batchVar: (3 * 4/3 + 3 * 2/1) / 2 = 5; featureVar: C = 3: (2 * 3/2 + 4 * 3/2) / 2 = 4.5
    p = new bln.PopulationStats([4, 3]).update(stats(4, 1, 3, 1, 3, 0, 2)).update(stats(2, 1, 3, 3, 3, 2, 4));
    r = p.result();
    expect(Array.from(r.batchMean)).toEqual([2, 2, 2]);
    expect(Array.from(r.batchVar)).toEqual([5, 5, 5]);
    expect(Array.from(r.featureMean)).toEqual([1]);
    expect(Array.from(r.featureVar)).toEqual([4.5]);
    expect(p.count).toBe(2);
  });

  test('feature statistics are averaged over batch positions (length M)', () => {
    // B = 2, M = 2: featureMean per (b, m) = [1, 10, 3, 20] -> per m: [2, 15]
    const p = new bln.PopulationStats([2, 2, 3]);
    p.update({
      batchMean: new Float32Array(6),
      batchVar: new Float32Array(6),
      featureMean: new Float32Array([1, 10, 3, 20]),
      featureVar: new Float32Array([1, 2, 3, 4]),
    });
    const r = p.result();
    expect(Array.from(r.featureMean)).toEqual([2, 15]);
    // (1 + 3) / 2 * 3/2 = 3, (2 + 4) / 2 * 3/2 = 4.5
    expect(Array.from(r.featureVar)).toEqual([3, 4.5]);
  });

  test('result() before any update throws an Error; reset() clears; count counts', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const p = new bln.PopulationStats([5, 3, 7]);
    expect(p.count).toBe(0);
    expect(() => p.result()).toThrow(Error);
    expect(() => p.result()).toThrow(/update/);
    const a = train(rng, [3], 7, [5, 5]);
    for (const s of a.libStats) p.update(s);
    expect(p.count).toBe(2);
    const first = p.result();
    expect(p.reset()).toBe(p);
    expect(p.count).toBe(0);
    expect(() => p.result()).toThrow(Error);
    // a second epoch: only its own steps count
    const b = train(rng, [3], 7, [5, 5, 4]);
    for (const s of b.libStats) p.update(s);
    expect(p.count).toBe(3);
    const second = p.result();
    const expected = refPopulation(b.libStats, 3, 7);
    for (const k of KEYS) expectClose(second[k], expected[k], 1e-6, `${k} after reset ${ctx(seed, [5, 3, 7])}`);
    // the first epoch's result was a snapshot, not a live view
    expectClose(first.batchMean, refPopulation(a.libStats, 3, 7).batchMean, 1e-6, `snapshot ${ctx(seed, [5, 3, 7])}`);
  });

  test('update returns this and does not modify the statistics given to it', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [6, 4, 9];
    const { x, gamma, beta } = makeInputs(rng, shape);
    const { stats } = bln.forward(x, shape, gamma, beta);
    const copies = KEYS.map((k) => Float32Array.from(stats[k]));
    const p = new bln.PopulationStats(shape);
    expect(p.update(stats)).toBe(p);
    KEYS.forEach((k, i) => expectSameBits(stats[k], copies[i]!, `${k} ${ctx(seed, shape)}`));
  });
});

describe('infer', () => {
  test('all 16 `use` configurations vs the reference, at the training batch size and at others', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const mid = [3, 2];
    const C = 19;
    const { pop } = train(rng, mid, C, [8, 8, 8, 5]);
    const population = pop.result();
    const gamma = rng.normals(C, 1, 0.4);
    const beta = rng.normals(C, 0, 0.4);
    for (const B of [8, 3, 1]) {
      const shape = [B, ...mid, C];
      const { x } = makeInputs(rng, shape, 0.5, 1.5);
      for (const use of allUses()) {
        for (const N of [undefined, 8]) {
          const opts = N === undefined ? undefined : { batchSize: N };
          scrub(shape);
          const y = bln.infer(x, shape, gamma, beta, population, use, opts);
          const ref = refInfer(x, shape, gamma, beta, population, use, undefined, N ?? B);
          expectClose(y, ref, 1e-5, ctx(seed, shape, `use=${useName(use)} N=${N}`));
        }
      }
    }
  });

  test('16 configurations on random shapes and epsilon (property)', () => {
    fc.assert(
      fc.property(shapeArb, seedArb, fc.constantFrom(undefined, 1e-3, 1e-5, 0.1), fc.integer({ min: 0, max: 15 }), (shape, seed, eps, k) => {
        const rng = new Rng(seed);
        const { B, M, C } = dims(shape);
        const population = {
          batchMean: rng.normals(M * C, 0, 0.5),
          batchVar: rng.uniforms(M * C, 0.2, 3),
          featureMean: rng.normals(M, 0, 0.5),
          featureVar: rng.uniforms(M, 0.2, 3),
        };
        const { x, gamma, beta } = makeInputs(rng, shape);
        const use = allUses()[k]!;
        const out = poisoned(sizeOf(shape));
        scrub(shape);
        const y = bln.infer(x, shape, gamma, beta, population, use, { epsilon: eps, out });
        expect(y).toBe(out);
        expectClose(y, refInfer(x, shape, gamma, beta, population, use, eps, B), 1e-5, ctx(seed, shape, `use=${useName(use)} eps=${eps}`));
      }),
      { numRuns: 60 },
    );
  });

  test('with all four flags false, infer equals forward y bitwise', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const none = { batchMean: false, batchVar: false, featureMean: false, featureVar: false };
    for (const shape of [[8, 3, 19], [1, 5], [7, 1], [64, 1100], [300, 9], [25, 14, 14, 6], [2, 3000, 5]]) {
      const { B } = dims(shape);
      const { x, gamma, beta } = makeInputs(rng, shape);
      const population = randomPop(rng, shape, 1, 0.5);
      for (const opts of [undefined, { epsilon: 0.02, batchSize: 25 }]) {
        const fwd = bln.forward(x, shape, gamma, beta, opts);
        const y = bln.infer(x, shape, gamma, beta, population, none, opts);
        expectSameBits(y, fwd.y, ctx(seed, shape, `B=${B} opts=${JSON.stringify(opts)}`));
      }
    }
  });

  // Every statistic from the population: the kernels need no statistics pass at all.
  test.each([[[8, 5]], [[4, 3, 5]], [[33, 4, 67]], [[300, 9]], [[2, 17]], [[1, 40]], [[64, 1100]], [[70, 40, 33]]])(
    'all four flags true on %j, right after a forward of other data of the same shape',
    (shape) => {
      const seed = freshSeed();
      const rng = new Rng(seed);
      const { x, gamma, beta } = makeInputs(rng, shape);
      const population = randomPop(rng, shape, 0.3, 0.5);
      const all = { batchMean: true, batchVar: true, featureMean: true, featureVar: true };
      scrub(shape);
      const y = bln.infer(x, shape, gamma, beta, population, all);
      expectClose(y, refInfer(x, shape, gamma, beta, population, all), 1e-5, ctx(seed, shape));
    },
  );

  // A population variance whose var + eps is below float's normal range sends its run of columns (several
  // m at small C) to the exact per-column path: every column of that run must still get its own m and c.
  test('all four flags true, zero population variances with epsilon 1e-50 in two runs of columns at C = 3', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [6, 40, 3];
    const { B, M, C } = dims(shape);
    const { x, gamma, beta } = makeInputs(rng, shape);
    const population = randomPop(rng, shape, 0.3, 0.5);
    for (const mc of [5 * C + 1, 27 * C + 2]) {
      population.batchVar[mc] = 0;
      for (let b = 0; b < B; b++) x[b * M * C + mc] = population.batchMean[mc]!; // x - mean = 0 there
    }
    const all = { batchMean: true, batchVar: true, featureMean: true, featureVar: true };
    scrub(shape);
    const y = bln.infer(x, shape, gamma, beta, population, all, { epsilon: 1e-50 });
    expectClose(y, refInfer(x, shape, gamma, beta, population, all, 1e-50), 1e-5, ctx(seed, shape));
  });

  // With every statistic from the population the CPU folds each column's coefficients into y = P*x + Q
  // where every mean is within 8 of its deviations (kernels.h's FinAffine). Far beyond that (1e4 + N(0,1))
  // the fold would lose ~1e-3, so those calls keep the hi/lo form; at 7.5 deviations the fold is used.
  test.each([[[40, 2, 33]], [[25, 14, 14, 6]], [[64, 300]]])('all four flags true on %j: a population at offset 1e4, and one at 7.5 deviations', (shape) => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const { B, M, C } = dims(shape);
    const all = { batchMean: true, batchVar: true, featureMean: true, featureVar: true };
    const { gamma, beta } = makeInputs(rng, shape);
    for (const far of [true, false]) {
      const bv = rng.uniforms(M * C, 0.5, 2);
      const fv = rng.uniforms(M, 0.5, 2);
      const sign = () => (rng.uniforms(1, 0, 1)[0]! < 0.5 ? -1 : 1);
      const bm = Float32Array.from(bv, (v) => (far ? 1e4 + sign() * 0.3 : sign() * 7.5 * Math.sqrt(v + 1e-3)));
      const fm = Float32Array.from(fv, (v) => (far ? 1e4 + sign() * 0.3 : sign() * 7.5 * Math.sqrt(v + 1e-3)));
      const noise = rng.normals(B * M * C, 0, 1);
      const x = Float32Array.from(noise, (z, i) => bm[i % (M * C)]! + z); // each value near its column's mean
      const population = { batchMean: bm, batchVar: bv, featureMean: fm, featureVar: fv };
      const y = bln.infer(x, shape, gamma, beta, population, all);
      expectClose(y, refInfer(x, shape, gamma, beta, population, all), 1e-5, ctx(seed, shape, far ? 'offset 1e4' : '7.5 deviations'));
    }
  });

  test('inferAsync with all four flags true equals the reference too', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    for (const shape of [[8, 5], [33, 4, 67], [64, 1100]]) {
      const { x, gamma, beta } = makeInputs(rng, shape);
      const population = randomPop(rng, shape, 0.3, 0.5);
      const all = { batchMean: true, batchVar: true, featureMean: true, featureVar: true };
      await bln.forwardAsync(makeInputs(rng, shape, 50, 30).x, shape, gamma, beta);
      const y = await bln.inferAsync(x, shape, gamma, beta, population, all);
      expectClose(y, refInfer(x, shape, gamma, beta, population, all), 1e-5, ctx(seed, shape));
    }
  });

  test('missing `use` keys default to false', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [4, 2, 6];
    const { x, gamma, beta } = makeInputs(rng, shape);
    const population = randomPop(rng, shape, 1, 0.5);
    const partial = bln.infer(x, shape, gamma, beta, population, { batchMean: true } as bln.InferUse);
    const full = bln.infer(x, shape, gamma, beta, population, { batchMean: true, batchVar: false, featureMean: false, featureVar: false });
    expectSameBits(partial, full, ctx(seed, shape));
  });

  test('with all four flags true every sample is normalised independently of the rest of the batch', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const mid = [4];
    const C = 21;
    const { pop, gamma, beta } = train(rng, mid, C, [10, 10, 10]);
    const population = pop.result();
    const all = { batchMean: true, batchVar: true, featureMean: true, featureVar: true };
    const B = 6;
    const shape = [B, ...mid, C];
    const { x } = makeInputs(rng, shape);
    const opts = { batchSize: 10 };
    scrub(shape);
    const batch = bln.infer(x, shape, gamma, beta, population, all, opts);
    const per = 4 * C;
    for (let b = 0; b < B; b++) {
      scrub([1, ...mid, C]);
      const one = bln.infer(x.subarray(b * per, (b + 1) * per), [1, ...mid, C], gamma, beta, population, all, opts);
      expectClose(one, batch.subarray(b * per, (b + 1) * per), 1e-6, ctx(seed, shape, `sample ${b}`));
    }
    expectClose(batch, refInfer(x, shape, gamma, beta, population, all, undefined, 10), 1e-5, ctx(seed, shape));
  });

  test('large shapes, every configuration', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    for (const shape of [[64, 1100], [70, 40, 33], [300, 9]]) {
      const population = randomPop(rng, shape, 0.3, 0.5);
      const { x, gamma, beta } = makeInputs(rng, shape);
      for (const use of allUses()) {
        scrub(shape);
        const y = bln.infer(x, shape, gamma, beta, population, use);
        expectClose(y, refInfer(x, shape, gamma, beta, population, use), 1e-5, ctx(seed, shape, `use=${useName(use)}`));
      }
    }
  });

  test('inputs are not modified and offset / SharedArrayBuffer views give identical results', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [9, 5, 23];
    const { x, gamma, beta } = makeInputs(rng, shape);
    const population = randomPop(rng, shape, 1, 0.5);
    const use = { batchMean: true, batchVar: false, featureMean: false, featureVar: true };
    const plain = bln.infer(x, shape, gamma, beta, population, use);
    const off = (a: Float32Array, k: number) => {
      const big = new Float32Array(new SharedArrayBuffer(4 * (a.length + k + 3)));
      const v = big.subarray(k, k + a.length);
      v.set(a);
      return v;
    };
    const vp = { batchMean: off(population.batchMean, 1), batchVar: off(population.batchVar, 3), featureMean: off(population.featureMean, 5), featureVar: off(population.featureVar, 7) };
    const vx = off(x, 3);
    const copies = [vx, ...Object.values(vp)].map((a) => Float32Array.from(a));
    const viewed = bln.infer(vx, shape, off(gamma, 1), off(beta, 9), vp, use);
    expectSameBits(viewed, plain, ctx(seed, shape));
    [vx, ...Object.values(vp)].forEach((a, i) => expectSameBits(a, copies[i]!, `input ${i} modified ${ctx(seed, shape)}`));
  });
});
