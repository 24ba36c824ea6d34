#!/usr/bin/env bash
# Kernel resources of the CUDA path, checked where nvcc exists (no GPU needed): compiles
# cuda/*.cu for each architecture with `-Xptxas -v` and prints, per kernel, registers,
# barriers, static shared memory, stack frame and spill bytes. Fails on any spill: every
# __global__ kernel in cuda/ is one that the plans (planForward / planBackward) can choose.
#
#   bash scripts/cuda-resources.sh [ARCH ...]        (default: 80 90; CUDA's sm_XX numbers)
#
# Without nvcc it prints a notice and exits 0 (a CPU-only machine has no CUDA to check).
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || true)}
if [[ -z "$NVCC" && -x /usr/local/cuda/bin/nvcc ]]; then NVCC=/usr/local/cuda/bin/nvcc; fi
if [[ -z "$NVCC" ]]; then
  echo "cuda-resources: SKIPPED: nvcc not found (CUDA kernels are not built on this machine)"
  exit 0
fi
archs=("$@")
[[ ${#archs[@]} -gt 0 ]] || archs=(80 90)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "cuda-resources: $("$NVCC" --version | tail -n 1)"
spills=0
kernels=0
for arch in "${archs[@]}"; do
  for src in cuda/*.cu; do
    log="$tmp/$(basename "$src").$arch.log"
    # The flags of cuda/cuda.cmake (no fast math), one architecture at a time.
    "$NVCC" -std=c++17 -O3 --expt-relaxed-constexpr -Icpp -Icuda -gencode "arch=compute_$arch,code=sm_$arch" \
      -Xptxas -v -c "$src" -o "$tmp/out.o" > "$log" 2>&1 || { cat "$log"; echo "cuda-resources: FAIL: $src does not compile for sm_$arch"; exit 1; }
    # ptxas prints, per entry: "Compiling entry function 'NAME' for 'sm_XX'", then
    # "N bytes stack frame, N bytes spill stores, N bytes spill loads", then
    # "Used N registers, used N barriers[, N bytes smem]".
    while IFS=$'\t' read -r name stack st ld regs bars smem; do
      kernels=$((kernels + 1))
      flag=""
      if [[ "$st" != 0 || "$ld" != 0 ]]; then flag="  <- SPILL"; spills=$((spills + 1)); fi
      printf 'sm_%-3s %-48s regs %3s  barriers %s  smem %6s B  stack %4s B  spill st/ld %s/%s B%s\n' \
        "$arch" "$name" "$regs" "$bars" "$smem" "$stack" "$st" "$ld" "$flag"
    done < <(awk '
      /Compiling entry function/ { match($0, /function \047[^\047]+\047/); name = substr($0, RSTART + 10, RLENGTH - 11); next }
      /bytes stack frame/ { stack = $1; st = $5; ld = $9; next }
      /Used [0-9]+ registers/ {
        regs = $5; bars = 0; smem = 0
        for (i = 1; i <= NF; i++) { if ($i ~ /^barriers/) bars = $(i - 1); if ($i == "smem" || $i == "smem,") smem = $(i - 2) }
        if (name != "") printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, stack, st, ld, regs, bars, smem
        name = ""
      }' "$log" | while IFS=$'\t' read -r mangled rest; do printf '%s\t%s\n' "$(echo "$mangled" | c++filt | sed -E 's/\(anonymous namespace\):://; s/bln::gpu:://; s/\(bln::gpu::[A-Za-z]+\)$//')" "$rest"; done)
  done
done
echo "cuda-resources: $kernels kernel builds over sm_${archs[*]}, $spills with spills"
if [[ $kernels == 0 ]]; then echo "cuda-resources: FAIL: no kernel found in the ptxas output"; exit 1; fi
if [[ $spills != 0 ]]; then echo "cuda-resources: FAIL: register spills (local memory traffic in a hot kernel)"; exit 1; fi
echo "cuda-resources: OK (no spills)"
