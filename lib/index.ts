// batch-layer-norm: the public API. Every argument is validated here; the native
// addon receives only checked typed arrays and numbers.
import * as os from 'os';

import { native, packageRoot } from './addon';
import { cudaState, type Device, DEVICES, pickDevice } from './device';
import * as is from './is';
import { checkSizeMatches, parseShape, View } from './shape';

export { type Device, DEVICES } from './device';

export interface Options {
  /** Added to each variance before the square root. Default 1e-3 (the authors' `offset`). */
  epsilon?: number;
  /** N of the spec: sets the mixing weights 1/N. Default shape[0]. */
  batchSize?: number;
  /**
   * 'auto' uses CUDA where a GPU is usable and has passed the self-check, else the CPU; 'cuda'
   * demands a GPU. Default: the environment variable BLN_DEVICE, else 'auto'.
   */
  device?: Device;
}

/** Mini-batch statistics: batch stats have M*C entries, feature stats B*M. Variances are biased. */
export interface Stats {
  batchMean: Float32Array;
  batchVar: Float32Array;
  featureMean: Float32Array;
  featureVar: Float32Array;
}

/** Population statistics: batch stats M*C entries, feature stats M. Variances are unbiased. */
export type Population = Stats;

/** For each statistic: true takes it from the population, false from the mini-batch. */
export interface InferUse {
  batchMean: boolean;
  batchVar: boolean;
  featureMean: boolean;
  featureVar: boolean;
}

export interface ForwardOptions extends Options {
  /** Preallocated outputs (any subset), for allocation-free training loops. */
  out?: Partial<Stats & { y: Float32Array }>;
}
export interface BackwardOptions extends Options {
  out?: Partial<BackwardResult>;
}
export interface InferOptions extends Options {
  out?: Float32Array;
}

export interface ForwardResult {
  y: Float32Array;
  stats: Stats;
}
export interface BackwardResult {
  dx: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
}

export const STAT_KEYS = ['batchMean', 'batchVar', 'featureMean', 'featureVar'] as const;
export type StatKey = (typeof STAT_KEYS)[number];

// ------------------------------------------------------------------ options

interface Resolved {
  eps: number;
  N: number;
  device: number;
}

function resolveOptions(options: unknown, B: number, extraKeys: readonly string[]): Resolved & { out?: unknown } {
  if (!is.defined(options)) return { eps: 1e-3, N: B, device: pickDevice(undefined) };
  if (!is.plainObject(options)) throw is.invalidType('object', 'options', options);
  const known = ['epsilon', 'batchSize', 'device', ...extraKeys];
  for (const key of Object.keys(options))
    if (!known.includes(key)) throw new TypeError(`Unknown option '${key}': expected one of ${known.join(', ')}`);
  const eps = is.defined(options.epsilon) ? is.positiveFinite(options.epsilon, 'epsilon') : 1e-3;
  const N = is.defined(options.batchSize) ? is.positiveInteger(options.batchSize, 'batchSize') : B;
  const device = pickDevice(is.defined(options.device) ? is.oneOf(options.device, 'device', DEVICES) : undefined);
  return { eps, N, device, out: options.out };
}

/**
 * A new output array. The kernels write every element, so it need not be zeroed:
 * uninitialised memory comes from the allocator's recycled blocks, where a zeroed
 * one comes as fresh pages whose first-touch faults cost more than the kernel
 * itself on large tensors (16 MiB: ~12 ms of faults against ~4 ms of work, measured).
 */
function newOutput(length: number, name: string): Float32Array {
  let b: Buffer;
  try {
    b = Buffer.allocUnsafeSlow(length * 4);
  } catch (e) {
    // over buffer.constants.MAX_LENGTH, or the allocator said no: name the output
    throw new RangeError(
      `Could not allocate the output ${name} (${length} float32 elements, ${length * 4} bytes): ${(e as Error).message}. Pass a preallocated ${name} in options.out`,
    );
  }
  const a = new Float32Array(b.buffer, b.byteOffset, length);
  // Large fresh outputs come as untouched pages whose first-touch faults (~3 us per 4 KiB page
  // on a VM) can cost more than the kernel: huge pages take one fault per 2 MiB instead.
  if (length >= HUGE_OUTPUT) native().adviseHugePages(a);
  return a;
}
const HUGE_OUTPUT = (8 << 20) / 4;

function outArray(out: Record<string, unknown>, key: string, length: number, name: string): Float32Array {
  const v = out[key];
  if (!is.defined(v)) return newOutput(length, name);
  return is.float32OfLength(v, name, length);
}

/**
 * No output may share memory with an input or another output. Only caller-provided outputs
 * are checked (fresh ones cannot overlap anything), and each view's buffer is read once:
 * this runs on every call, and at small shapes it was 15% of the call.
 */
function checkNoOverlap(out: Record<string, unknown>, outputs: [string, string, Float32Array][], inputs: [string, Float32Array][]): void {
  const names: string[] = [];
  const views: Float32Array[] = [];
  for (const [key, name, a] of outputs)
    if (is.defined(out[key])) {
      names.push(name);
      views.push(a);
    }
  const given = views.length;
  if (given === 0) return;
  for (const [name, a] of inputs) {
    names.push(name);
    views.push(a);
  }
  const bufs = views.map((v) => v.buffer);
  for (let i = 0; i < given; i++) {
    const lo = views[i]!.byteOffset;
    const hi = lo + views[i]!.byteLength;
    for (let j = i + 1; j < views.length; j++) {
      if (bufs[i] !== bufs[j]) continue;
      const plo = views[j]!.byteOffset;
      if (lo < plo + views[j]!.byteLength && plo < hi) throw new RangeError(`Expected ${names[i]} not to share memory with ${names[j]}`);
    }
  }
}

function outObject(out: unknown, keys: readonly string[]): Record<string, unknown> {
  if (!is.defined(out)) return {};
  if (!is.plainObject(out)) throw is.invalidType(`object with any of ${keys.join(', ')}`, 'options.out', out);
  for (const key of Object.keys(out))
    if (!keys.includes(key)) throw new TypeError(`Unknown key '${key}' in options.out: expected any of ${keys.join(', ')}`);
  return out;
}

function statsArg(stats: unknown, name: string, v: View, featureLen: number): Stats {
  if (!is.plainObject(stats)) throw is.invalidType('object with batchMean, batchVar, featureMean, featureVar', name, stats);
  const s = stats as Record<string, unknown>;
  return {
    batchMean: is.float32OfLength(s.batchMean, `${name}.batchMean`, v.M * v.C),
    batchVar: is.float32OfLength(s.batchVar, `${name}.batchVar`, v.M * v.C),
    featureMean: is.float32OfLength(s.featureMean, `${name}.featureMean`, featureLen),
    featureVar: is.float32OfLength(s.featureVar, `${name}.featureVar`, featureLen),
  };
}

function useArg(use: unknown): { mask: number; use: InferUse } {
  if (!is.plainObject(use)) throw is.invalidType('object with boolean batchMean, batchVar, featureMean, featureVar', 'use', use);
  let mask = 0;
  const out = {} as InferUse;
  STAT_KEYS.forEach((k, i) => {
    const b = is.defined(use[k]) ? is.bool(use[k], `use.${k}`) : false;
    out[k] = b;
    if (b) mask |= 1 << i;
  });
  for (const key of Object.keys(use))
    if (!(STAT_KEYS as readonly string[]).includes(key)) throw new TypeError(`Unknown key '${key}' in use: expected ${STAT_KEYS.join(', ')}`);
  return { mask, use: out };
}

// ------------------------------------------------------------------ prepared calls

type Call<R> = { args: unknown[]; result: R };

function prepareForward(x: unknown, shape: unknown, gamma: unknown, beta: unknown, options: unknown): Call<ForwardResult> {
  const v = parseShape(shape);
  const xa = is.float32(x, 'x');
  checkSizeMatches(v, xa.length, 'x');
  const g = is.float32OfLength(gamma, 'gamma', v.C);
  const b = is.float32OfLength(beta, 'beta', v.C);
  const o = resolveOptions(options, v.B, ['out']);
  const out = outObject(o.out, ['y', ...STAT_KEYS]);
  const y = outArray(out, 'y', v.size, 'out.y');
  const stats: Stats = {
    batchMean: outArray(out, 'batchMean', v.M * v.C, 'out.batchMean'),
    batchVar: outArray(out, 'batchVar', v.M * v.C, 'out.batchVar'),
    featureMean: outArray(out, 'featureMean', v.B * v.M, 'out.featureMean'),
    featureVar: outArray(out, 'featureVar', v.B * v.M, 'out.featureVar'),
  };
  checkNoOverlap(
    out,
    [['y', 'out.y', y], ...STAT_KEYS.map((k) => [k, `out.${k}`, stats[k]] as [string, string, Float32Array])],
    [['x', xa], ['gamma', g], ['beta', b]],
  );
  return {
    args: [xa, v.B, v.M, v.C, g, b, o.eps, o.N, o.device, y, stats.batchMean, stats.batchVar, stats.featureMean, stats.featureVar],
    result: { y, stats },
  };
}

function prepareBackward(dy: unknown, x: unknown, shape: unknown, gamma: unknown, stats: unknown, options: unknown): Call<BackwardResult> {
  const v = parseShape(shape);
  const da = is.float32(dy, 'dy');
  checkSizeMatches(v, da.length, 'dy');
  const xa = is.float32(x, 'x');
  checkSizeMatches(v, xa.length, 'x');
  const g = is.float32OfLength(gamma, 'gamma', v.C);
  const s = statsArg(stats, 'stats', v, v.B * v.M);
  const o = resolveOptions(options, v.B, ['out']);
  const out = outObject(o.out, ['dx', 'dgamma', 'dbeta']);
  const res: BackwardResult = {
    dx: outArray(out, 'dx', v.size, 'out.dx'),
    dgamma: outArray(out, 'dgamma', v.C, 'out.dgamma'),
    dbeta: outArray(out, 'dbeta', v.C, 'out.dbeta'),
  };
  checkNoOverlap(
    out,
    [['dx', 'out.dx', res.dx], ['dgamma', 'out.dgamma', res.dgamma], ['dbeta', 'out.dbeta', res.dbeta]],
    [['dy', da], ['x', xa], ['gamma', g], ...STAT_KEYS.map((k) => [`stats.${k}`, s[k]] as [string, Float32Array])],
  );
  return {
    args: [da, xa, v.B, v.M, v.C, g, s.batchMean, s.batchVar, s.featureMean, s.featureVar, o.eps, o.N, o.device, res.dx, res.dgamma, res.dbeta],
    result: res,
  };
}

function prepareInfer(x: unknown, shape: unknown, gamma: unknown, beta: unknown, population: unknown, use: unknown, options: unknown): Call<Float32Array> {
  const v = parseShape(shape);
  const xa = is.float32(x, 'x');
  checkSizeMatches(v, xa.length, 'x');
  const g = is.float32OfLength(gamma, 'gamma', v.C);
  const b = is.float32OfLength(beta, 'beta', v.C);
  const pop = statsArg(population, 'population', v, v.M);
  const u = useArg(use);
  const o = resolveOptions(options, v.B, ['out']);
  const y = is.defined(o.out) ? is.float32OfLength(o.out, 'options.out', v.size) : newOutput(v.size, 'options.out');
  checkNoOverlap({ out: o.out }, [['out', 'options.out', y]], [['x', xa], ['gamma', g], ['beta', b], ...STAT_KEYS.map((k) => [`population.${k}`, pop[k]] as [string, Float32Array])]);
  return {
    args: [xa, v.B, v.M, v.C, g, b, pop.batchMean, pop.batchVar, pop.featureMean, pop.featureVar, u.mask, o.eps, o.N, o.device, y],
    result: y,
  };
}

// Errors from the native side carry the caller's stack, captured before going async.
async function runAsync<R>(call: Call<R>, start: (...args: unknown[]) => Promise<void>, stack: string | undefined): Promise<R> {
  try {
    await start(...call.args);
  } catch (e) {
    if (e instanceof Error && stack) e.stack = `${e.name}: ${e.message}\n${stack.split('\n').slice(1).join('\n')}`;
    throw e;
  }
  return call.result;
}

// ------------------------------------------------------------------ public API

/**
 * Training forward pass with mini-batch statistics.
 * @param x input of shape [B, d1..dk, C]
 * @returns y (same shape) and the four mini-batch statistics
 */
export function forward(x: Float32Array, shape: readonly number[], gamma: Float32Array, beta: Float32Array, options?: ForwardOptions): ForwardResult {
  const call = prepareForward(x, shape, gamma, beta, options);
  (native().forward as (...a: unknown[]) => void)(...call.args);
  return call.result;
}

/** Training-mode gradient; `stats` is what forward returned for the same x. */
export function backward(dy: Float32Array, x: Float32Array, shape: readonly number[], gamma: Float32Array, stats: Stats, options?: BackwardOptions): BackwardResult {
  const call = prepareBackward(dy, x, shape, gamma, stats, options);
  (native().backward as (...a: unknown[]) => void)(...call.args);
  return call.result;
}

/** Inference: each statistic from the population where `use` says so, else from x. */
export function infer(x: Float32Array, shape: readonly number[], gamma: Float32Array, beta: Float32Array, population: Population, use: InferUse, options?: InferOptions): Float32Array {
  const call = prepareInfer(x, shape, gamma, beta, population, use, options);
  (native().infer as (...a: unknown[]) => void)(...call.args);
  return call.result;
}

/** forward on the libuv thread pool; the event loop stays free. */
export async function forwardAsync(x: Float32Array, shape: readonly number[], gamma: Float32Array, beta: Float32Array, options?: ForwardOptions): Promise<ForwardResult> {
  const stack = new Error().stack;
  const call = prepareForward(x, shape, gamma, beta, options);
  return runAsync(call, native().forwardAsync as (...a: unknown[]) => Promise<void>, stack);
}

export async function backwardAsync(dy: Float32Array, x: Float32Array, shape: readonly number[], gamma: Float32Array, stats: Stats, options?: BackwardOptions): Promise<BackwardResult> {
  const stack = new Error().stack;
  const call = prepareBackward(dy, x, shape, gamma, stats, options);
  return runAsync(call, native().backwardAsync as (...a: unknown[]) => Promise<void>, stack);
}

export async function inferAsync(x: Float32Array, shape: readonly number[], gamma: Float32Array, beta: Float32Array, population: Population, use: InferUse, options?: InferOptions): Promise<Float32Array> {
  const stack = new Error().stack;
  const call = prepareInfer(x, shape, gamma, beta, population, use, options);
  return runAsync(call, native().inferAsync as (...a: unknown[]) => Promise<void>, stack);
}

export { PopulationStats } from './population';

// ------------------------------------------------------------------ backend

export interface DeviceInfo {
  type: 'cpu' | 'cuda';
  available: boolean;
  name?: string;
  reason?: string;
  [key: string]: unknown;
}

export interface BackendInfo {
  devices: DeviceInfo[];
  /** SIMD level the CPU kernels use now. */
  simd: string;
  /** SIMD levels this CPU and build support. */
  simdSupported: string[];
  /** Threads the CPU path uses now (BLN_THREADS caps it). */
  threads: number;
  maxThreads: number;
  version: string;
}

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

export interface ConfigureOptions {
  /** Force a SIMD level ('scalar', 'avx2', 'avx512', 'neon'); it must be supported. */
  simd?: string;
  /** Threads for the CPU path, 1..maxThreads. */
  threads?: number;
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
