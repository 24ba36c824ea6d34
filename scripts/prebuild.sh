#!/usr/bin/env bash
# Builds the prebuilt addons that ship inside the npm package:
#   prebuilds/linux-x64-glibc/bln.node    CPU (scalar/AVX2/AVX-512) + CUDA, cudart static (needs nvcc)
#   prebuilds/linux-arm64-glibc/bln.node  CPU (scalar/NEON), cross-compiled with g++-aarch64-linux-gnu
# Both link libstdc++ and libgcc statically; the only shared library they need is glibc's libc.so.6.
# For each binary it prints the highest GLIBC_ symbol version it needs (objdump -T) and fails if that
# is above BLN_GLIBC_MAX (default 2.28, Node 20's own floor).
#
#   npm run prebuild                 # both
#   bash scripts/prebuild.sh x64     # one of them (x64 | arm64)
# Build trees: build-prebuild-x64/, build-prebuild-arm64/ (ignored by git, like prebuilds/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGETS=("$@")
[[ ${#TARGETS[@]} == 0 ]] && TARGETS=(x64 arm64)
GLIBC_MAX=${BLN_GLIBC_MAX:-2.28}
CMAKE_JS=(node "$ROOT/node_modules/cmake-js/bin/cmake-js")
if [[ ! -f "$ROOT/node_modules/cmake-js/bin/cmake-js" ]]; then
  echo "prebuild: node_modules/cmake-js is missing: run npm install first" >&2
  exit 2
fi

# Highest GLIBC_x.y version among the dynamic symbols of $2 (objdump binary $1).
glibc_floor() {
  "$1" -T "$2" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -n 1
}

check_floor() { # objdump file label
  local floor
  floor=$(glibc_floor "$1" "$2")
  echo "prebuild: $3: highest GLIBC_ symbol version needed: $floor (limit $GLIBC_MAX)"
  "$1" -T "$2" | awk -v f="GLIBC_$floor" '$0 ~ "\\(" f "\\)" {print "prebuild:   needs " f ": " $NF}' | head -n 20
  if [[ $(printf '%s\n%s\n' "$floor" "$GLIBC_MAX" | sort -V | tail -n 1) != "$GLIBC_MAX" ]]; then
    echo "prebuild: $3 needs glibc $floor, above BLN_GLIBC_MAX=$GLIBC_MAX (see cmake/glibc-compat)" >&2
    return 1
  fi
  local needed
  needed=$(LC_ALL=C "${1%objdump}readelf" -d "$2" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
  echo "prebuild: $3: shared libraries needed: $needed"
  if grep -qE 'libstdc\+\+|libgcc_s' <<<"$needed"; then
    echo "prebuild: $3 links libstdc++/libgcc dynamically; BLN_STATIC_RUNTIME did not apply" >&2
    return 1
  fi
}

build_x64() {
  local nvcc
  nvcc=$(command -v nvcc || true)
  [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
  if [[ -z "$nvcc" ]]; then
    echo "prebuild: x64: nvcc not found; the x64 prebuilt carries the CUDA path. Install the CUDA toolkit" \
         "(or put nvcc on PATH) and rerun" >&2
    return 2
  fi
  [[ $(uname -m) == x86_64 ]] || { echo "prebuild: x64 is built natively and this machine is $(uname -m)" >&2; return 2; }
  local t0=$SECONDS
  echo "prebuild: x64 (CPU + CUDA via $nvcc) into build-prebuild-x64/"
  # configure (always, so these options reach an existing build tree), then build
  CUDACXX=$nvcc BLN_CUDA=1 "${CMAKE_JS[@]}" configure --log-level warn --out build-prebuild-x64 \
    --CDCMAKE_BUILD_TYPE=Release --CDBLN_STATIC_RUNTIME=ON --CDBLN_GLIBC_COMPAT=ON --CDBLN_CUDA=1 >/dev/null
  nice -n 5 "${CMAKE_JS[@]}" build --log-level warn --out build-prebuild-x64
  local out=prebuilds/linux-x64-glibc
  mkdir -p "$out"
  strip --strip-unneeded -o "$out/bln.node" build-prebuild-x64/Release/bln.node
  check_floor objdump "$out/bln.node" linux-x64
  # It must load here and carry CUDA (no GPU needed: cudart is static and loads the driver lazily).
  BLN_ADDON_PATH=$ROOT/$out/bln.node node -e '
    const i = require(process.env.BLN_ADDON_PATH).backendInfo();
    if (!i.cuda.built) { console.error("prebuild: linux-x64 was built without CUDA"); process.exit(1); }
    console.log("prebuild: linux-x64 loads: simd", i.simdSupported.join("/"), "| cuda built, available:", i.cuda.available, i.cuda.reason || "");'
  echo "prebuild: x64 done in $((SECONDS - t0)) s, $(stat -c %s "$out/bln.node") bytes"
}

build_arm64() {
  if ! command -v aarch64-linux-gnu-g++ >/dev/null; then
    echo "prebuild: arm64: aarch64-linux-gnu-g++ not found: apt-get install g++-aarch64-linux-gnu binutils-aarch64-linux-gnu" >&2
    return 2
  fi
  local t0=$SECONDS
  echo "prebuild: arm64 (CPU, NEON) with aarch64-linux-gnu-g++ into build-prebuild-arm64/"
  BLN_CUDA=0 "${CMAKE_JS[@]}" configure --log-level warn --out build-prebuild-arm64 \
    --CDCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-aarch64.cmake" --CDCMAKE_BUILD_TYPE=Release \
    --CDBLN_STATIC_RUNTIME=ON --CDBLN_GLIBC_COMPAT=ON --CDBLN_CUDA=0 >/dev/null
  nice -n 5 "${CMAKE_JS[@]}" build --log-level warn --out build-prebuild-arm64
  local out=prebuilds/linux-arm64-glibc
  mkdir -p "$out"
  aarch64-linux-gnu-strip --strip-unneeded -o "$out/bln.node" build-prebuild-arm64/Release/bln.node
  if ! file "$out/bln.node" | grep -q 'ARM aarch64'; then
    echo "prebuild: $out/bln.node is not an aarch64 binary: $(file -b "$out/bln.node")" >&2
    return 1
  fi
  check_floor aarch64-linux-gnu-objdump "$out/bln.node" linux-arm64
  echo "prebuild: arm64 done in $((SECONDS - t0)) s, $(stat -c %s "$out/bln.node") bytes" \
       "(run it: bash scripts/arm64-check.sh)"
}

for t in "${TARGETS[@]}"; do
  case "$t" in
    x64) build_x64 ;;
    arm64) build_arm64 ;;
    *) echo "prebuild: unknown target '$t' (x64 | arm64)" >&2; exit 2 ;;
  esac
done
