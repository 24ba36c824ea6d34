// batch-layer-norm: the public API. Each concern has its module (types, options, device, ops,
// population); this file only assembles the package. Every argument is validated in lib/; the
// native addon receives only checked typed arrays and numbers.
export * from './types';
export { backward, backwardAsync, forward, forwardAsync, infer, inferAsync } from './ops';
export { backendInfo, configure } from './device';
export { PopulationStats } from './population';
