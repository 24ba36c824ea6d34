#!/usr/bin/env bash
# The jest suites on the CUDA path, without a GPU: the real binding, host API, plans and
# kernels compiled by the host compiler against the emulator of cuda/emu/
# (build-cuda-emu/Release/bln.node), selected with BLN_ADDON_PATH, every call on
# device 'cuda' (BLN_DEVICE=cuda: calls that name no device go to CUDA, as 'cuda' would).
# Runs the suites twice: the threads of each block in order between barriers, then in
# random order (BLN_EMU_SCHEDULE), so a missing __syncthreads shows up as wrong results.
# Prints how many tests ran on the CUDA path (kernels launched while they ran).
#
#   npm run test:cuda-emu                       # both schedules, all suites that apply
#   npm run test:cuda-emu -- test/forward.test.ts   # extra arguments go to jest
#   BLN_EMU_SCHEDULES=random npm run test:cuda-emu
#
# What the emulation proves and what only a GPU can: README.md, "What is tested where".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ADDON=$ROOT/build-cuda-emu/Release/bln.node
MIN_TESTS=${BLN_CUDA_EMU_MIN_TESTS:-300}
SCHEDULES=${BLN_EMU_SCHEDULES:-forward random}

start=$(date +%s)
echo "test-cuda-emu: building the emulated addon (build-cuda-emu/)"
if ! npm run --silent build:cuda-emu > /dev/null; then echo "test-cuda-emu: build failed (npm run build:cuda-emu)" >&2; exit 2; fi
if [[ ! -f "$ADDON" ]]; then echo "test-cuda-emu: $ADDON was not produced" >&2; exit 2; fi

# Suites that do not apply to the CUDA path, left out by name:
#  - simd.test.ts: the CPU's SIMD levels and thread counts;
#  - bench-smoke.test.ts: the CPU benchmark's output files;
#  - soak.test.ts: flat RSS over 3,000 calls; on the emulator RSS is the emulator's own (256
#    fiber stacks of 256 KiB per calling thread, touched as kernels run), not the addon's;
#  - tfjs-node.test.ts: needs @tensorflow/tfjs-node (skipped everywhere it is not installed).
IGNORE='/test/(simd|bench-smoke|soak|tfjs-node)\.test\.ts$'

failed=0
total_cuda=0
for schedule in $SCHEDULES; do
  counts=$(mktemp -d)
  t0=$(date +%s)
  echo "test-cuda-emu: jest on device 'cuda' (emulated), BLN_EMU_SCHEDULE=$schedule"
  BLN_ADDON_PATH="$ADDON" BLN_DEVICE=cuda BLN_EMU_SCHEDULE=$schedule BLN_CUDA_COUNT_DIR="$counts" \
    npx jest --ci --setupFilesAfterEnv "$ROOT/test/cuda-emu-count.ts" --testPathIgnorePatterns "$IGNORE" "$@"
  rc=$?
  read -r ran oncuda < <(node -e '
    const fs = require("fs"); const f = process.argv[1] + "/counts.jsonl";
    let t = 0, c = 0;
    if (fs.existsSync(f)) for (const l of fs.readFileSync(f, "utf8").split("\n").filter(Boolean)) { const o = JSON.parse(l); t += o.total; c += o.onCuda; }
    console.log(t, c);' "$counts")
  if [[ -f "$counts/counts.jsonl" ]]; then
    node -e '
      const fs = require("fs");
      for (const l of fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)) {
        const o = JSON.parse(l); console.log(`  ${o.file}: ${o.onCuda} of ${o.total} tests on the CUDA path`); }' "$counts/counts.jsonl"
  fi
  rm -rf "$counts"
  echo "test-cuda-emu: schedule $schedule: jest exit $rc, $oncuda of $ran tests ran on the CUDA path ($(($(date +%s) - t0)) s)"
  if [[ $rc != 0 ]]; then failed=$((failed + 1)); fi
  if [[ $# == 0 && $oncuda -lt $MIN_TESTS ]]; then
    echo "test-cuda-emu: FAIL: fewer than $MIN_TESTS tests ran on the CUDA path" >&2
    failed=$((failed + 1))
  fi
  total_cuda=$((total_cuda + oncuda))
done
echo "test-cuda-emu: $total_cuda test runs on the CUDA path over schedules: $SCHEDULES; $(($(date +%s) - start)) s in all"
if [[ $failed != 0 ]]; then echo "test-cuda-emu: FAIL" >&2; exit 1; fi
echo "test-cuda-emu: OK"
