// Property-based fuzzing of every public entry point: forward, backward, infer (sync and
// async), PopulationStats, configure, backendInfo and the tfjs op. Each case starts from a
// valid call and mutates some of its arguments, either into another valid form (offset and
// misaligned views, SharedArrayBuffer, a Node Buffer's pool, WebAssembly memory, another
// realm, valid options) or into an invalid one (wrong types, lengths, detached buffers,
// bad shapes and options, overlapping out buffers). The oracle:
//   - no invalid mutation: sync and async both succeed, equal bitwise, and equal the float64
//     reference (1e-5; gradients 1e-4 where B, C >= 3, as in the other suites); out buffers
//     are the results; inputs and the memory around every view are untouched;
//   - otherwise: sync throws and async rejects (never a synchronous throw) with the same
//     error, of exactly the class one of the invalid mutations documents (README, Errors),
//     with a message naming that mutation's argument; nothing is written.
// Each property prints its counts at the end (valid results / errors per class).
//
// The pieces: fuzz-inputs.ts (valid carriers, invalid values, mutations), fuzz-runner.ts
// (the oracle, the sync/async case runner, the counts), fuzz-cases.ts (the forward, backward
// and infer cases); this file declares the tests.
import fc from 'fast-check';

import * as bln from '../lib';
import { seedArb } from './arbitraries';
import { backwardSpec, bwdCaseArb, forwardSpec, fwdCaseArb, infCaseArb, inferSpec } from './fuzz-cases';
import { CARRIERS, carry, dimsOf, pick, R, rare, shapeChoices, slotChoices, smallShapeArb, T, type Want } from './fuzz-inputs';
import { checkError, count, runCase, summary, type CaseSpec } from './fuzz-runner';
import { expectClose, refPopulation, Rng, sizeOf } from './reference';

afterAll(() => {
  // eslint-disable-next-line no-console
  console.log(summary());
});

const STAT_KEYS = bln.STAT_KEYS;
const RUNS = { forward: 1200, backward: 900, infer: 900, population: 600, configure: 300, tfjs: 200 };

/** A property over `arb`'s cases: each case's call, sync and async, against the oracle (runCase). */
function fuzzCalls<C, Res>(title: string, prop: string, runs: number, arb: fc.Arbitrary<C>, spec: (c: C) => CaseSpec<Res>): void {
  describe(title, () => {
    test(`${runs} random valid and invalid calls`, async () => {
      await fc.assert(
        fc.asyncProperty(arb, async (c) => {
          await runCase(spec(c), `${prop} ${JSON.stringify(c)}`);
        }),
        { numRuns: runs },
      );
    });
  });
}

fuzzCalls('fuzz: forward / forwardAsync', 'forward', RUNS.forward, fwdCaseArb, forwardSpec);
fuzzCalls('fuzz: backward / backwardAsync', 'backward', RUNS.backward, bwdCaseArb, backwardSpec);
fuzzCalls('fuzz: infer / inferAsync', 'infer', RUNS.infer, infCaseArb, inferSpec);

// ------------------------------------------------------------------ PopulationStats

describe('fuzz: PopulationStats constructor / update / result / reset', () => {
  test(`${RUNS.population} random sequences of valid and invalid steps`, () => {
    const stepArb = fc.record({ kind: fc.nat(99), B: fc.integer({ min: 1, max: 6 }), k: fc.nat(1000), seed: seedArb });
    fc.assert(
      fc.property(smallShapeArb, rare(6), fc.array(stepArb, { minLength: 1, maxLength: 6 }), (shape, shapeMut, steps) => {
        const label = `PopulationStats ${JSON.stringify({ shape, shapeMut, steps })}`;
        if (shapeMut >= 0) {
          const [, s, w] = pick(shapeChoices(shape), shapeMut);
          const ws = w.filter((z) => z.names.some((nm) => nm.startsWith('shape')));
          if (ws.length) {
            let e: unknown;
            try {
              new bln.PopulationStats(s as number[]);
            } catch (err) {
              e = err;
            }
            checkError(e, ws, label);
            count('PopulationStats', (e as Error).constructor.name);
            return;
          }
        }
        const { C, M } = dimsOf(shape);
        const p = new bln.PopulationStats(shape);
        const accepted: bln.Stats[] = [];
        for (const st of steps) {
          const rng = new Rng(st.seed);
          const mid = shape.slice(1, -1);
          const stepShape = [st.B, ...mid, C];
          const x = rng.normals(sizeOf(stepShape));
          const stats = bln.forward(x, stepShape, rng.normals(C, 1, 0.5), rng.normals(C)).stats;
          if (st.kind < 60) {
            // a valid step, its arrays in any valid form
            const s: Record<string, Float32Array> = {};
            STAT_KEYS.forEach((key, i) => (s[key] = carry(stats[key], pick(CARRIERS, st.k + i)).v));
            p.update(s as unknown as bln.Stats);
            accepted.push(stats);
            count('PopulationStats', 'ok update');
          } else if (st.kind < 92) {
            // an invalid step: nothing changes
            const key = pick(STAT_KEYS, st.k);
            const c = pick(slotChoices(`stats.${key}`, stats[key].length, true), 10 + st.k);
            if (c.kind === 'carrier') continue;
            let want = c.want;
            let value = c.make();
            if (key.startsWith('feature') && want.cls === RangeError && (value as Float32Array).length % M === 0 && (value as Float32Array).length > 0) {
              // a feature length that is another multiple of M is another batch size: featureVar must agree
              if (key === 'featureMean') want = R('stats.featureVar');
            }
            if (st.kind >= 88) {
              value = pick([null, 3, 'stats', [stats.batchMean]], st.k);
              want = T('stats');
            }
            const before = p.count;
            let e: unknown;
            try {
              p.update(want.names[0] === 'stats' ? (value as bln.Stats) : ({ ...stats, [key]: value } as bln.Stats));
            } catch (err) {
              e = err;
            }
            checkError(e, [want], label);
            expect(p.count).toBe(before);
            count('PopulationStats', (e as Error).constructor.name);
          } else if (st.kind < 96) {
            p.reset();
            accepted.length = 0;
            count('PopulationStats', 'ok reset');
          }
          // result() after every step: an Error before any update, else the reference
          if (accepted.length === 0) {
            expect(() => p.result()).toThrow(/before any update/);
            count('PopulationStats', 'Error (result before update)');
          } else {
            const r = p.result();
            const ref = refPopulation(accepted, M, C);
            for (const k of STAT_KEYS) expectClose(r[k], ref[k], 1e-6, `${label} ${k}`);
          }
        }
      }),
      { numRuns: RUNS.population },
    );
  });
});

// ------------------------------------------------------------------ configure / backendInfo

describe('fuzz: configure / backendInfo', () => {
  test(`${RUNS.configure} random configure calls: applied exactly when valid, nothing changes when rejected`, () => {
    const info0 = bln.backendInfo();
    const simdArb = fc.oneof(fc.constantFrom(...info0.simdSupported), fc.constantFrom('sse9', 'AVX2', '', 'avx512', 'neon', 'scalar '), fc.constantFrom(1, null, undefined, true, {}));
    const threadsArb = fc.oneof(fc.integer({ min: 1, max: info0.maxThreads }), fc.constantFrom(0, -1, 1.5, info0.maxThreads + 1, 2 ** 53, NaN, Infinity, '2', null, undefined));
    try {
      fc.assert(
        fc.property(fc.option(simdArb), fc.option(threadsArb), fc.constantFrom(undefined, 'thread', 'simdLevel'), fc.nat(9), (simd, threads, extraKey, whole) => {
          const before = bln.backendInfo();
          const opts: Record<string, unknown> = {};
          if (simd !== null) opts.simd = simd;
          if (threads !== null) opts.threads = threads;
          if (extraKey) opts[extraKey] = 1;
          const arg: unknown = whole === 0 ? pick([null, 5, 'avx2', [1]], simd === null ? 0 : 1) : opts;
          const wants: Want[] = [];
          if (whole === 0) wants.push(T('options'));
          else {
            if (extraKey) wants.push(T(extraKey));
            const s = opts.simd;
            if (s !== undefined && s !== null && !(typeof s === 'string' && info0.simdSupported.includes(s))) wants.push(T('simd'));
            const t = opts.threads;
            if (t !== undefined && t !== null) {
              if (typeof t !== 'number') wants.push(T('threads'));
              else if (!Number.isSafeInteger(t) || t < 1 || t > info0.maxThreads) wants.push(R('threads'));
            }
          }
          let e: unknown;
          let res: bln.BackendInfo | undefined;
          try {
            res = bln.configure(arg as bln.ConfigureOptions);
          } catch (err) {
            e = err;
          }
          const after = bln.backendInfo();
          if (wants.length) {
            checkError(e, wants, `configure(${String(JSON.stringify(arg))})`);
            expect(after.simd).toBe(before.simd);
            expect(after.threads).toBe(before.threads);
            count('configure', (e as Error).constructor.name);
          } else {
            if (e) throw new Error(`configure(${JSON.stringify(arg)}) threw ${String(e)}`);
            expect(res!.simd).toBe(typeof opts.simd === 'string' ? opts.simd : before.simd);
            expect(res!.threads).toBe(typeof opts.threads === 'number' ? opts.threads : before.threads);
            count('configure', 'ok');
          }
          // backendInfo is consistent whatever happened, and ignores arguments
          const bi = (bln.backendInfo as (...a: unknown[]) => bln.BackendInfo)(1, 'x', null);
          expect(bi.devices[0]!.type).toBe('cpu');
          expect(bi.simdSupported).toContain(bi.simd);
          expect(bi.threads).toBeGreaterThanOrEqual(1);
          expect(bi.threads).toBeLessThanOrEqual(bi.maxThreads);
          count('backendInfo', 'ok');
        }),
        { numRuns: RUNS.configure },
      );
    } finally {
      bln.configure({ simd: info0.simd, threads: info0.threads });
    }
  });
});
