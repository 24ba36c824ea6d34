#!/usr/bin/env bash
# The CUDA path's checks that run WITHOUT a GPU (and without nvcc): the kernels, the
# launchers, the host API and the harness compiled by the host compiler against the
# emulator of cuda/emu/bln_emu.cuh.
#
#   cuda/harness/run_emu_checks.sh [--asan] [BUILD_DIR]     (default ./build-emu)
#
#   1. bln_api_check_emu: results, cached buffers, 4 threads; BLN_EMU_NO_DEVICE=1 (every
#      entry point throws the reason); a tiny BLN_EMU_MEMORY (out-of-memory text, then
#      the process goes on)
#   2. bln_bench_emu --small --no-timing with the threads of a block run in forward,
#      reverse and random order between barriers (a missing __syncthreads shows up)
#   3. --asan: the same harness under AddressSanitizer (device memory is exact-size
#      host memory, so out-of-bounds accesses are caught; ~15 minutes on 2 cores)
# Exit status: the number of failed steps.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ASAN=0
if [ "${1:-}" = "--asan" ]; then ASAN=1; shift; fi
BUILD="${1:-./build-emu}"
failed=0
run() {
  local name="$1"; shift
  local t0=$SECONDS
  if "$@" > "$BUILD/$name.log" 2>&1; then
    echo "PASS  $name ($((SECONDS - t0)) s)"
  else
    echo "FAIL  $name: see $BUILD/$name.log"; tail -n 5 "$BUILD/$name.log"
    failed=$((failed + 1))
  fi
}

cmake -S "$ROOT/cuda/harness" -B "$BUILD" -DBLN_EMU=ON > /dev/null && cmake --build "$BUILD" -j "$(nproc)" > "$BUILD/build.log" 2>&1 ||
  { echo "FAIL  build: see $BUILD/build.log"; exit 1; }
run api_check "$BUILD/bln_api_check_emu" --expect-available
run api_check_no_device env BLN_EMU_NO_DEVICE=1 "$BUILD/bln_api_check_emu" --expect-unavailable
run api_check_oom env BLN_EMU_MEMORY=400000 "$BUILD/bln_api_check_emu" --oom
for order in forward reverse random; do
  run "bench_small_$order" env BLN_EMU_SCHEDULE=$order "$BUILD/bln_bench_emu" --small --no-timing
done
if [ $ASAN -eq 1 ]; then
  cmake -S "$ROOT/cuda/harness" -B "$BUILD-asan" -DBLN_EMU=ON -DBLN_EMU_SANITIZE=address > /dev/null &&
    cmake --build "$BUILD-asan" -j "$(nproc)" > "$BUILD/build-asan.log" 2>&1 || { echo "FAIL  asan build"; exit 1; }
  run api_check_asan "$BUILD-asan/bln_api_check_emu" --expect-available
  run bench_small_asan env ASAN_OPTIONS=detect_leaks=1 "$BUILD-asan/bln_bench_emu" --small --no-timing
fi
echo "failed steps: $failed"
exit $failed
