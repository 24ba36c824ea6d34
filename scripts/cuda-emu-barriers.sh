#!/usr/bin/env bash
# Proves that the emulated CUDA suites catch a missing barrier: for each __syncthreads() in
# cuda/*.cu, builds the emulated addon with that one barrier removed (in a scratch copy of the
# sources) and runs the plan-variant suite (every kernel variant) on it with the threads of each
# block in random and in reverse order. Every mutant must fail; one that passes is reported.
#
#   bash scripts/cuda-emu-barriers.sh [jest args...]     (default suite: test/plans.test.ts)
#
# Not in CI (about a minute per barrier on 2 cores); run it after changing a kernel.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
SUITE=("$@")
[[ ${#SUITE[@]} -gt 0 ]] || SUITE=(test/plans.test.ts)
[[ -d dist ]] || npx tsc -p tsconfig.json

cp -r cpp cuda binding CMakeLists.txt package.json "$SCRATCH/"
ln -s "$ROOT/node_modules" "$SCRATCH/node_modules"

mapfile -t sites < <(grep -n '__syncthreads()' cuda/*.cu | grep -v '^\s*//' | cut -d: -f1,2)
echo "cuda-emu-barriers: ${#sites[@]} barriers in cuda/*.cu; suite: ${SUITE[*]}"
survivors=0
for site in "${sites[@]}"; do
  file=${site%%:*}
  line=${site##*:}
  cp "$file" "$SCRATCH/$file"
  sed -i "${line}s/__syncthreads();/\/* removed *\/;/" "$SCRATCH/$file"
  if ! (cd "$SCRATCH" && npx cmake-js compile --log-level error --out build-cuda-emu --CDBLN_CUDA_EMU=ON --CDBLN_CUDA=0 > build.log 2>&1); then
    echo "cuda-emu-barriers: $site: the mutant does not build"; tail -5 "$SCRATCH/build.log"; exit 2
  fi
  caught=""
  for schedule in random reverse; do
    if ! BLN_ADDON_PATH="$SCRATCH/build-cuda-emu/Release/bln.node" BLN_DEVICE=cuda BLN_EMU_SCHEDULE=$schedule \
        npx jest --ci --silent "${SUITE[@]}" > "$SCRATCH/jest.log" 2>&1; then
      caught="$schedule ($(grep -m1 -E '^Tests:' "$SCRATCH/jest.log" | tr -s ' ' || echo 'jest failed'))"
      break
    fi
  done
  if [[ -n "$caught" ]]; then
    echo "caught    $site: $(sed -n "${line}p" "$file" | sed 's/^ *//') -> fails under $caught"
  else
    echo "SURVIVED  $site: the suite passes without this barrier"
    survivors=$((survivors + 1))
  fi
  cp "$file" "$SCRATCH/$file"
done
echo "cuda-emu-barriers: ${#sites[@]} barriers, $survivors survived"
exit $((survivors > 0))
