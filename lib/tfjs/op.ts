// The BLN op for TensorFlow.js: batchLayerNorm() and batchLayerNormWithStats().
import * as tfc from '@tensorflow/tfjs-core';

import { PopulationStats, STAT_KEYS, type Device, type InferUse, type Stats } from '../index';
import {
  BATCH_LAYER_NORM,
  BATCH_LAYER_NORM_INFER,
  registerAll,
  statShapes,
  type BatchLayerNormAttrs,
  type BatchLayerNormInferAttrs,
} from './kernels';

registerAll();

/** The four statistics as tensors. */
export interface StatTensors {
  batchMean: tfc.Tensor;
  batchVar: tfc.Tensor;
  featureMean: tfc.Tensor;
  featureVar: tfc.Tensor;
}

/**
 * Population statistics for inference: a core `PopulationStats` (its `result()` is used), or
 * the four statistics as tensors or Float32Arrays (batch statistics of size M*C, feature
 * statistics of size M; any shape of that size).
 */
export type PopulationLike = PopulationStats | { [K in keyof Stats]: tfc.Tensor | Float32Array };

export interface BatchLayerNormOpOptions {
  /** Training mode: mini-batch statistics, differentiable. Default false (inference). */
  training?: boolean;
  /** N of the spec (mixing weights 1/N). Default x.shape[0]. */
  batchSize?: number;
  /** Default 1e-3. */
  epsilon?: number;
  /**
   * Inference: the population the `use` flags read. Training: a `PopulationStats` given here
   * is updated with this step's statistics.
   */
  population?: PopulationLike;
  /** Inference: per statistic, true takes it from `population`. Default all false (= the training forward). */
  use?: Partial<InferUse>;
  /** Where the native core runs: 'auto' (default), 'cpu' or 'cuda'. */
  device?: Device;
}

const OPTION_KEYS = ['training', 'batchSize', 'epsilon', 'population', 'use', 'device'];

function toTensor(v: tfc.Tensor | tfc.TensorLike, name: string): tfc.Tensor {
  if (v instanceof tfc.Tensor) {
    if (v.dtype !== 'float32') throw new TypeError(`batchLayerNorm: expected a float32 tensor for ${name} but received ${v.dtype}`);
    return v;
  }
  return tfc.tensor(v as tfc.TensorLike, undefined, 'float32');
}

function checkOptions(options: unknown): BatchLayerNormOpOptions {
  if (options == null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw new TypeError('batchLayerNorm: options must be an object');
  for (const key of Object.keys(options))
    if (!OPTION_KEYS.includes(key)) throw new TypeError(`batchLayerNorm: unknown option '${key}': expected one of ${OPTION_KEYS.join(', ')}`);
  return options as BatchLayerNormOpOptions;
}

function checkInputs(x: tfc.Tensor, gamma: tfc.Tensor, beta: tfc.Tensor): void {
  if (x.rank < 2) throw new RangeError(`batchLayerNorm: x must have rank >= 2 ([batch, ..., features]) but has shape [${x.shape.join(', ')}]`);
  const C = x.shape[x.rank - 1]!;
  if (gamma.size !== C) throw new RangeError(`batchLayerNorm: gamma must have ${C} elements (the last dim of x) but has shape [${gamma.shape.join(', ')}]`);
  if (beta.size !== C) throw new RangeError(`batchLayerNorm: beta must have ${C} elements (the last dim of x) but has shape [${beta.shape.join(', ')}]`);
}

function attrsOf(x: tfc.Tensor, o: BatchLayerNormOpOptions): BatchLayerNormAttrs {
  return { epsilon: o.epsilon ?? 1e-3, batchSize: o.batchSize ?? x.shape[0]!, device: o.device ?? 'auto' };
}

/** Normalises `use`: missing keys are false. */
export function resolveUse(use: Partial<InferUse> | undefined): InferUse {
  if (use != null && (typeof use !== 'object' || Array.isArray(use))) throw new TypeError('batchLayerNorm: use must be an object of booleans');
  const out = { batchMean: false, batchVar: false, featureMean: false, featureVar: false };
  if (use)
    for (const key of Object.keys(use)) {
      if (!(STAT_KEYS as readonly string[]).includes(key)) throw new TypeError(`batchLayerNorm: unknown key '${key}' in use: expected ${STAT_KEYS.join(', ')}`);
      const v = (use as Record<string, unknown>)[key];
      if (v != null && typeof v !== 'boolean') throw new TypeError(`batchLayerNorm: use.${key} must be a boolean`);
      out[key as keyof InferUse] = !!v;
    }
  return out;
}

/**
 * The training kernel: y and this mini-batch's statistics (biased variances; batch statistics
 * of shape x.shape.slice(1), feature statistics of shape x.shape.slice(0, -1)).
 * y is differentiable (x, gamma, beta); the statistics are treated as constants.
 */
export function batchLayerNormWithStats(
  x: tfc.Tensor | tfc.TensorLike,
  gamma: tfc.Tensor | tfc.TensorLike,
  beta: tfc.Tensor | tfc.TensorLike,
  options?: Omit<BatchLayerNormOpOptions, 'training' | 'use' | 'population'>,
): { y: tfc.Tensor } & StatTensors {
  const o = checkOptions(options);
  const [y, batchMean, batchVar, featureMean, featureVar] = tfc.tidy(() => {
    const xt = toTensor(x, 'x');
    const g = toTensor(gamma, 'gamma');
    const b = toTensor(beta, 'beta');
    checkInputs(xt, g, b);
    return tfc.engine().runKernel(
      BATCH_LAYER_NORM,
      { x: xt, gamma: g, beta: b } as unknown as tfc.NamedTensorMap,
      attrsOf(xt, o) as unknown as tfc.NamedAttrMap,
    ) as tfc.Tensor[];
  }) as tfc.Tensor[];
  return { y: y!, batchMean: batchMean!, batchVar: batchVar!, featureMean: featureMean!, featureVar: featureVar! };
}

function populationTensors(pop: PopulationLike, x: tfc.Tensor, use: InferUse): Partial<StatTensors> {
  const s = statShapes(x.shape);
  const raw: Partial<Record<keyof Stats, tfc.Tensor | Float32Array>> = pop instanceof PopulationStats ? pop.result() : pop;
  const out: Partial<StatTensors> = {};
  for (const key of STAT_KEYS) {
    if (!use[key]) continue;
    const v = raw[key];
    const shape = key.startsWith('batch') ? s.batch : s.population;
    if (v == null) throw new TypeError(`batchLayerNorm: use.${key} is true but population.${key} is missing`);
    const size = shape.reduce((p, d) => p * d, 1);
    const t = v instanceof tfc.Tensor ? v : tfc.tensor(v as Float32Array, [v.length], 'float32');
    if (t.size !== size) throw new RangeError(`batchLayerNorm: population.${key} must have ${size} elements for x of shape [${x.shape.join(', ')}] but has ${t.size}`);
    if (t.dtype !== 'float32') throw new TypeError(`batchLayerNorm: population.${key} must be float32`);
    out[key] = t;
  }
  return out;
}

/** Runs the inference kernel (tensors only; the caller owns the scope). */
export function runInfer(x: tfc.Tensor, gamma: tfc.Tensor, beta: tfc.Tensor, pop: Partial<StatTensors>, use: InferUse, attrs: BatchLayerNormAttrs): tfc.Tensor {
  const inputs: Record<string, tfc.Tensor> = { x, gamma, beta };
  for (const key of STAT_KEYS) if (use[key]) inputs[key] = pop[key]!;
  const a: BatchLayerNormInferAttrs = {
    ...attrs,
    useBatchMean: use.batchMean,
    useBatchVar: use.batchVar,
    useFeatureMean: use.featureMean,
    useFeatureVar: use.featureVar,
  };
  return tfc.engine().runKernel(BATCH_LAYER_NORM_INFER, inputs as unknown as tfc.NamedTensorMap, a as unknown as tfc.NamedAttrMap) as tfc.Tensor;
}

/**
 * Batch Layer Normalization of `x` ([batch, ..., features]) with scale `gamma` and offset `beta`
 * (both [features]).
 *
 * - `training: true`: mini-batch statistics (kernel `BatchLayerNorm`), differentiable under
 *   tf.grad / optimizer.minimize; a `PopulationStats` passed as `population` is updated.
 * - otherwise: kernel `BatchLayerNormInfer`; each statistic comes from `population` where `use`
 *   says so, else from x. With no flags set this equals the training forward.
 */
export function batchLayerNorm(
  x: tfc.Tensor | tfc.TensorLike,
  gamma: tfc.Tensor | tfc.TensorLike,
  beta: tfc.Tensor | tfc.TensorLike,
  options?: BatchLayerNormOpOptions,
): tfc.Tensor {
  const o = checkOptions(options);
  if (o.training) {
    const { population } = o;
    if (population != null && !(population instanceof PopulationStats))
      throw new TypeError('batchLayerNorm: in training, population must be a PopulationStats (it is updated) or absent');
    const out = batchLayerNormWithStats(x, gamma, beta, { batchSize: o.batchSize, epsilon: o.epsilon, device: o.device });
    try {
      if (population) {
        population.update({
          batchMean: out.batchMean.dataSync() as Float32Array,
          batchVar: out.batchVar.dataSync() as Float32Array,
          featureMean: out.featureMean.dataSync() as Float32Array,
          featureVar: out.featureVar.dataSync() as Float32Array,
        });
      }
    } finally {
      tfc.dispose([out.batchMean, out.batchVar, out.featureMean, out.featureVar]);
    }
    return out.y;
  }
  const use = resolveUse(o.use);
  return tfc.tidy(() => {
    const xt = toTensor(x, 'x');
    const g = toTensor(gamma, 'gamma');
    const b = toTensor(beta, 'beta');
    checkInputs(xt, g, b);
    const any = STAT_KEYS.some((k) => use[k]);
    if (any && o.population == null) throw new TypeError('batchLayerNorm: use asks for population statistics but no population was given');
    const pop = any ? populationTensors(o.population!, xt, use) : {};
    return runInfer(xt, g, b, pop, use, attrsOf(xt, o));
  });
}
