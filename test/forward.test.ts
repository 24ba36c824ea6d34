// Training forward pass against the float64 reference of BLN-SPEC.md.
import fc from 'fast-check';

import * as bln from '../lib';
import { batchSizeArb, epsArb, resolveN, seedArb, shapeArb } from './arbitraries';
import {
  atOffset,
  ctx,
  expectClose,
  expectStatsClose,
  expectSameBits,
  freshSeed,
  makeInputs,
  poisoned,
  refForward,
  Rng,
  shared,
  sizeOf,
} from './reference';

const TOL = 1e-5;
const KEYS = bln.STAT_KEYS;

function checkForward(res: bln.ForwardResult, x: Float32Array, shape: number[], gamma: Float32Array, beta: Float32Array, eps: number | undefined, N: number, context: string): void {
  const ref = refForward(x, shape, gamma, beta, eps, N);
  expectClose(res.y, ref.y, TOL, `y ${context}`);
  expectStatsClose(res.stats, ref.stats, x, shape, TOL, `stats ${context}`);
}

function options(eps: number | undefined, N: number | undefined): bln.ForwardOptions | undefined {
  if (eps === undefined && N === undefined) return undefined;
  const o: bln.ForwardOptions = {};
  if (eps !== undefined) o.epsilon = eps;
  if (N !== undefined) o.batchSize = N;
  return o;
}

describe('forward vs the float64 reference', () => {
  test('random shapes, gamma/beta, epsilon, batchSize (property)', () => {
    fc.assert(
      fc.property(shapeArb, seedArb, epsArb, batchSizeArb(), (shape, seed, eps, bs) => {
        const rng = new Rng(seed);
        const { x, gamma, beta } = makeInputs(rng, shape, rng.normal(), 0.5 + 2 * rng.uniform());
        const { N, option } = resolveN(bs, shape[0]!);
        const res = bln.forward(x, shape, gamma, beta, options(eps, option));
        const { B, C } = { B: shape[0]!, C: shape[shape.length - 1]! };
        const M = sizeOf(shape) / (B * C);
        expect(res.y.length).toBe(sizeOf(shape));
        expect(res.stats.batchMean.length).toBe(M * C);
        expect(res.stats.batchVar.length).toBe(M * C);
        expect(res.stats.featureMean.length).toBe(B * M);
        expect(res.stats.featureVar.length).toBe(B * M);
        checkForward(res, x, shape, gamma, beta, eps, N, ctx(seed, shape, `eps=${eps} N=${N}`));
      }),
      { numRuns: 60 },
    );
  });

  test('poisoned (NaN-filled) out buffers are fully written and returned', () => {
    fc.assert(
      fc.property(shapeArb, seedArb, epsArb, (shape, seed, eps) => {
        const rng = new Rng(seed);
        const { x, gamma, beta } = makeInputs(rng, shape);
        const B = shape[0]!;
        const C = shape[shape.length - 1]!;
        const M = sizeOf(shape) / (B * C);
        const out = {
          y: poisoned(sizeOf(shape)),
          batchMean: poisoned(M * C),
          batchVar: poisoned(M * C),
          featureMean: poisoned(B * M),
          featureVar: poisoned(B * M),
        };
        const res = bln.forward(x, shape, gamma, beta, { epsilon: eps, out });
        expect(res.y).toBe(out.y);
        for (const k of KEYS) expect(res.stats[k]).toBe(out[k]);
        checkForward(res, x, shape, gamma, beta, eps, B, ctx(seed, shape, `eps=${eps}`));
      }),
      { numRuns: 40 },
    );
  });

  test('a subset of out buffers: the given ones are used, the others allocated', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [6, 5, 11];
    const { x, gamma, beta } = makeInputs(rng, shape);
    const out = { y: poisoned(sizeOf(shape)), featureVar: poisoned(6 * 5) };
    const res = bln.forward(x, shape, gamma, beta, { out });
    expect(res.y).toBe(out.y);
    expect(res.stats.featureVar).toBe(out.featureVar);
    checkForward(res, x, shape, gamma, beta, undefined, 6, ctx(seed, shape));
  });

  test('out buffers that are offset views write only inside their range', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [9, 3, 37];
    const B = 9;
    const M = 3;
    const C = 37;
    const { x, gamma, beta } = makeInputs(rng, shape);
    const sentinel = -12345.5;
    const mk = (n: number, k: number) => atOffset(poisoned(n), k, sentinel);
    const out = { y: mk(B * M * C, 3), batchMean: mk(M * C, 1), batchVar: mk(M * C, 5), featureMean: mk(B * M, 7), featureVar: mk(B * M, 9) };
    const res = bln.forward(x, shape, gamma, beta, { out });
    checkForward(res, x, shape, gamma, beta, undefined, B, ctx(seed, shape));
    for (const k of ['y', ...KEYS] as const) {
      const v = out[k];
      const whole = new Float32Array(v.buffer);
      for (let i = 0; i < whole.length; i++) {
        const inside = i >= v.byteOffset / 4 && i < v.byteOffset / 4 + v.length;
        if (!inside && whole[i] !== sentinel) throw new Error(`out.${k}: element ${i} outside the view was written (${ctx(seed, shape)})`);
      }
    }
  });

  test('offset subarray views (odd offsets) and SharedArrayBuffer inputs give bitwise identical results; inputs unchanged', () => {
    fc.assert(
      fc.property(shapeArb, seedArb, fc.integer({ min: 0, max: 20 }), (shape, seed, h) => {
        const rng = new Rng(seed);
        const { x, gamma, beta } = makeInputs(rng, shape);
        const k = 2 * h + 1;
        const plain = bln.forward(x, shape, gamma, beta);
        const xv = atOffset(x, k);
        const gv = atOffset(gamma, k + 2);
        const bv = atOffset(beta, k + 4);
        const xCopy = Float32Array.from(xv);
        const gCopy = Float32Array.from(gv);
        const bCopy = Float32Array.from(bv);
        const viewed = bln.forward(xv, shape, gv, bv);
        const sx = shared(x);
        const sg = shared(gamma);
        const sb = shared(beta);
        const sab = bln.forward(sx, shape, sg, sb);
        const context = ctx(seed, shape, `k=${k}`);
        expectSameBits(viewed.y, plain.y, `view y ${context}`);
        expectSameBits(sab.y, plain.y, `SAB y ${context}`);
        for (const key of KEYS) {
          expectSameBits(viewed.stats[key], plain.stats[key], `view ${key} ${context}`);
          expectSameBits(sab.stats[key], plain.stats[key], `SAB ${key} ${context}`);
        }
        // out buffers that are odd-offset views of a SharedArrayBuffer
        const n = sizeOf(shape);
        const big = new Float32Array(new SharedArrayBuffer(4 * (n + 2 * k + 8))).fill(NaN);
        const outY = big.subarray(k, k + n);
        const withOut = bln.forward(xv, shape, gv, bv, { out: { y: outY } });
        expectSameBits(withOut.y, plain.y, `SAB offset out.y ${context}`);
        // nothing was modified
        expectSameBits(xv, xCopy, `x modified ${context}`);
        expectSameBits(gv, gCopy, `gamma modified ${context}`);
        expectSameBits(bv, bCopy, `beta modified ${context}`);
        expectSameBits(sx, x, `SAB x modified ${context}`);
        expectSameBits(sg, gamma, `SAB gamma modified ${context}`);
        expectSameBits(sb, beta, `SAB beta modified ${context}`);
      }),
      { numRuns: 40 },
    );
  });

  test('inputs are never modified', () => {
    fc.assert(
      fc.property(shapeArb, seedArb, (shape, seed) => {
        const rng = new Rng(seed);
        const { x, gamma, beta } = makeInputs(rng, shape);
        const copies = [Float32Array.from(x), Float32Array.from(gamma), Float32Array.from(beta)];
        const shapeCopy = [...shape];
        bln.forward(x, shape, gamma, beta, { epsilon: 0.01, batchSize: 3 });
        expectSameBits(x, copies[0]!, `x ${ctx(seed, shape)}`);
        expectSameBits(gamma, copies[1]!, `gamma ${ctx(seed, shape)}`);
        expectSameBits(beta, copies[2]!, `beta ${ctx(seed, shape)}`);
        expect(shape).toEqual(shapeCopy);
      }),
      { numRuns: 30 },
    );
  });

  test('repeated calls are deterministic (bitwise)', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [48, 7, 129];
    const { x, gamma, beta } = makeInputs(rng, shape);
    const a = bln.forward(x, shape, gamma, beta);
    const b = bln.forward(x, shape, gamma, beta);
    expectSameBits(a.y, b.y, ctx(seed, shape));
    for (const k of KEYS) expectSameBits(a.stats[k], b.stats[k], `${k} ${ctx(seed, shape)}`);
  });
});

describe('forward edge shapes', () => {
  const cases: [string, number[]][] = [
    ['B = 1', [1, 17]],
    ['B = 1, rank 4', [1, 3, 4, 9]],
    ['C = 1', [13, 1]],
    ['C = 1, rank 3', [5, 7, 1]],
    ['[1, 1]', [1, 1]],
    ['[1, 1, 1, 1, 1]', [1, 1, 1, 1, 1]],
    ['B = 2', [2, 33]],
    ['C = 2', [9, 2]],
  ];
  test.each(cases)('%s', (_name, shape) => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const { x, gamma, beta } = makeInputs(rng, shape);
    const B = shape[0]!;
    for (const N of [undefined, 1, 5]) {
      const res = bln.forward(x, shape, gamma, beta, N === undefined ? undefined : { batchSize: N });
      checkForward(res, x, shape, gamma, beta, undefined, N ?? B, ctx(seed, shape, `N=${N}`));
    }
  });

  test('B = 1: batch variance is 0, batch mean is x itself', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [1, 4, 6];
    const { x, gamma, beta } = makeInputs(rng, shape);
    const res = bln.forward(x, shape, gamma, beta);
    expect(Array.from(res.stats.batchVar)).toEqual(new Array(24).fill(0));
    expectSameBits(res.stats.batchMean, x, ctx(seed, shape));
  });

  test('C = 1: feature variance is 0, feature mean is x itself', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [5, 3, 1];
    const { x, gamma, beta } = makeInputs(rng, shape);
    const res = bln.forward(x, shape, gamma, beta);
    expect(Array.from(res.stats.featureVar)).toEqual(new Array(15).fill(0));
    expectSameBits(res.stats.featureMean, x, ctx(seed, shape));
  });

  test('a hand-computed case', () => {
    // x = [[1, 3], [3, 5]], gamma = 1, beta = 0, eps = 1e-3, N = 2
    const x = new Float32Array([1, 3, 3, 5]);
    const res = bln.forward(x, [2, 2], new Float32Array([1, 1]), new Float32Array([0, 0]));
    expect(Array.from(res.stats.batchMean)).toEqual([2, 4]);
    expect(Array.from(res.stats.batchVar)).toEqual([1, 1]);
    expect(Array.from(res.stats.featureMean)).toEqual([2, 4]);
    expect(Array.from(res.stats.featureVar)).toEqual([1, 1]);
    const s = 1 / Math.sqrt(1 + 1e-3);
    const wf = 0.5 - 1e-4;
    const wb = 1 - (0.5 + 1e-4);
    // element (0,0): xf = -s, xb = -s
    const y00 = ((wf * -s + wb * -s) * 1) / Math.sqrt(2);
    expect(res.y[0]).toBeCloseTo(y00, 6);
    // element (0,1): xf = +s, xb = -s
    const y01 = (wf * s + wb * -s) / Math.sqrt(2);
    expect(res.y[1]).toBeCloseTo(y01, 6);
  });

  test('batchSize changes only the mixing weights', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [4, 10];
    const { x, gamma, beta } = makeInputs(rng, shape);
    const a = bln.forward(x, shape, gamma, beta, { batchSize: 25 });
    const b = bln.forward(x, shape, gamma, beta);
    checkForward(a, x, shape, gamma, beta, undefined, 25, ctx(seed, shape, 'N=25'));
    for (const k of KEYS) expectSameBits(a.stats[k], b.stats[k], `${k} ${ctx(seed, shape)}`);
    let differs = false;
    for (let i = 0; i < a.y.length; i++) if (a.y[i] !== b.y[i]) differs = true;
    expect(differs).toBe(true);
  });
});

describe('forward on large shapes (threads, column tiling, row blocks)', () => {
  const shapes: number[][] = [
    [64, 1100], // C > 512: columns are tiled
    [300, 9], // tall: row-block splitting
    [2, 3000, 5],
    [25, 14, 14, 6],
    [70, 40, 33],
    [3, 5, 1537],
    [513, 3, 17],
    [128, 1, 640],
  ];
  test.each(shapes.map((s) => [JSON.stringify(s), s] as const))('%s', (_n, shape) => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const { x, gamma, beta } = makeInputs(rng, shape, 0.3, 1.7);
    const res = bln.forward(x, shape, gamma, beta, { epsilon: 1e-4 });
    checkForward(res, x, shape, gamma, beta, 1e-4, shape[0]!, ctx(seed, shape));
    const res2 = bln.forward(x, shape, gamma, beta, { batchSize: 32 });
    checkForward(res2, x, shape, gamma, beta, undefined, 32, ctx(seed, shape, 'N=32'));
  });
});

// The two-pass apply folds its coefficients (y = gc*(F*x - Fm) + (A*x + Qc)) where every mean is within 8
// deviations, and keeps the hi/lo form elsewhere: columns whose means sit at 7.5 deviations (the fold), and
// the same data shifted to 1e4 (the hi/lo form; the fold would lose ~1e-3 there).
describe('two-pass shapes with means far from zero', () => {
  test.each([[[64, 1100]], [[20, 4000]], [[2, 3, 2100]]])('%j at 7.5 deviations and at offset 1e4', (shape) => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const C = shape[shape.length - 1]!;
    const n = sizeOf(shape);
    const { gamma } = makeInputs(rng, shape);
    const beta = new Float32Array(C); // (a beta of order 1 would dominate ||y|| at large C and hide the fold's error)
    const sign = rng.uniforms(C, 0, 1).map((u) => (u < 0.5 ? -7.5 : 7.5));
    const noise = rng.normals(n, 0, 1);
    for (const [label, x] of [
      ['7.5 deviations', Float32Array.from(noise, (z, i) => sign[i % C]! + z)],
      ['offset 1e4', Float32Array.from(noise, (z) => 1e4 + z)],
    ] as const) {
      const res = bln.forward(x, shape, gamma, beta);
      checkForward(res, x, shape, gamma, beta, undefined, shape[0]!, ctx(seed, shape, label));
    }
  });
});
