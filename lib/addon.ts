// Loads the native addon once, with an error that says what to do when it fails.
import * as fs from 'fs';
import * as path from 'path';

export interface CudaNativeInfo {
  built: boolean;
  available: boolean;
  reason?: string;
  name?: string;
  computeCapability?: string;
  memoryBytes?: number;
  driverVersion?: string;
  runtimeVersion?: string;
  /** true in the emulated test build (npm run build:cuda-emu): the host emulator, not a GPU. */
  emulated?: boolean;
}

export interface NativeInfo {
  simd: string;
  simdSupported: string[];
  threads: number;
  maxThreads: number;
  cuda: CudaNativeInfo;
}

type F32 = Float32Array;
type Opt = F32 | undefined;

/** Device codes of the binding. */
export const DEVICE_CPU = 0;
export const DEVICE_CUDA = 1;

// The binding's positional arguments, one tuple per operation: lib builds them (lib/ops.ts) and
// tsc checks them against these; binding/addon.cpp reads them in this order (its parse()).
export type ForwardCall = [x: F32, B: number, M: number, C: number, gamma: F32, beta: F32, eps: number, N: number, device: number,
  y: F32, bm: F32, bv: F32, fm: F32, fv: F32];
export type BackwardCall = [dy: F32, x: F32, B: number, M: number, C: number, gamma: F32, bm: F32, bv: F32, fm: F32, fv: F32,
  eps: number, N: number, device: number, dx: F32, dgamma: F32, dbeta: F32];
/** use: bit 0 batchMean, 1 batchVar, 2 featureMean, 3 featureVar (1 = from the population). */
export type InferCall = [x: F32, B: number, M: number, C: number, gamma: F32, beta: F32, pbm: Opt, pbv: Opt, pfm: Opt, pfv: Opt,
  use: number, eps: number, N: number, device: number, y: F32];

export interface Native {
  forward(...args: ForwardCall): void;
  forwardAsync(...args: ForwardCall): Promise<void>;
  backward(...args: BackwardCall): void;
  backwardAsync(...args: BackwardCall): Promise<void>;
  infer(...args: InferCall): void;
  inferAsync(...args: InferCall): Promise<void>;
  backendInfo(): NativeInfo;
  setSimd(level: string): void;
  setThreads(n: number): void;
  /** Transparent-huge-page advice for a fresh output; returns the bytes advised. */
  adviseHugePages(a: Float32Array): number;
  /** Emulated test builds only: kernels launched so far in this process. */
  emuKernelLaunches?(): number;
}

/** The package root (holds package.json), from dist/lib or lib. */
export const packageRoot: string = (() => {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'CMakeLists.txt'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..', '..');
})();

let cached: Native | undefined;

export function native(): Native {
  if (cached) return cached;
  const candidates = [
    process.env.BLN_ADDON_PATH,
    path.join(packageRoot, 'build', 'Release', 'bln.node'),
    path.join(packageRoot, 'build', 'Debug', 'bln.node'),
  ].filter((p): p is string => !!p);
  const failures: string[] = [];
  for (const file of candidates) {
    if (!fs.existsSync(file)) {
      failures.push(`${file}: not found`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cached = require(file) as Native;
      return cached;
    } catch (e) {
      failures.push(`${file}: ${(e as Error).message}`);
    }
  }
  throw new Error(
    'batch-layer-norm: the native addon could not be loaded.\n' +
      failures.map((f) => `  - ${f}`).join('\n') +
      '\nBuild it with `npm rebuild batch-layer-norm` (or `npm run build:native` in a checkout). ' +
      'That needs CMake >= 3.18 and a C++17 compiler (g++ or clang); nvcc is optional. ' +
      'Set BLN_ADDON_PATH to load an addon from another place.',
  );
}
