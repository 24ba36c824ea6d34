// Shapes chosen to reach each kernel variant that the CUDA plans pick (planForward /
// planBackward in cuda/) and the CPU plans' tilings: the slab kernels (B*C <= 16K floats) and
// the tiled ones, 128-bit (C % 4 == 0) and scalar accesses, several column tiles per row, row
// chunks (few tiles, B >= 128), the three-stage dgamma reduction (M > 1024), B = 1, C = 1.
// Each shape: forward, backward and inference in all 16 configurations against the float64
// reference, outputs poisoned first. On every device; under `npm run test:cuda-emu` these run
// through the emulated CUDA kernels.
import * as bln from '../lib';
import { allUses, ctx, dims, expectClose, expectDgammaClose, expectStatsClose, freshSeed, makeInputs, poisoned, refBackward, refForward, refInfer, Rng, sizeOf } from './reference';

const SHAPES: [string, number[]][] = [
  ['slab, 128-bit', [24, 3, 36]],
  ['slab, scalar (odd C)', [17, 4, 33]],
  ['slab, C = 1', [40, 6, 1]],
  ['slab, B = 1', [1, 5, 64]],
  ['tiled, 128-bit, column tiles', [70, 2, 300]],
  ['tiled, scalar, column tiles', [130, 2, 133]],
  ['tiled, row chunks', [300, 2, 64]],
  ['tiled backward only (2*B*C > 16K)', [60, 3, 140]],
  ['three-stage dgamma reduction (M > 1024)', [3, 1100, 5]],
  ['rank 4, small C', [9, 5, 7, 3]],
  ['tiled, M > 1 with M*C > 2048', [44, 2, 1500]],
  ['tiled, C > 2048', [32, 2100]],
];

const useName = (u: bln.InferUse) => (Object.keys(u) as (keyof bln.InferUse)[]).filter((k) => u[k]).join('+') || 'none';

describe.each(SHAPES)('%s %j', (_name, shape) => {
  const seed = freshSeed();
  const rng = new Rng(seed);
  const { B, M, C } = dims(shape);
  const n = sizeOf(shape);
  const inp = makeInputs(rng, shape, 0.5, 1.5);
  const N = B + 3;
  const opts = { epsilon: 1e-3, batchSize: N };

  test('forward and backward', () => {
    const out = { y: poisoned(n), batchMean: poisoned(M * C), batchVar: poisoned(M * C), featureMean: poisoned(B * M), featureVar: poisoned(B * M) };
    const f = bln.forward(inp.x, shape, inp.gamma, inp.beta, { ...opts, out });
    const rf = refForward(inp.x, shape, inp.gamma, inp.beta, 1e-3, N);
    expectClose(f.y, rf.y, 1e-5, `y ${ctx(seed, shape)}`);
    expectStatsClose(f.stats, rf.stats, inp.x, shape, 1e-5, ctx(seed, shape));
    const bout = { dx: poisoned(n), dgamma: poisoned(C), dbeta: poisoned(C) };
    const b = bln.backward(inp.dy, inp.x, shape, inp.gamma, f.stats, { ...opts, out: bout });
    const rb = refBackward(inp.dy, inp.x, shape, inp.gamma, 1e-3, N);
    expectClose(b.dx, rb.dx, 1e-4, `dx ${ctx(seed, shape)}`);
    // (dgamma is a signed sum of B*M terms: against their size, as in backward.test.ts; at [40,6,1],
    // seed 1687612922, they cancelled to -5.35e-3 from 148 in all, 3.1e-4 off relative to the sum)
    expectDgammaClose(b.dgamma, rb.dgamma, inp.dy, inp.x, shape, 1e-3, N, ctx(seed, shape));
    expectClose(b.dbeta, rb.dbeta, 1e-4, `dbeta ${ctx(seed, shape)}`);
  });

  // a population unlike the batch: its own means and variances
  const pop = {
    batchMean: rng.normals(M * C, 0.3, 0.5),
    batchVar: rng.normals(M * C, 0, 1).map((v) => 0.5 + v * v),
    featureMean: rng.normals(M, -0.2, 0.5),
    featureVar: rng.normals(M, 0, 1).map((v) => 0.5 + v * v),
  };
  test.each(allUses().map((u) => [useName(u), u] as const))('infer, population %s', (_u, use) => {
    const y = bln.infer(inp.x, shape, inp.gamma, inp.beta, pop, use, { ...opts, out: poisoned(n) });
    expectClose(y, refInfer(inp.x, shape, inp.gamma, inp.beta, pop, use, 1e-3, N), 1e-5, `infer ${useName(use)} ${ctx(seed, shape)}`);
  });
});
