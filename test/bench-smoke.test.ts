// `npm run bench -- --quick` as a smoke test: it completes and writes valid JSON, Markdown and
// SVG charts. No timing is asserted here (speed is measured by the benchmark itself).
import { execSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..');
const benchJs = path.join(root, 'dist', 'bench', 'bench.js');

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'results') t = Math.max(t, newestMtime(p));
    } else if (e.name.endsWith('.ts')) t = Math.max(t, fs.statSync(p).mtimeMs);
  }
  return t;
}

beforeAll(() => {
  // dist comes from `npm install` ("prepare"); rebuild it when missing or older than the sources
  // (bench compiles some of test/ in with it: the tfjs composite, relErr, CallInputs).
  const newest = Math.max(...['lib', 'bench', 'test'].map((d) => newestMtime(path.join(root, d))));
  if (!fs.existsSync(benchJs) || fs.statSync(benchJs).mtimeMs < newest) execSync('npx tsc -p tsconfig.json', { cwd: root, stdio: 'pipe' });
}, 120000);

test('bench --quick completes and writes valid JSON, Markdown and SVG', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bln-bench-'));
  try {
    const r = spawnSync(process.execPath, [benchJs, '--quick', '--out', out], { cwd: root, encoding: 'utf8', timeout: 240000 });
    if (r.status !== 0) throw new Error(`bench --quick exited ${r.status} (${r.signal ?? 'no signal'})\n${r.stdout}\n${r.stderr}`);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'bench-quick.json'), 'utf8'));
    expect(json.quick).toBe(true);
    expect(typeof json.machine.cpu).toBe('string');
    for (const section of ['grid', 'peers', 'sweep', 'overhead']) expect(json[section].length).toBeGreaterThan(0);
    expect(fs.readFileSync(path.join(out, 'bench-quick.md'), 'utf8')).toMatch(/^# batch-layer-norm benchmark/);
    for (const chart of ['sweep', 'speedup', 'copy-ratio']) expect(fs.readFileSync(path.join(out, `bench-quick-${chart}.svg`), 'utf8')).toMatch(/^<svg[^>]*>/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 300000);
