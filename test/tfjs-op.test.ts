// The BLN tfjs op (kernels BatchLayerNorm / BatchLayerNormInfer / BatchLayerNormGrad) on the cpu backend.
import * as fs from 'fs';
import * as path from 'path';

import { opSuite } from './tfjs-suites';

opSuite('cpu');

test('the core package never imports tfjs: only lib/tfjs/ does', () => {
  const lib = path.join(__dirname, '..', 'lib');
  const offenders = fs
    .readdirSync(lib)
    .filter((f) => f.endsWith('.ts'))
    .filter((f) => /@tensorflow\/|from '\.\/tfjs|require\('\.\/tfjs/.test(fs.readFileSync(path.join(lib, f), 'utf8')));
  expect(offenders).toEqual([]);
});
