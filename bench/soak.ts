// `npm run soak`: 100,000 mixed calls (forward/backward/infer sync and async, PopulationStats,
// small and medium shapes plus 1% large ones (8.4 MB outputs, the huge-page path), with and without out buffers, about 5% rejected calls) while
// RSS and process.memoryUsage().external are sampled after gc. Prints a table, writes
// bench/results/<machine>/soak.json, and exits 1 when memory grows after warm-up by more
// than the thresholds below (a leak of even 1 KiB per call would pass 80 MiB over the run).
//
//   node --expose-gc dist/bench/soak.js [--calls N] [--samples K] [--no-write] [--json]
//
// Thresholds (growth from the first sample after warm-up to the largest later sample):
//   external <= 16 MiB, RSS <= 64 MiB. Warm-up: the first 10% of the calls.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as bln from '../lib';
import type { CallInputs } from '../test/reference';

const args = process.argv.slice(2);
const argNum = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const CALLS = argNum('--calls', 100_000);
const SAMPLES = argNum('--samples', 20);
const WRITE = !args.includes('--no-write');
const JSON_OUT = args.includes('--json');
const MiB = 2 ** 20;
const LIMIT_EXTERNAL = argNum('--max-external-mib', 16) * MiB;
const LIMIT_RSS = argNum('--max-rss-mib', 64) * MiB;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with node --expose-gc (npm run soak does)');
  process.exit(2);
}

// a small deterministic RNG
let state = 0x9e3779b9;
const rnd = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
const normals = (n: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rnd() + rnd() + rnd() - 1.5;
  return a;
};

// A fixed set of shapes with their inputs (so the inputs themselves do not grow).
const SHAPES = [[1, 7], [4, 3, 5], [8, 16], [16, 3, 40], [25, 84], [32, 8, 64], [64, 1100], [3, 4, 4, 9]];
interface Set_ extends CallInputs {
  out: { y: Float32Array; batchMean: Float32Array; batchVar: Float32Array; featureMean: Float32Array; featureVar: Float32Array };
  bout: { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array };
  iout: Float32Array;
  ps: bln.PopulationStats;
}
// plus, for 1% of the calls, one whose outputs are large enough (8.4 MB) for lib's huge-page path
const BIG = [256, 8200];
const sets: Set_[] = [...SHAPES, BIG].map((shape) => {
  const n = shape.reduce((a, b) => a * b, 1);
  const B = shape[0]!;
  const C = shape[shape.length - 1]!;
  const M = n / (B * C);
  const x = normals(n);
  const gamma = normals(C).map((v) => v + 1);
  const beta = normals(C);
  const f = bln.forward(x, shape, gamma, beta);
  const ps = new bln.PopulationStats(shape).update(f.stats);
  return {
    shape, x, dy: normals(n), gamma, beta, stats: f.stats, pop: ps.result(), ps,
    out: { y: new Float32Array(n), batchMean: new Float32Array(M * C), batchVar: new Float32Array(M * C), featureMean: new Float32Array(B * M), featureVar: new Float32Array(B * M) },
    bout: { dx: new Float32Array(n), dgamma: new Float32Array(C), dbeta: new Float32Array(C) },
    iout: new Float32Array(n),
  };
});
const USE = { batchMean: true, batchVar: false, featureMean: true, featureVar: false };

let errorsSeen = 0;
let wrong = 0;
/** One call, chosen at random; async ones return their promise. */
function oneCall(): Promise<unknown> | undefined {
  const s = rnd() < 0.01 ? sets[sets.length - 1]! : sets[int(0, sets.length - 2)]!;
  const r = rnd();
  const withOut = rnd() < 0.5;
  const asyncCall = rnd() < 0.4;
  const expectErr = (p: Promise<unknown> | (() => unknown)) => {
    if (typeof p === 'function') {
      try {
        p();
        wrong++;
      } catch {
        errorsSeen++;
      }
      return undefined;
    }
    return p.then(() => void wrong++, () => void errorsSeen++);
  };
  if (r < 0.05) {
    // rejected calls: a bad epsilon, a wrong-length gamma, an overlapping out buffer
    const k = int(0, 2);
    if (k === 0) return asyncCall ? expectErr(bln.forwardAsync(s.x, s.shape, s.gamma, s.beta, { epsilon: -1 })) : expectErr(() => bln.forward(s.x, s.shape, s.gamma, s.beta, { epsilon: -1 }));
    if (k === 1) return asyncCall ? expectErr(bln.backwardAsync(s.dy, s.x, s.shape, s.beta.subarray(1), s.stats)) : expectErr(() => bln.backward(s.dy, s.x, s.shape, s.beta.subarray(1), s.stats));
    return asyncCall ? expectErr(bln.inferAsync(s.x, s.shape, s.gamma, s.beta, s.pop, USE, { out: s.x })) : expectErr(() => bln.infer(s.x, s.shape, s.gamma, s.beta, s.pop, USE, { out: s.x }));
  }
  if (r < 0.40) {
    const opts = withOut ? { out: s.out } : undefined;
    if (asyncCall) return bln.forwardAsync(s.x, s.shape, s.gamma, s.beta, opts);
    bln.forward(s.x, s.shape, s.gamma, s.beta, opts);
    return undefined;
  }
  if (r < 0.70) {
    const opts = withOut ? { out: s.bout } : undefined;
    if (asyncCall) return bln.backwardAsync(s.dy, s.x, s.shape, s.gamma, s.stats, opts);
    bln.backward(s.dy, s.x, s.shape, s.gamma, s.stats, opts);
    return undefined;
  }
  if (r < 0.92) {
    const opts = withOut ? { out: s.iout } : undefined;
    if (asyncCall) return bln.inferAsync(s.x, s.shape, s.gamma, s.beta, s.pop, USE, opts);
    bln.infer(s.x, s.shape, s.gamma, s.beta, s.pop, USE, opts);
    return undefined;
  }
  // PopulationStats: update, result, now and then reset or a new one
  if (rnd() < 0.1) s.ps = new bln.PopulationStats(s.shape);
  s.ps.update(s.stats);
  if (rnd() < 0.5) s.ps.result();
  if (rnd() < 0.05) s.ps.reset();
  return undefined;
}

interface Sample {
  calls: number;
  seconds: number;
  rssMiB: number;
  externalMiB: number;
  arrayBuffersMiB: number;
  heapUsedMiB: number;
}

async function settle(): Promise<void> {
  // let finalizers and the concurrent array-buffer sweeper run between collections
  for (let i = 0; i < 3; i++) {
    gc!();
    await new Promise((r) => setImmediate(r));
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const samples: Sample[] = [];
  let peakRss = 0;
  const sample = async (calls: number) => {
    await settle();
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    samples.push({ calls, seconds: (Date.now() - t0) / 1000, rssMiB: m.rss / MiB, externalMiB: m.external / MiB, arrayBuffersMiB: m.arrayBuffers / MiB, heapUsedMiB: m.heapUsed / MiB });
  };
  await sample(0);
  const every = Math.max(1, Math.floor(CALLS / SAMPLES));
  const warmup = Math.floor(CALLS / 10);
  let inFlight: Promise<unknown>[] = [];
  for (let i = 1; i <= CALLS; i++) {
    const p = oneCall();
    if (p) inFlight.push(p);
    // up to 64 async calls in flight at once
    if (inFlight.length >= 64) {
      await Promise.all(inFlight);
      inFlight = [];
    }
    if (i % 2000 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
    if (i % every === 0 || i === CALLS) {
      await Promise.all(inFlight);
      inFlight = [];
      await sample(i);
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  const after = samples.filter((s) => s.calls >= warmup);
  const base = after[0]!;
  const growthExternal = Math.max(...after.map((s) => s.externalMiB)) - base.externalMiB;
  const growthRss = Math.max(...after.map((s) => s.rssMiB)) - base.rssMiB;
  // growth over the second half of the run: a leak keeps growing, allocator arenas level off
  const half = samples.filter((s) => s.calls >= CALLS / 2);
  const secondHalfRss = half[half.length - 1]!.rssMiB - half[0]!.rssMiB;
  const secondHalfExternal = half[half.length - 1]!.externalMiB - half[0]!.externalMiB;
  const ok = growthExternal * MiB <= LIMIT_EXTERNAL && growthRss * MiB <= LIMIT_RSS && wrong === 0;

  const f = (v: number) => v.toFixed(1).padStart(8);
  if (!JSON_OUT) {
    console.log(`soak: ${CALLS} calls in ${seconds.toFixed(1)} s (${errorsSeen} rejected as expected, ${wrong} not rejected that should have been)`);
    console.log('   calls      s   rss MiB  ext MiB   ab MiB  heap MiB');
    for (const s of samples) console.log(`${String(s.calls).padStart(8)} ${s.seconds.toFixed(1).padStart(6)}${f(s.rssMiB)} ${f(s.externalMiB)} ${f(s.arrayBuffersMiB)} ${f(s.heapUsedMiB)}`);
    console.log(`after warm-up (${warmup} calls): external +${growthExternal.toFixed(2)} MiB (limit ${LIMIT_EXTERNAL / MiB}), rss +${growthRss.toFixed(2)} MiB (limit ${LIMIT_RSS / MiB}); peak rss ${(peakRss / MiB).toFixed(1)} MiB; second half: rss ${secondHalfRss >= 0 ? '+' : ''}${secondHalfRss.toFixed(2)} MiB, external ${secondHalfExternal >= 0 ? '+' : ''}${secondHalfExternal.toFixed(2)} MiB: ${ok ? 'PASS' : 'FAIL'}`);
  }
  const machine = { cpu: os.cpus()[0]?.model?.trim() ?? 'unknown', cores: os.cpus().length, node: process.version, platform: `${os.platform()}-${os.arch()}`, date: new Date().toISOString() };
  const result = {
    machine, calls: CALLS, seconds, warmupCalls: warmup, rejected: errorsSeen, notRejected: wrong,
    limits: { externalMiB: LIMIT_EXTERNAL / MiB, rssMiB: LIMIT_RSS / MiB },
    growthAfterWarmup: { externalMiB: growthExternal, rssMiB: growthRss }, secondHalfGrowth: { externalMiB: secondHalfExternal, rssMiB: secondHalfRss }, peakRssMiB: peakRss / MiB, pass: ok,
    backend: { simd: bln.backendInfo().simd, threads: bln.backendInfo().threads }, samples,
  };
  if (JSON_OUT) console.log(JSON.stringify(result));
  if (WRITE) {
    // the same machine slug as bench/bench.ts
    const slug = `${machine.cpu}-${machine.cores}c`.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
    const dir = path.join(__dirname, '..', '..', 'bench', 'results', slug);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'soak.json'), JSON.stringify(result, null, 1));
    if (!JSON_OUT) console.log(`wrote ${path.relative(process.cwd(), path.join(dir, 'soak.json'))}`);
  }
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(3);
});
