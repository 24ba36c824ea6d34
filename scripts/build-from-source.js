#!/usr/bin/env node
// Builds the native addon from source into build/Release/bln.node of the installed package, which the
// loader then prefers over the prebuilt binary. Needs CMake >= 3.18 and a C++17 compiler; nvcc optional
// (BLN_CUDA=0 forces a CPU-only build). Extra arguments go to cmake-js, e.g. --CDBLN_CUDA_ARCHS=native.
//   npx batch-layer-norm-build
// Also the native half of `prepare` in a git checkout (scripts/prepare.js).
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');

function fail(msg) {
  console.error(`batch-layer-norm-build: ${msg}`);
  process.exit(1);
}

const cmake = spawnSync('cmake', ['--version'], { encoding: 'utf8' });
if (cmake.error || cmake.status !== 0) {
  fail('cmake was not found on PATH. Install CMake >= 3.18 (e.g. `apt-get install cmake` or ' +
       '`pip install cmake`) and a C++17 compiler (g++ or clang), then run this again.');
}
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
} catch {
  fail('cmake-js is not installed next to batch-layer-norm. Run `npm install` (without --omit=prod) first.');
}
try {
  require.resolve('node-addon-api', { paths: [root] });
} catch {
  fail('node-addon-api is not installed next to batch-layer-norm. Run `npm install` first.');
}

const t0 = Date.now();
console.log(`batch-layer-norm-build: building in ${root} (${cmake.stdout.split('\n')[0]})`);
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--log-level', 'warn', ...process.argv.slice(2)],
                    { cwd: root, stdio: 'inherit' });
if (r.status !== 0) fail(`the build failed (cmake-js exit ${r.status}); see the compiler output above.`);
const addon = path.join(root, 'build', 'Release', 'bln.node');
if (!fs.existsSync(addon)) fail(`the build finished but ${addon} is missing.`);
const info = require(addon).backendInfo();
console.log(`batch-layer-norm-build: ${addon} built in ${((Date.now() - t0) / 1000).toFixed(1)} s ` +
            `(simd ${info.simdSupported.join('/')}, cuda ${info.cuda.built ? 'built' : 'not built'})`);
