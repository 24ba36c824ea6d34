// `npm run demo` at a tiny size as a smoke test: one epoch on 100 training digits at batch 25
// and 1, with all three norms, on the wasm backend; it completes and writes valid JSON, Markdown
// and SVG. No timing and no accuracy is asserted. Also: the demo's Tile gradient (used by
// tfjs's LayerNorm) against the sum it replaces.
import { execSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { tileGradient } from '../bench/paper/tile-grad';
import { relErr } from './tfjs-helpers';

const root = path.resolve(__dirname, '..');
const mainJs = path.join(root, 'dist', 'bench', 'paper', 'main.js');

/** The newest mtime of the .ts files the demo is built from (lib/ and bench/, results excluded). */
function newestSource(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && e.name !== 'results') t = Math.max(t, newestSource(p));
    else if (e.name.endsWith('.ts')) t = Math.max(t, fs.statSync(p).mtimeMs);
  }
  return t;
}

beforeAll(() => {
  // dist comes from `npm install` ("prepare"); rebuild it when missing or older than the sources.
  const newest = Math.max(newestSource(path.join(root, 'lib')), newestSource(path.join(root, 'bench')));
  if (!fs.existsSync(mainJs) || fs.statSync(mainJs).mtimeMs < newest) execSync('npx tsc -p tsconfig.json', { cwd: root, stdio: 'pipe' });
}, 120000);

test('demo: one epoch on 100 digits writes results.json, report.md and figure.svg', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bln-demo-'));
  try {
    const args = ['--train', '100', '--val', '50', '--test', '50', '--epochs', '1', '--no-progress', '--out', out];
    const r = spawnSync(process.execPath, [mainJs, ...args], { cwd: root, encoding: 'utf8', timeout: 240000 });
    if (r.status !== 0) throw new Error(`demo exited ${r.status} (${r.signal ?? 'no signal'})\n${r.stdout}\n${r.stderr}`);
    expect(r.stdout).toMatch(/backend wasm/);
    expect(r.stdout).toMatch(/wall time \d+ s/);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(json.environment).toMatch(/backend wasm/);
    expect(json.wallSeconds).toBeGreaterThan(0);
    const runs = json.runs as { norm: string; batchSize: number; train: number; epochs: { trainLoss: number; valLoss: number }[]; grid?: unknown[]; testAtBest: { acc: number } }[];
    expect(runs.map((x) => `${x.norm}@${x.batchSize}`)).toEqual(['bln@25', 'bn@25', 'ln@25', 'bln@1', 'bn@1', 'ln@1']);
    for (const run of runs) {
      expect(run.train).toBe(100);
      expect(run.epochs).toHaveLength(1);
      expect(Number.isFinite(run.epochs[0]!.trainLoss)).toBe(true);
      expect(run.testAtBest.acc).toBeGreaterThanOrEqual(0);
      expect(run.grid?.length).toBe(run.norm === 'bln' ? 16 : undefined);
    }
    const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(md).toMatch(/^# Batch Layer Normalization vs BatchNorm vs LayerNorm/);
    expect(md).toMatch(/## Against the authors' table/);
    const svg = fs.readFileSync(path.join(out, 'figure.svg'), 'utf8');
    expect(svg).toMatch(/^<svg[^>]*>/);
    expect(svg).toMatch(/pop BM\+BV\+FM\+FV/); // the inference-configuration bars are drawn
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 300000);

test('tileGradient sums dy over the repetitions, as tfjs-core does', () => {
  tf.enableProdMode(); // no "install tfjs-node" banner from the cpu backend
  for (const [xShape, reps] of [
    [[1, 1, 1, 6], [3, 4, 5, 1]],
    [[2, 3], [2, 2]],
    [[5], [3]],
    [[2, 1, 3], [1, 4, 2]],
  ] as [number[], number[]][]) {
    const yShape = xShape.map((s, i) => s * reps[i]!);
    const dy = tf.randomNormal(yShape, 0, 1, 'float32', 9);
    const v = dy.dataSync();
    // reference: every output element added into x[index mod shape]
    const ref = new Float64Array(xShape.reduce((a, b) => a * b, 1));
    const idx = new Array<number>(yShape.length).fill(0);
    for (let f = 0; f < v.length; f++) {
      let rem = f;
      for (let d = yShape.length - 1; d >= 0; d--) {
        idx[d] = rem % yShape[d]!;
        rem = Math.floor(rem / yShape[d]!);
      }
      let xi = 0;
      for (let d = 0; d < xShape.length; d++) xi = xi * xShape[d]! + (idx[d]! % xShape[d]!);
      ref[xi]! += v[f]!;
    }
    const got = tileGradient(dy, xShape, reps);
    expect(got.shape).toEqual(xShape);
    expect(relErr(got, ref)).toBeLessThan(1e-6);
    tf.dispose([dy, got]);
  }
});
