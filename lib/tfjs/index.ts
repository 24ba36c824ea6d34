// batch-layer-norm/tfjs: the TensorFlow.js bridge.
//
// @tensorflow/tfjs-core and @tensorflow/tfjs-layers are peer dependencies: the kernels, the
// gradient and the layer class are registered into the application's own copy of tfjs when
// this module loads. The core package (`batch-layer-norm`) never loads tfjs.
import { registerAll } from './kernels';

registerAll();

export {
  BATCH_LAYER_NORM,
  BATCH_LAYER_NORM_GRAD,
  BATCH_LAYER_NORM_INFER,
  BLN_BACKENDS,
  registerBatchLayerNormKernels,
  type BatchLayerNormAttrs,
  type BatchLayerNormInferAttrs,
} from './kernels';
export { batchLayerNorm, batchLayerNormWithStats, type BatchLayerNormOpOptions, type PopulationLike, type StatTensors } from './op';
export { BatchLayerNormalization, batchLayerNormalization, type BatchLayerNormalizationArgs, type SerializableSpec } from './layer';
export {
  allInferenceConfigs,
  BatchLayerNormCallback,
  batchLayerNormLayers,
  blnCallback,
  resetPopulation,
  searchInferenceConfig,
  setInferenceConfig,
  type InferenceConfigResult,
  type LayerContainer,
  type SearchInferenceConfigOptions,
} from './inference';
export { PopulationStats, type InferUse, type Population, type Stats } from '../index';
export { CONV2D_BACKPROP_FILTER, registerWasmConvGradients, type RegisterWasmConvGradientsOptions } from './wasm-conv';
