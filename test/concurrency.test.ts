// Concurrency: 1,000 concurrent async calls, calls while configure() switches SIMD level and
// threads, four worker_threads at once with the main thread, and what happens when a caller
// touches an input while its async call runs (docs/reliability-js.md, "Async calls and their
// buffers").
import { execSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';

import * as bln from '../lib';
import { allUses, ctx, dims, type CallInputs, expectClose, expectSameBits, freshSeed, makeInputs, randomPop, refBackward, refForward, refInfer, Rng, sizeOf } from './reference';

const root = path.resolve(__dirname, '..');
const distIndex = path.join(root, 'dist', 'lib', 'index.js');

type Kind = 'forward' | 'backward' | 'infer';
interface Job {
  kind: Kind;
  shape: number[];
  run: () => Promise<Float32Array>;
  sync: () => Float32Array;
  ref: () => ArrayLike<number>;
  tol: number;
}

/** count jobs with distinct inputs; some with out buffers, some on SharedArrayBuffers. */
function makeJobs(rng: Rng, count: number): Job[] {
  const jobs: Job[] = [];
  for (let i = 0; i < count; i++) {
    // mostly small, every 25th medium (uses the native thread pool)
    const shape = i % 25 === 0 ? [rng.int(16, 64), rng.int(200, 1100)] : [rng.int(1, 24), ...(rng.uniform() < 0.5 ? [rng.int(1, 5)] : []), rng.int(1, 48)];
    const inp = makeInputs(rng, shape, rng.normal(), 0.5 + rng.uniform());
    const { B, M, C } = dims(shape);
    const n = sizeOf(shape);
    if (i % 7 === 3) {
      const sab = new Float32Array(new SharedArrayBuffer(4 * n));
      sab.set(inp.x);
      inp.x = sab;
    }
    const { x, gamma, beta, dy } = inp;
    const withOut = i % 3 === 1;
    const kind = (['forward', 'backward', 'infer'] as const)[i % 3]!;
    if (kind === 'forward') {
      const out = withOut ? { y: new Float32Array(n).fill(NaN) } : undefined;
      jobs.push({ kind, shape, run: async () => (await bln.forwardAsync(x, shape, gamma, beta, out && { out })).y, sync: () => bln.forward(x, shape, gamma, beta).y, ref: () => refForward(x, shape, gamma, beta).y, tol: 1e-5 });
    } else if (kind === 'backward') {
      const stats = bln.forward(x, shape, gamma, beta).stats;
      const out = withOut ? { dx: new Float32Array(n).fill(NaN) } : undefined;
      jobs.push({ kind, shape, run: async () => (await bln.backwardAsync(dy, x, shape, gamma, stats, out && { out })).dx, sync: () => bln.backward(dy, x, shape, gamma, stats).dx, ref: () => refBackward(dy, x, shape, gamma).dx, tol: 1e-4 });
    } else {
      const pop = randomPop(rng, shape);
      const use = allUses()[rng.int(0, 15)]!;
      const out = withOut ? new Float32Array(n).fill(NaN) : undefined;
      jobs.push({ kind, shape, run: () => bln.inferAsync(x, shape, gamma, beta, pop, use, out && { out }), sync: () => bln.infer(x, shape, gamma, beta, pop, use), ref: () => refInfer(x, shape, gamma, beta, pop, use), tol: 1e-5 });
    }
    void B, M, C;
  }
  return jobs;
}

/** Backward of shapes with B or C <= 2 is ill-conditioned in float32 (backward.test.ts). */
const refOk = (j: Job) => j.kind !== 'backward' || (j.shape[0]! >= 3 && j.shape[j.shape.length - 1]! >= 3);

describe('many concurrent async calls', () => {
  test('1,000 concurrent calls with distinct inputs: each equals its sync result bitwise and the reference', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const jobs = makeJobs(rng, 1000);
    const results = await Promise.all(jobs.map((j) => j.run()));
    let refChecked = 0;
    results.forEach((r, i) => {
      const j = jobs[i]!;
      const label = `job ${i} ${j.kind} ${ctx(seed, j.shape)}`;
      expectSameBits(r, j.sync(), label);
      if (refOk(j)) {
        expectClose(r, j.ref(), j.tol, label);
        refChecked++;
      }
    });
    // eslint-disable-next-line no-console
    console.log(`concurrency: 1000 concurrent calls, all equal to sync bitwise, ${refChecked} checked against the float64 reference`);
  });

  test('300 concurrent calls while configure() switches SIMD level and thread count: all equal the reference', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const info = bln.backendInfo();
    const jobs = makeJobs(rng, 300);
    const pending = jobs.map((j) => j.run());
    let switches = 0;
    const settled = Promise.all(pending);
    let done = false;
    void settled.then(() => (done = true), () => (done = true));
    try {
      while (!done) {
        bln.configure({ simd: info.simdSupported[switches % info.simdSupported.length]!, threads: 1 + (switches % info.maxThreads) });
        switches++;
        await new Promise((r) => setImmediate(r));
      }
      const results = await settled;
      results.forEach((r, i) => {
        const j = jobs[i]!;
        if (refOk(j)) expectClose(r, j.ref(), j.tol, `job ${i} ${j.kind} ${ctx(seed, j.shape)} (${switches} switches)`);
        else expect(r.every(Number.isFinite)).toBe(true);
      });
    } finally {
      bln.configure({ simd: info.simd, threads: info.threads });
    }
    expect(bln.backendInfo().simd).toBe(info.simd);
  });
});

// ------------------------------------------------------------------ worker_threads

beforeAll(() => {
  // dist comes from `npm install` ("prepare"); build it when missing or older than lib/.
  const libDir = path.join(root, 'lib');
  const newestLib = Math.max(...fs.readdirSync(libDir).filter((f) => f.endsWith('.ts')).map((f) => fs.statSync(path.join(libDir, f)).mtimeMs));
  if (!fs.existsSync(distIndex) || fs.statSync(distIndex).mtimeMs < newestLib) execSync('npx tsc -p tsconfig.json', { cwd: root, stdio: 'pipe' });
}, 120000);

// Each worker runs its list of calls: all sync first, then all async at once, and returns
// every output; the main thread recomputes them synchronously.
const WORKER_CODE = `
const { parentPort, workerData } = require('worker_threads');
const bln = require(workerData.lib);
(async () => {
  try {
    const out = [];
    const run = (c, sync) => {
      const pop = c.pop, use = c.use;
      if (c.kind === 'forward') return sync ? bln.forward(c.x, c.shape, c.gamma, c.beta).y : bln.forwardAsync(c.x, c.shape, c.gamma, c.beta).then((r) => r.y);
      if (c.kind === 'backward') return sync ? bln.backward(c.dy, c.x, c.shape, c.gamma, c.stats).dx : bln.backwardAsync(c.dy, c.x, c.shape, c.gamma, c.stats).then((r) => r.dx);
      return sync ? bln.infer(c.x, c.shape, c.gamma, c.beta, pop, use) : bln.inferAsync(c.x, c.shape, c.gamma, c.beta, pop, use);
    };
    const sync = workerData.calls.map((c) => run(c, true));
    const asyn = await Promise.all(workerData.calls.map((c) => run(c, false)));
    const p = new bln.PopulationStats(workerData.calls[0].shape);
    parentPort.postMessage({ ok: true, sync, asyn, simd: bln.backendInfo().simd, popCount: p.count });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: String(e && e.stack || e) });
  }
})();
`;

interface Call extends CallInputs {
  kind: Kind;
  use: bln.InferUse;
}

function makeCalls(rng: Rng, count: number): Call[] {
  return Array.from({ length: count }, (_, i) => {
    const shape = i % 10 === 0 ? [rng.int(32, 64), rng.int(600, 1100)] : [rng.int(1, 20), rng.int(1, 4), rng.int(1, 40)];
    const inp = makeInputs(rng, shape);
    return { kind: (['forward', 'backward', 'infer'] as const)[i % 3]!, ...inp, stats: bln.forward(inp.x, shape, inp.gamma, inp.beta).stats, pop: randomPop(rng, shape), use: allUses()[rng.int(0, 15)]! };
  });
}

function syncResult(c: Call): Float32Array {
  if (c.kind === 'forward') return bln.forward(c.x, c.shape, c.gamma, c.beta).y;
  if (c.kind === 'backward') return bln.backward(c.dy, c.x, c.shape, c.gamma, c.stats).dx;
  return bln.infer(c.x, c.shape, c.gamma, c.beta, c.pop, c.use);
}

function runWorker(calls: Call[]): Promise<{ sync: Float32Array[]; asyn: Float32Array[] }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_CODE, { eval: true, workerData: { lib: distIndex, calls } });
    let result: { ok: boolean; error?: string; sync: Float32Array[]; asyn: Float32Array[] } | undefined;
    w.on('message', (m) => (result = m));
    w.on('error', reject);
    w.on('exit', (code) => {
      if (!result) reject(new Error(`worker exited with code ${code} and no result`));
      else if (!result.ok) reject(new Error(`worker failed: ${result.error}`));
      else resolve(result);
    });
  });
}

describe('worker_threads', () => {
  test('four workers at once (40 sync then 40 concurrent async calls each) and the main thread meanwhile', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const perWorker = Array.from({ length: 4 }, () => makeCalls(rng, 40));
    const mainJobs = makeJobs(rng, 60);
    const workers = perWorker.map((calls) => runWorker(calls));
    const mainResults = await Promise.all(mainJobs.map((j) => j.run()));
    mainResults.forEach((r, i) => expectSameBits(r, mainJobs[i]!.sync(), `main job ${i} ${ctx(seed, mainJobs[i]!.shape)}`));
    const results = await Promise.all(workers);
    results.forEach((res, w) => {
      perWorker[w]!.forEach((c, i) => {
        const want = syncResult(c);
        const label = `worker ${w} call ${i} ${c.kind} ${ctx(seed, c.shape)}`;
        expectSameBits(res.sync[i]!, want, `${label} (sync in the worker)`);
        expectSameBits(res.asyn[i]!, want, `${label} (async in the worker)`);
      });
    });
  });
});

// ------------------------------------------------------------------ mutation while in flight

/**
 * Holds every libuv pool thread in `open()` of a FIFO until release() opens its write end:
 * async calls queued meanwhile cannot start, deterministically, without timing.
 */
async function blockPool(): Promise<{ release: () => Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bln-fifo-'));
  const fifo = path.join(dir, 'block');
  execSync(`mkfifo ${JSON.stringify(fifo)}`);
  const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  // more openers than threads: the extra ones wait in the same FIFO queue, ahead of later work
  const opens = Array.from({ length: threads + 4 }, () => fs.promises.open(fifo, 'r'));
  return {
    release: async () => {
      const w = fs.openSync(fifo, 'w'); // returns once a reader is in open()
      const handles = await Promise.all(opens);
      fs.closeSync(w);
      await Promise.all(handles.map((h) => h.close()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

(process.platform === 'linux' ? describe : describe.skip)('an input written while its async call is pending', () => {
  test('the call does not copy: it reads the values its inputs hold when it runs, not when it was made', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [8, 3, 20];
    const { x, gamma, beta, dy } = makeInputs(rng, shape);
    const x2 = rng.normals(sizeOf(shape));
    const g2 = rng.normals(20, 1, 0.5);
    const stats = bln.forward(x, shape, gamma, beta).stats;
    const xf = Float32Array.from(x);
    const xb = Float32Array.from(x);
    const gb = Float32Array.from(gamma);

    const pool = await blockPool();
    const pf = bln.forwardAsync(xf, shape, gamma, beta);
    const pb = bln.backwardAsync(dy, xb, shape, gb, stats);
    // written after the calls were made, before they could start
    xf.set(x2);
    xb.set(x2);
    gb.set(g2);
    await pool.release();
    const f = await pf;
    const b = await pb;
    expectSameBits(f.y, bln.forward(x2, shape, gamma, beta).y, `forward reads x when it runs ${ctx(seed, shape)}`);
    expectSameBits(b.dx, bln.backward(dy, x2, shape, g2, stats).dx, `backward reads x and gamma when it runs ${ctx(seed, shape)}`);
  });

  test('what is captured when the call is made: the shape, the options, and which arrays are passed', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [6, 2, 9];
    const { x, gamma, beta, dy } = makeInputs(rng, shape);
    const other = makeInputs(rng, shape);
    const f0 = bln.forward(x, shape, gamma, beta, { batchSize: 25, epsilon: 0.01 });
    const stats = { ...f0.stats };
    const pop = randomPop(rng, shape);
    const popArg = { ...pop };
    const use = { batchMean: true, batchVar: false, featureMean: true, featureVar: false };
    const useArg = { ...use };
    const shapeArg = [...shape];
    const options = { batchSize: 25, epsilon: 0.01 };
    const out = { y: new Float32Array(sizeOf(shape)) };
    const optionsWithOut = { ...options, out };

    const pool = await blockPool();
    const pf = bln.forwardAsync(x, shapeArg, gamma, beta, optionsWithOut);
    const pb = bln.backwardAsync(dy, x, shapeArg, gamma, stats, options);
    const pi = bln.inferAsync(x, shapeArg, gamma, beta, popArg, useArg, options);
    // none of these change the pending calls
    shapeArg[0] = 3;
    shapeArg.push(2);
    options.batchSize = 1;
    options.epsilon = 1;
    optionsWithOut.out = { y: new Float32Array(0) };
    stats.featureMean = other.x;
    popArg.batchMean = other.gamma;
    useArg.batchMean = false;
    useArg.featureVar = true;
    await pool.release();
    const f = await pf;
    expect(f.y).toBe(out.y);
    expectSameBits(f.y, f0.y, `forward ${ctx(seed, shape)}`);
    expectSameBits((await pb).dx, bln.backward(dy, x, shape, gamma, f0.stats, { batchSize: 25, epsilon: 0.01 }).dx, `backward ${ctx(seed, shape)}`);
    expectSameBits(await pi, bln.infer(x, shape, gamma, beta, pop, use, { batchSize: 25, epsilon: 0.01 }), `infer ${ctx(seed, shape)}`);
  });

  test('writes racing with a running call: no crash, every output element written, finite', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const shape = [64, 4096];
    const n = sizeOf(shape);
    const x = rng.normals(n);
    const gamma = rng.normals(4096, 1, 0.5);
    const beta = rng.normals(4096);
    const out = { y: new Float32Array(n).fill(NaN) };
    for (let round = 0; round < 5; round++) {
      out.y.fill(NaN);
      let writing = true;
      const p = bln.forwardAsync(x, shape, gamma, beta, { out }).finally(() => (writing = false));
      let writes = 0;
      while (writing) {
        // finite values, so any mix the call reads has finite statistics
        for (let i = 0; i < 4096; i++) x[(writes * 4096 + i) % n] = rng.normal();
        writes++;
        await new Promise((r) => setImmediate(r));
      }
      const r = await p;
      expect(r.y.every(Number.isFinite)).toBe(true);
    }
    // and the settled state is consistent again
    const f = await bln.forwardAsync(x, shape, gamma, beta);
    expectClose(f.y, refForward(x, shape, gamma, beta).y, 1e-5, ctx(seed, shape));
  });
});
