// The benchmark's outputs: tables on stdout, JSON, Markdown and SVG charts (vega-lite).
import * as fs from 'fs';
import * as path from 'path';

import type { Machine } from './machine';
import type { Budget } from './timing';
import { renderVegaLite } from './vega';

export interface GridRow {
  shape: number[];
  elements: number;
  simd: string;
  threads: number;
  op: string;
  ms: number;
  spread: number;
  reps: number;
  copy: string;
  copyMs: number;
  ratio: number;
  gbps8: number;
  gbpsReal: number;
}

export interface PeerRow {
  shape: number[];
  elements: number;
  op: string;
  impl: string;
  ms: number;
  spread: number;
  reps: number;
  /** ||impl - native|| / ||native|| of the checked output; null where not comparable. */
  relErr: number | null;
  /** impl time / native time: how many times faster the native path is. */
  speedup: number;
  copySetMs: number;
  copyAllocMs: number;
}

export interface SweepRow {
  elements: number;
  shape: number[];
  impl: string;
  ms: number;
  spread: number;
  reps: number;
  gbps8: number;
}

export interface OverheadRow {
  call: string;
  us: number;
  spread: number;
  reps: number;
  note: string;
}

export interface BenchResult {
  machine: Machine;
  quick: boolean;
  tfjs: { version: string; wasmSimd: boolean; wasmThreads: number };
  budget: Budget;
  grid: GridRow[];
  peers: PeerRow[];
  sweep: SweepRow[];
  overhead: OverheadRow[];
  seconds?: number;
}

const SERVER = ['256,4096', '64,32,32,64', '32,196,768', '1024,16384'];
// The paper's shapes with a forward target of their own (÷ dst.set(x)): [25,200,64] <= 3, the tiny
// conv shapes <= 8 (per-call cost rules there).
const PAPER: Record<string, number> = { '25,200,64': 3, '25,14,14,6': 8, '25,5,5,16': 8 };
// Calls with out buffers ÷ dst.set(x) on the server shapes; per-call time at [25,84] (µs).
const TARGET = { forward: 1.5, backward: 2.5, infer: 1.2, callUs: 4 };
const sh = (s: number[]) => `[${s.join(',')}]`;
const f2 = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(3));
const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
const sci = (v: number | null) => (v === null ? '–' : v.toExponential(1));

function table(head: string[], rows: (string | number)[][]): string[] {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

/** The grid rows at the default configuration (best SIMD level, all threads). */
function defaultGrid(r: BenchResult): GridRow[] {
  return r.grid.filter((g) => g.simd === r.machine.simd && g.threads === r.machine.threads);
}

export function summaryLines(r: BenchResult): string[] {
  const out: string[] = [];
  const def = defaultGrid(r);
  const server = def.filter((g) => SERVER.includes(g.shape.join(',')));
  if (server.length) {
    out.push(
      `Against a same-size copy (calls with out buffers ÷ dst.set(x); ${r.machine.simd}, ${r.machine.threads} threads; targets: forward <= ${TARGET.forward}, backward <= ${TARGET.backward}, infer with all population statistics <= ${TARGET.infer}):`,
      '',
    );
    const shapes = [...new Set(server.map((g) => sh(g.shape)))];
    out.push(
      ...table(
        ['shape', 'forward(out)', 'backward(out)', 'infer(out)', 'forward GB/s @8B', 'backward GB/s @12B', 'copy GB/s @8B'],
        shapes.map((s) => {
          const get = (op: string) => server.find((g) => sh(g.shape) === s && g.op === op)!;
          const fw = get('forward(out)');
          const bw = get('backward(out)');
          return [s, f2(fw.ratio), f2(bw.ratio), f2(get('infer(out)').ratio), f2(fw.gbpsReal), f2(bw.gbpsReal), f2((8 * fw.elements) / fw.copyMs / 1e6)];
        }),
      ),
      '',
    );
  }
  const paper = def.filter((g) => g.shape.join(',') in PAPER);
  if (paper.length) {
    const shapes = [...new Set(paper.map((g) => g.shape.join(',')))];
    out.push(`The paper's shapes (same ratios; forward targets: ${Object.entries(PAPER).map(([k, v]) => `[${k}] <= ${v}`).join(', ')}):`, '');
    out.push(
      ...table(
        ['shape', 'forward(out)', 'forward target', 'backward(out)', 'infer(out)', 'forward µs'],
        shapes.map((s) => {
          const get = (op: string) => paper.find((g) => g.shape.join(',') === s && g.op === op)!;
          const fw = get('forward(out)');
          return [`[${s}]`, f2(fw.ratio), `<= ${PAPER[s]}`, f2(get('backward(out)').ratio), f2(get('infer(out)').ratio), f2(fw.ms * 1000)];
        }),
      ),
      '',
    );
  }
  const peers = r.peers.filter((p) => SERVER.includes(p.shape.join(',')));
  if (peers.length) {
    out.push('Speed-up of the native path over the tfjs composites (their time ÷ ours; targets: >= 30x cpu, >= 5x wasm):', '');
    const shapes = [...new Set(peers.map((p) => sh(p.shape)))];
    const ops = [...new Set(peers.map((p) => p.op))];
    out.push(
      ...table(
        ['shape', ...ops.flatMap((o) => [`${o} vs cpu`, `${o} vs wasm`])],
        shapes.map((s) => [
          s,
          ...ops.flatMap((o) =>
            ['tfjs cpu composite', 'tfjs wasm composite'].map((impl) => {
              const p = peers.find((q) => sh(q.shape) === s && q.op === o && q.impl === impl);
              return p ? `${f2(p.speedup)}x` : '–';
            }),
          ),
        ]),
      ),
      '',
    );
  }
  const oh = r.overhead.find((o) => o.call.startsWith('forward(x, shape, gamma, beta, { out })'));
  if (oh) out.push(`Per-call time of forward with out buffers at [25,84]: ${oh.us.toFixed(2)} µs (target <= ${TARGET.callUs} µs).`, '');
  return out;
}

export function markdown(r: BenchResult): string {
  const m = r.machine;
  const out: string[] = [
    `# batch-layer-norm benchmark${r.quick ? ' (--quick)' : ''}`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, ${m.platform}; SIMD ${m.simdSupported.join('/')} (default ${m.simd}); GPU: ${m.gpu}; node ${m.node}. Date: ${m.date}.`,
    `tfjs ${r.tfjs.version}; wasm backend SIMD ${r.tfjs.wasmSimd}, threads ${r.tfjs.wasmThreads}. Run time ${r.seconds?.toFixed(0) ?? '?'} s.`,
    '',
    `Every figure is the median of repeats (warm-up ${r.budget.warm}, then as many repeats as fit in ${r.budget.ms} ms, between ${r.budget.min} and ${r.budget.max}),`,
    'with the compared implementations alternated in one run (A B C A B C ...). Spread = (p90 - p10) / median.',
    '',
    '## Summary',
    '',
    ...summaryLines(r),
  ];
  if (r.peers.length) {
    out.push(
      '## Peers',
      '',
      '`train` = forward + backward (tfjs: `tf.grads` of the op, which runs the forward too); `infer` = all four statistics from the population.',
      '`speed-up` = that implementation\'s time ÷ the native time (allocating calls). `rel err` = ||peer - native|| / ||native|| of y (train: dx), checked before timing;',
      'moments+batchNorm computes a different function (batch normalization only) and is a yardstick, not compared.',
      '',
      ...table(
        ['shape', 'op', 'implementation', 'median ms', 'spread', 'speed-up of bln', 'rel err', 'copy set ms'],
        r.peers.map((p) => [sh(p.shape), p.op, p.impl, ms(p.ms), pct(p.spread), `${f2(p.speedup)}x`, sci(p.relErr), ms(p.copySetMs)]),
      ),
      '',
    );
  }
  if (r.sweep.length) {
    const impls = [...new Set(r.sweep.map((s) => s.impl))];
    const sizes = [...new Set(r.sweep.map((s) => s.elements))];
    out.push('## Size sweep (forward, shape [32, n/32]): median ms', '', ...table(['elements', ...impls], sizes.map((n) => [n.toLocaleString('en-US'), ...impls.map((i) => {
      const row = r.sweep.find((s) => s.elements === n && s.impl === i);
      return row ? ms(row.ms) : '–';
    })])), '');
  }
  if (r.overhead.length) {
    out.push('## Per-call overhead at [25,84]', '', ...table(['call', 'µs per call', 'spread', 'calls', 'note'], r.overhead.map((o) => [o.call, o.us.toFixed(2), pct(o.spread), o.reps, o.note])), '');
  }
  if (r.grid.length) {
    out.push(
      '## Native grid: SIMD level x threads',
      '',
      '`ratio` = time ÷ the same-size copy in the same run: allocating calls against `new Float32Array(x)`, calls with out buffers against `dst.set(x)`.',
      'GB/s @8B counts 8 bytes per element; "real" counts what the op moves (forward/infer 8, backward 12: x, dy, dx).',
      '',
      ...table(
        ['shape', 'simd', 'threads', 'op', 'median ms', 'spread', 'copy ms', 'ratio', 'GB/s @8B', 'GB/s real'],
        r.grid.map((g) => [sh(g.shape), g.simd, g.threads, g.op, ms(g.ms), pct(g.spread), ms(g.copyMs), f2(g.ratio), f2(g.gbps8), f2(g.gbpsReal)]),
      ),
      '',
    );
  }
  return out.join('\n');
}

// ------------------------------------------------------------------ charts

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

function sweepChart(r: BenchResult): Record<string, unknown> {
  const native = new Map(r.sweep.filter((s) => s.impl === 'bln native').map((s) => [s.elements, s.ms]));
  const values = r.sweep.map((s) => ({ ...s, speedup: s.ms / native.get(s.elements)! }));
  const color = { field: 'impl', type: 'nominal', title: 'implementation', legend: { labelLimit: 400 } };
  const x = { field: 'elements', type: 'quantitative', scale: { type: 'log' }, title: 'elements (shape [32, n/32])', axis: { format: '~s' } };
  return {
    $schema: SCHEMA,
    title: `BLN forward: time against size (${r.machine.cpu}, ${r.machine.cores} cores)`,
    data: { values },
    hconcat: [
      {
        width: 360,
        height: 280,
        mark: { type: 'line', point: true },
        encoding: { x, y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'median ms per call' }, color },
      },
      {
        width: 360,
        height: 280,
        transform: [{ filter: "datum.impl !== 'bln native'" }],
        mark: { type: 'line', point: true },
        encoding: { x, y: { field: 'speedup', type: 'quantitative', scale: { type: 'log' }, title: 'its time ÷ bln native (above 1: bln faster)' }, color },
      },
    ],
  };
}

function speedupChart(r: BenchResult): Record<string, unknown> {
  const shapes = [...new Set(r.peers.map((p) => sh(p.shape)))];
  const values = r.peers.filter((p) => p.impl !== 'bln native').map((p) => ({ ...p, shape: sh(p.shape) }));
  return {
    $schema: SCHEMA,
    title: `Speed-up of bln native over each peer: peer time ÷ bln time (${r.machine.cpu}, ${r.machine.cores} cores)`,
    data: { values },
    facet: { row: { field: 'op', type: 'nominal', title: null, sort: ['forward', 'train', 'infer'] } },
    spec: {
      width: 760,
      height: 170,
      mark: 'bar',
      encoding: {
        x: { field: 'shape', type: 'nominal', sort: shapes, title: null, axis: { labelAngle: 0 } },
        xOffset: { field: 'impl', type: 'nominal' },
        y: { field: 'speedup', type: 'quantitative', scale: { type: 'log' }, stack: null, title: 'peer ÷ bln (log)' },
        color: { field: 'impl', type: 'nominal', title: 'peer', legend: { labelLimit: 400 } },
        tooltip: [{ field: 'impl' }, { field: 'speedup', format: '.2f' }],
      },
    },
  };
}

function copyChart(r: BenchResult): Record<string, unknown> {
  const values = defaultGrid(r).map((g) => ({ ...g, shape: sh(g.shape) }));
  const shapes = [...new Set(values.map((v) => v.shape))];
  return {
    $schema: SCHEMA,
    title: `Native time ÷ same-size copy (${r.machine.simd}, ${r.machine.threads} threads); dashed: server-shape targets ${TARGET.forward} (forward) and ${TARGET.backward} (backward)`,
    data: { values },
    width: 720,
    height: 260,
    layer: [
      {
        mark: 'bar',
        encoding: {
          x: { field: 'shape', type: 'nominal', sort: shapes, title: null, axis: { labelAngle: 0 } },
          xOffset: { field: 'op', type: 'nominal' },
          // log: at the paper's small shapes a call is tens of copies (per-call cost), at server sizes ~1-3
          y: { field: 'ratio', type: 'quantitative', scale: { type: 'log' }, stack: null, title: 'time ÷ copy time (log)' },
          color: { field: 'op', type: 'nominal' },
        },
      },
      { mark: { type: 'rule', strokeDash: [4, 3], color: '#1f77b4' }, encoding: { y: { datum: TARGET.forward } } },
      { mark: { type: 'rule', strokeDash: [4, 3], color: '#d62728' }, encoding: { y: { datum: TARGET.backward } } },
    ],
  };
}

/** Writes <base>.json, <base>.md and the SVG charts into dir; prints the tables. Returns the paths. */
export async function writeReport(r: BenchResult, dir: string, base: string, print: (line: string) => void): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    files.push(f);
  };
  const md = markdown(r);
  print('');
  print(md);
  write(`${base}.json`, JSON.stringify(r, null, 1));
  write(`${base}.md`, md);
  const charts: [string, boolean, () => Record<string, unknown>][] = [
    ['sweep', r.sweep.length > 0, () => sweepChart(r)],
    ['speedup', r.peers.length > 0, () => speedupChart(r)],
    ['copy-ratio', r.grid.length > 0, () => copyChart(r)],
  ];
  for (const [name, has, spec] of charts) if (has) write(`${base}-${name}.svg`, await renderVegaLite(spec()));
  return files;
}
