// The tfjs kernels of BLN and the gradient of the training kernel.
//
// Every kernel uses the portable recipe: inputs are read with backend.readSync(dataId)
// as Float32Array, the native core computes on host memory, and outputs go back with
// backend.write(values, shape, 'float32'). That works on the cpu, wasm and tensorflow
// (tfjs-node) backends alike; it is registered for those three.
import * as tfc from '@tensorflow/tfjs-core';

import { backward, forward, infer, type Device, type InferUse, type Population, type Stats } from '../index';

/** Training forward: inputs {x, gamma, beta}; outputs [y, batchMean, batchVar, featureMean, featureVar]. */
export const BATCH_LAYER_NORM = 'BatchLayerNorm';
/** Inference: inputs {x, gamma, beta} plus the population statistics its `use*` attributes ask for; output y. */
export const BATCH_LAYER_NORM_INFER = 'BatchLayerNormInfer';
/** Backward: inputs {dy, x, gamma, batchMean, batchVar, featureMean, featureVar}; outputs [dx, dgamma, dbeta]. */
export const BATCH_LAYER_NORM_GRAD = 'BatchLayerNormGrad';

/** Backends the kernels are registered for when `batch-layer-norm/tfjs` loads. */
export const BLN_BACKENDS: readonly string[] = ['cpu', 'wasm', 'tensorflow'];

/** Kernel attributes. `batchSize` is N of the spec, already resolved (the op passes x.shape[0] when unset). */
export interface BatchLayerNormAttrs {
  epsilon: number;
  batchSize: number;
  device: Device;
}

export interface BatchLayerNormInferAttrs extends BatchLayerNormAttrs {
  useBatchMean: boolean;
  useBatchVar: boolean;
  useFeatureMean: boolean;
  useFeatureVar: boolean;
}

/** What the kernels need from a backend: the methods every tfjs backend has. */
interface PortableBackend {
  readSync(dataId: object): tfc.backend_util.BackendValues;
  write(values: tfc.backend_util.BackendValues, shape: number[], dtype: tfc.DataType): object;
}

type Inputs = tfc.NamedTensorInfoMap;

function input(inputs: Inputs, name: string, kernel: string): tfc.TensorInfo {
  const t = inputs[name];
  if (t == null) throw new TypeError(`${kernel}: missing input '${name}'`);
  return t;
}

function readF32(backend: PortableBackend, t: tfc.TensorInfo, name: string, kernel: string): Float32Array {
  if (t.dtype !== 'float32') throw new TypeError(`${kernel}: expected float32 for ${name} but received ${t.dtype}`);
  const v = backend.readSync(t.dataId);
  // cpu returns its own array (never modified here), wasm and tensorflow return copies.
  return v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
}

function writeF32(backend: PortableBackend, values: Float32Array, shape: number[]): tfc.TensorInfo {
  return { dataId: backend.write(values, shape, 'float32'), shape, dtype: 'float32' };
}

function coreOptions(attrs: tfc.NamedAttrMap | undefined, B: number): { epsilon: number; batchSize: number; device: Device } {
  const a = (attrs ?? {}) as Partial<BatchLayerNormAttrs>;
  return {
    epsilon: a.epsilon ?? 1e-3,
    batchSize: a.batchSize ?? B,
    device: a.device ?? 'auto',
  };
}

/** Shapes of the statistics for an input of shape [B, d1..dk, C]. */
export function statShapes(shape: readonly number[]): { batch: number[]; feature: number[]; population: number[] } {
  return {
    batch: shape.slice(1),
    feature: shape.slice(0, -1),
    population: shape.slice(1, -1),
  };
}

function forwardKernel({ inputs, backend, attrs }: { inputs: Inputs; backend: unknown; attrs?: tfc.NamedAttrMap }): tfc.TensorInfo[] {
  const be = backend as PortableBackend;
  const k = BATCH_LAYER_NORM;
  const x = input(inputs, 'x', k);
  const shape = x.shape.slice();
  const { y, stats } = forward(
    readF32(be, x, 'x', k),
    shape,
    readF32(be, input(inputs, 'gamma', k), 'gamma', k),
    readF32(be, input(inputs, 'beta', k), 'beta', k),
    coreOptions(attrs, shape[0]!),
  );
  const s = statShapes(shape);
  // Everything is computed before anything is written, so a throw leaks no backend data.
  return [
    writeF32(be, y, shape),
    writeF32(be, stats.batchMean, s.batch),
    writeF32(be, stats.batchVar, s.batch),
    writeF32(be, stats.featureMean, s.feature),
    writeF32(be, stats.featureVar, s.feature),
  ];
}

function inferKernel({ inputs, backend, attrs }: { inputs: Inputs; backend: unknown; attrs?: tfc.NamedAttrMap }): tfc.TensorInfo {
  const be = backend as PortableBackend;
  const k = BATCH_LAYER_NORM_INFER;
  const x = input(inputs, 'x', k);
  const shape = x.shape.slice();
  const a = (attrs ?? {}) as Partial<BatchLayerNormInferAttrs>;
  const use: InferUse = {
    batchMean: !!a.useBatchMean,
    batchVar: !!a.useBatchVar,
    featureMean: !!a.useFeatureMean,
    featureVar: !!a.useFeatureVar,
  };
  const C = shape[shape.length - 1]!;
  const M = shape.length >= 2 ? shape.slice(1, -1).reduce((p, d) => p * d, 1) : 1;
  // Statistics the flags do not take from the population are not read: zeros stand in.
  const stat = (name: keyof Population, flag: boolean, length: number): Float32Array => {
    if (!flag) return new Float32Array(length);
    const t = inputs[name];
    if (t == null) throw new TypeError(`${k}: use.${name} is true but no population ${name} was given`);
    return readF32(be, t, `population.${name}`, k);
  };
  const population: Population = {
    batchMean: stat('batchMean', use.batchMean, M * C),
    batchVar: stat('batchVar', use.batchVar, M * C),
    featureMean: stat('featureMean', use.featureMean, M),
    featureVar: stat('featureVar', use.featureVar, M),
  };
  const y = infer(
    readF32(be, x, 'x', k),
    shape,
    readF32(be, input(inputs, 'gamma', k), 'gamma', k),
    readF32(be, input(inputs, 'beta', k), 'beta', k),
    population,
    use,
    coreOptions(attrs, shape[0]!),
  );
  return writeF32(be, y, shape);
}

function gradKernel({ inputs, backend, attrs }: { inputs: Inputs; backend: unknown; attrs?: tfc.NamedAttrMap }): tfc.TensorInfo[] {
  const be = backend as PortableBackend;
  const k = BATCH_LAYER_NORM_GRAD;
  const x = input(inputs, 'x', k);
  const gamma = input(inputs, 'gamma', k);
  const shape = x.shape.slice();
  const stats: Stats = {
    batchMean: readF32(be, input(inputs, 'batchMean', k), 'batchMean', k),
    batchVar: readF32(be, input(inputs, 'batchVar', k), 'batchVar', k),
    featureMean: readF32(be, input(inputs, 'featureMean', k), 'featureMean', k),
    featureVar: readF32(be, input(inputs, 'featureVar', k), 'featureVar', k),
  };
  const { dx, dgamma, dbeta } = backward(
    readF32(be, input(inputs, 'dy', k), 'dy', k),
    readF32(be, x, 'x', k),
    shape,
    readF32(be, gamma, 'gamma', k),
    stats,
    coreOptions(attrs, shape[0]!),
  );
  return [writeF32(be, dx, shape), writeF32(be, dgamma, gamma.shape.slice()), writeF32(be, dbeta, gamma.shape.slice())];
}

const KERNELS: [string, tfc.KernelFunc][] = [
  [BATCH_LAYER_NORM, forwardKernel as unknown as tfc.KernelFunc],
  [BATCH_LAYER_NORM_INFER, inferKernel as unknown as tfc.KernelFunc],
  [BATCH_LAYER_NORM_GRAD, gradKernel as unknown as tfc.KernelFunc],
];

/**
 * Registers the three BLN kernels for a backend (any backend with readSync and write, the
 * ones in BLN_BACKENDS are done on load). Kernels already registered are left as they are.
 */
export function registerBatchLayerNormKernels(backendName: string): void {
  for (const [kernelName, kernelFunc] of KERNELS)
    if (tfc.getKernel(kernelName, backendName) == null) tfc.registerKernel({ kernelName, backendName, kernelFunc });
}

/**
 * The gradient of BatchLayerNorm. x and gamma are saved as inputs, the four statistics as
 * outputs; the BatchLayerNormGrad kernel (the native fused backward) computes dx, dgamma
 * and dbeta at once. The statistics outputs are treated as constants: they feed the
 * population accumulators, never the loss.
 */
const gradConfig: tfc.GradConfig = {
  kernelName: BATCH_LAYER_NORM,
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [false, true, true, true, true],
  gradFunc: (dys: tfc.Tensor | tfc.Tensor[], saved: tfc.Tensor[], attrs?: tfc.NamedAttrMap) => {
    const dy = Array.isArray(dys) ? dys[0]! : dys;
    const [x, gamma, batchMean, batchVar, featureMean, featureVar] = saved as [tfc.Tensor, tfc.Tensor, tfc.Tensor, tfc.Tensor, tfc.Tensor, tfc.Tensor];
    // Run once, now: the engine calls each closure in its own tidy, and these tensors live
    // in the enclosing backward scope, which disposes the ones no closure returns.
    const [dx, dgamma, dbeta] = tfc.engine().runKernel(
      BATCH_LAYER_NORM_GRAD,
      { dy, x, gamma, batchMean, batchVar, featureMean, featureVar } as unknown as tfc.NamedTensorMap,
      attrs,
    ) as tfc.Tensor[];
    return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
  },
};

let registered = false;

/** Registers the kernels for BLN_BACKENDS and the gradient; runs once when the module loads. */
export function registerAll(): void {
  if (registered) return;
  registered = true;
  for (const b of BLN_BACKENDS) registerBatchLayerNormKernels(b);
  if (tfc.getGradient(BATCH_LAYER_NORM) == null) tfc.registerGradient(gradConfig);
}
