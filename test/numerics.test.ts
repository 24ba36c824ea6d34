// Numerics: a large common offset (1e4 + N(0,1)), NaN and Inf inputs.
import * as bln from '../lib';
import { ctx, dims, expectClose, expectCloseToScale, freshSeed, makeInputs, refBackward, refForward, relErr, Rng, rmsOf, sizeOf } from './reference';

const SPEC_BOUND = 3e-3;
const KEYS = bln.STAT_KEYS;

describe('data with a large common offset: 1e4 + N(0,1)', () => {
  const shapes: number[][] = [
    [64, 256],
    [32, 9, 40],
    [12, 3, 8],
    [300, 9],
    [8, 2, 1100],
    [16, 4, 4, 17],
  ];

  test.each(shapes.map((s) => [JSON.stringify(s), s] as const))('forward and backward %s within 3e-3', (_n, shape) => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const { x, gamma, beta, dy } = makeInputs(rng, shape, 1e4, 1);
    const context = ctx(seed, shape);
    const fwd = bln.forward(x, shape, gamma, beta);
    const ref = refForward(x, shape, gamma, beta);
    expectClose(fwd.y, ref.y, SPEC_BOUND, `y ${context}`);
    for (const k of KEYS) expectClose(fwd.stats[k], ref.stats[k], SPEC_BOUND, `${k} ${context}`);
    const bwd = bln.backward(dy, x, shape, gamma, fwd.stats);
    const rb = refBackward(dy, x, shape, gamma);
    expectClose(bwd.dx, rb.dx, SPEC_BOUND, `dx ${context}`);
    expectClose(bwd.dgamma, rb.dgamma, SPEC_BOUND, `dgamma ${context}`);
    expectClose(bwd.dbeta, rb.dbeta, SPEC_BOUND, `dbeta ${context}`);
  });

  // The backward consumes float32 statistics; near 1e4 their mean is only good to ~5e-4
  // absolute, which dominates the error above (and exceeds 3e-3 where a batch of 3 has a
  // tiny spread). Given those same statistics, the backward itself must be accurate.
  test.each([[[3, 2, 1100]], [[64, 256]], [[2, 9, 40]], [[300, 9]]])('backward %j at offset 1e4 matches the reference fed the same float32 stats to 1e-4', (shape) => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const { x, gamma, beta, dy } = makeInputs(rng, shape, 1e4, 1);
    const fwd = bln.forward(x, shape, gamma, beta);
    const bwd = bln.backward(dy, x, shape, gamma, fwd.stats);
    const rb = refBackward(dy, x, shape, gamma, undefined, undefined, fwd.stats);
    const context = ctx(seed, shape);
    expectClose(bwd.dx, rb.dx, 1e-4, `dx ${context}`);
    expectClose(bwd.dgamma, rb.dgamma, 1e-4, `dgamma ${context}`);
    expectClose(bwd.dbeta, rb.dbeta, 1e-4, `dbeta ${context}`);
  });

  test('variances are not computed naively: [64, 256] at offset 1e4, y error < 1e-4 and variances < 1e-4', () => {
    // A naive float32 sum of squares fails by orders of magnitude; shifted sums or
    // double accumulators keep ~1e-6. 1e-4 is a regression guard well above that.
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [64, 256];
    const { x, gamma, beta } = makeInputs(rng, shape, 1e4, 1);
    const fwd = bln.forward(x, shape, gamma, beta);
    const ref = refForward(x, shape, gamma, beta);
    const context = ctx(seed, shape);
    expectClose(fwd.y, ref.y, 1e-4, `y ${context}`);
    expectClose(fwd.stats.batchVar, ref.stats.batchVar, 1e-4, `batchVar ${context}`);
    expectClose(fwd.stats.featureVar, ref.stats.featureVar, 1e-4, `featureVar ${context}`);
  });

  test('an even larger offset (1e5 + N(0,1)) still gives accurate variances', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [48, 5, 96];
    const { x, gamma, beta } = makeInputs(rng, shape, 1e5, 1);
    const fwd = bln.forward(x, shape, gamma, beta);
    const ref = refForward(x, shape, gamma, beta);
    const context = ctx(seed, shape);
    // float32 spacing at 1e5 is ~8e-3: x itself carries that, the reference too.
    expectClose(fwd.stats.batchVar, ref.stats.batchVar, 1e-3, `batchVar ${context}`);
    expectClose(fwd.stats.featureVar, ref.stats.featureVar, 1e-3, `featureVar ${context}`);
    expectClose(fwd.y, ref.y, SPEC_BOUND, `y ${context}`);
  });

  test('the offset check is sharp: a naive float32 variance would fail it', () => {
    // Guards the guard: E[x^2] - E[x]^2 in float32 at offset 1e4 is far off.
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [64, 256];
    const { x } = makeInputs(rng, shape, 1e4, 1);
    const { B, C } = dims(shape);
    const naive = new Float32Array(C);
    for (let c = 0; c < C; c++) {
      let s = Math.fround(0);
      let s2 = Math.fround(0);
      for (let b = 0; b < B; b++) {
        s = Math.fround(s + x[b * C + c]!);
        s2 = Math.fround(s2 + Math.fround(x[b * C + c]! * x[b * C + c]!));
      }
      const m = Math.fround(s / B);
      naive[c] = Math.fround(Math.fround(s2 / B) - Math.fround(m * m));
    }
    const ref = refForward(x, shape, new Float32Array(C).fill(1), new Float32Array(C)).stats.batchVar;
    expect(relErr(naive, ref)).toBeGreaterThan(1e-1);
  });
});

describe('huge magnitudes: squared deviations beyond float32', () => {
  // The kernels sum squared deviations in float32 runs; past ~3e18 those overflow while the
  // data is finite. Such statistics are recomputed in double (regression: y was off by a
  // relative 0.3-1.8 at scale 1e22).
  const SHAPES = [[32, 300], [16, 3000], [8, 5, 40], [1, 7], [5, 1]];
  const LEVELS = bln.backendInfo().simdSupported;
  afterAll(() => void bln.configure({ simd: bln.backendInfo().simdSupported.at(-1)!, threads: bln.backendInfo().maxThreads }));

  // Variances are float32 outputs: where the true one exceeds float32 (deviations beyond
  // ~1.8e19, which N(0, 1e19) data reaches for some seeds) it is +Inf, elsewhere exact.
  function expectVariances(got: Float32Array, want: ArrayLike<number>, label: string): void {
    for (let i = 0; i < want.length; i++) {
      if (Math.fround(want[i]!) === Infinity) expect(got[i]).toBe(Infinity);
      else if (!(Math.abs(got[i]! - want[i]!) <= 1e-5 * Math.abs(want[i]!) + 1e-30))
        throw new Error(`${label}: variance [${i}] ${got[i]} vs reference ${want[i]}`);
    }
  }

  test.each(LEVELS.flatMap((simd) => [3e18, 1e19, 1e22].map((scale) => [simd, scale] as const)))(
    '%s, scale %d: y and means match the reference; variances exact or +Inf beyond float32',
    (simd, scale) => {
      bln.configure({ simd });
      for (const shape of SHAPES) {
        const seed = freshSeed();
        const { x, gamma, beta } = makeInputs(new Rng(seed), shape, 0, scale);
        const fwd = bln.forward(x, shape, gamma, beta);
        const ref = refForward(x, shape, gamma, beta);
        const context = `${simd} ${ctx(seed, shape)}`;
        expectClose(fwd.y, ref.y, 1e-5, `y ${context}`);
        const noPop = { batchMean: false, batchVar: false, featureMean: false, featureVar: false };
        const pop = new bln.PopulationStats(shape).update(fwd.stats).result();
        expectClose(bln.infer(x, shape, gamma, beta, pop, noPop), ref.y, 1e-5, `infer y ${context}`);
        // means against the RMS of their values (a single mean of 5 near 0 at [5,1] measured 2.7e-5 of itself)
        expectCloseToScale(fwd.stats.batchMean, ref.stats.batchMean, rmsOf(ref.stats.batchMean, ref.stats.batchVar), 1e-5, `batchMean ${context}`);
        expectCloseToScale(fwd.stats.featureMean, ref.stats.featureMean, rmsOf(ref.stats.featureMean, ref.stats.featureVar), 1e-5, `featureMean ${context}`);
        expectVariances(fwd.stats.batchVar, ref.stats.batchVar, `batchVar ${context}`);
        expectVariances(fwd.stats.featureVar, ref.stats.featureVar, `featureVar ${context}`);
      }
    },
  );
});

describe('NaN and Inf inputs', () => {
  test('NaN in one element: forward, backward, infer do not crash; NaN reaches its row and column, not the rest', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [8, 3, 16];
    const { B, M, C } = dims(shape);
    const { x, gamma, beta, dy } = makeInputs(rng, shape);
    const [b0, m0, c0] = [5, 1, 9];
    const idx = (b: number, m: number, c: number) => (b * M + m) * C + c;
    const bad = Float32Array.from(x);
    bad[idx(b0, m0, c0)] = NaN;
    const fwd = bln.forward(bad, shape, gamma, beta);
    expect(fwd.y[idx(b0, m0, c0)]).toBeNaN();
    expect(fwd.stats.batchMean[m0 * C + c0]).toBeNaN();
    expect(fwd.stats.featureMean[b0 * M + m0]).toBeNaN();
    // Elements of other m share no statistic with the NaN: they equal the clean result.
    const ref = refForward(x, shape, gamma, beta);
    const untouched: number[] = [];
    const refUntouched: number[] = [];
    for (let b = 0; b < B; b++)
      for (let m = 0; m < M; m++)
        for (let c = 0; c < C; c++)
          if (m !== m0) {
            untouched.push(fwd.y[idx(b, m, c)]!);
            refUntouched.push(ref.y[idx(b, m, c)]!);
          }
    expectClose(untouched, refUntouched, 1e-5, `untouched y ${ctx(seed, shape)}`);

    const bwd = bln.backward(dy, bad, shape, gamma, fwd.stats);
    expect(bwd.dx[idx(b0, m0, c0)]).toBeNaN();
    expect(bwd.dx.length).toBe(sizeOf(shape));

    const pop = { batchMean: new Float32Array(M * C), batchVar: new Float32Array(M * C).fill(1), featureMean: new Float32Array(M), featureVar: new Float32Array(M).fill(1) };
    // batch statistics from the population, feature statistics from x: the NaN touches its row only
    const inf = bln.infer(bad, shape, gamma, beta, pop, { batchMean: true, batchVar: true, featureMean: false, featureVar: false });
    expect(inf[idx(b0, m0, c0)]).toBeNaN();
    let others = 0;
    for (let b = 0; b < B; b++)
      for (let m = 0; m < M; m++)
        for (let c = 0; c < C; c++) if ((b !== b0 || m !== m0) && !Number.isFinite(inf[idx(b, m, c)]!)) others++;
    expect(others).toBe(0);

    // async paths too
    const afwd = await bln.forwardAsync(bad, shape, gamma, beta);
    expect(afwd.y[idx(b0, m0, c0)]).toBeNaN();
    const abwd = await bln.backwardAsync(dy, bad, shape, gamma, fwd.stats);
    expect(abwd.dx[idx(b0, m0, c0)]).toBeNaN();
  });

  test('NaN in gamma, dy and the statistics: no crash', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [6, 20];
    const { x, gamma, beta, dy } = makeInputs(rng, shape);
    const g = Float32Array.from(gamma);
    g[3] = NaN;
    const fwd = bln.forward(x, shape, g, beta);
    expect(fwd.y[3]).toBeNaN();
    expect(Number.isFinite(fwd.y[2]!)).toBe(true);
    const d = Float32Array.from(dy);
    d[7] = NaN;
    const bwd = bln.backward(d, x, shape, gamma, fwd.stats);
    expect(bwd.dbeta[7]).toBeNaN();
    expect(Number.isFinite(bwd.dbeta[6]!)).toBe(true);
    const stats = { ...fwd.stats, batchVar: Float32Array.from(fwd.stats.batchVar) };
    stats.batchVar[0] = NaN;
    const r = await bln.backwardAsync(dy, x, shape, gamma, stats);
    expect(r.dx.length).toBe(120);
  });

  test('Inf and -Inf inputs: no crash, outputs have the right shape', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    for (const shape of [[4, 8], [70, 40, 33], [2, 600]]) {
      const { x, gamma, beta, dy } = makeInputs(rng, shape);
      const bad = Float32Array.from(x);
      bad[1] = Infinity;
      bad[bad.length - 1] = -Infinity;
      const fwd = bln.forward(bad, shape, gamma, beta);
      expect(fwd.y.length).toBe(sizeOf(shape));
      expect(fwd.y[1]).toBeNaN(); // (x - mu) with x = mu = Inf
      const bwd = bln.backward(dy, bad, shape, gamma, fwd.stats);
      expect(bwd.dx.length).toBe(sizeOf(shape));
      const afwd = await bln.forwardAsync(bad, shape, gamma, beta);
      expect(afwd.y.length).toBe(sizeOf(shape));
    }
    // the process is fine afterwards
    const shape = [5, 7];
    const { x, gamma, beta } = makeInputs(rng, shape);
    expectClose(bln.forward(x, shape, gamma, beta).y, refForward(x, shape, gamma, beta).y, 1e-5, ctx(seed, shape));
  });

  test('all-equal input (zero variance everywhere) gives y = beta', () => {
    const shape = [9, 4, 13];
    const x = new Float32Array(sizeOf(shape)).fill(3.25);
    const rng = new Rng(freshSeed());
    const gamma = rng.normals(13, 1, 0.5);
    const beta = rng.normals(13);
    const fwd = bln.forward(x, shape, gamma, beta);
    for (let i = 0; i < fwd.y.length; i++) if (fwd.y[i] !== beta[i % 13]) throw new Error(`y[${i}] = ${fwd.y[i]} != beta ${beta[i % 13]}`);
    expect(Array.from(fwd.stats.batchVar).every((v) => v === 0)).toBe(true);
    expect(Array.from(fwd.stats.featureVar).every((v) => v === 0)).toBe(true);
  });
});

describe('outputs of 8 MiB and more', () => {
  const seed = freshSeed();
  test.each([
    [[2300, 1024]],   // two passes, column tiles, rows split across threads
    [[16, 4096, 36]], // fused slabs
    [[40, 3, 17500]], // C % 4 != 0: plain stores
  ])('%j forward and backward match the reference', (shape) => {
    const inp = makeInputs(new Rng(seed), shape, 0.4, 1.3);
    const ref = refForward(inp.x, shape, inp.gamma, inp.beta);
    const f = bln.forward(inp.x, shape, inp.gamma, inp.beta);
    expectClose(f.y, ref.y, 1e-5, ctx(seed, shape, 'y'));
    const r = refBackward(inp.dy, inp.x, shape, inp.gamma);
    const g = bln.backward(inp.dy, inp.x, shape, inp.gamma, f.stats);
    expectClose(g.dx, r.dx, 1e-4, ctx(seed, shape, 'dx'));
    expectClose(g.dgamma, r.dgamma, 1e-4, ctx(seed, shape, 'dgamma'));
  });
});

describe('non-temporal stores (BLN_STREAM_BYTES=0 streams every aligned output)', () => {
  // The same arithmetic with another kind of store: results must be identical bit for bit.
  test.each([[[16, 4096, 36]], [[2300, 1024]], [[7, 5, 12]], [[40, 3, 1700]]])('%j', (shape) => {
    const { spawnSync } = require('child_process') as typeof import('child_process');
    const path = require('path') as typeof import('path');
    const lib = path.resolve(__dirname, '..', 'build', 'Release', 'bln.node');
    const n = shape.reduce((a, b) => a * b, 1);
    const C = shape[shape.length - 1]!;
    const B = shape[0]!;
    const M = n / (B * C);
    const code = `
      const a = require(${JSON.stringify(lib)});
      const [B, M, C, n] = [${B}, ${M}, ${C}, ${n}];
      const x = new Float32Array(n), dy = new Float32Array(n);
      for (let i = 0; i < n; i++) { x[i] = Math.sin(i * 0.37) * 2 + 0.5; dy[i] = Math.cos(i * 0.11); }
      const g = new Float32Array(C).map((_, i) => 1 + 0.01 * i), b = new Float32Array(C).map((_, i) => 0.02 * i);
      const y = new Float32Array(n), s = [M * C, M * C, B * M, B * M].map((l) => new Float32Array(l));
      a.forward(x, B, M, C, g, b, 1e-3, B, 0, y, ...s);
      const dx = new Float32Array(n), dg = new Float32Array(C), db = new Float32Array(C);
      a.backward(dy, x, B, M, C, g, ...s, 1e-3, B, 0, dx, dg, db);
      let h = 0;
      const hash = (arr) => { const u = new Uint32Array(arr.buffer, arr.byteOffset, arr.length); for (let i = 0; i < u.length; i++) h = (Math.imul(h, 31) + u[i]) | 0; };
      hash(y); hash(dx); hash(dg); hash(db);
      process.stdout.write(String(h));
    `;
    const run = (env: Record<string, string>) => {
      const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, ...env } });
      if (r.status !== 0) throw new Error(r.stderr);
      return r.stdout;
    };
    const plain = run({ BLN_STREAM_BYTES: String(2 ** 50) });
    const streamed = run({ BLN_STREAM_BYTES: '0' });
    expect(streamed).toBe(plain);
  });
});
