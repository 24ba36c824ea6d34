// `npm run bench`: batch-layer-norm against the memory limit of this machine and against
// what a user would write without it. Four sections, every comparison timed in one run with
// the implementations alternated (A B C A B C ...):
//   grid      the native CPU path at every SIMD level x thread count, forward/backward/infer,
//             against same-size copies (`new Float32Array(x)` and `dst.set(x)`);
//   peers     on the paper's and server-size shapes: BLN with tfjs ops on the cpu and wasm
//             backends, tfjs's own moments+batchNorm, a plain-JS loop, this package's tfjs op;
//             outputs are checked against the native ones before anything is timed;
//   sweep     forward from 1K to 64M elements: where per-call overhead stops mattering;
//   overhead  per-call cost at the paper's [25,84] shape, split into lib validation and native.
// Writes a table to stdout and JSON, Markdown and SVG charts to bench/results/<machine>/.
//
//   node dist/bench/bench.js [--quick] [--out DIR] [--sections grid,peers,sweep,overhead] [--shapes 64x32x32x64,...]
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import * as bln from '../lib';
import { batchLayerNorm } from '../lib/tfjs';
import type { CallInputs } from '../test/reference';
import { ALL_POP, blnComposite, blnCompositeGrads } from '../test/tfjs-composite';
import { relErr } from '../test/tfjs-helpers';
import { describe, machineInfo } from './lib/machine';
import { Progress } from './lib/progress';
import { writeReport, type BenchResult, type GridRow, type OverheadRow, type PeerRow, type SweepRow } from './lib/report';
import { alternate, type Budget, type Candidate } from './lib/timing';
import { plainBackward, plainForward, plainInfer, type PlainStats } from './peers/plain';
import { take, tfjsBatchNorm, useBackend } from './peers/tfjs';
import { measureOverhead } from './overhead';

// ------------------------------------------------------------------ configuration

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const outArg = argv.indexOf('--out');
const sectionsArg = argv.indexOf('--sections');
const SECTIONS = new Set((sectionsArg >= 0 ? argv[sectionsArg + 1]! : 'grid,peers,sweep,overhead').split(','));

const PAPER = [[25, 84], [25, 14, 14, 6], [25, 5, 5, 16], [25, 200, 64]];
const SERVER = [[256, 4096], [64, 32, 32, 64], [32, 196, 768], [1024, 16384]];
// --shapes 64x32x32x64,25x200x64 limits the grid and peers sections to those shapes
const shapesArg = argv.indexOf('--shapes');
const only = shapesArg >= 0 ? new Set(argv[shapesArg + 1]!.split(',')) : undefined;
const pick = (shapes: number[][]) => (only ? shapes.filter((s) => only.has(s.join('x'))) : shapes);
const GRID_SHAPES = pick(quick ? [[25, 84], [64, 8, 8, 24]] : [...PAPER, ...SERVER]);
const PEER_SHAPES = pick(quick ? [[25, 84], [64, 8, 8, 24]] : [...PAPER, ...SERVER]);
// 1K .. 64M elements in steps of 4, as [32, n/32]
const SWEEP = quick ? [1 << 10, 1 << 16] : Array.from({ length: 9 }, (_, i) => 1 << (10 + 2 * i));
// The tfjs composites allocate a dozen full-size intermediates; past 16M elements a call takes
// minutes on the cpu backend, and the wasm heap (4 GiB at most) runs out.
const TFJS_SWEEP_MAX = 1 << 24;

const BUDGET: Budget = quick ? { warm: 1, min: 3, max: 5, ms: 20 } : { warm: 2, min: 5, max: 41, ms: 400 };
const EPS = 1e-3;

// ------------------------------------------------------------------ data

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (s * 1664525 + 1013904223) >>> 0) + 0.5) / 4294967296;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return a;
}

interface Inputs extends CallInputs {
  n: number;
  B: number;
  M: number;
  C: number;
}

function inputs(shape: number[], seed: number): Inputs {
  const n = shape.reduce((a, b) => a * b, 1);
  const B = shape[0]!;
  const C = shape[shape.length - 1]!;
  const M = n / (B * C);
  const x = randn(n, seed);
  const dy = randn(n, seed + 1);
  const gamma = randn(C, seed + 2).map((v) => 1 + 0.1 * v);
  const beta = randn(C, seed + 3).map((v) => 0.1 * v);
  const { stats } = bln.forward(x, shape, gamma, beta);
  const pop = new bln.PopulationStats(shape).update(stats).result();
  return { shape, n, B, M, C, x, dy, gamma, beta, stats, pop };
}

const copies = (d: Inputs, dst: Float32Array): Candidate[] => [
  { name: 'copy new Float32Array(x)', run: () => void new Float32Array(d.x) },
  { name: 'copy dst.set(x)', run: () => dst.set(d.x) },
];

// ------------------------------------------------------------------ grid

function gridSection(progress: Progress, rows: GridRow[]): void {
  const info = bln.backendInfo();
  const threadCounts = quick ? [...new Set([1, info.maxThreads])] : Array.from({ length: info.maxThreads }, (_, i) => i + 1);
  const levels = quick ? [info.simd] : info.simdSupported;
  for (const shape of GRID_SHAPES) {
    const d = inputs(shape, 1);
    const { n, C } = d;
    const dst = new Float32Array(n);
    const fwdOut = { y: new Float32Array(n), ...mapStats(d.stats, (a) => new Float32Array(a.length)) };
    const bwdOut = { dx: new Float32Array(n), dgamma: new Float32Array(C), dbeta: new Float32Array(C) };
    const y = new Float32Array(n);
    for (const simd of levels)
      for (const threads of threadCounts) {
        progress.step(`grid [${shape}] ${simd} t=${threads}`);
        bln.configure({ simd, threads });
        // [name, fn, bytes/element really moved, allocating?]
        const ops: [string, () => void, number, boolean][] = [
          ['forward', () => void bln.forward(d.x, shape, d.gamma, d.beta), 8, true],
          ['forward(out)', () => void bln.forward(d.x, shape, d.gamma, d.beta, { out: fwdOut }), 8, false],
          ['backward', () => void bln.backward(d.dy, d.x, shape, d.gamma, d.stats), 12, true],
          ['backward(out)', () => void bln.backward(d.dy, d.x, shape, d.gamma, d.stats, { out: bwdOut }), 12, false],
          ['infer(out)', () => void bln.infer(d.x, shape, d.gamma, d.beta, d.pop, ALL_POP, { out: y }), 8, false],
        ];
        const t = alternate([...copies(d, dst), ...ops.map(([name, run]) => ({ name, run }))], BUDGET);
        ops.forEach(([op, , bytes, allocating], i) => {
          const s = t[i + 2]!;
          const copy = allocating ? t[0]! : t[1]!;
          rows.push({
            shape, elements: n, simd, threads, op, ms: s.ms, spread: s.spread, reps: s.reps,
            copy: allocating ? 'new Float32Array(x)' : 'dst.set(x)', copyMs: copy.ms, ratio: s.ms / copy.ms,
            gbps8: (8 * n) / s.ms / 1e6, gbpsReal: (bytes * n) / s.ms / 1e6,
          });
        });
        progress.tick();
      }
  }
  bln.configure({ simd: info.simd, threads: info.maxThreads });
}

function mapStats(s: bln.Stats, f: (a: Float32Array) => Float32Array): bln.Stats {
  return { batchMean: f(s.batchMean), batchVar: f(s.batchVar), featureMean: f(s.featureMean), featureVar: f(s.featureVar) };
}

// ------------------------------------------------------------------ peers

type Op = 'forward' | 'train' | 'infer';
const OPS: Op[] = ['forward', 'train', 'infer'];

interface Impl {
  name: string;
  backend?: 'cpu' | 'wasm';
  /** Runs op once and returns the output checked against the native one (y, or dx for train). */
  run: (op: Op) => Float32Array;
  /** Ops it has. */
  ops: Op[];
  /** The reference of the check: a different computation (tfjs batchNorm) is not compared. */
  comparable: boolean;
  dispose?: () => void;
}

function tfTensors(d: Inputs, backend: 'cpu' | 'wasm') {
  useBackend(backend);
  const C = d.C;
  const inner = d.shape.slice(1);
  return {
    x: tf.tensor(d.x, d.shape),
    dy: tf.tensor(d.dy, d.shape),
    gamma: tf.tensor(d.gamma, [C]),
    beta: tf.tensor(d.beta, [C]),
    pop: {
      batchMean: tf.tensor(d.pop.batchMean, inner),
      batchVar: tf.tensor(d.pop.batchVar, inner),
      featureMean: tf.tensor(d.pop.featureMean, [d.M]),
      featureVar: tf.tensor(d.pop.featureVar, [d.M]),
    },
  };
}

function disposeTensors(t: ReturnType<typeof tfTensors>): void {
  tf.dispose([t.x, t.dy, t.gamma, t.beta, t.pop.batchMean, t.pop.batchVar, t.pop.featureMean, t.pop.featureVar]);
}

function nativeImpl(d: Inputs): Impl {
  return {
    name: 'bln native',
    ops: OPS,
    comparable: true,
    run: (op) => {
      if (op === 'infer') return bln.infer(d.x, d.shape, d.gamma, d.beta, d.pop, ALL_POP);
      const f = bln.forward(d.x, d.shape, d.gamma, d.beta);
      return op === 'forward' ? f.y : bln.backward(d.dy, d.x, d.shape, d.gamma, f.stats).dx;
    },
  };
}

function plainImpl(d: Inputs): Impl {
  const pop: PlainStats = {
    batchMean: Float64Array.from(d.pop.batchMean),
    batchVar: Float64Array.from(d.pop.batchVar),
    featureMean: Float64Array.from(d.pop.featureMean),
    featureVar: Float64Array.from(d.pop.featureVar),
  };
  const { B, M, C } = d;
  return {
    name: 'plain JS loops',
    ops: OPS,
    comparable: true,
    run: (op) => {
      if (op === 'infer') return plainInfer(d.x, B, M, C, d.gamma, d.beta, B, EPS, pop);
      const f = plainForward(d.x, B, M, C, d.gamma, d.beta, B, EPS);
      return op === 'forward' ? f.y : plainBackward(d.dy, d.x, B, M, C, d.gamma, B, EPS, f.stats).dx;
    },
  };
}

function compositeImpl(d: Inputs, backend: 'cpu' | 'wasm'): Impl {
  const t = tfTensors(d, backend);
  return {
    name: `tfjs ${backend} composite`,
    backend,
    ops: OPS,
    comparable: true,
    run: (op) => {
      if (op === 'forward') return take(blnComposite(t.x, t.gamma, t.beta, d.B, EPS))[0]!;
      if (op === 'infer') return take(blnComposite(t.x, t.gamma, t.beta, d.B, EPS, t.pop, ALL_POP))[0]!;
      return take(blnCompositeGrads(t.x, t.gamma, t.beta, t.dy, d.B, EPS))[0]!;
    },
    dispose: () => disposeTensors(t),
  };
}

function batchNormImpl(d: Inputs, backend: 'cpu' | 'wasm'): Impl {
  const t = tfTensors(d, backend);
  return {
    name: `tfjs ${backend} moments+batchNorm`,
    backend,
    ops: OPS,
    comparable: false,
    run: (op) => {
      if (op === 'forward') return take(tfjsBatchNorm(t.x, t.gamma, t.beta, EPS))[0]!;
      if (op === 'infer') return take(tfjsBatchNorm(t.x, t.gamma, t.beta, EPS, { mean: t.pop.batchMean, variance: t.pop.batchVar }))[0]!;
      return take(tf.grads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tfjsBatchNorm(x, g, b, EPS))([t.x, t.gamma, t.beta], t.dy))[0]!;
    },
    dispose: () => disposeTensors(t),
  };
}

function opImpl(d: Inputs): Impl {
  const t = tfTensors(d, 'cpu');
  const population = d.pop;
  return {
    name: 'bln tfjs op (cpu backend)',
    backend: 'cpu',
    ops: OPS,
    comparable: true,
    run: (op) => {
      if (op === 'forward') return take(batchLayerNorm(t.x, t.gamma, t.beta, { training: true }))[0]!;
      if (op === 'infer') return take(batchLayerNorm(t.x, t.gamma, t.beta, { population, use: ALL_POP }))[0]!;
      return take(tf.grads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => batchLayerNorm(x, g, b, { training: true }))([t.x, t.gamma, t.beta], t.dy))[0]!;
    },
    dispose: () => disposeTensors(t),
  };
}

function peersSection(progress: Progress, rows: PeerRow[]): void {
  for (const shape of PEER_SHAPES) {
    const d = inputs(shape, 7);
    const dst = new Float32Array(d.n);
    const impls = [nativeImpl(d), opImpl(d), compositeImpl(d, 'cpu'), compositeImpl(d, 'wasm'), batchNormImpl(d, 'cpu'), batchNormImpl(d, 'wasm'), plainImpl(d)];
    for (const op of OPS) {
      progress.step(`peers [${shape}] ${op}`);
      // Validation before timing: every comparable peer must agree with the native path.
      const ref = impls[0]!.run(op);
      const errs = impls.map((im) => {
        if (!im.comparable) return null;
        if (im.backend) useBackend(im.backend);
        return relErr(im.run(op), ref);
      });
      const cands: Candidate[] = [
        ...copies(d, dst),
        ...impls.map((im) => ({ name: im.name, before: im.backend ? () => useBackend(im.backend!) : undefined, run: () => void im.run(op) })),
      ];
      const t = alternate(cands, BUDGET);
      const native = t[2]!;
      impls.forEach((im, i) => {
        const s = t[i + 2]!;
        rows.push({
          shape, elements: d.n, op, impl: im.name, ms: s.ms, spread: s.spread, reps: s.reps,
          relErr: errs[i]!, speedup: s.ms / native.ms, copySetMs: t[1]!.ms, copyAllocMs: t[0]!.ms,
        });
      });
      progress.tick();
    }
    impls.forEach((im) => im.dispose?.());
    useBackend('cpu');
  }
}

// ------------------------------------------------------------------ sweep

function sweepSection(progress: Progress, rows: SweepRow[]): void {
  for (const n of SWEEP) {
    progress.step(`sweep ${n} elements`);
    const shape = [32, n / 32];
    const d = inputs(shape, 11);
    const dst = new Float32Array(n);
    const out = { y: new Float32Array(n), ...mapStats(d.stats, (a) => new Float32Array(a.length)) };
    const cands: Candidate[] = [
      ...copies(d, dst),
      { name: 'bln native', run: () => void bln.forward(d.x, shape, d.gamma, d.beta) },
      { name: 'bln native (out)', run: () => void bln.forward(d.x, shape, d.gamma, d.beta, { out }) },
      { name: 'plain JS loops', run: () => void plainForward(d.x, d.B, d.M, d.C, d.gamma, d.beta, d.B, EPS) },
    ];
    const composites = n <= TFJS_SWEEP_MAX ? [compositeImpl(d, 'cpu'), compositeImpl(d, 'wasm')] : [];
    for (const im of composites) cands.push({ name: im.name, before: () => useBackend(im.backend!), run: () => void im.run('forward') });
    const t = alternate(cands, BUDGET);
    cands.forEach((c, i) => rows.push({ elements: n, shape, impl: c.name, ms: t[i]!.ms, spread: t[i]!.spread, reps: t[i]!.reps, gbps8: (8 * n) / t[i]!.ms / 1e6 }));
    composites.forEach((im) => im.dispose?.());
    useBackend('cpu');
    progress.tick();
  }
}

// ------------------------------------------------------------------ main

// The tfjs wasm backend's start (the peers and the sweep use it): it leaves V8 compiling its module on
// background threads for seconds after, which took the second core from the grid's two-thread calls
// (forward [25,14,14,6] at two threads came out bimodal in 2 of 3 runs, 7.8-9.4x a copy, against
// 6.6-6.9x in 3 of 3 with no wasm started), so the grid and the overhead run before it.
async function startWasm(): Promise<BenchResult['tfjs']> {
  await tf.setBackend('wasm');
  const wasmThreads = (await import('@tensorflow/tfjs-backend-wasm')).getThreadsCount();
  await tf.setBackend('cpu');
  const wasmSimd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  console.log(`tfjs ${tf.version.tfjs}; wasm backend: SIMD ${wasmSimd}, threads ${wasmThreads}`);
  return { version: tf.version.tfjs, wasmSimd, wasmThreads };
}

async function main(): Promise<void> {
  const machine = machineInfo();
  console.log(`machine: ${describe(machine)}`);
  const info = bln.backendInfo();
  const gridSteps = GRID_SHAPES.length * (quick ? 1 : info.simdSupported.length) * (quick ? new Set([1, info.maxThreads]).size : info.maxThreads);
  const steps = (SECTIONS.has('grid') ? gridSteps : 0) + (SECTIONS.has('peers') ? PEER_SHAPES.length * OPS.length : 0) + (SECTIONS.has('sweep') ? SWEEP.length : 0) + (SECTIONS.has('overhead') ? 1 : 0);
  const progress = new Progress(steps);
  const result: BenchResult = {
    machine,
    quick,
    tfjs: { version: tf.version.tfjs, wasmSimd: false, wasmThreads: 0 },
    budget: BUDGET,
    grid: [],
    peers: [],
    sweep: [],
    overhead: [] as OverheadRow[],
  };
  const t0 = Date.now();
  try {
    if (SECTIONS.has('grid')) gridSection(progress, result.grid);
    if (SECTIONS.has('overhead')) {
      progress.step('overhead [25,84]');
      result.overhead = await measureOverhead(quick);
      progress.tick();
    }
    result.tfjs = await startWasm();
    if (SECTIONS.has('peers')) peersSection(progress, result.peers);
    if (SECTIONS.has('sweep')) sweepSection(progress, result.sweep);
  } finally {
    progress.stop();
  }
  result.seconds = (Date.now() - t0) / 1000;
  const dir = outArg >= 0 ? path.resolve(argv[outArg + 1]!) : path.join(__dirname, '..', '..', 'bench', 'results', machine.slug);
  const written = await writeReport(result, dir, quick ? 'bench-quick' : 'bench', (line) => console.log(line));
  console.log(`\n${result.seconds.toFixed(0)} s; wrote ${written.map((f) => path.relative(process.cwd(), f)).join(', ')}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
