// The same op and layer suites on @tensorflow/tfjs-backend-wasm (its .wasm loads from node_modules, offline).
// The layer suite's models here are the non-Conv2D ones: tfjs-backend-wasm 4.22 has no
// Conv2DBackpropFilter of its own; Conv2D + BLN training on wasm, with the package's opt-in kernel
// (registerWasmConvGradients), is in tfjs-wasm-conv.test.ts.
import { layerSuite, opSuite } from './tfjs-suites';

opSuite('wasm', { shapes: [[8, 6], [1, 5], [4, 3, 7], [3, 4, 5, 6]] });
layerSuite('wasm', { kinds: ['dense', 'lstm', 'functional'], quick: true, leakCheck: false });
