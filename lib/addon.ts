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
let loadedFrom: string | undefined;

/** The command that builds the addon from source (CMake >= 3.18 and a C++17 compiler). */
export const BUILD_COMMAND = 'npx batch-layer-norm-build';

/** The C library of this process: 'glibc', 'musl', or undefined (not Linux, or unknown). */
export function libcFamily(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const family = (require('detect-libc') as { familySync(): string | null }).familySync();
    if (family) return family;
  } catch {
    // detect-libc missing: fall back to process.report below
  }
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime ? 'glibc' : undefined;
}

/** glibc's version at run time (e.g. '2.36'), or undefined elsewhere. */
function glibcVersion(): string | undefined {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime;
}

/** The prebuilds/ folder name for this process: `<platform>-<arch>-<libc>` (e.g. linux-x64-glibc). */
export function prebuildTag(): string {
  const libc = libcFamily();
  return [process.platform, process.arch, ...(libc ? [libc] : [])].join('-');
}

/** The file the addon was loaded from (undefined before the first native() call). */
export function addonPath(): string | undefined {
  return loadedFrom;
}

/**
 * Places tried, in order. BLN_ADDON_PATH, when set, is the only one (a failure there is never
 * hidden by another binary). Otherwise: a source build of this checkout or install
 * (build/Release, build/Debug), then the prebuilt binary shipped in the package.
 */
export function addonCandidates(): string[] {
  if (process.env.BLN_ADDON_PATH) return [path.resolve(process.env.BLN_ADDON_PATH)];
  return [
    path.join(packageRoot, 'build', 'Release', 'bln.node'),
    path.join(packageRoot, 'build', 'Debug', 'bln.node'),
    path.join(packageRoot, 'prebuilds', prebuildTag(), 'bln.node'),
  ];
}

function whyNotFound(file: string): string {
  const dir = path.dirname(file);
  if (path.basename(path.dirname(dir)) !== 'prebuilds') return 'not found';
  const shipped = fs.existsSync(path.dirname(dir))
    ? fs.readdirSync(path.dirname(dir)).filter((d) => fs.existsSync(path.join(path.dirname(dir), d, 'bln.node')))
    : [];
  return shipped.length
    ? `not found: no prebuilt binary for ${path.basename(dir)} (prebuilt: ${shipped.join(', ')})`
    : 'not found: this copy has no prebuilt binaries (a git checkout builds from source)';
}

const ELF_MACHINES: Record<number, string> = { 0x03: 'ia32', 0x28: 'arm', 0x3e: 'x64', 0xb7: 'arm64', 0xf3: 'riscv64' };

/** The architecture an ELF file was built for, when it is not this process's (else undefined). */
function elfMismatch(file: string): string | undefined {
  try {
    const fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(20);
    fs.readSync(fd, head, 0, 20, 0);
    fs.closeSync(fd);
    if (head.readUInt32BE(0) !== 0x7f454c46) return undefined;
    const machine = head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
    const arch = ELF_MACHINES[machine] ?? `ELF machine ${machine}`;
    return arch === process.arch ? undefined : arch;
  } catch {
    return undefined;
  }
}

function whyFailed(file: string, e: Error): string {
  const other = elfMismatch(file);
  if (other) return `built for ${other}, this process is ${process.arch}`;
  const msg = e.message.split('\n')[0].replace(`${file}: `, '');
  const m = /version [`']?(GLIBC_[0-9.]+)[`']? not found/.exec(msg);
  const have = glibcVersion();
  if (m) return `${msg} (it needs ${m[1]}; this system has glibc ${have ?? 'unknown'})`;
  return msg;
}

export function native(): Native {
  if (cached) return cached;
  const failures: string[] = [];
  for (const file of addonCandidates()) {
    if (!fs.existsSync(file)) {
      failures.push(`${file}: ${whyNotFound(file)}`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cached = require(file) as Native;
      loadedFrom = file;
      return cached;
    } catch (e) {
      failures.push(`${file}: ${whyFailed(file, e as Error)}`);
    }
  }
  const env = process.env.BLN_ADDON_PATH ? ' (BLN_ADDON_PATH is set, so only it was tried)' : '';
  throw new Error(
    `batch-layer-norm: the native addon could not be loaded${env}. Tried:\n` +
      failures.map((f) => `  - ${f}`).join('\n') +
      `\nBuild it from source: \`${BUILD_COMMAND}\` (in a git checkout: \`npm run build:native\`). ` +
      'That needs CMake >= 3.18 and a C++17 compiler (g++ or clang); nvcc is optional. ' +
      'Set BLN_ADDON_PATH to load an addon from another place.',
  );
}
