// Backward pass: the float64 reference is first proven against finite differences,
// then the library is compared to it.
import fc from 'fast-check';

import * as bln from '../lib';
import { batchSizeArb, epsArb, resolveN, seedArb, shapeArb } from './arbitraries';
import {
  atOffset,
  ctx,
  expectClose,
  expectSameBits,
  freshSeed,
  makeInputs,
  poisoned,
  refBackward,
  refForward,
  relErr,
  Rng,
  shared,
  sizeOf,
} from './reference';

const TOL = 1e-4;

function checkBackward(res: bln.BackwardResult, dy: Float32Array, x: Float32Array, shape: number[], gamma: Float32Array, eps: number | undefined, N: number, context: string): void {
  const ref = refBackward(dy, x, shape, gamma, eps, N);
  expectClose(res.dx, ref.dx, TOL, `dx ${context}`);
  expectClose(res.dgamma, ref.dgamma, TOL, `dgamma ${context}`);
  expectClose(res.dbeta, ref.dbeta, TOL, `dbeta ${context}`);
}

describe('the float64 reference backward matches central finite differences of the reference forward', () => {
  // loss = sum(y * w)
  const loss = (x: Float64Array, shape: number[], gamma: Float64Array, beta: Float64Array, w: Float64Array, eps: number, N: number) => {
    const { y } = refForward(x, shape, gamma, beta, eps, N);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i]! * w[i]!;
    return s;
  };
  const cases: [number[], number, number | undefined][] = [
    [[3, 4], 1e-3, undefined],
    [[2, 3, 5], 1e-3, 7],
    [[5, 1], 1e-2, undefined],
    [[1, 4], 1e-3, undefined],
    [[4, 2, 2, 3], 0.1, 2],
    [[6, 7], 1e-3, 25],
  ];
  test.each(cases.map((c) => [JSON.stringify(c[0]), ...c] as const))('%s', (_n, shape, eps, Nopt) => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const n = sizeOf(shape);
    const C = shape[shape.length - 1]!;
    const N = Nopt ?? shape[0]!;
    const x = Float64Array.from({ length: n }, () => rng.normal());
    const gamma = Float64Array.from({ length: C }, () => 1 + 0.5 * rng.normal());
    const beta = Float64Array.from({ length: C }, () => rng.normal());
    const w = Float64Array.from({ length: n }, () => rng.normal());
    const h = 1e-6;
    const fd = (arr: Float64Array, i: number) => {
      const keep = arr[i]!;
      arr[i] = keep + h;
      const lp = loss(x, shape, gamma, beta, w, eps, N);
      arr[i] = keep - h;
      const lm = loss(x, shape, gamma, beta, w, eps, N);
      arr[i] = keep;
      return (lp - lm) / (2 * h);
    };
    const fdx = Float64Array.from({ length: n }, (_, i) => fd(x, i));
    const fdg = Float64Array.from({ length: C }, (_, i) => fd(gamma, i));
    const fdb = Float64Array.from({ length: C }, (_, i) => fd(beta, i));
    const ref = refBackward(w, x, shape, gamma, eps, N);
    const context = ctx(seed, shape, `eps=${eps} N=${N}`);
    expectClose(ref.dx, fdx, 1e-6, `dx ${context}`);
    expectClose(ref.dgamma, fdg, 1e-6, `dgamma ${context}`);
    expectClose(ref.dbeta, fdb, 1e-6, `dbeta ${context}`);
  });

  test('the finite-difference check is sharp enough to catch a wrong formula', () => {
    // Dropping the xb * mean(g * xb) term must be visible to the same check.
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [3, 4];
    const x = Float64Array.from({ length: 12 }, () => rng.normal());
    const gamma = Float64Array.from({ length: 4 }, () => 1 + 0.5 * rng.normal());
    const beta = new Float64Array(4);
    const w = Float64Array.from({ length: 12 }, () => rng.normal());
    const good = refBackward(w, x, shape, gamma, 1e-3, 3).dx;
    const bad = refBackward(w, x, shape, gamma, 1e-3, 2).dx; // wrong mixing weights
    const h = 1e-6;
    const fdx = Float64Array.from({ length: 12 }, (_, i) => {
      const keep = x[i]!;
      x[i] = keep + h;
      const yp = refForward(x, shape, gamma, beta, 1e-3, 3).y;
      x[i] = keep - h;
      const ym = refForward(x, shape, gamma, beta, 1e-3, 3).y;
      x[i] = keep;
      let s = 0;
      for (let j = 0; j < 12; j++) s += (yp[j]! - ym[j]!) * w[j]!;
      return s / (2 * h);
    });
    expect(relErr(good, fdx)).toBeLessThan(1e-6);
    expect(relErr(bad, fdx)).toBeGreaterThan(1e-3);
  });
});

describe('backward vs the float64 reference', () => {
  test('random shapes, epsilon, batchSize (property)', () => {
    fc.assert(
      fc.property(shapeArb, seedArb, epsArb, batchSizeArb(), (shape, seed, eps, bs) => {
        const rng = new Rng(seed);
        const { x, gamma, beta, dy } = makeInputs(rng, shape, rng.normal(), 0.5 + 2 * rng.uniform());
        const { N, option } = resolveN(bs, shape[0]!);
        const opts: bln.Options = {};
        if (eps !== undefined) opts.epsilon = eps;
        if (option !== undefined) opts.batchSize = option;
        const fwd = bln.forward(x, shape, gamma, beta, opts);
        const res = bln.backward(dy, x, shape, gamma, fwd.stats, opts);
        expect(res.dx.length).toBe(sizeOf(shape));
        expect(res.dgamma.length).toBe(shape[shape.length - 1]);
        expect(res.dbeta.length).toBe(shape[shape.length - 1]);
        checkBackward(res, dy, x, shape, gamma, eps, N, ctx(seed, shape, `eps=${eps} N=${N}`));
      }),
      { numRuns: 60 },
    );
  });

  test('poisoned out buffers are fully written and returned', () => {
    fc.assert(
      fc.property(shapeArb, seedArb, (shape, seed) => {
        const rng = new Rng(seed);
        const { x, gamma, beta, dy } = makeInputs(rng, shape);
        const C = shape[shape.length - 1]!;
        const fwd = bln.forward(x, shape, gamma, beta);
        const out = { dx: poisoned(sizeOf(shape)), dgamma: poisoned(C), dbeta: poisoned(C) };
        const res = bln.backward(dy, x, shape, gamma, fwd.stats, { out });
        expect(res.dx).toBe(out.dx);
        expect(res.dgamma).toBe(out.dgamma);
        expect(res.dbeta).toBe(out.dbeta);
        checkBackward(res, dy, x, shape, gamma, undefined, shape[0]!, ctx(seed, shape));
      }),
      { numRuns: 40 },
    );
  });

  test('offset views and SharedArrayBuffer inputs give bitwise identical gradients; inputs unchanged', () => {
    fc.assert(
      fc.property(shapeArb, seedArb, fc.integer({ min: 0, max: 12 }), (shape, seed, h) => {
        const rng = new Rng(seed);
        const { x, gamma, beta, dy } = makeInputs(rng, shape);
        const k = 2 * h + 1;
        const fwd = bln.forward(x, shape, gamma, beta);
        const plain = bln.backward(dy, x, shape, gamma, fwd.stats);
        const st = fwd.stats;
        const vStats = { batchMean: atOffset(st.batchMean, k), batchVar: atOffset(st.batchVar, k + 2), featureMean: atOffset(st.featureMean, k + 4), featureVar: atOffset(st.featureVar, k + 6) };
        const vdy = atOffset(dy, k);
        const vx = atOffset(x, k + 2);
        const vg = atOffset(gamma, k + 4);
        const copies = [vdy, vx, vg, ...Object.values(vStats)].map((a) => Float32Array.from(a));
        const viewed = bln.backward(vdy, vx, shape, vg, vStats);
        const sStats = { batchMean: shared(st.batchMean), batchVar: shared(st.batchVar), featureMean: shared(st.featureMean), featureVar: shared(st.featureVar) };
        const sab = bln.backward(shared(dy), shared(x), shape, shared(gamma), sStats);
        const context = ctx(seed, shape, `k=${k}`);
        for (const key of ['dx', 'dgamma', 'dbeta'] as const) {
          expectSameBits(viewed[key], plain[key], `view ${key} ${context}`);
          expectSameBits(sab[key], plain[key], `SAB ${key} ${context}`);
        }
        [vdy, vx, vg, ...Object.values(vStats)].forEach((a, i) => expectSameBits(a, copies[i]!, `input ${i} modified ${context}`));
      }),
      { numRuns: 40 },
    );
  });

  test('edge shapes: B = 1, C = 1, [1, 1], B = 2', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    for (const shape of [[1, 9], [1, 3, 5], [11, 1], [4, 6, 1], [1, 1], [2, 17], [2, 3, 2]]) {
      const { x, gamma, beta, dy } = makeInputs(rng, shape);
      for (const N of [undefined, 1, 4]) {
        const opts = N === undefined ? undefined : { batchSize: N };
        const fwd = bln.forward(x, shape, gamma, beta, opts);
        const res = bln.backward(dy, x, shape, gamma, fwd.stats, opts);
        checkBackward(res, dy, x, shape, gamma, undefined, N ?? shape[0]!, ctx(seed, shape, `N=${N}`));
      }
    }
  });

  test('dbeta is the column sum of dy and dgamma the sum of dy * yhat / sqrt(C) (independent of stats)', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [7, 3, 10];
    const { x, gamma, beta, dy } = makeInputs(rng, shape);
    const fwd = bln.forward(x, shape, gamma, beta);
    const res = bln.backward(dy, x, shape, gamma, fwd.stats);
    const dbeta = new Float64Array(10);
    for (let i = 0; i < dy.length; i++) dbeta[i % 10]! += dy[i]!;
    expectClose(res.dbeta, dbeta, 1e-6, ctx(seed, shape));
  });

  test.each([[[64, 1100]], [[300, 9]], [[2, 3000, 5]], [[25, 14, 14, 6]], [[70, 40, 33]], [[3, 5, 1537]]])('large shape %j', (shape) => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const { x, gamma, beta, dy } = makeInputs(rng, shape, -0.2, 1.3);
    const fwd = bln.forward(x, shape, gamma, beta);
    const C = shape[shape.length - 1]!;
    const out = { dx: poisoned(sizeOf(shape)), dgamma: poisoned(C), dbeta: poisoned(C) };
    const res = bln.backward(dy, x, shape, gamma, fwd.stats, { out });
    checkBackward(res, dy, x, shape, gamma, undefined, shape[0]!, ctx(seed, shape));
  });
});
