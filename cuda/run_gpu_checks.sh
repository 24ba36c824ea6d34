#!/usr/bin/env bash
# Every check of the CUDA path that needs a GPU, in one command that ends within 8 minutes
# (BLN_GPU_CHECK_BUDGET seconds, default 480) on one H100/H200:
#
#   cuda/run_gpu_checks.sh [LOG_DIR]        (default ./gpu-logs)
#
# Needs an NVIDIA GPU. Uses what was built beforehand where it exists (a lent GPU machine
# gets a copy of the working tree and nothing can be installed there; cuda/README.md says
# what to build and carry): the harness in BLN_HARNESS_BUILD (default build-harness/), the
# addon in build/Release/bln.node, dist/. Builds the harness with cmake + nvcc only where it
# is missing. node, torch and compute-sanitizer are optional (their steps say SKIP). Steps:
#   1. the harness (cuda/harness) for this GPU, unless prebuilt
#   2. bln_api_check --expect-available (host API: results, threads, cached buffers)
#   3. bln_bench: every kernel version validated against float64, then timed against a
#      device-to-device copy (GB/s)
#   4. compute-sanitizer memcheck, racecheck, synccheck, initcheck on bln_bench --small
#   5. bench/peers/torch_bln.py (PyTorch eager / torch.compile / layer_norm / batch_norm)
#   6. with node, dist/ and a CUDA build of the addon: cuda/harness/node_check.js (the package
#      on device 'cuda' against the CPU path, the self-check, async, worker_threads); with
#      node_modules too: the jest suites on device 'cuda' (BLN_DEVICE=cuda)
# Each step has a time cap inside the budget; a step cut by its cap FAILs and says so.
# Logs: LOG_DIR/<step>.log, LOG_DIR/summary.txt (printed last). Exit status: failed steps.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG="${1:-./gpu-logs}"
mkdir -p "$LOG"
LOG="$(cd "$LOG" && pwd)"
BUILD="${BLN_HARNESS_BUILD:-$ROOT/build-harness}"
SUMMARY="$LOG/summary.txt"
: > "$SUMMARY"
failed=0
BUDGET=${BLN_GPU_CHECK_BUDGET:-480}
T_START=$SECONDS

note() { echo "$*" | tee -a "$SUMMARY"; }
# step CAP NAME CMD...: runs CMD (at most CAP seconds, and never past the budget) with output
# to LOG/NAME.log, records the outcome.
step() {
  local cap="$1" name="$2"; shift 2
  local left=$((BUDGET - (SECONDS - T_START) - 10))
  if [ $left -lt 15 ]; then
    note "SKIP  $name: the ${BUDGET} s budget is spent"
    return 1
  fi
  [ "$cap" -gt "$left" ] && cap=$left
  local t0=$SECONDS
  echo "== $name (at most $cap s): $*"
  timeout --kill-after=5 "$cap" "$@" > "$LOG/$name.log" 2>&1
  local rc=$?
  if [ $rc -eq 0 ]; then
    note "PASS  $name ($((SECONDS - t0)) s)"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    note "FAIL  $name: cut at its $cap s cap: see $LOG/$name.log"
    failed=$((failed + 1))
  else
    note "FAIL  $name (exit $rc, $((SECONDS - t0)) s): see $LOG/$name.log"
    failed=$((failed + 1))
  fi
  return $rc
}
skip() { note "SKIP  $1: $2"; }

{
  date -u
  uname -a
  command -v nvidia-smi > /dev/null && nvidia-smi
  command -v nvcc > /dev/null && nvcc --version
  cmake --version | head -n 1
} > "$LOG/environment.log" 2>&1

# 1. build
if [ -z "${BLN_CUDA_ARCHS:-}" ] && command -v nvidia-smi > /dev/null; then
  cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')"
  [ -n "$cc" ] && export BLN_CUDA_ARCHS="$cc"
fi
if [ -x "$BUILD/bln_bench" ] && [ -x "$BUILD/bln_api_check" ]; then
  note "harness: prebuilt in $BUILD"
else
  note "architectures: ${BLN_CUDA_ARCHS:-default (80-real;90-real;90-virtual)}"
  if ! step 240 build bash -c "cmake -S '$ROOT/cuda/harness' -B '$BUILD' -DCMAKE_BUILD_TYPE=Release && cmake --build '$BUILD' -j \$(nproc)"; then
    note "build failed: nothing else can run"
    cat "$SUMMARY"
    exit 1
  fi
fi

# 2-3. host API and harness
step 60 api_check "$BUILD/bln_api_check" --expect-available
step 120 bench "$BUILD/bln_bench"
grep -E '^\|' "$LOG/bench.log" > "$LOG/bench-table.md" 2>/dev/null

# 4. compute-sanitizer
CS="$(command -v compute-sanitizer || true)"
for d in "${CUDA_HOME:-}" /usr/local/cuda /opt/cuda; do
  [ -z "$CS" ] && [ -n "$d" ] && [ -x "$d/bin/compute-sanitizer" ] && CS="$d/bin/compute-sanitizer"
done
if [ -z "$CS" ]; then
  nvcc_dir="$(dirname "$(command -v nvcc 2>/dev/null || echo /nonexistent/nvcc)")"
  [ -x "$nvcc_dir/compute-sanitizer" ] && CS="$nvcc_dir/compute-sanitizer"
fi
if [ -n "$CS" ]; then
  step 75 memcheck "$CS" --tool memcheck --leak-check full --error-exitcode 9 "$BUILD/bln_bench" --small --no-timing
  step 75 racecheck "$CS" --tool racecheck --racecheck-report all --error-exitcode 9 "$BUILD/bln_bench" --small --no-timing
  step 45 synccheck "$CS" --tool synccheck --error-exitcode 9 "$BUILD/bln_bench" --small --no-timing
  step 45 initcheck "$CS" --tool initcheck --error-exitcode 9 "$BUILD/bln_bench" --small --no-timing
else
  skip sanitizers "compute-sanitizer not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda/bin)"
fi

# 5. PyTorch peers
if command -v python3 > /dev/null && python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; then
  step 150 torch_peers python3 "$ROOT/bench/peers/torch_bln.py" --repeats 15
else
  skip torch_peers "python3 with a CUDA-enabled torch not found"
fi

# 6. the package on the GPU: prebuilt addon + dist/ + node; jest where node_modules exists
ADDON="${BLN_ADDON_PATH:-$ROOT/build/Release/bln.node}"
if ! command -v node > /dev/null; then
  skip node_check "node not found (cuda/README.md: carry a node binary in .device/)"
elif [ ! -f "$ADDON" ] || [ ! -d "$ROOT/dist" ]; then
  skip node_check "no addon at $ADDON or no dist/ (build both before copying the tree here)"
else
  if ! step 120 node_check env BLN_ADDON_PATH="$ADDON" node "$ROOT/cuda/harness/node_check.js"; then
    skip jest_cuda "node_check failed (is CUDA usable? see node_check.log)"
  elif [ -d "$ROOT/node_modules" ]; then
    step 240 jest_cuda bash -c "cd '$ROOT' && BLN_ADDON_PATH='$ADDON' BLN_DEVICE=cuda npx jest --ci --testPathIgnorePatterns '/test/(simd|bench-smoke|tfjs-node)\\.test\\.ts\$'"
  else
    skip jest_cuda "no node_modules here (the jest suites ran on the emulated CUDA path instead: npm run test:cuda-emu)"
  fi
fi

note "failed steps: $failed ($((SECONDS - T_START)) s of the ${BUDGET} s budget)"
echo "==== summary"
cat "$SUMMARY"
exit $failed
