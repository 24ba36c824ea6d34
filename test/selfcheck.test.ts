// 'auto' trusts a GPU only after it proves itself: the first call that would pick CUDA runs a
// fixed case on the GPU and on the CPU. These tests inject faults into the emulated CUDA
// device (BLN_EMU_FAULT, read by the emulated build alone), so they run where that build is
// loaded: `npm run test:cuda-emu`. Each case is a child process (the verdict is per process).
import { spawnSync } from 'child_process';
import * as path from 'path';

import * as bln from '../lib';

const root = path.resolve(__dirname, '..');
const cuda = bln.backendInfo().devices.find((d) => d.type === 'cuda')!;
const emulated = cuda.emulated === true && !!process.env.BLN_ADDON_PATH;

interface ChildResult {
  autoMatchesCpu: boolean;
  launchesBefore: number;
  launchesAfterAuto: number;
  launchesAfterSecondAuto: number;
  cuda: { available: boolean; reason?: string; selfCheck: string };
  explicitCuda: string;
}

function child(fault: string | undefined): ChildResult {
  const code = `
    const bln = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))});
    const { native } = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'addon.js'))});
    const shape = [5, 4, 19], n = 5 * 4 * 19;
    const x = new Float32Array(n).map((_, i) => Math.sin(i * 0.7) * 2 + 1);
    const g = new Float32Array(19).fill(1.25), b = new Float32Array(19).fill(-0.5);
    const launchesBefore = native().emuKernelLaunches();
    const auto = bln.forward(x, shape, g, b).y;
    const launchesAfterAuto = native().emuKernelLaunches();
    bln.forward(x, shape, g, b);
    const launchesAfterSecondAuto = native().emuKernelLaunches();
    const cpu = bln.forward(x, shape, g, b, { device: 'cpu' }).y;
    let explicitCuda;
    try {
      const y = bln.forward(x, shape, g, b, { device: 'cuda' }).y;
      explicitCuda = y.every((v, i) => v === cpu[i]) ? 'ran, equal to the CPU' : 'ran, differs from the CPU';
    } catch (e) { explicitCuda = 'threw: ' + e.message; }
    const d = bln.backendInfo().devices[1];
    process.stdout.write(JSON.stringify({ autoMatchesCpu: auto.every((v, i) => Math.abs(v - cpu[i]) <= 1e-5 * (1 + Math.abs(cpu[i]))),
      launchesBefore, launchesAfterAuto, launchesAfterSecondAuto,
      cuda: { available: d.available, reason: d.reason, selfCheck: d.selfCheck }, explicitCuda }));
  `;
  const env: NodeJS.ProcessEnv = { ...process.env, BLN_DEVICE: '' };
  delete env.BLN_EMU_FAULT;
  if (fault) env.BLN_EMU_FAULT = fault;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env, timeout: 60000 });
  if (r.status !== 0) throw new Error(`child failed: status=${r.status} signal=${r.signal} ${r.stderr.slice(0, 800)}`);
  return JSON.parse(r.stdout) as ChildResult;
}

(emulated ? describe : describe.skip)("self-check before 'auto' trusts the (emulated) GPU", () => {
  test('a healthy device passes: auto runs on CUDA, the verdict is reported', () => {
    const r = child(undefined);
    expect(r.cuda).toEqual({ available: true, selfCheck: 'passed' });
    expect(r.launchesAfterAuto).toBeGreaterThan(r.launchesBefore);
    expect(r.launchesAfterSecondAuto).toBeGreaterThan(r.launchesAfterAuto);
    expect(r.autoMatchesCpu).toBe(true);
    expect(r.explicitCuda).toMatch(/^ran/);
  });

  test('wrong results: auto falls back to the CPU for the process, backendInfo says why, device cuda still runs', () => {
    const r = child('mismatch');
    expect(r.cuda.available).toBe(false);
    expect(r.cuda.selfCheck).toBe('failed');
    expect(r.cuda.reason).toMatch(/^self-check failed: y on the GPU differs from the CPU path by [0-9.e+-]+ \(bound 0.00001\)/);
    // the self-check's own launches, then none for auto calls
    expect(r.launchesAfterSecondAuto).toBe(r.launchesAfterAuto);
    expect(r.autoMatchesCpu).toBe(true);
    expect(r.explicitCuda).toBe('ran, differs from the CPU');
  });

  test('a GPU error: auto falls back to the CPU, backendInfo gives the CUDA error, device cuda throws it', () => {
    const r = child('launch');
    expect(r.cuda.available).toBe(false);
    expect(r.cuda.selfCheck).toBe('failed');
    expect(r.cuda.reason).toMatch(/^self-check failed: the GPU returned an error: CUDA error: unspecified launch failure/);
    expect(r.autoMatchesCpu).toBe(true);
    expect(r.explicitCuda).toMatch(/^threw: CUDA error: unspecified launch failure/);
  });
});
