// Faults: allocations that cannot be satisfied, native out-of-memory, non-finite inputs,
// and the regressions of the bugs the fuzzer found (test/fuzz.test.ts).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import fc from 'fast-check';
import * as vm from 'vm';

import * as bln from '../lib';
import { ON_CUDA } from './device';
import { ctx, dims, expectClose, expectCloseToScale, freshSeed, makeInputs, randomPop, refBackward, refForward, refInfer, Rng, sizeOf } from './reference';

const root = path.resolve(__dirname, '..');

/** forward, backward and infer all compute correct results (the process is fine). */
async function stillWorks(label: string): Promise<void> {
  const seed = freshSeed();
  const rng = new Rng(seed);
  const shape = [6, 2, 9];
  const { x, gamma, beta, dy } = makeInputs(rng, shape);
  const f = bln.forward(x, shape, gamma, beta);
  expectClose(f.y, refForward(x, shape, gamma, beta).y, 1e-5, `${label}: forward ${ctx(seed, shape)}`);
  const fa = await bln.forwardAsync(x, shape, gamma, beta);
  expectClose(fa.y, f.y, 0, `${label}: forwardAsync ${ctx(seed, shape)}`);
  const b = await bln.backwardAsync(dy, x, shape, gamma, f.stats);
  expectClose(b.dx, refBackward(dy, x, shape, gamma).dx, 1e-4, `${label}: backwardAsync ${ctx(seed, shape)}`);
}

async function outcome(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('allocations that cannot be satisfied', () => {
  test('a huge shape [2^20, 2^20, 2^10] with a small x: RangeError naming x (nothing is allocated)', async () => {
    const shape = [2 ** 20, 2 ** 20, 2 ** 10];
    const g = new Float32Array(1024);
    for (const f of [() => bln.forward(new Float32Array(8), shape, g, g), () => bln.forwardAsync(new Float32Array(8), shape, g, g)]) {
      const e = (await outcome(f)) as Error;
      expect(e).toBeInstanceOf(RangeError);
      expect(e.message).toMatch(/^Expected x of length 1125899906842624 /);
    }
    await stillWorks('after a huge shape');
  });

  test('a product beyond the native index type: RangeError naming shape', async () => {
    const e = (await outcome(() => bln.forwardAsync(new Float32Array(8), [2 ** 26, 2 ** 26, 2 ** 26], new Float32Array(2 ** 26), new Float32Array(2 ** 26)))) as Error;
    expect(e).toBeInstanceOf(RangeError);
    expect(e.message).toMatch(/shape.*index type/);
  });

  test('PopulationStats of a shape whose accumulators cannot be allocated: RangeError naming shape', () => {
    let e: unknown;
    try {
      new bln.PopulationStats([1, 2 ** 20, 2 ** 20, 2 ** 10]);
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(RangeError);
    expect((e as Error).message).toMatch(/^Expected shape whose accumulators .* can be allocated but received \[1, 1048576, 1048576, 1024\]/);
    // the next one works
    const p = new bln.PopulationStats([2, 3]);
    p.update({ batchMean: new Float32Array(3), batchVar: new Float32Array(3), featureMean: new Float32Array(2), featureVar: new Float32Array(2) });
    expect(p.count).toBe(1);
  });

  test('outputs over 4 GiB (beyond buffer.constants.MAX_LENGTH): RangeError naming the output; the next call works', async () => {
    // x of 2^30 + 1 floats: zero pages that are never touched (validation fails before any read)
    const n = 2 ** 30 + 1; // = 25 * 32513 * 1321
    const shape = [25, 32513, 1321];
    let x: Float32Array;
    try {
      x = new Float32Array(n);
    } catch {
      // this machine cannot even reserve x: nothing to test here
      return;
    }
    const C = 1321;
    const g = new Float32Array(C);
    const stats = { batchMean: new Float32Array(32513 * C), batchVar: new Float32Array(32513 * C), featureMean: new Float32Array(25 * 32513), featureVar: new Float32Array(25 * 32513) };
    const pop = { batchMean: stats.batchMean, batchVar: stats.batchVar, featureMean: new Float32Array(32513), featureVar: new Float32Array(32513) };
    const use = { batchMean: false, batchVar: false, featureMean: false, featureVar: false };
    const cases: [string, () => unknown, RegExp][] = [
      ['forward', () => bln.forward(x, shape, g, g), /^Could not allocate the output out\.y \(1073741825 float32 elements, 4294967300 bytes\)/],
      ['forwardAsync', () => bln.forwardAsync(x, shape, g, g), /output out\.y/],
      ['backward', () => bln.backward(x, x, shape, g, stats), /^Could not allocate the output out\.dx/],
      ['backwardAsync', () => bln.backwardAsync(x, x, shape, g, stats), /output out\.dx/],
      ['infer', () => bln.infer(x, shape, g, g, pop, use), /^Could not allocate the output options\.out/],
      ['inferAsync', () => bln.inferAsync(x, shape, g, g, pop, use), /output options\.out/],
    ];
    for (const [name, f, msg] of cases) {
      const e = (await outcome(f)) as Error;
      if (!(e instanceof RangeError)) throw new Error(`${name}: expected a RangeError, got ${String(e)}`);
      expect(e.message).toMatch(msg);
    }
    await stillWorks('after a 4 GiB output');
  });

  // Native allocation failure: a child process lowers its own address-space limit
  // (prlimit) so the per-thread scratch of one large call cannot be had.
  const prlimit = ['/usr/bin/prlimit', '/bin/prlimit'].find((p) => fs.existsSync(p));
  // (On the CUDA path the large call allocates device memory, not host scratch: the test below.)
  (process.platform === 'linux' && prlimit && !ON_CUDA ? test : test.skip)('native out-of-memory: Error "out of memory" sync and async, then the process goes on', () => {
    const code = `
      const bln = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))});
      const { execFileSync } = require('child_process');
      const fs = require('fs');
      const vmSize = () => +fs.readFileSync('/proc/self/status', 'utf8').match(/VmSize:\\s+(\\d+)/)[1] * 1024;
      (async () => {
        const small = [64, 1100];
        const xs = new Float32Array(64 * 1100).map((_, i) => Math.sin(i));
        const gs = new Float32Array(1100).fill(1), bs = new Float32Array(1100);
        // Start the addon's pool and libuv's pool first, and let every thread of both make a call:
        // libuv aborts if it cannot start its threads, and glibc aborts if a thread's first touch of
        // the addon's thread_local scratch cannot get memory (dynamic TLS of a dlopen'd library).
        // ([64,1100] is above the one-thread limit, so the sync call runs on every pool thread.)
        bln.forward(xs, small, gs, bs);
        await Promise.all(Array.from({ length: 32 }, () => bln.forwardAsync(xs, small, gs, bs)));
        const B = 2, C = 1 << 24;
        const x = new Float32Array(B * C).map((_, i) => (i % 7) - 3);
        const g = new Float32Array(C).fill(1), b = new Float32Array(C);
        const out = { y: new Float32Array(B * C), batchMean: new Float32Array(C), batchVar: new Float32Array(C), featureMean: new Float32Array(B), featureVar: new Float32Array(B) };
        execFileSync(${JSON.stringify(prlimit)}, ['--pid', String(process.pid), '--as=' + (vmSize() + 64 * 2 ** 20) + ':']);
        const res = {};
        try { bln.forward(x, [B, C], g, b, { out }); res.sync = 'ok'; } catch (e) { res.sync = e.constructor.name + ': ' + e.message; }
        try { await bln.forwardAsync(x, [B, C], g, b, { out }); res.async = 'ok'; } catch (e) { res.async = e.constructor.name + ': ' + e.message; }
        const r = bln.forward(xs, small, gs, bs);
        res.smallAfter = r.y.every(Number.isFinite) ? 'ok' : 'bad';
        execFileSync(${JSON.stringify(prlimit)}, ['--pid', String(process.pid), '--as=unlimited:']);
        const big = bln.forward(x, [B, C], g, b, { out });
        res.bigAfter = big.y.every(Number.isFinite) ? 'ok' : 'bad';
        console.log(JSON.stringify(res));
      })().catch((e) => { console.error(e); process.exit(3); });
    `;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 120000 });
    if (r.status !== 0) throw new Error(`child failed: status=${r.status} signal=${r.signal} ${r.stderr.slice(0, 800)}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(res.sync).toMatch(/^Error: out of memory/);
    expect(res.async).toMatch(/^Error: out of memory/);
    expect(res.smallAfter).toBe('ok');
    expect(res.bigAfter).toBe('ok');
  });

  // The device's memory runs out: the emulated GPU is given 8 MB (BLN_EMU_MEMORY), a call that
  // needs more is an Error naming the CUDA allocation, and the process and the device go on.
  (ON_CUDA && process.env.BLN_ADDON_PATH ? test : test.skip)('device out-of-memory (emulated CUDA): Error sync and async, then the process goes on', () => {
    const code = `
      const bln = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))});
      (async () => {
        const small = [16, 3, 40], big = [64, 40000];
        const xs = new Float32Array(16 * 3 * 40).map((_, i) => Math.sin(i)), gs = new Float32Array(40).fill(1), bs = new Float32Array(40);
        const x = new Float32Array(64 * 40000).map((_, i) => (i % 7) - 3), g = new Float32Array(40000).fill(1), b = new Float32Array(40000);
        const res = {};
        bln.forward(xs, small, gs, bs, { device: 'cuda' });
        try { bln.forward(x, big, g, b, { device: 'cuda' }); res.sync = 'ok'; } catch (e) { res.sync = e.constructor.name + ': ' + e.message; }
        try { await bln.forwardAsync(x, big, g, b, { device: 'cuda' }); res.async = 'ok'; } catch (e) { res.async = e.constructor.name + ': ' + e.message; }
        const cpu = bln.forward(xs, small, gs, bs, { device: 'cpu' }).y;
        const r = bln.forward(xs, small, gs, bs, { device: 'cuda' }).y;
        res.smallAfter = r.every((v, i) => Math.abs(v - cpu[i]) <= 1e-5 * (1 + Math.abs(cpu[i]))) ? 'ok' : 'bad';
        console.log(JSON.stringify(res));
      })().catch((e) => { console.error(e); process.exit(3); });
    `;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 120000, env: { ...process.env, BLN_EMU_MEMORY: String(8 << 20) } });
    if (r.status !== 0) throw new Error(`child failed: status=${r.status} signal=${r.signal} ${r.stderr.slice(0, 800)}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(res.sync).toMatch(/^Error: CUDA error: out of memory \(cudaMalloc of \d+ bytes\)/);
    expect(res.async).toMatch(/^Error: CUDA error: out of memory \(cudaMalloc of \d+ bytes\)/);
    expect(res.smallAfter).toBe('ok');
  });
});

// ------------------------------------------------------------------ non-finite inputs

/**
 * What non-finite inputs give, checked against the float64 reference (which computes
 * the spec's formulas directly, so Inf - Inf = NaN and so on): the set of non-finite output
 * positions is the reference's exactly (NaN or +-Inf is not distinguished for statistics:
 * shifted sums may give NaN where the two-pass reference gives Inf for a mean), and every
 * finite output equals the reference within the usual tolerance. Concretely: a NaN or Inf
 * in x[b,m,c] makes batch statistics [m,c] and feature statistics [b,m] non-finite, and y is
 * NaN on row (b,m) and column (m,c) and finite elsewhere.
 */
function expectSameNonFinite(got: Float32Array, ref: ArrayLike<number>, label: string): number {
  let bad = 0;
  for (let i = 0; i < ref.length; i++) {
    const gf = Number.isFinite(got[i]!);
    const rf = Number.isFinite(ref[i]!);
    if (gf !== rf) throw new Error(`${label}: element ${i} is ${got[i]} where the reference has ${ref[i]}`);
    if (!gf) bad++;
  }
  return bad;
}
/**
 * The finite elements of y (forward or infer) against the reference, measured against their scale:
 * element i (channel c) against the larger of |ref_i| and |gamma_c|/sqrt(C) + |beta_c|, the size of
 * y's terms where yhat is of order one. Against its own norm alone, a y left with one finite element
 * that is a cancellation failed: [2,2] with x[0] = NaN, seed 778629174, left y = -5.8e-4 from terms
 * near 0.7, 2.7e-8 off (4.7e-5 relative to itself; the same with the addon of 58d84f0).
 */
function expectFiniteYClose(got: Float32Array, ref: ArrayLike<number>, gamma: Float32Array, beta: Float32Array, context: string): void {
  const C = gamma.length;
  const g: number[] = [];
  const r: number[] = [];
  const mag: number[] = [];
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(ref[i]!)) continue;
    const c = i % C;
    g.push(got[i]!), r.push(ref[i]!);
    mag.push(Math.max(Math.abs(ref[i]!), Math.abs(gamma[c]!) / Math.sqrt(C) + Math.abs(beta[c]!)));
  }
  expectCloseToScale(g, r, mag, 1e-5, context);
}

const smallShape = fc
  .tuple(fc.integer({ min: 1, max: 8 }), fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 2 }), fc.integer({ min: 1, max: 24 }))
  .map(([B, mid, C]) => [B, ...mid, C]);
const poison = fc.constantFrom(NaN, Infinity, -Infinity);

// Regression: rows of one feature (C = 1) in tiles of several m were finalised as if they were
// columns (sums read with the wrong stride, and a scale read past its one value), so a NaN in any
// row but a tile's first came out as a variance of 0. Every SIMD level, every row position.
describe('C = 1 in tiles of several m: a NaN row reaches exactly its own feature statistics', () => {
  const initial = bln.backendInfo();
  afterAll(() => {
    bln.configure({ simd: initial.simd, threads: initial.threads });
  });
  test.each(initial.simdSupported)('%s', (level) => {
    bln.configure({ simd: level });
    for (const shape of [[1, 12, 1], [2, 3, 4, 1], [3, 40, 1]]) {
      const { B, M } = dims(shape);
      for (let r = 0; r < B * M; r++) {
        const seed = freshSeed();
        const { x, gamma, beta } = makeInputs(new Rng(seed), shape);
        x[r] = NaN;
        const label = `${level} ${ctx(seed, shape, `NaN at ${r}`)}`;
        const ref = refForward(x, shape, gamma, beta);
        const f = bln.forward(x, shape, gamma, beta);
        for (const key of bln.STAT_KEYS) expectSameNonFinite(f.stats[key], ref.stats[key], `${key} ${label}`);
        expectSameNonFinite(f.y, ref.y, `y ${label}`);
        expectFiniteYClose(f.y, ref.y, gamma, beta, `finite y ${label}`);
      }
    }
  });
});

describe('NaN and Inf propagate to exactly the outputs they feed, without a crash', () => {
  let cases = 0;
  let nonFinite = 0;
  afterAll(() => {
    // eslint-disable-next-line no-console
    console.log(`faults: ${cases} non-finite cases, ${nonFinite} non-finite outputs compared with the reference`);
  });

  test('forward and infer with NaN/Inf in x, gamma, beta and the population (property)', async () => {
    await fc.assert(
      fc.asyncProperty(smallShape, fc.integer({ min: 0, max: 0x7fffffff }), fc.array(fc.tuple(fc.constantFrom('x', 'gamma', 'beta', 'pop'), fc.nat(), poison), { minLength: 1, maxLength: 3 }), fc.nat(15), async (shape, seed, hits, k) => {
        const rng = new Rng(seed);
        const { B } = dims(shape);
        const { x, gamma, beta } = makeInputs(rng, shape);
        const pop = randomPop(rng, shape, 1, 0.5);
        for (const [where, i, v] of hits) {
          const a = where === 'x' ? x : where === 'gamma' ? gamma : where === 'beta' ? beta : [pop.batchMean, pop.batchVar, pop.featureMean, pop.featureVar][i % 4]!;
          a[i % a.length] = v;
        }
        const label = ctx(seed, shape, JSON.stringify(hits.map(([w, i, v]) => [w, i, String(v)])));
        const ref = refForward(x, shape, gamma, beta);
        const f = bln.forward(x, shape, gamma, beta);
        const fa = await bln.forwardAsync(x, shape, gamma, beta);
        nonFinite += expectSameNonFinite(f.y, ref.y, `y ${label}`);
        // where a non-finite x makes y non-finite, it is NaN (as in the reference)
        for (let i = 0; i < ref.y.length; i++) if (Number.isNaN(ref.y[i]!) && !Number.isNaN(f.y[i]!)) throw new Error(`y[${i}] = ${f.y[i]} where the reference is NaN (${label})`);
        for (const key of bln.STAT_KEYS) nonFinite += expectSameNonFinite(f.stats[key], ref.stats[key], `${key} ${label}`);
        expectFiniteYClose(f.y, ref.y, gamma, beta, `finite y ${label}`);
        expect(Array.from(fa.y).map(String)).toEqual(Array.from(f.y).map(String));
        const use = { batchMean: !!(k & 1), batchVar: !!(k & 2), featureMean: !!(k & 4), featureVar: !!(k & 8) };
        const yi = bln.infer(x, shape, gamma, beta, pop, use);
        const ri = refInfer(x, shape, gamma, beta, pop, use);
        nonFinite += expectSameNonFinite(yi, ri, `infer use=${k} ${label}`);
        expectFiniteYClose(yi, ri, gamma, beta, `finite infer use=${k} ${label}`);
        cases++;
        void B;
      }),
      { numRuns: 300 },
    );
  });

  test('backward with NaN/Inf in dy: non-finite gradients exactly where the reference has them (property)', () => {
    fc.assert(
      fc.property(smallShape.filter((s) => s[0]! >= 3 && s[s.length - 1]! >= 3), fc.integer({ min: 0, max: 0x7fffffff }), fc.nat(), poison, (shape, seed, i, v) => {
        const rng = new Rng(seed);
        const { x, gamma, beta, dy } = makeInputs(rng, shape);
        dy[i % dy.length] = v;
        const stats = bln.forward(x, shape, gamma, beta).stats;
        const label = ctx(seed, shape, `dy[${i % dy.length}] = ${v}`);
        const b = bln.backward(dy, x, shape, gamma, stats);
        const ref = refBackward(dy, x, shape, gamma);
        nonFinite += expectSameNonFinite(b.dx, ref.dx, `dx ${label}`);
        nonFinite += expectSameNonFinite(b.dgamma, ref.dgamma, `dgamma ${label}`);
        nonFinite += expectSameNonFinite(b.dbeta, ref.dbeta, `dbeta ${label}`);
        cases++;
      }),
      { numRuns: 150 },
    );
  });

  test('all-NaN and all-Inf inputs, large enough for the thread pool: no crash, all NaN', async () => {
    for (const v of [NaN, Infinity]) {
      const shape = [64, 1100];
      const x = new Float32Array(sizeOf(shape)).fill(v);
      const g = new Float32Array(1100).fill(1);
      const r = await bln.forwardAsync(x, shape, g, new Float32Array(1100));
      expect(r.y.every(Number.isNaN)).toBe(true);
      const b = await bln.backwardAsync(x, x, shape, g, r.stats);
      expect(b.dx.every((z) => !Number.isFinite(z))).toBe(true);
    }
    await stillWorks('after all-NaN inputs');
  });
});

// ------------------------------------------------------------------ regressions

describe('regressions of bugs the fuzzer found', () => {
  test('an epsilon below float32 range (1e-50) with zero variance gives the spec value, not NaN', () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    for (const shape of [[1, 5], [4, 1], [1, 1], [1, 3, 7]]) {
      const { x, gamma, beta, dy } = makeInputs(rng, shape);
      for (const eps of [1e-50, 1e-300, 5e-324, 1e-40]) {
        const f = bln.forward(x, shape, gamma, beta, { epsilon: eps });
        expectClose(f.y, refForward(x, shape, gamma, beta, eps).y, 1e-5, ctx(seed, shape, `eps=${eps}`));
        const b = bln.backward(dy, x, shape, gamma, f.stats, { epsilon: eps });
        expect(b.dx.every(Number.isFinite)).toBe(true);
      }
      // population statistics differing from the mini-batch's: 1/sqrt(0 + 1e-50) = 1e25 is representable
      const pop = randomPop(rng, shape, 1, 0.5);
      const use = { batchMean: true, batchVar: false, featureMean: false, featureVar: false };
      expectClose(bln.infer(x, shape, gamma, beta, pop, use, { epsilon: 1e-50 }), refInfer(x, shape, gamma, beta, pop, use, 1e-50), 1e-5, ctx(seed, shape, 'infer eps=1e-50'));
    }
  });

  test('a Float32Array from another realm (vm context) is a Float32Array', async () => {
    const make = vm.runInNewContext('(n) => new Float32Array(n)') as (n: number) => Float32Array;
    const shape = [3, 4];
    const x = make(12);
    x.set([1, 2, 3, 4, 0, -1, 2, 5, 3, 3, 1, 0]);
    const g = make(4).fill(1);
    const b = make(4);
    const f = bln.forward(x, shape, g, b);
    expectClose(f.y, refForward(x, shape, g, b).y, 1e-5, 'other realm');
    expectClose((await bln.forwardAsync(x, shape, g, b)).y, f.y, 0, 'other realm async');
    // a detached one is still detected
    const d = make(12);
    structuredClone(d.buffer, { transfer: [d.buffer as ArrayBuffer] });
    expect(() => bln.forward(d, shape, g, b)).toThrow(/for x .*detached/);
  });

  test('configure: unknown keys are TypeErrors and a rejected call changes nothing', () => {
    const before = bln.backendInfo();
    const other = before.simdSupported.find((s) => s !== before.simd) ?? before.simd;
    expect(() => bln.configure({ thread: 1 } as unknown as bln.ConfigureOptions)).toThrow(TypeError);
    expect(() => bln.configure({ thread: 1 } as unknown as bln.ConfigureOptions)).toThrow(/'thread'/);
    expect(() => bln.configure({ simd: other, threads: before.maxThreads + 1 })).toThrow(RangeError);
    expect(bln.backendInfo().simd).toBe(before.simd);
    expect(() => bln.configure({ simd: 'sse9', threads: 1 })).toThrow(TypeError);
    expect(bln.backendInfo().threads).toBe(before.threads);
  });
});
