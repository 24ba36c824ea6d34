#!/usr/bin/env bash
# Consumer test: the package as a user gets it. Packs this checkout (`npm pack`), installs the tarball
# into a new temporary project with `--ignore-scripts` and a PATH that holds node and npm only (no
# cmake, no compiler), adds the project's @tensorflow/tfjs and typescript, then checks:
#   - CommonJS require() and ESM import of `batch-layer-norm` and `batch-layer-norm/tfjs`;
#   - the addon came from the package's prebuilds/ and forward() matches a float64 reference;
#   - the tfjs op matches forward();
#   - a TypeScript file using both subpaths passes `tsc --noEmit` under moduleResolution node16 and bundler.
# Prints the tarball's size and file count and the install's wall time.
#
#   bash scripts/consumer-test.sh        (npm run test:consumer)
# Needs prebuilds/<this platform>/bln.node: `bash scripts/prebuild.sh x64` first (npm run build:prebuilt).
# BLN_CONSUMER_KEEP=1 keeps the temporary project (its path is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TAG=$(node -p "require('./dist/lib/addon.js').prebuildTag()" 2>/dev/null || true)
if [[ -z "$TAG" ]]; then
  echo "consumer-test: dist/ is missing: run npm install (or npm run build:ts) first" >&2
  exit 2
fi
if [[ ! -f "prebuilds/$TAG/bln.node" ]]; then
  echo "consumer-test: prebuilds/$TAG/bln.node is missing: run \`bash scripts/prebuild.sh x64\` first" >&2
  exit 2
fi
ver() { node -p "require('./node_modules/$1/package.json').version"; }
TFJS=$(ver @tensorflow/tfjs)
TS=$(ver typescript)
TYPES_NODE=$(ver @types/node)

WORK=$(mktemp -d /tmp/bln-consumer.XXXXXX)
if [[ -z "${BLN_CONSUMER_KEEP:-}" ]]; then trap 'rm -rf "$WORK"' EXIT; else echo "consumer-test: keeping $WORK"; fi

# The tarball: fresh dist/, no scripts (prepare would rebuild the addon from source in a checkout).
npm run --silent build:ts
TARBALL=$(npm pack --ignore-scripts --silent --pack-destination "$WORK")
TARBALL=$WORK/$TARBALL
FILES=$(tar -tzf "$TARBALL" | wc -l)
echo "consumer-test: $(basename "$TARBALL"): $(stat -c %s "$TARBALL") bytes, $FILES files"
if tar -tzf "$TARBALL" | grep -E 'fuzz|harness|bln_emu|/test/|bench/|\.map$|\.ts$' | grep -v '\.d\.ts$'; then
  echo "consumer-test: FAIL: test machinery in the tarball (above)" >&2
  exit 1
fi

# node, npm and npx only: nothing on PATH can build C++.
mkdir -p "$WORK/bin" "$WORK/app"
ln -s "$(command -v node)" "$WORK/bin/node"
ln -s "$(readlink -f "$(command -v npm)")" "$WORK/bin/npm"
ln -s "$(readlink -f "$(command -v npx)")" "$WORK/bin/npx"
clean() { env PATH="$WORK/bin" "$@"; }   # runs a command with that PATH
for tool in cmake c++ g++ cc gcc clang nvcc make; do
  if clean /bin/bash -c "command -v $tool" >/dev/null; then echo "consumer-test: $tool still on PATH" >&2; exit 1; fi
done

cd "$WORK/app"
cat > package.json <<'EOF'
{ "name": "bln-consumer", "version": "1.0.0", "private": true }
EOF
t0=$(date +%s%N)
clean npm install "$TARBALL" --ignore-scripts --no-audit --no-fund --loglevel=warn
t1=$(date +%s%N)
INSTALL_MS=$(( (t1 - t0) / 1000000 ))
clean npm install "@tensorflow/tfjs@$TFJS" "typescript@$TS" "@types/node@$TYPES_NODE" \
  --ignore-scripts --no-audit --no-fund --loglevel=warn
t2=$(date +%s%N)
echo "consumer-test: npm install <tarball> --ignore-scripts: $(awk "BEGIN{printf \"%.1f\", $INSTALL_MS/1000}") s" \
     "(then tfjs $TFJS + typescript: $(awk "BEGIN{printf \"%.1f\", ($t2-$t1)/1e9}") s)"

# No install script in the package: none in its package.json, and no binding.gyp (npm would add
# `node-gyp rebuild`).
clean node -e '
  const s = require("batch-layer-norm/package.json").scripts || {};
  const bad = ["preinstall", "install", "postinstall"].filter((k) => s[k]);
  if (bad.length) { console.error("consumer-test: FAIL: install scripts in the package:", bad); process.exit(1); }'
if [[ -e node_modules/batch-layer-norm/binding.gyp ]]; then echo "consumer-test: FAIL: binding.gyp shipped" >&2; exit 1; fi
# And none in its dependency tree: a plain install under npm 11's --strict-allow-scripts, which fails on
# any install script that allowScripts does not cover. npm lists `prepare` for file and git sources
# only (never for a registry install), so the tarball's own `prepare` is the one entry accepted here.
if npm config ls -l 2>/dev/null | grep -q '^strict-allow-scripts'; then
  mkdir -p "$WORK/strict"
  echo '{ "name": "bln-strict", "version": "1.0.0", "private": true }' > "$WORK/strict/package.json"
  if ! (cd "$WORK/strict" && clean npm install "$TARBALL" --strict-allow-scripts --no-audit --no-fund --loglevel=warn) \
       > "$WORK/strict.log" 2>&1; then
    listed=$(grep -E '^npm error +[^ ]+@[^ ]+ \(' "$WORK/strict.log" || true)
    if [[ $(wc -l <<<"$listed") != 1 ]] || ! grep -qE '^npm error +batch-layer-norm@[^ ]+ \(prepare: [^,]*\)$' <<<"$listed"; then
      cat "$WORK/strict.log" >&2; echo "consumer-test: FAIL under --strict-allow-scripts (above)" >&2; exit 1
    fi
  elif grep -q 'install-scripts' "$WORK/strict.log"; then
    cat "$WORK/strict.log" >&2; echo "consumer-test: FAIL: install-script warnings (above)" >&2; exit 1
  fi
  echo "consumer-test: npm $(npm --version) --strict-allow-scripts: no install script in the dependency tree" \
       "(the tarball's prepare is listed, as for any file source; a registry install does not list it)"
else
  echo "consumer-test: npm $(npm --version) has no --strict-allow-scripts; that check skipped"
fi

# float64 reference of BLN-SPEC.md, shared by the CommonJS and ESM checks.
cat > reference.cjs <<'EOF'
module.exports = function check(bln, label) {
  const [B, M, C] = [3, 2, 5], N = 4, eps = 1e-3;
  const x = Float32Array.from({ length: B * M * C }, (_, i) => Math.sin(i * 1.7) * 2 + (i % 3));
  const g = Float32Array.from({ length: C }, (_, c) => 1 + 0.1 * c);
  const be = Float32Array.from({ length: C }, (_, c) => 0.05 * c - 0.1);
  const { y } = bln.forward(x, [B, M, C], g, be, { batchSize: N, epsilon: eps });
  const X = (b, m, c) => x[(b * M + m) * C + c];
  const wf = 1 / N - 1e-4, wb = 1 - (1 / N + 1e-4);
  let num = 0, den = 0;
  for (let b = 0; b < B; b++) for (let m = 0; m < M; m++) for (let c = 0; c < C; c++) {
    let mb = 0, vb = 0, mf = 0, vf = 0;
    for (let k = 0; k < B; k++) mb += X(k, m, c) / B;
    for (let k = 0; k < B; k++) vb += (X(k, m, c) - mb) ** 2 / B;
    for (let k = 0; k < C; k++) mf += X(b, m, k) / C;
    for (let k = 0; k < C; k++) vf += (X(b, m, k) - mf) ** 2 / C;
    const xb = (X(b, m, c) - mb) / Math.sqrt(vb + eps), xf = (X(b, m, c) - mf) / Math.sqrt(vf + eps);
    const ref = g[c] * (wf * xf + wb * xb) / Math.sqrt(C) + be[c];
    num += (y[(b * M + m) * C + c] - ref) ** 2, den += ref ** 2;
  }
  const err = Math.sqrt(num / den);
  if (!(err < 1e-5)) throw new Error(`${label}: forward differs from the float64 reference: rel err ${err}`);
  const info = bln.backendInfo();
  console.log(`consumer-test: ${label}: forward rel err ${err.toExponential(2)} vs float64; simd ${info.simd};`,
              `devices ${info.devices.map((d) => d.type + (d.available ? '' : ' (unavailable: ' + d.reason + ')')).join(', ')}`);
  return { x, g, be, y, shape: [B, M, C], N, eps };
};
EOF

cat > check.cjs <<'EOF'
const bln = require('batch-layer-norm');
const blnTf = require('batch-layer-norm/tfjs');
const tf = require('@tensorflow/tfjs');
const path = require('path');
const r = require('./reference.cjs')(bln, 'require');
const loaded = Object.keys(require.cache).filter((f) => f.endsWith('.node'));
const want = path.join('node_modules', 'batch-layer-norm', 'prebuilds', process.argv[2], 'bln.node');
if (loaded.length !== 1 || !loaded[0].endsWith(want)) throw new Error(`addon not from ${want}: ${loaded}`);
console.log(`consumer-test: require: addon loaded from ${want}`);
// linux-x64 carries the CUDA path (cudart static): it must load without a driver and say why it is unusable.
const cuda = bln.backendInfo().devices.find((d) => d.type === 'cuda');
if (process.argv[2] === 'linux-x64-glibc' && !(cuda && cuda.built && (cuda.available || cuda.reason)))
  throw new Error(`linux-x64 prebuilt without CUDA, or no reason given: ${JSON.stringify(cuda)}`);
(async () => {
  await tf.setBackend('cpu');
  const out = blnTf.batchLayerNorm(tf.tensor(r.x, r.shape), tf.tensor(r.g), tf.tensor(r.be),
                                   { training: true, batchSize: r.N, epsilon: r.eps });
  const yt = await out.data();
  const d = Math.max(...Array.from(yt, (v, i) => Math.abs(v - r.y[i])));
  if (!(d < 1e-6)) throw new Error(`tfjs op differs from forward by ${d}`);
  const layer = blnTf.batchLayerNormalization({ batchSize: r.N });
  if (layer.getClassName() !== 'BatchLayerNormalization') throw new Error('layer class name');
  console.log(`consumer-test: require('batch-layer-norm/tfjs'): op == forward (max diff ${d}), layer ok`);
})().catch((e) => { console.error(e); process.exit(1); });
EOF

cat > check.mjs <<'EOF'
import * as bln from 'batch-layer-norm';
import { forward } from 'batch-layer-norm';
import { batchLayerNorm, batchLayerNormalization, blnCallback } from 'batch-layer-norm/tfjs';
import { createRequire } from 'module';
const check = createRequire(import.meta.url)('./reference.cjs');
if (typeof forward !== 'function' || typeof batchLayerNorm !== 'function' ||
    typeof batchLayerNormalization !== 'function' || typeof blnCallback !== 'function')
  throw new Error('ESM named exports missing');
check(bln, 'import');
console.log('consumer-test: import of batch-layer-norm and batch-layer-norm/tfjs: named exports ok');
EOF

cat > use.ts <<'EOF'
import * as bln from 'batch-layer-norm';
import { batchLayerNorm, batchLayerNormalization, type BatchLayerNormalizationArgs } from 'batch-layer-norm/tfjs';
import * as tf from '@tensorflow/tfjs';

const shape: number[] = [2, 3];
const r: bln.ForwardResult = bln.forward(new Float32Array(6), shape, new Float32Array(3).fill(1), new Float32Array(3));
const mean: Float32Array = r.stats.batchMean;
const info: bln.BackendInfo = bln.backendInfo();
const args: BatchLayerNormalizationArgs = { batchSize: 25 };
const layer: tf.layers.Layer = batchLayerNormalization(args);
const t: tf.Tensor = batchLayerNorm(tf.zeros([2, 3]), tf.ones([3]), tf.zeros([3]), { training: true });
export { mean, info, layer, t };
EOF
cp use.ts use.mts
for res in node16 bundler; do
  mod=$([[ $res == node16 ]] && echo node16 || echo esnext)
  cat > "tsconfig.$res.json" <<EOF
{ "compilerOptions": { "module": "$mod", "moduleResolution": "$res", "target": "es2022", "strict": true,
    "noEmit": true, "types": ["node"], "skipLibCheck": true }, "files": ["use.ts", "use.mts"] }
EOF
  clean node node_modules/typescript/bin/tsc -p "tsconfig.$res.json"
  echo "consumer-test: tsc --noEmit, moduleResolution $res (use.ts, use.mts): ok"
done

clean node check.cjs "$TAG"
clean node check.mjs
echo "consumer-test: OK (install $(awk "BEGIN{printf \"%.1f\", $INSTALL_MS/1000}") s, tarball $(stat -c %s "$TARBALL") bytes, $FILES files)"
