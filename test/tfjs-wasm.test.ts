// The same op and layer suites on @tensorflow/tfjs-backend-wasm (its .wasm loads from node_modules, offline).
// No Conv2D model here: tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel, so no
// Conv2D model trains on it (BLN after Conv2D is covered on cpu; BLN on rank-4 inputs is in the op suite).
import { layerSuite, opSuite } from './tfjs-suites';

opSuite('wasm', { shapes: [[8, 6], [1, 5], [4, 3, 7], [3, 4, 5, 6]] });
layerSuite('wasm', { kinds: ['dense', 'lstm', 'functional'], quick: true, leakCheck: false });
