// CPU path: the plan of a call (tiles, row blocks, threads), the per-thread arena and the
// choice of non-temporal stores (plan.h).
#include "plan.h"

#include <cstdlib>

#include "threadpool.h"

namespace bln {
namespace cpu {

thread_local Arena tlsArena;

Plan makePlan(const Dims& d, int64_t bytesPerElem) {
  Plan p;
  p.B = d.B, p.M = d.M, p.C = d.C;
  const int64_t numel = d.numel();
  p.slots = numel < kSerialElems ? 1 : activeThreads();
  p.ahead = numel * int64_t(sizeof(float)) >= kAheadBytes;
  // One tile per slab where the slab fits in L2: statistics and normalisation then
  // run back to back on it (the statistics pass packs it contiguously for the second).
  p.fused = d.C <= kMaxTileCols && d.B * d.C * bytesPerElem <= kFuseBytes;
  if (p.fused) {
    p.cw = d.C, p.nCb = 1, p.bt = d.B, p.nBb = 1;
  } else {
    const int64_t blocks = (d.C + kTileCols - 1) / kTileCols;
    p.cw = std::min<int64_t>(kTileCols, (((d.C + blocks - 1) / blocks) + 15) / 16 * 16);
    p.cw = std::min(p.cw, d.C);
    p.nCb = (d.C + p.cw - 1) / p.cw;
    p.nBb = 1;
    if (p.slots > 1 && d.M * p.nCb < 4 * p.slots && d.B >= 2 * kColFlushRows) {
      const int64_t want = (4 * p.slots + d.M * p.nCb - 1) / (d.M * p.nCb);
      p.nBb = std::min<int64_t>(want, d.B / kColFlushRows);
    }
    p.bt = (d.B + p.nBb - 1) / p.nBb;
    p.nBb = (d.B + p.bt - 1) / p.bt;
  }
  p.tiles = d.M * p.nCb * p.nBb;
  const int64_t tileElems = std::max<int64_t>(1, p.bt * p.cw);
  p.tileGrain = std::max<int64_t>(1, kChunkElems / tileElems);
  // Keep at least a few chunks per thread where there is work for them.
  if (p.slots > 1) p.tileGrain = std::min(p.tileGrain, std::max<int64_t>(1, p.tiles / (4 * p.slots)));
  return p;
}

// At small C a slab's rows are short runs (C floats) M*C floats apart: [64,32,32,64] reads
// and writes 64 runs of 256 B, 256 KiB apart, per slab, which the hardware prefetchers do
// not follow. Fused tiles then take k consecutive m, so each row of a tile is k*C contiguous
// floats (the kernels keep row statistics per C-wide segment), while the tile still fits the
// fused budget and, with several threads, there are tiles enough for them (one thread takes the
// widest tiles: [25,5,5,16] -10%, [25,4,4,6] -60%, a tile's set-up paid once). Segments narrower
// than a vector (C < simdWidth) go W at a time through the kernels' transposes and spreads, so k is
// then a multiple of W where it can be (the rest run element by element: [25,14,14,6] at k = 24,
// 8 of 24 segments; -13% at one thread with k = 16).
constexpr int64_t kWideRunFloats = 1024;  // aim: rows of 4 KiB
void widenTiles(Plan& p, int64_t bytesPerElem, int simdWidth) {
  if (!p.fused || p.nCb != 1 || p.nBb != 1 || p.C >= kWideRunFloats / 4) return;
  const int64_t cap = std::min<int64_t>({kWideRunFloats / p.C, kMaxTileCols / p.C, kFuseBytes / (p.B * p.C * bytesPerElem)});
  int64_t k = cap;
  if (p.slots > 1) k = std::min<int64_t>(k, std::max<int64_t>(1, p.M / (4 * p.slots)));
  const int64_t W = simdWidth;
  if (p.C < W && 2 * k >= W && cap >= W) k = std::min((k + W - 1) / W * W, cap / W * W);
  k = std::min(k, p.M);  // (one tile of every m at most: the scratch is sized by k)
  if (k <= 1) return;
  p.mk = k;
  p.tiles = (p.M + k - 1) / k;
  p.tileGrain = std::max<int64_t>(1, kChunkElems / (p.B * p.C * k));
  if (p.slots > 1) p.tileGrain = std::min(p.tileGrain, std::max<int64_t>(1, p.tiles / (4 * p.slots)));
}

// Large outputs with long rows are written with non-temporal stores (they would only
// evict the inputs from cache, and the stores skip the read-for-ownership), where
// every row starts 16-byte aligned so a row's stores are all of one kind. "Long rows":
// a tile's rows, k*C floats on wide fused tiles (widenTiles runs first). Measured:
//  - on the AVX2 EPYC (bench/results/amd-epyc-2c), before wide tiles: forward [1024,16384]
//    16.7 -> 14.4 ms, but 64-float rows ([64,32,32,64]: 4.5 -> 7.7 ms), outputs that fit in
//    L3 ([256,4096]) and the two-pass backward ([1024,16384] 22.9 -> 25.5 ms) got slower;
//  - on the Zen 5 EPYC (L3 32 MiB), with wide tiles, two threads: from 16 MiB, forward
//    [64,32,32,64] -19 to -22% and [32,196,768] -27%, the fused backward -11 and -12%; the
//    two-pass backward [1024,16384] +3% again, so it keeps plain stores. Inference from the
//    population alone (no statistics pass, x read once in memory order) keeps the earlier row
//    rule, C (or the column block) of 256 floats: with wide tiles' k*C, [64,32,32,64] streamed and
//    was 5-7% slower; [32,196,768] gains 8% from streaming from 16 MiB.
// BLN_STREAM_BYTES sets the size threshold (tests set 0 to exercise the path everywhere).
constexpr int64_t kStreamMinRow = 256;
int64_t streamBytes() {
  static const int64_t env = [] {
    const char* s = std::getenv("BLN_STREAM_BYTES");
    char* end = nullptr;
    const long long b = s ? std::strtoll(s, &end, 10) : -1;
    return (s && end != s && b >= 0) ? static_cast<int64_t>(b) : int64_t(-1);
  }();
  return env >= 0 ? env : int64_t(16) << 20;
}
bool useStreaming(const Dims& d, const Plan& p, const float* out, StreamOut o) {
  const bool forced = streamBytes() == 0;
  const int64_t row = o == StreamOut::Population ? p.cw : p.cw * p.mk;
  return d.numel() * int64_t(sizeof(float)) >= streamBytes() &&
         (forced || (row >= kStreamMinRow && (o != StreamOut::Backward || p.fused))) && d.C % 4 == 0 &&
         reinterpret_cast<uintptr_t>(out) % 16 == 0;
}

}  // namespace cpu
}  // namespace bln
