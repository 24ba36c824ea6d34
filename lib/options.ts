// Options, outputs and the small structured arguments of every entry point: resolved and
// checked here, with the user-facing messages ("Expected ... for ... but received ...").
import { native } from './addon';
import { pickDevice } from './device';
import * as is from './is';
import type { View } from './shape';
import { DEVICES, STAT_KEYS, type InferUse, type Stats } from './types';

interface Resolved {
  eps: number;
  N: number;
  device: number;
}

/** The keys of every entry point's options (all take `out`). */
const OPTION_KEYS: readonly string[] = ['epsilon', 'batchSize', 'device', 'out'];

export function resolveOptions(options: unknown, B: number): Resolved & { out?: unknown } {
  if (!is.defined(options)) return { eps: 1e-3, N: B, device: pickDevice(undefined) };
  if (!is.plainObject(options)) throw is.invalidType('object', 'options', options);
  const known = OPTION_KEYS;
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
export function newOutput(length: number, name: string): Float32Array {
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

/** A caller's output (options.out's value for it, read by a literal key: a dynamic key was the slowest load of a small call), else a new one. */
export function outArray(v: unknown, length: number, name: string): Float32Array {
  if (!is.defined(v)) return newOutput(length, name);
  return is.float32OfLength(v, name, length);
}

/**
 * The core's refusal of an output that shares memory with another array of the call (its
 * OverlapError, checkArgs in cpp/bln.h: the binding passes it on as a RangeError whose `overlap`
 * holds the pair's indices into the call's arrays, outputs first), named as the caller passed the
 * arrays; any other error as it is. The core checks the data pointers it was given, which costs
 * nothing, where reading each view's buffer here was a quarter of a small call.
 */
export function namedOverlap(e: unknown, arrays: readonly string[]): unknown {
  const pair = typeof e === 'object' && e !== null ? (e as { overlap?: unknown }).overlap : undefined;
  if (!Array.isArray(pair) || pair.length !== 2) return e;
  return new RangeError(`Expected ${arrays[pair[0] as number] ?? 'an output'} not to share memory with ${arrays[pair[1] as number] ?? 'another array'}`);
}

export function outObject(out: unknown, keys: readonly string[]): Record<string, unknown> {
  if (!is.defined(out)) return {};
  if (!is.plainObject(out)) throw is.invalidType(`object with any of ${keys.join(', ')}`, 'options.out', out);
  for (const key of Object.keys(out))
    if (!keys.includes(key)) throw new TypeError(`Unknown key '${key}' in options.out: expected any of ${keys.join(', ')}`);
  return out;
}

export function statsArg(stats: unknown, name: string, v: View, featureLen: number): Stats {
  if (!is.plainObject(stats)) throw is.invalidType('object with batchMean, batchVar, featureMean, featureVar', name, stats);
  const s = stats as Record<string, unknown>;
  return {
    batchMean: is.float32OfLength(s.batchMean, `${name}.batchMean`, v.M * v.C),
    batchVar: is.float32OfLength(s.batchVar, `${name}.batchVar`, v.M * v.C),
    featureMean: is.float32OfLength(s.featureMean, `${name}.featureMean`, featureLen),
    featureVar: is.float32OfLength(s.featureVar, `${name}.featureVar`, featureLen),
  };
}

export function useArg(use: unknown): { mask: number; use: InferUse } {
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
