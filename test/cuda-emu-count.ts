// Test machinery of `npm run test:cuda-emu` (scripts/test-cuda-emu.sh passes it to jest as a
// setup file): counts the tests during which the emulated CUDA path launched kernels, and
// writes one JSON line per test file into BLN_CUDA_COUNT_DIR for the script to add up.
import * as fs from 'fs';
import * as path from 'path';

import { native } from '../lib/addon';

const dir = process.env.BLN_CUDA_COUNT_DIR;
const launches = native().emuKernelLaunches;
if (!launches) throw new Error('cuda-emu-count: the loaded addon is not the emulated build (npm run build:cuda-emu; BLN_ADDON_PATH)');

let before = 0;
let total = 0;
let onCuda = 0;
beforeEach(() => {
  before = launches();
});
afterEach(() => {
  total++;
  if (launches() > before) onCuda++;
});
afterAll(() => {
  if (!dir) return;
  const file = path.relative(process.cwd(), expect.getState().testPath ?? 'unknown');
  fs.appendFileSync(path.join(dir, 'counts.jsonl'), JSON.stringify({ file, total, onCuda }) + '\n');
});
