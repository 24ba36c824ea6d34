// Every SIMD level this machine supports, single- and multi-threaded, against the reference.
import * as bln from '../lib';
import { allUses, ctx, dims, expectClose, expectStatsClose, freshSeed, makeInputs, poisoned, randomPop, refBackward, refForward, refInfer, Rng, sizeOf } from './reference';

const initial = bln.backendInfo();
const levels = initial.simdSupported;
const threadCounts = [...new Set([1, initial.maxThreads])];

afterAll(() => {
  bln.configure({ simd: initial.simd, threads: initial.threads });
  const now = bln.backendInfo();
  if (now.simd !== initial.simd || now.threads !== initial.threads) throw new Error('defaults were not restored');
});

// fixed shapes (random data): C > 512 (column tiles), B >= 64 with M = 1, C not a
// multiple of any SIMD width, tall/narrow, many m, single sample
const SHAPES: number[][] = [
  [64, 1100],
  [3, 520],
  [128, 7],
  [64, 1, 37],
  [17, 3, 13],
  [5, 2, 31],
  [40, 4, 65],
  [300, 9],
  [70, 40, 33],
  [3, 3000, 5],
  [1, 1, 9],
  [9, 2, 2, 17],
];

const seed = freshSeed();
const rng = new Rng(seed);
const data = SHAPES.map((shape) => {
  const inp = makeInputs(rng, shape, 0.4, 1.3);
  const population = randomPop(rng, shape, 0.3, 0.4);
  const refFwd = refForward(inp.x, shape, inp.gamma, inp.beta);
  const refBwd = refBackward(inp.dy, inp.x, shape, inp.gamma);
  return { ...inp, population, refFwd, refBwd };
});

/** Other data of each shape, run before each infer so stale per-thread scratch shows. */
const scrubData = new Map<string, ReturnType<typeof makeInputs>>();
function scrub(shape: readonly number[]): void {
  const key = shape.join(',');
  let d = scrubData.get(key);
  if (!d) scrubData.set(key, (d = makeInputs(new Rng(77), shape, -40, 9)));
  bln.forward(d.x, shape, d.gamma, d.beta);
}

const combos = levels.flatMap((level) => threadCounts.map((threads) => [level, threads] as const));

describe.each(combos)('simd %s, threads %d', (level, threads) => {
  beforeAll(() => {
    const info = bln.configure({ simd: level, threads });
    expect(info.simd).toBe(level);
    expect(info.threads).toBe(threads);
    expect(bln.backendInfo().simd).toBe(level);
  });

  test('forward: y and the four statistics', () => {
    for (const d of data) {
      const { B, M, C } = dims(d.shape);
      const out = { y: poisoned(sizeOf(d.shape)), batchMean: poisoned(M * C), batchVar: poisoned(M * C), featureMean: poisoned(B * M), featureVar: poisoned(B * M) };
      const r = bln.forward(d.x, d.shape, d.gamma, d.beta, { out });
      const context = ctx(seed, d.shape, `simd=${level} threads=${threads}`);
      expectClose(r.y, d.refFwd.y, 1e-5, `y ${context}`);
      expectStatsClose(r.stats, d.refFwd.stats, d.x, d.shape, 1e-5, context);
    }
  });

  test('backward: dx, dgamma, dbeta', () => {
    for (const d of data) {
      const { B, C } = dims(d.shape);
      const fwd = bln.forward(d.x, d.shape, d.gamma, d.beta);
      const r = bln.backward(d.dy, d.x, d.shape, d.gamma, fwd.stats, { out: { dx: poisoned(sizeOf(d.shape)), dgamma: poisoned(C), dbeta: poisoned(C) } });
      const context = ctx(seed, d.shape, `simd=${level} threads=${threads}`);
      // B = 1 with the default batchSize 1 is well conditioned (batch branch weight 1e-4)
      if (B >= 3 || B === 1) expectClose(r.dx, d.refBwd.dx, 1e-4, `dx ${context}`);
      expectClose(r.dgamma, d.refBwd.dgamma, 1e-4, `dgamma ${context}`);
      expectClose(r.dbeta, d.refBwd.dbeta, 1e-4, `dbeta ${context}`);
    }
  });

  test('backward with batchSize 32 and epsilon 1e-2', () => {
    for (const d of data.filter((x) => x.shape[0]! >= 3)) {
      const opts = { batchSize: 32, epsilon: 1e-2 };
      const fwd = bln.forward(d.x, d.shape, d.gamma, d.beta, opts);
      expectClose(fwd.y, refForward(d.x, d.shape, d.gamma, d.beta, 1e-2, 32).y, 1e-5, `y ${ctx(seed, d.shape, `simd=${level} threads=${threads}`)}`);
      const r = bln.backward(d.dy, d.x, d.shape, d.gamma, fwd.stats, opts);
      expectClose(r.dx, refBackward(d.dy, d.x, d.shape, d.gamma, 1e-2, 32).dx, 1e-4, `dx ${ctx(seed, d.shape, `simd=${level} threads=${threads}`)}`);
    }
  });

  test('infer: use configurations 0..14', () => {
    const uses = allUses().slice(0, 15);
    for (const d of data) {
      uses.forEach((use, k) => {
        if ((k + d.shape.length) % 3 !== 0 && k !== 0 && k !== 14) return; // a third of them per shape, keeps it quick
        scrub(d.shape);
        const y = bln.infer(d.x, d.shape, d.gamma, d.beta, d.population, use, { out: poisoned(sizeOf(d.shape)) });
        expectClose(y, refInfer(d.x, d.shape, d.gamma, d.beta, d.population, use, undefined, undefined, d.refFwd.stats), 1e-5, ctx(seed, d.shape, `simd=${level} threads=${threads} use=${k}`));
      });
    }
  });

  test('infer: all four statistics from the population (use configuration 15)', () => {
    const use = allUses()[15]!;
    for (const d of data) {
      scrub(d.shape);
      const y = bln.infer(d.x, d.shape, d.gamma, d.beta, d.population, use);
      expectClose(y, refInfer(d.x, d.shape, d.gamma, d.beta, d.population, use, undefined, undefined, d.refFwd.stats), 1e-5, ctx(seed, d.shape, `simd=${level} threads=${threads} use=15`));
    }
  });

  test('async forward equals the reference too', async () => {
    for (const d of data.slice(0, 4)) {
      const r = await bln.forwardAsync(d.x, d.shape, d.gamma, d.beta);
      expectClose(r.y, d.refFwd.y, 1e-5, ctx(seed, d.shape, `simd=${level} threads=${threads} async`));
    }
  });
});

describe('configure', () => {
  afterEach(() => {
    bln.configure({ simd: initial.simd, threads: initial.threads });
  });

  test('returns backendInfo, and an empty object changes nothing', () => {
    const info = bln.configure({});
    expect(info.simd).toBe(initial.simd);
    expect(info.threads).toBe(initial.threads);
    expect(info.simdSupported).toEqual(initial.simdSupported);
    expect(info.simdSupported).toContain('scalar');
    expect(info.maxThreads).toBeGreaterThanOrEqual(1);
    expect(info.threads).toBeLessThanOrEqual(info.maxThreads);
  });

  const unsupported = ['avx2', 'avx512', 'neon'].filter((l) => !levels.includes(l));
  test.each([...unsupported, 'sse4', '', 'AVX2', 'scalar '].map((l) => [l]))('unsupported simd level %j is a TypeError and changes nothing', (level) => {
    bln.configure({ simd: 'scalar' });
    expect(() => bln.configure({ simd: level })).toThrow(TypeError);
    expect(() => bln.configure({ simd: level })).toThrow(/simd/);
    expect(bln.backendInfo().simd).toBe('scalar');
  });

  test.each([
    ['simd a number', { simd: 2 }, TypeError, /simd/],
    ['threads 0', { threads: 0 }, RangeError, /threads/],
    ['threads -1', { threads: -1 }, RangeError, /threads/],
    ['threads 1.5', { threads: 1.5 }, RangeError, /threads/],
    ['threads NaN', { threads: NaN }, RangeError, /threads/],
    ['threads maxThreads + 1', { threads: initial.maxThreads + 1 }, RangeError, /threads/],
    ['threads a string', { threads: '2' }, TypeError, /threads/],
  ] as [string, unknown, typeof Error, RegExp][])('%s', (_n, options, type, msg) => {
    expect(() => bln.configure(options as bln.ConfigureOptions)).toThrow(type);
    expect(() => bln.configure(options as bln.ConfigureOptions)).toThrow(msg);
    expect(bln.backendInfo().threads).toBe(initial.threads);
  });

  test.each([[null], [undefined], [5], ['avx2']])('options %p is a TypeError', (options) => {
    expect(() => bln.configure(options as unknown as bln.ConfigureOptions)).toThrow(TypeError);
  });

  test('results across SIMD levels and thread counts agree closely', () => {
    const d = data[0]!;
    const ys = combos.map(([level, threads]) => {
      bln.configure({ simd: level, threads });
      return bln.forward(d.x, d.shape, d.gamma, d.beta).y;
    });
    for (const y of ys) expectClose(y, ys[0]!, 1e-6, ctx(seed, d.shape, 'cross-level'));
  });
});

describe('environment variables at load', () => {
  // A fresh process, so the settings are read at load as a user would set them.
  const { spawnSync } = require('child_process') as typeof import('child_process');
  const path = require('path') as typeof import('path');
  test.each(initial.simdSupported)('BLN_SIMD=%s with BLN_THREADS=1 is what backendInfo reports, and computes', (level) => {
    const lib = path.resolve(__dirname, '..', 'build', 'Release', 'bln.node');
    const code = `
      const a = require(${JSON.stringify(lib)});
      const i = a.backendInfo();
      const B = 9, M = 1, C = 13, n = B * M * C;
      const x = Float32Array.from({ length: n }, (_, k) => Math.sin(k) * 3 + 1);
      const g = new Float32Array(C).fill(1), b = new Float32Array(C);
      const y = new Float32Array(n).fill(NaN), s = [M * C, M * C, B * M, B * M].map((l) => new Float32Array(l));
      a.forward(x, B, M, C, g, b, 1e-3, B, 0, y, ...s);
      process.stdout.write(JSON.stringify({ simd: i.simd, threads: i.threads, y: Array.from(y) }));
    `;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, BLN_SIMD: level, BLN_THREADS: '1' } });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { simd: string; threads: number; y: number[] };
    expect(out.simd).toBe(level);
    expect(out.threads).toBe(1);
    const shape = [9, 13];
    const x = Float32Array.from({ length: 117 }, (_, k) => Math.fround(Math.sin(k) * 3 + 1));
    const ref = refForward(x, shape, new Float32Array(13).fill(1), new Float32Array(13));
    expectClose(Float32Array.from(out.y), ref.y, 1e-5, `BLN_SIMD=${level}`);
  });
});
