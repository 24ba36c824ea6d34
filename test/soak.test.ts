// A short soak (3,000 mixed calls) of the `npm run soak` script, in a child process with
// --expose-gc: no unbounded growth of external memory or RSS after warm-up. Thresholds are
// generous (no timing, nothing that a busy machine could make flaky): a leak of one output
// buffer per call (the smallest shapes are ~100 B, the mean is several KiB) crosses them.
import { execSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const root = path.resolve(__dirname, '..');
const soakJs = path.join(root, 'dist', 'bench', 'soak.js');

beforeAll(() => {
  // dist comes from `npm install` ("prepare"); build it when missing or older than its sources.
  const newest = Math.max(...['lib', 'bench'].flatMap((d) => fs.readdirSync(path.join(root, d)).filter((f) => f.endsWith('.ts')).map((f) => fs.statSync(path.join(root, d, f)).mtimeMs)));
  if (!fs.existsSync(soakJs) || fs.statSync(soakJs).mtimeMs < newest) execSync('npx tsc -p tsconfig.json', { cwd: root, stdio: 'pipe' });
}, 120000);

test('3,000 mixed calls: external memory and RSS stay flat after warm-up', () => {
  const r = spawnSync(process.execPath, ['--expose-gc', soakJs, '--calls', '3000', '--samples', '6', '--no-write', '--json', '--max-external-mib', '8', '--max-rss-mib', '96'], { cwd: root, encoding: 'utf8', timeout: 300000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let res: { pass: boolean; calls: number; notRejected: number; rejected: number; growthAfterWarmup: { externalMiB: number; rssMiB: number } };
  try {
    res = JSON.parse(last);
  } catch {
    throw new Error(`soak printed no result: status=${r.status} signal=${r.signal} stderr=${r.stderr.slice(0, 800)}`);
  }
  expect(res.calls).toBe(3000);
  expect(res.notRejected).toBe(0);
  expect(res.rejected).toBeGreaterThan(0);
  if (!res.pass || r.status !== 0) throw new Error(`soak failed: ${last}`);
  expect(res.growthAfterWarmup.externalMiB).toBeLessThanOrEqual(8);
});
