#!/usr/bin/env node
// npm `prepare`: runs on `npm install` in a checkout (and before `npm pack`). Compiles the TypeScript
// and, in a git checkout, builds the native addon from source, so a clone always runs its own sources
// and never a stale prebuilt binary. BLN_SKIP_NATIVE_BUILD=1 skips the native half (scripts that
// build it themselves). The published package has no install script: it loads prebuilds/.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const run = (args) => {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

if (fs.existsSync(path.join(root, '.git')) && !process.env.BLN_SKIP_NATIVE_BUILD) {
  run([path.join(root, 'scripts', 'build-from-source.js')]);
}
run([require.resolve('typescript/bin/tsc', { paths: [root] }), '-p', 'tsconfig.json']);
