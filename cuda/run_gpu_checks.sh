#!/usr/bin/env bash
# Every check of the CUDA path that needs a GPU, in one command:
#
#   cuda/run_gpu_checks.sh [LOG_DIR]        (default ./gpu-logs)
#
# Needs cmake >= 3.18, nvcc and an NVIDIA GPU; node, torch and compute-sanitizer are
# optional (their steps are skipped, and say so, when missing). Steps:
#   1. build the standalone harness (cuda/harness) for this GPU's architecture
#      (BLN_CUDA_ARCHS overrides, e.g. "80-real;90-real;90-virtual")
#   2. bln_api_check --expect-available (host API: results, threads, cached buffers)
#   3. bln_bench: every kernel version validated against float64, then timed
#   4. compute-sanitizer memcheck, racecheck, synccheck, initcheck on bln_bench --small
#   5. bench/peers/torch_bln.py (PyTorch eager / torch.compile / layer_norm / batch_norm)
#   6. with node and a built addon: the package's tests on device 'auto' (= CUDA)
# Logs: LOG_DIR/<step>.log, LOG_DIR/summary.txt. Exit status: the number of failed steps.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG="${1:-./gpu-logs}"
mkdir -p "$LOG"
LOG="$(cd "$LOG" && pwd)"
BUILD="${BLN_HARNESS_BUILD:-$ROOT/build-harness}"
SUMMARY="$LOG/summary.txt"
: > "$SUMMARY"
failed=0

note() { echo "$*" | tee -a "$SUMMARY"; }
# step NAME CMD...: runs CMD with output to LOG/NAME.log, records the outcome.
step() {
  local name="$1"; shift
  local t0=$SECONDS
  echo "== $name: $*"
  "$@" > "$LOG/$name.log" 2>&1
  local rc=$?
  if [ $rc -eq 0 ]; then
    note "PASS  $name ($((SECONDS - t0)) s)"
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
note "architectures: ${BLN_CUDA_ARCHS:-default (80-real;90-real;90-virtual)}"
if ! step build bash -c "cmake -S '$ROOT/cuda/harness' -B '$BUILD' -DCMAKE_BUILD_TYPE=Release && cmake --build '$BUILD' -j \$(nproc)"; then
  note "build failed: nothing else can run"
  exit 1
fi

# 2-3. host API and harness
step api_check "$BUILD/bln_api_check" --expect-available
step bench "$BUILD/bln_bench"
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
  step memcheck "$CS" --tool memcheck --leak-check full --error-exitcode 9 "$BUILD/bln_bench" --small --no-timing
  step racecheck "$CS" --tool racecheck --racecheck-report all --error-exitcode 9 "$BUILD/bln_bench" --small --no-timing
  step synccheck "$CS" --tool synccheck --error-exitcode 9 "$BUILD/bln_bench" --small --no-timing
  step initcheck "$CS" --tool initcheck --error-exitcode 9 "$BUILD/bln_bench" --small --no-timing
else
  skip sanitizers "compute-sanitizer not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda/bin)"
fi

# 5. PyTorch peers
if command -v python3 > /dev/null && python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; then
  step torch_peers python3 "$ROOT/bench/peers/torch_bln.py"
else
  skip torch_peers "python3 with a CUDA-enabled torch not found"
fi

# 6. the package on the GPU (optional)
if command -v node > /dev/null && [ -d "$ROOT/node_modules" ]; then
  step addon_build bash -c "cd '$ROOT' && npx cmake-js compile -O build-gpu-checks"
  if [ -f "$ROOT/build-gpu-checks/Release/bln.node" ]; then
    step addon_info node -e "const a=require('$ROOT/build-gpu-checks/Release/bln.node'); const c=a.backendInfo().cuda; console.log(JSON.stringify(c)); process.exit(c.available?0:1)"
    if [ -d "$ROOT/dist" ]; then
      step addon_tests bash -c "cd '$ROOT' && BLN_ADDON_PATH='$ROOT/build-gpu-checks/Release/bln.node' npx jest"
    fi
  fi
else
  skip addon "node or node_modules not found"
fi

note "failed steps: $failed"
exit $failed
