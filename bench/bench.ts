// `npm run bench`: the native CPU path against the memory limit of this machine.
//
// For each shape, every SIMD level and thread count runs forward, backward and infer,
// alternated (A B A B ...) with two copies of the same size measured in the same run:
//   - `new Float32Array(x)`  (allocates, like the default API call), and
//   - `dst.set(x)`           (preallocated, like calls with `out` buffers).
// Ratios pair like with like: allocating call / allocating copy, `out` call / set copy.
// Writes a table to stdout and JSON + Markdown to bench/results/<machine>/.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as bln from '../lib';

interface Row {
  shape: number[];
  elements: number;
  simd: string;
  threads: number;
  op: string;
  ms: number;
  spread: number; // (p90 - p10) / median
  copyMs: number;
  ratio: number;
  gbps8: number;
  gbpsReal: number;
}

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const SHAPES: number[][] = quick
  ? [[256, 4096], [25, 84]]
  : [[256, 4096], [64, 32, 32, 64], [32, 196, 768], [1024, 16384]];

function quantile(a: number[], q: number): number {
  const s = [...a].sort((p, r) => p - r);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))]!;
}

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (s * 1664525 + 1013904223) >>> 0) + 0.5) / 4294967296;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return a;
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Runs the functions alternately, `reps` rounds after `warm` warm-up rounds; returns times per fn. */
function alternate(fns: (() => void)[], reps: number, warm: number): number[][] {
  const times = fns.map(() => [] as number[]);
  for (let r = 0; r < warm + reps; r++) {
    fns.forEach((fn, i) => {
      const t0 = now();
      fn();
      const dt = now() - t0;
      if (r >= warm) times[i]!.push(dt);
    });
  }
  return times;
}

function main(): void {
  const info = bln.backendInfo();
  const machine = {
    cpu: os.cpus()[0]?.model?.trim() ?? 'unknown',
    cores: os.cpus().length,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    platform: `${os.platform()}-${os.arch()}`,
    simdSupported: info.simdSupported,
    devices: info.devices,
    date: new Date().toISOString(),
  };
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, SIMD ${info.simdSupported.join('/')}`);
  const rows: Row[] = [];
  const threadCounts = Array.from({ length: info.maxThreads }, (_, i) => i + 1);
  for (const shape of SHAPES) {
    const n = shape.reduce((a, b) => a * b, 1);
    const C = shape[shape.length - 1]!;
    const x = randn(n, 1);
    const dy = randn(n, 2);
    const gamma = randn(C, 3).map((v) => 1 + 0.1 * v);
    const beta = randn(C, 4).map((v) => 0.1 * v);
    const { stats } = bln.forward(x, shape, gamma, beta);
    const pop = new bln.PopulationStats(shape).update(stats).result();
    const useAll = { batchMean: true, batchVar: true, featureMean: true, featureVar: true };
    const y = new Float32Array(n);
    const dx = new Float32Array(n);
    const dst = new Float32Array(n);
    const fwdOut = { y, batchMean: new Float32Array(stats.batchMean.length), batchVar: new Float32Array(stats.batchVar.length), featureMean: new Float32Array(stats.featureMean.length), featureVar: new Float32Array(stats.featureVar.length) };
    const bwdOut = { dx, dgamma: new Float32Array(C), dbeta: new Float32Array(C) };
    // Repeats: more for small tensors, fewer for the 16M-element one.
    const reps = quick ? 5 : Math.max(7, Math.min(41, Math.round(4e8 / n / 4)));
    const warm = quick ? 1 : 3;
    for (const simd of info.simdSupported) {
      for (const threads of threadCounts) {
        bln.configure({ simd, threads });
        const ops: [string, () => void, number, boolean][] = [
          ['forward', () => void bln.forward(x, shape, gamma, beta), 8, true],
          ['forward(out)', () => void bln.forward(x, shape, gamma, beta, { out: fwdOut }), 8, false],
          ['backward', () => void bln.backward(dy, x, shape, gamma, stats), 12, true],
          ['backward(out)', () => void bln.backward(dy, x, shape, gamma, stats, { out: bwdOut }), 12, false],
          ['infer(pop)', () => void bln.infer(x, shape, gamma, beta, pop, useAll, { out: y }), 8, false],
        ];
        const fns = [() => void new Float32Array(x), () => dst.set(x), ...ops.map((o) => o[1])];
        const t = alternate(fns, reps, warm);
        const copyAlloc = quantile(t[0]!, 0.5);
        const copySet = quantile(t[1]!, 0.5);
        ops.forEach(([op, , bytes, allocating], i) => {
          const ts = t[i + 2]!;
          const ms = quantile(ts, 0.5);
          const copyMs = allocating ? copyAlloc : copySet;
          rows.push({
            shape, elements: n, simd, threads, op, ms,
            spread: (quantile(ts, 0.9) - quantile(ts, 0.1)) / ms,
            copyMs, ratio: ms / copyMs,
            gbps8: (8 * n) / ms / 1e6,
            gbpsReal: (bytes * n) / ms / 1e6,
          });
        });
        const last = rows.slice(-ops.length);
        console.log(
          `[${shape.join(',')}] ${simd.padEnd(6)} t=${threads}  copy ${copyAlloc.toFixed(2)}ms set ${copySet.toFixed(2)}ms  ` +
            last.map((r) => `${r.op} ${r.ms.toFixed(2)}ms ${r.ratio.toFixed(2)}x`).join('  '),
        );
      }
    }
  }
  bln.configure({ simd: info.simd, threads: info.maxThreads });

  const md: string[] = [
    `# batch-layer-norm CPU benchmark`,
    '',
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, ${machine.platform}, node ${machine.node}. Date: ${machine.date}.`,
    '',
    'Median of repeats, implementations alternated in one run. `ratio` = time / same-size copy measured in the same run:',
    'allocating calls against `new Float32Array(x)`, calls with `out` buffers against `dst.set(x)`.',
    'GB/s counts 8 B/element (read x, write y) and the real bytes (forward/infer 8, backward 12: x, dy, dx).',
    '',
    '| shape | simd | threads | op | median ms | spread | copy ms | ratio | GB/s @8B | GB/s real |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| [${r.shape.join(',')}] | ${r.simd} | ${r.threads} | ${r.op} | ${r.ms.toFixed(3)} | ${(100 * r.spread).toFixed(0)}% | ${r.copyMs.toFixed(3)} | ${r.ratio.toFixed(2)} | ${r.gbps8.toFixed(1)} | ${r.gbpsReal.toFixed(1)} |`),
    '',
  ];
  const slug = `${machine.cpu}-${machine.cores}c`.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  const dir = path.join(__dirname, '..', '..', 'bench', 'results', slug);
  fs.mkdirSync(dir, { recursive: true });
  const base = quick ? 'cpu-quick' : 'cpu';
  fs.writeFileSync(path.join(dir, `${base}.json`), JSON.stringify({ machine, rows }, null, 1));
  fs.writeFileSync(path.join(dir, `${base}.md`), md.join('\n'));
  console.log(`\nwrote ${path.relative(process.cwd(), path.join(dir, base))}.{json,md}`);
}

main();
