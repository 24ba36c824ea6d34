// Devices: the choice of each call ('cpu', 'cuda', or 'auto': CUDA where usable and self-checked,
// else the CPU), the process-wide default (BLN_DEVICE), backendInfo() and configure().
import * as os from 'os';

import { DEVICE_CPU, DEVICE_CUDA, native, packageRoot } from './addon';
import * as is from './is';
import { runSelfCheck } from './selfcheck';
import { DEVICES, type BackendInfo, type ConfigureOptions, type Device } from './types';

/** What the CUDA device is for this process: the native probe, then the self-check's verdict. */
export interface CudaState {
  available: boolean;
  reason?: string;
  /** 'passed' / 'failed' once the first 'auto' call that would pick CUDA has run it. */
  selfCheck: 'not run' | 'passed' | 'failed';
}

// Whether CUDA is usable does not change while the process runs (the native side caches its
// probe too); asking the addon on every call cost ~5 us, half the per-call budget.
let probe: { available: boolean; reason?: string } | undefined;
let selfCheck: { passed: boolean; reason?: string } | undefined;

function nativeProbe(): { available: boolean; reason?: string } {
  return (probe ??= native().backendInfo().cuda);
}

function cudaState(): CudaState {
  const p = nativeProbe();
  if (!p.available) return { available: false, reason: p.reason, selfCheck: 'not run' };
  if (!selfCheck) return { available: true, selfCheck: 'not run' };
  return selfCheck.passed ? { available: true, selfCheck: 'passed' } : { available: false, reason: selfCheck.reason, selfCheck: 'failed' };
}

let defaultDevice: Device | undefined;

/** BLN_DEVICE sets the device of calls that name none (default 'auto'). */
function processDefault(): Device {
  if (defaultDevice) return defaultDevice;
  const env = process.env.BLN_DEVICE;
  if (env === undefined || env === '') return (defaultDevice = 'auto');
  if (!(DEVICES as readonly string[]).includes(env))
    throw new TypeError(`Expected one of ${DEVICES.join(', ')} for the environment variable BLN_DEVICE but received ${is.describe(env)}`);
  return (defaultDevice = env as Device);
}

/** The native device code for a call's `device` option (undefined: the process default). */
export function pickDevice(option: Device | undefined): number {
  const device = option ?? processDefault();
  if (device === 'cpu') return DEVICE_CPU;
  const p = nativeProbe();
  if (device === 'cuda') {
    if (!p.available) throw new Error(`device 'cuda' was requested but no usable GPU exists: ${p.reason ?? 'unknown reason'}`);
    return DEVICE_CUDA;
  }
  if (!p.available) return DEVICE_CPU;
  return (selfCheck ??= runSelfCheck()).passed ? DEVICE_CUDA : DEVICE_CPU;
}

// ------------------------------------------------------------------ backend

let version: string | undefined;

export function backendInfo(): BackendInfo {
  const n = native().backendInfo();
  if (!version) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    version = (require(`${packageRoot}/package.json`) as { version: string }).version;
  }
  const { built, available: _nativeAvailable, reason: _nativeReason, ...cudaRest } = n.cuda;
  const { available, reason, selfCheck } = cudaState();
  const cpuName = os.cpus()[0]?.model?.trim() ?? os.arch();
  return {
    devices: [
      { type: 'cpu', available: true, name: cpuName, simd: n.simd, threads: n.threads },
      { type: 'cuda', available, built, ...(reason ? { reason } : {}), ...cudaRest, selfCheck },
    ],
    simd: n.simd,
    simdSupported: n.simdSupported,
    threads: n.threads,
    maxThreads: n.maxThreads,
    version,
  };
}

/** Process-wide settings of the CPU path (the same as BLN_SIMD / BLN_THREADS at load). */
export function configure(options: ConfigureOptions): BackendInfo {
  if (!is.plainObject(options)) throw is.invalidType('object', 'options', options);
  for (const key of Object.keys(options))
    if (key !== 'simd' && key !== 'threads') throw new TypeError(`Unknown option '${key}': expected one of simd, threads`);
  const info = native().backendInfo();
  // everything is checked before anything is applied: a rejected call changes nothing
  const simd = is.defined(options.simd) ? is.oneOf(options.simd, 'simd', info.simdSupported) : undefined;
  let threads: number | undefined;
  if (is.defined(options.threads)) {
    threads = is.positiveInteger(options.threads, 'threads');
    if (threads > info.maxThreads) throw is.invalidRange(`integer between 1 and ${info.maxThreads}`, 'threads', threads);
  }
  if (simd !== undefined) native().setSimd(simd);
  if (threads !== undefined) native().setThreads(threads);
  return backendInfo();
}
