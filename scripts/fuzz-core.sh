#!/usr/bin/env bash
# libFuzzer over the core's argument, shape and stride handling (cpp/fuzz/fuzz_core.cpp), with
# ASan + UBSan. Needs clang (Debian: apt-get install clang); installs nothing itself.
#   bash scripts/fuzz-core.sh [seconds]     # default 600; split over two phases (see below)
# Phase 1 runs with the default store policy, phase 2 with BLN_STREAM_BYTES=0 (every eligible
# output through the non-temporal store path). The corpus lives in build-fuzz/corpus (kept between
# runs), seeded from cpp/fuzz/seeds; crashes are written to build-fuzz/artifacts/. Exit status
# non-zero when libFuzzer found a crash. Replay one input: build-fuzz/bln_fuzz_core FILE
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
CXX_CLANG=${CLANGXX:-$(command -v clang++ || true)}
if [[ -z "$CXX_CLANG" ]]; then
  echo "fuzz-core: clang++ not found (libFuzzer needs clang: apt-get install clang)" >&2
  exit 2
fi
BUILD=build-fuzz
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_CLANG" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBLN_BUILD_ADDON=OFF -DBLN_BUILD_FUZZ=ON -DBLN_CUDA=0 -DBLN_SANITIZE=address,undefined >/dev/null
cmake --build "$BUILD" --target bln_fuzz_core >/dev/null
mkdir -p "$BUILD/corpus" "$BUILD/artifacts"
JOBS=${FUZZ_JOBS:-1}
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export BLN_FUZZ_STATS=1
half=$(( SECS / 2 )); [[ $half -lt 1 ]] && half=1
rc=0
for phase in default stream; do
  if [[ $phase == stream ]]; then export BLN_STREAM_BYTES=0; else unset BLN_STREAM_BYTES; fi
  echo "fuzz-core: phase $phase, $half s"
  start=$(date +%s)
  set +e
  "$BUILD/bln_fuzz_core" -max_total_time="$half" -max_len=512 -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$BUILD/artifacts/" "$BUILD/corpus" cpp/fuzz/seeds 2>&1 | tee "$BUILD/fuzz-$phase.log" |
    grep -E "^#[0-9]+ *(INITED|DONE|REDUCE|pulse)|stat::|fuzz_core|ERROR|SUMMARY|runtime error|Test unit written|expectation"
  prc=${PIPESTATUS[0]}
  set -e
  echo "fuzz-core: phase $phase exit $prc after $(( $(date +%s) - start )) s"
  [[ $prc != 0 ]] && rc=$prc
done
ls "$BUILD/artifacts" | head
exit $rc
