// The addon in worker_threads: loads, computes the same results, several at once,
// and survives a worker terminated in the middle of an async call.
import { execSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';

import * as bln from '../lib';
import { sized } from './device';
import { ctx, expectClose, expectSameBits, freshSeed, makeInputs, refForward, Rng, sizeOf } from './reference';

const root = path.resolve(__dirname, '..');
const distIndex = path.join(root, 'dist', 'lib', 'index.js');

beforeAll(() => {
  // dist comes from `npm install` ("prepare"); build it when missing or older than lib/.
  const libDir = path.join(root, 'lib');
  const newestLib = Math.max(...fs.readdirSync(libDir).map((f) => fs.statSync(path.join(libDir, f)).mtimeMs));
  if (!fs.existsSync(distIndex) || fs.statSync(distIndex).mtimeMs < newestLib) execSync('npx tsc -p tsconfig.json', { cwd: root, stdio: 'pipe' });
}, 120000);

const WORKER_CODE = `
const { parentPort, workerData } = require('worker_threads');
const bln = require(workerData.lib);
(async () => {
  try {
    const { x, shape, gamma, beta, dy, outY } = workerData;
    const f = bln.forward(x, shape, gamma, beta);
    const b = bln.backward(dy, x, shape, gamma, f.stats);
    const fa = await bln.forwardAsync(x, shape, gamma, beta);
    const ba = await bln.backwardAsync(dy, x, shape, gamma, f.stats);
    if (outY) bln.forward(x, shape, gamma, beta, { out: { y: outY } });
    let err = null;
    try { bln.forward(x, shape, [1, 2], beta); } catch (e) { err = { name: e.name, message: e.message }; }
    let rej = null;
    await bln.forwardAsync(x, shape, gamma, beta, { epsilon: 0 }).catch((e) => { rej = { name: e.name, message: e.message }; });
    const pop = new bln.PopulationStats(shape).update(f.stats).result();
    const yi = bln.infer(x, shape, gamma, beta, pop, { batchMean: true, batchVar: false, featureMean: true, featureVar: true });
    parentPort.postMessage({ ok: true, y: f.y, stats: f.stats, dx: b.dx, dgamma: b.dgamma, dbeta: b.dbeta, ya: fa.y, dxa: ba.dx, yi, err, rej, info: bln.backendInfo() });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: String(e && e.stack || e) });
  }
})();
`;

interface WorkerResult {
  ok: boolean;
  error?: string;
  y: Float32Array;
  stats: bln.Stats;
  dx: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
  ya: Float32Array;
  dxa: Float32Array;
  yi: Float32Array;
  err: { name: string; message: string } | null;
  rej: { name: string; message: string } | null;
  info: bln.BackendInfo;
}

function runWorker(workerData: Record<string, unknown>): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_CODE, { eval: true, workerData: { lib: distIndex, ...workerData } });
    let result: WorkerResult | undefined;
    w.on('message', (m: WorkerResult) => {
      result = m;
    });
    w.on('error', reject);
    w.on('exit', (code) => {
      if (!result) reject(new Error(`worker exited with code ${code} and no result`));
      else if (!result.ok) reject(new Error(`worker failed: ${result.error}`));
      else resolve(result);
    });
  });
}

function checkAgainstMain(r: WorkerResult, inp: ReturnType<typeof makeInputs>, context: string): void {
  const { x, shape, gamma, beta, dy } = inp;
  const f = bln.forward(x, shape, gamma, beta);
  const b = bln.backward(dy, x, shape, gamma, f.stats);
  expectSameBits(r.y, f.y, `y ${context}`);
  for (const k of bln.STAT_KEYS) expectSameBits(r.stats[k], f.stats[k], `${k} ${context}`);
  expectSameBits(r.dx, b.dx, `dx ${context}`);
  expectSameBits(r.dgamma, b.dgamma, `dgamma ${context}`);
  expectSameBits(r.dbeta, b.dbeta, `dbeta ${context}`);
  expectSameBits(r.ya, f.y, `forwardAsync y ${context}`);
  expectSameBits(r.dxa, b.dx, `backwardAsync dx ${context}`);
  const pop = new bln.PopulationStats(shape).update(f.stats).result();
  // (all four flags true is avoided here: that case has its own bug, see population.test.ts)
  expectSameBits(r.yi, bln.infer(x, shape, gamma, beta, pop, { batchMean: true, batchVar: false, featureMean: true, featureVar: true }), `infer ${context}`);
  expectClose(r.y, refForward(x, shape, gamma, beta).y, 1e-5, `y vs reference ${context}`);
  // validation errors inside the worker are the same errors
  expect(r.err?.name).toBe('TypeError');
  expect(r.err?.message).toMatch(/for gamma but received an array/);
  expect(r.rej?.name).toBe('RangeError');
  expect(r.rej?.message).toMatch(/for epsilon/);
}

describe('worker_threads', () => {
  test('the compiled library loads and computes inside a worker, identical to the main thread', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const inp = makeInputs(rng, [33, 4, 67]);
    const r = await runWorker({ ...inp });
    expect(r.info.simd).toBe(bln.backendInfo().simd);
    checkAgainstMain(r, inp, ctx(seed, inp.shape));
  });

  test('two workers at once (and the main thread meanwhile), on shapes that use the thread pool', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const a = makeInputs(rng, [64, 1100]);
    const b = makeInputs(rng, [70, 40, 33]);
    const main = makeInputs(rng, [300, 9]);
    const pa = runWorker({ ...a });
    const pb = runWorker({ ...b });
    // the main thread works at the same time
    const fm = await bln.forwardAsync(main.x, main.shape, main.gamma, main.beta);
    expectClose(fm.y, refForward(main.x, main.shape, main.gamma, main.beta).y, 1e-5, `main ${ctx(seed, main.shape)}`);
    const [ra, rb] = await Promise.all([pa, pb]);
    checkAgainstMain(ra, a, ctx(seed, a.shape));
    checkAgainstMain(rb, b, ctx(seed, b.shape));
  });

  test('a worker writes into a SharedArrayBuffer out buffer the main thread reads', async () => {
    const seed = freshSeed();
    const rng = new Rng(seed);
    const inp = makeInputs(rng, [12, 3, 21]);
    const n = sizeOf(inp.shape);
    const sab = new SharedArrayBuffer(4 * (n + 3));
    const outY = new Float32Array(sab, 4, n).fill(NaN); // offset view
    const x = new Float32Array(new SharedArrayBuffer(4 * n));
    x.set(inp.x);
    const r = await runWorker({ ...inp, x, outY });
    checkAgainstMain(r, { ...inp, x }, ctx(seed, inp.shape));
    expectSameBits(new Float32Array(sab, 4, n), bln.forward(inp.x, inp.shape, inp.gamma, inp.beta).y, `shared out ${ctx(seed, inp.shape)}`);
    const edges = new Float32Array(sab);
    expect(edges[0]).toBe(0);
    expect(edges[n + 1]).toBe(0);
  });

  // Run in a child process: if the addon aborts, only the child dies and the test
  // reports it, instead of the jest worker crashing and losing the whole file.
  const survivalScript = (workerBody: string, terminate: boolean) => `
    const { Worker } = require('worker_threads');
    const bln = require(${JSON.stringify(distIndex)});
    const body = ${JSON.stringify(workerBody)};
    (async () => {
      for (let round = 0; round < 3; round++) {
        const w = new Worker(body, { eval: true, workerData: { lib: ${JSON.stringify(distIndex)} } });
        await new Promise((resolve, reject) => {
          w.on('message', resolve);
          w.on('error', reject);
          w.on('exit', resolve);
        });
        ${terminate ? 'await w.terminate();' : "await new Promise((r) => (w.threadId < 0 ? r() : w.on('exit', r)));"}
      }
      const x = new Float32Array(64 * 1100).map((_, i) => Math.sin(i));
      const g = new Float32Array(1100).fill(1), b = new Float32Array(1100);
      const r = await bln.forwardAsync(x, [64, 1100], g, b);
      if (!r.y.every(Number.isFinite)) throw new Error('bad result');
      console.log('MAIN-OK');
    })().catch((e) => { console.error(e); process.exit(3); });
  `;
  const pending = (n: number, shape: string) => `
    const { parentPort, workerData } = require('worker_threads');
    const bln = require(workerData.lib);
    const shape = ${shape};
    const size = shape.reduce((a, b) => a * b, 1), C = shape[shape.length - 1];
    const x = new Float32Array(size).fill(1.5);
    for (let i = 0; i < size; i += 7) x[i] = -2;
    const g = new Float32Array(C).fill(1), b = new Float32Array(C);
    for (let i = 0; i < ${n}; i++) bln.forwardAsync(x, shape, g, b);
  `;
  const runSurvival = (script: string) => {
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 });
    const report = `status=${r.status} signal=${r.signal} stdout=${JSON.stringify(r.stdout)} stderr=${JSON.stringify(r.stderr.slice(0, 500))}`;
    if (r.status !== 0 || !r.stdout.includes('MAIN-OK')) throw new Error(`the process did not survive: ${report}`);
  };

  test('worker.terminate() while async calls are in flight does not take the process down', () => {
    runSurvival(survivalScript(pending(4, sized('[256, 32768]', '[64, 4096]')) + "parentPort.postMessage('started');", true));
  });

  test('a worker exiting (process.exit in the worker) with an async call in flight does not take the process down', () => {
    runSurvival(survivalScript(pending(1, '[4, 8]') + 'process.exit(0);', false));
  });

  test('the survival check itself passes when the worker finishes its calls first', () => {
    runSurvival(survivalScript(pending(2, '[4, 8]') + "setTimeout(() => parentPort.postMessage('done'), 200);", false));
  });
});
