// BLN_DEVICE: the device of calls that name none. Each case is a child process (the variable is
// read once per process).
import { spawnSync } from 'child_process';
import * as path from 'path';

import * as bln from '../lib';

const index = path.resolve(__dirname, '..', 'dist', 'lib', 'index.js');
const cudaUsable = bln.backendInfo().devices.find((d) => d.type === 'cuda')!.available;

function run(env: string | undefined, options = 'undefined'): string {
  const code = `
    const bln = require(${JSON.stringify(index)});
    try {
      const y = bln.forward(new Float32Array(12).map((_, i) => i % 5), [3, 4], new Float32Array(4).fill(1), new Float32Array(4), ${options}).y;
      process.stdout.write('ok ' + y.every(Number.isFinite));
    } catch (e) { process.stdout.write(e.name + ': ' + e.message); }
  `;
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e.BLN_DEVICE;
  if (env !== undefined) e.BLN_DEVICE = env;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: e, timeout: 60000 });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr.slice(0, 500)}`);
  return r.stdout;
}

describe('BLN_DEVICE', () => {
  test.each(['cpu', 'auto', ''])('%p runs', (v) => {
    expect(run(v)).toBe('ok true');
  });
  test('an unknown value is a TypeError naming the variable', () => {
    expect(run('gpu')).toBe("TypeError: Expected one of auto, cpu, cuda for the environment variable BLN_DEVICE but received \"gpu\"");
  });
  (cudaUsable ? test.skip : test)("'cuda' without a usable GPU is the same Error as device: 'cuda'", () => {
    expect(run('cuda')).toMatch(/^Error: device 'cuda' was requested but no usable GPU exists: /);
  });
  test('an explicit device option wins over BLN_DEVICE', () => {
    expect(run('cuda', "{ device: 'cpu' }")).toBe('ok true');
  });
});
