#!/usr/bin/env bash
# valgrind memcheck over the C++ check of the core (cpp/test/core_test.cpp: every SIMD level this CPU
# runs, at 1 and all threads, forward/backward/infer against a float64 reference). No Node involved.
#   bash scripts/valgrind-core.sh            # full case list
#   bash scripts/valgrind-core.sh [SEED]     # extra arguments go to bln_core_test (its RNG seed)
# Exit status non-zero on any memcheck error, any definitely/indirectly/possibly lost block, or a
# failed numerical check. Builds into build-valgrind/ (RelWithDebInfo, CPU only). valgrind does not
# emulate AVX-512 and hides it from CPUID, so on an AVX-512 machine that level is not run under it
# (core_test runs every level the CPU reports: scalar and AVX2 here).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind-core: valgrind not installed" >&2; exit 2; }
BUILD=build-valgrind
cmake -S . -B "$BUILD" -DBLN_BUILD_ADDON=OFF -DBLN_BUILD_TESTS=ON -DBLN_CUDA=0 -DBLN_SANITIZE= \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j2 --target bln_core_test >/dev/null
LOG=$BUILD/valgrind.log
# One suppression, and only it: the thread pool (cpp/threadpool.cpp pool()) is leaked on purpose
# so that its workers are never joined during static destruction; glibc's per-thread TLS block
# (allocate_dtv, 304 bytes a worker) is then "possibly lost" at exit. Anything else still counts.
SUPP=$BUILD/valgrind-core.supp
cat > "$SUPP" <<'SUPPEOF'
{
   bln-threadpool-workers-tls-leaked-by-design
   Memcheck:Leak
   match-leak-kinds: possible
   fun:calloc
   ...
   fun:allocate_dtv
   fun:_dl_allocate_tls
   ...
   fun:pthread_create*
   ...
   fun:*ensureWorkers*
}
SUPPEOF
start=$(date +%s)
set +e
valgrind --tool=memcheck --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite,indirect,possible --track-origins=yes --num-callers=30 \
  --suppressions="$SUPP" --log-file="$LOG" "$BUILD/bln_core_test" "$@"
rc=$?
set -e
end=$(date +%s)
grep -E "ERROR SUMMARY|in use at exit|definitely lost:|indirectly lost:|possibly lost:|still reachable:|total heap usage|suppressed:" "$LOG" | sed 's/^==[0-9]*== */valgrind: /'
echo "valgrind-core: exit $rc in $((end - start)) s (full log: $LOG)"
exit $rc
