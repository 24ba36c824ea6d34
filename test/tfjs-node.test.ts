// The op and layer suites on the `tensorflow` backend (@tensorflow/tfjs-node), where it is
// installed. It is not a dependency of this project (its install downloads libtensorflow), so
// on machines without it this file reports one skipped test.
import { layerSuite, opSuite } from './tfjs-suites';

let installed = true;
try {
  require.resolve('@tensorflow/tfjs-node');
} catch {
  installed = false;
}

if (installed) {
  opSuite('tensorflow');
  layerSuite('tensorflow', { leakCheck: false });
} else {
  test.skip('tensorflow backend: @tensorflow/tfjs-node is not installed', () => {});
}
