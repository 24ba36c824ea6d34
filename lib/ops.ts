// The entry points: forward, backward, infer and their async variants. Each call is prepared
// once (checked, outputs allocated, the binding's arguments laid out as the typed tuples of
// addon.ts), then run on this thread or on the libuv pool.
import { native, type BackwardCall, type ForwardCall, type InferCall } from './addon';
import * as is from './is';
import { namedOverlap, newOutput, outArray, outObject, resolveOptions, statsArg, useArg } from './options';
import { checkSizeMatches, parseShape } from './shape';
import {
  STAT_KEYS,
  type BackwardOptions,
  type BackwardResult,
  type ForwardOptions,
  type ForwardResult,
  type InferOptions,
  type InferUse,
  type Population,
  type Stats,
} from './types';

type Call<A, R> = { args: A; result: R };

// Each entry point's arrays as the core's overlap check orders them (checkArgs in cpp/bln.h: the
// outputs, then the inputs) and as its errors name them (namedOverlap).
const FORWARD_ARRAYS = ['out.y', ...STAT_KEYS.map((k) => `out.${k}`), 'x', 'gamma', 'beta'];
const BACKWARD_ARRAYS = ['out.dx', 'out.dgamma', 'out.dbeta', 'dy', 'x', 'gamma', ...STAT_KEYS.map((k) => `stats.${k}`)];
const INFER_ARRAYS = ['options.out', 'x', 'gamma', 'beta', ...STAT_KEYS.map((k) => `population.${k}`)];
// The keys options.out may have.
const FORWARD_OUT_KEYS = ['y', ...STAT_KEYS];
const BACKWARD_OUT_KEYS = ['dx', 'dgamma', 'dbeta'];

function prepareForward(x: unknown, shape: unknown, gamma: unknown, beta: unknown, options: unknown): Call<ForwardCall, ForwardResult> {
  const v = parseShape(shape);
  const xa = is.float32(x, 'x');
  checkSizeMatches(v, xa.length, 'x');
  const g = is.float32OfLength(gamma, 'gamma', v.C);
  const b = is.float32OfLength(beta, 'beta', v.C);
  const o = resolveOptions(options, v.B);
  const out = outObject(o.out, FORWARD_OUT_KEYS);
  const y = outArray(out.y, v.size, 'out.y');
  const stats: Stats = {
    batchMean: outArray(out.batchMean, v.M * v.C, 'out.batchMean'),
    batchVar: outArray(out.batchVar, v.M * v.C, 'out.batchVar'),
    featureMean: outArray(out.featureMean, v.B * v.M, 'out.featureMean'),
    featureVar: outArray(out.featureVar, v.B * v.M, 'out.featureVar'),
  };
  return {
    args: [xa, v.B, v.M, v.C, g, b, o.eps, o.N, o.device, y, stats.batchMean, stats.batchVar, stats.featureMean, stats.featureVar],
    result: { y, stats },
  };
}

function prepareBackward(dy: unknown, x: unknown, shape: unknown, gamma: unknown, stats: unknown, options: unknown): Call<BackwardCall, BackwardResult> {
  const v = parseShape(shape);
  const da = is.float32(dy, 'dy');
  checkSizeMatches(v, da.length, 'dy');
  const xa = is.float32(x, 'x');
  checkSizeMatches(v, xa.length, 'x');
  const g = is.float32OfLength(gamma, 'gamma', v.C);
  const s = statsArg(stats, 'stats', v, v.B * v.M);
  const o = resolveOptions(options, v.B);
  const out = outObject(o.out, BACKWARD_OUT_KEYS);
  const res: BackwardResult = {
    dx: outArray(out.dx, v.size, 'out.dx'),
    dgamma: outArray(out.dgamma, v.C, 'out.dgamma'),
    dbeta: outArray(out.dbeta, v.C, 'out.dbeta'),
  };
  return {
    args: [da, xa, v.B, v.M, v.C, g, s.batchMean, s.batchVar, s.featureMean, s.featureVar, o.eps, o.N, o.device, res.dx, res.dgamma, res.dbeta],
    result: res,
  };
}

function prepareInfer(x: unknown, shape: unknown, gamma: unknown, beta: unknown, population: unknown, use: unknown, options: unknown): Call<InferCall, Float32Array> {
  const v = parseShape(shape);
  const xa = is.float32(x, 'x');
  checkSizeMatches(v, xa.length, 'x');
  const g = is.float32OfLength(gamma, 'gamma', v.C);
  const b = is.float32OfLength(beta, 'beta', v.C);
  const pop = statsArg(population, 'population', v, v.M);
  const u = useArg(use);
  const o = resolveOptions(options, v.B);
  const y = is.defined(o.out) ? is.float32OfLength(o.out, 'options.out', v.size) : newOutput(v.size, 'options.out');
  return {
    args: [xa, v.B, v.M, v.C, g, b, pop.batchMean, pop.batchVar, pop.featureMean, pop.featureVar, u.mask, o.eps, o.N, o.device, y],
    result: y,
  };
}

// Errors from the native side carry the caller's stack, captured before going async.
async function runAsync<A extends unknown[], R>(call: Call<A, R>, start: (...args: A) => Promise<void>, stack: string | undefined, arrays: readonly string[]): Promise<R> {
  try {
    await start(...call.args);
  } catch (err) {
    const e = namedOverlap(err, arrays);
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
  try {
    native().forward(...call.args);
  } catch (e) {
    throw namedOverlap(e, FORWARD_ARRAYS);
  }
  return call.result;
}

/** Training-mode gradient; `stats` is what forward returned for the same x. */
export function backward(dy: Float32Array, x: Float32Array, shape: readonly number[], gamma: Float32Array, stats: Stats, options?: BackwardOptions): BackwardResult {
  const call = prepareBackward(dy, x, shape, gamma, stats, options);
  try {
    native().backward(...call.args);
  } catch (e) {
    throw namedOverlap(e, BACKWARD_ARRAYS);
  }
  return call.result;
}

/** Inference: each statistic from the population where `use` says so, else from x. */
export function infer(x: Float32Array, shape: readonly number[], gamma: Float32Array, beta: Float32Array, population: Population, use: InferUse, options?: InferOptions): Float32Array {
  const call = prepareInfer(x, shape, gamma, beta, population, use, options);
  try {
    native().infer(...call.args);
  } catch (e) {
    throw namedOverlap(e, INFER_ARRAYS);
  }
  return call.result;
}

/** forward on the libuv thread pool; the event loop stays free. */
export async function forwardAsync(x: Float32Array, shape: readonly number[], gamma: Float32Array, beta: Float32Array, options?: ForwardOptions): Promise<ForwardResult> {
  const stack = new Error().stack;
  const call = prepareForward(x, shape, gamma, beta, options);
  return runAsync(call, native().forwardAsync, stack, FORWARD_ARRAYS);
}

export async function backwardAsync(dy: Float32Array, x: Float32Array, shape: readonly number[], gamma: Float32Array, stats: Stats, options?: BackwardOptions): Promise<BackwardResult> {
  const stack = new Error().stack;
  const call = prepareBackward(dy, x, shape, gamma, stats, options);
  return runAsync(call, native().backwardAsync, stack, BACKWARD_ARRAYS);
}

export async function inferAsync(x: Float32Array, shape: readonly number[], gamma: Float32Array, beta: Float32Array, population: Population, use: InferUse, options?: InferOptions): Promise<Float32Array> {
  const stack = new Error().stack;
  const call = prepareInfer(x, shape, gamma, beta, population, use, options);
  return runAsync(call, native().inferAsync, stack, INFER_ARRAYS);
}
