// The package on a real GPU, without node_modules (a lent GPU machine has node at most):
// plain node over dist/lib and the addon that BLN_ADDON_PATH names (built with CUDA).
//
//   BLN_ADDON_PATH=$PWD/build/Release/bln.node node cuda/harness/node_check.js
//   BLN_ADDON_PATH=$PWD/build-cuda-emu/Release/bln.node node cuda/harness/node_check.js --emulated
//     (tries the script out on the emulated build, small shapes only)
//
// 1. backendInfo: CUDA available, not emulated; the self-check that 'auto' runs passes.
// 2. forward, backward and inference in all 16 configurations on device 'cuda' against the
//    CPU path (itself checked against a float64 reference by `npm test`), at the spec's bounds
//    (values and statistics 1e-5, gradients 1e-4), on shapes that reach each kernel variant,
//    outputs poisoned with NaN first; then NaN propagation and 1e22 data (the overflow fallback).
// 3. async calls from the libuv pool (64 at once) and two worker_threads: equal to sync.
// Prints one line per check and a summary; exit status 1 on any failure.
'use strict';
const path = require('path');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

const root = path.resolve(__dirname, '..', '..');
const bln = require(path.join(root, 'dist', 'lib', 'index.js'));

const SHAPES = [
  [24, 3, 36], [17, 4, 33], [40, 6, 1], [1, 5, 64], [70, 2, 300], [130, 2, 133], [300, 2, 64], [60, 3, 140],
  [3, 1100, 5], [9, 5, 7, 3], [64, 3136, 64], [256, 196, 256], [32, 512, 1024], [4096, 4096], [25, 84], [1, 1024],
];

let seed = 12345;
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const normals = (n, mean = 0, scale = 1) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = mean + scale * Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  return a;
};
const poisoned = (n) => new Float32Array(n).fill(NaN);
function relErr(got, ref) {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) (num += (got[i] - ref[i]) ** 2), (den += ref[i] ** 2);
  const e = Math.sqrt(num / (den || 1));
  return Number.isNaN(e) ? Infinity : e;
}

let failures = 0, checks = 0;
function check(what, err, tol) {
  checks++;
  const ok = err <= tol;
  if (!ok) failures++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}: ${err.toExponential(2)} (bound ${tol})`);
}

function inputs(shape, mean = 0.5, scale = 1.5) {
  const n = shape.reduce((a, b) => a * b, 1), C = shape[shape.length - 1], B = shape[0], M = n / (B * C);
  return { n, B, M, C, x: normals(n, mean, scale), dy: normals(n), gamma: normals(C, 1, 0.5), beta: normals(C, 0, 0.5) };
}

function compareShape(shape) {
  const { n, B, M, C, x, dy, gamma, beta } = inputs(shape);
  const opts = { epsilon: 1e-3, batchSize: B + 3 };
  const out = () => ({ y: poisoned(n), batchMean: poisoned(M * C), batchVar: poisoned(M * C), featureMean: poisoned(B * M), featureVar: poisoned(B * M) });
  const fc = bln.forward(x, shape, gamma, beta, { ...opts, device: 'cpu' });
  const fg = bln.forward(x, shape, gamma, beta, { ...opts, device: 'cuda', out: out() });
  const s = JSON.stringify(shape);
  check(`forward y ${s}`, relErr(fg.y, fc.y), 1e-5);
  for (const k of bln.STAT_KEYS) check(`forward ${k} ${s}`, relErr(fg.stats[k], fc.stats[k]), 1e-5);
  const bc = bln.backward(dy, x, shape, gamma, fc.stats, { ...opts, device: 'cpu' });
  const bg = bln.backward(dy, x, shape, gamma, fc.stats, { ...opts, device: 'cuda', out: { dx: poisoned(n), dgamma: poisoned(C), dbeta: poisoned(C) } });
  for (const k of ['dx', 'dgamma', 'dbeta']) check(`backward ${k} ${s}`, relErr(bg[k], bc[k]), 1e-4);
  const pop = { batchMean: normals(M * C, 0.3, 0.5), batchVar: normals(M * C).map((v) => 0.5 + v * v), featureMean: normals(M, -0.2, 0.5), featureVar: normals(M).map((v) => 0.5 + v * v) };
  let worst = 0;
  for (let k = 0; k < 16; k++) {
    const use = { batchMean: !!(k & 1), batchVar: !!(k & 2), featureMean: !!(k & 4), featureVar: !!(k & 8) };
    const yc = bln.infer(x, shape, gamma, beta, pop, use, { ...opts, device: 'cpu' });
    const yg = bln.infer(x, shape, gamma, beta, pop, use, { ...opts, device: 'cuda', out: poisoned(n) });
    worst = Math.max(worst, relErr(yg, yc));
  }
  check(`infer, worst of 16 configurations ${s}`, worst, 1e-5);
}

function specialValues() {
  const shape = [33, 4, 36];
  const { n, C, x, gamma, beta } = inputs(shape);
  const xn = x.slice();
  xn[5] = NaN;
  const yc = bln.forward(xn, shape, gamma, beta, { device: 'cpu' }).y;
  const yg = bln.forward(xn, shape, gamma, beta, { device: 'cuda' }).y;
  let same = 0;
  for (let i = 0; i < n; i++) if (Number.isNaN(yc[i]) === Number.isNaN(yg[i])) same++;
  check(`NaN propagates to the same ${yc.filter(Number.isNaN).length} outputs ${JSON.stringify(shape)}`, n - same, 0);
  for (const scale of [1e19, 1e22]) {
    const xs = x.map((v) => v * scale);
    const fc = bln.forward(xs, shape, gamma, beta, { device: 'cpu' });
    const fg = bln.forward(xs, shape, gamma, beta, { device: 'cuda' });
    check(`forward y at ${scale} (overflow fallback)`, relErr(fg.y, fc.y), 1e-5);
    check(`forward featureMean at ${scale}`, relErr(fg.stats.featureMean, fc.stats.featureMean), 1e-5);
  }
  void C;
}

async function concurrency() {
  const shape = [16, 3, 40];
  const { x, gamma, beta } = inputs(shape);
  const sync = bln.forward(x, shape, gamma, beta, { device: 'cuda' }).y;
  const all = await Promise.all(Array.from({ length: 64 }, () => bln.forwardAsync(x, shape, gamma, beta, { device: 'cuda' })));
  check('64 concurrent forwardAsync on cuda vs sync', Math.max(...all.map((r) => relErr(r.y, sync))), 0);
  const res = await Promise.all([0, 1].map(() => new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: { shape, x, gamma, beta } });
    w.on('message', resolve);
    w.on('error', reject);
  })));
  check('two worker_threads on cuda vs the main thread', Math.max(...res.map((y) => relErr(y, sync))), 0);
}

async function main() {
  const info = bln.backendInfo();
  const cuda = info.devices.find((d) => d.type === 'cuda');
  console.log(`backendInfo cuda: ${JSON.stringify(cuda)}`);
  const emulatedOk = process.argv.includes('--emulated');
  if (!cuda.available || (cuda.emulated && !emulatedOk)) {
    console.log(`FAIL CUDA is not available here${cuda.emulated ? ' (the emulated build: pass --emulated to try the script out)' : ''}`);
    process.exit(1);
  }
  bln.forward(new Float32Array(8), [2, 4], new Float32Array(4), new Float32Array(4)); // 'auto': runs the self-check
  const after = bln.backendInfo().devices.find((d) => d.type === 'cuda');
  check(`self-check (${after.selfCheck}${after.reason ? ': ' + after.reason : ''})`, after.selfCheck === 'passed' ? 0 : 1, 0);
  for (const shape of cuda.emulated ? SHAPES.filter((sh) => sh.reduce((a, b) => a * b, 1) < 1e5) : SHAPES) compareShape(shape);
  specialValues();
  await concurrency();
  console.log(`node_check: ${checks - failures} passed, ${failures} failed`);
  process.exit(failures ? 1 : 0);
}

if (isMainThread) main().catch((e) => { console.error(e); process.exit(2); });
else {
  const { shape, x, gamma, beta } = workerData;
  parentPort.postMessage(bln.forward(x, shape, gamma, beta, { device: 'cuda' }).y);
}
