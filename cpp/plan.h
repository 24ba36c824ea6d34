// CPU path: how a call is cut into tiles and threads (Plan), the per-thread scratch arena, and
// the choice of non-temporal stores. Shared by the forward/inference job (norm_job.cpp) and the
// backward job (back_job.cpp); internal to the core.
//
// Every [B, C] slab (one m) holds both the batch statistics of its columns and the feature
// statistics of its rows, so the work splits cleanly by m. A slab is cut into column blocks of
// at most kTileCols features (and, where too few tiles would exist to feed the threads, into row
// blocks). When a whole slab is one tile and fits in L2, the statistics and the normalisation run
// back to back on it, so x is read from memory once (8 B/element). Otherwise a statistics pass
// and an apply pass run over the tensor (12 B/element).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <new>

#include "bln.h"
#include "kernels.h"

namespace bln {
namespace cpu {

constexpr int64_t kFuseBytes = 256 * 1024;    // slab size that stays in L2 between passes
// Below this many elements, one thread. At 2^15 the paper's first conv ([25,14,14,6], 29,400) ran
// on one; once the pool's caller spun for its workers instead of sleeping, two threads took it from
// 33.7 to 25.8 us (backward 71.9 -> 54.0 us; AVX-512 Xeon, 2 cores). Smaller calls ([25,5,5,16],
// 10,000) were slower on two: the threads' rows of the [B, M] feature statistics share cache lines.
constexpr int64_t kSerialElems = 1 << 14;
// The same for inference with every statistic from the population (one pass, no statistics):
// from 2^14 on two threads it was slower (infer [8,40,64] 7.5 -> 13.4 us, [100,200] 6.3 -> 8.0 us).
constexpr int64_t kSerialElemsOnePass = 1 << 15;
// From this many bytes of input on, the statistics kernels ask for the next block of rows while
// they read this one (a line per line read): one core's demand reads alone left its compute and
// its memory reads in series (forward [64,1024,64], Zen 5: -17% at one thread with them); below,
// where the data is in cache, the prefetches only cost (+5% at [64,32,64]).
constexpr int64_t kAheadBytes = int64_t(1) << 21;
constexpr int64_t kChunkElems = 1 << 14;       // work per parallel chunk, at least

// Per-thread scratch, reused across calls (no heap traffic per call once warm).
class Arena {
 public:
  void reset(size_t bytes) {
    if (bytes > cap_) {
      buf_.reset();  // free first: the old block is never needed again
      cap_ = std::max(bytes, cap_ + cap_ / 2);
      buf_.reset(static_cast<char*>(::operator new(cap_, std::align_val_t(64))));
    }
    used_ = 0;
  }
  template <class T>
  T* take(int64_t n) {
    size_t off = (used_ + 63) & ~size_t(63);
    used_ = off + sizeof(T) * static_cast<size_t>(n);
    return reinterpret_cast<T*>(buf_.get() + off);
  }
  static size_t bytesFor(std::initializer_list<size_t> sizes) {
    size_t s = 0;
    for (size_t x : sizes) s += ((x + 63) & ~size_t(63));
    return s;
  }
  // Big arenas are returned to the allocator after the call.
  void trim() {
    if (cap_ > (size_t(64) << 20)) buf_.reset(), cap_ = 0;
  }

 private:
  struct Free {
    void operator()(char* p) const { ::operator delete(p, std::align_val_t(64)); }
  };
  std::unique_ptr<char, Free> buf_;
  size_t cap_ = 0, used_ = 0;
};

// Each thread's arena (plan.cpp).
extern thread_local Arena tlsArena;

struct TrimOnExit {
  ~TrimOnExit() { tlsArena.trim(); }
};

struct Plan {
  int64_t B, M, C;
  int64_t cw, nCb;  // column blocks
  int64_t bt, nBb;  // row blocks
  int64_t tiles;
  bool fused;
  int slots;
  int64_t tileGrain;  // tiles per parallel chunk
  int64_t mk = 1;     // consecutive m per tile (forward/infer fused path at small C; see widenTiles)
  bool ahead = false;  // the statistics kernels prefetch the next row block (tensors from memory; kAheadBytes)

  // Tile t: km consecutive m from m (segments of seg columns from c0, n = seg*km columns in all;
  // column block cb) over rows b0..b0+rows (row block bb); mc = m*C + c0 is its first column of
  // the batch statistics, r0 = b0*M + m its first row of the [B, M] feature statistics.
  struct Tile {
    int64_t m, c0, seg, km, n, b0, rows, cb, bb, mc, r0;
  };
  Tile tile(int64_t t) const {
    Tile g;
    g.cb = t % nCb;
    g.bb = (t / nCb) % nBb;
    g.m = t / (nCb * nBb) * mk;
    g.c0 = g.cb * cw;
    g.seg = std::min(cw, C - g.c0);
    g.km = std::min(mk, M - g.m);
    g.n = g.seg * g.km;
    g.b0 = g.bb * bt;
    g.rows = std::min(bt, B - g.b0);
    g.mc = g.m * C + g.c0;
    g.r0 = g.b0 * M + g.m;
    return g;
  }
};

Plan makePlan(const Dims& d, int64_t bytesPerElem);

// At small C, fused tiles of k consecutive m (plan.cpp); simdWidth: the kernels' vector width.
void widenTiles(Plan& p, int64_t bytesPerElem, int simdWidth);

// The apply pass in memory order, once every coefficient is made (forward/infer and backward): a
// tile row is a whole batch row of M*C floats, segments of C. Possible where the segments are at
// least a vector wide or the row fits the narrow-segment kernels' tables; chunks of batch rows.
inline bool canApplyInOrder(const Dims& d, int simdWidth) { return d.C >= simdWidth || d.M * d.C <= kMaxTileCols; }
inline int64_t inOrderGrain(const Dims& d) { return std::max<int64_t>(1, kChunkElems / std::max<int64_t>(1, d.M * d.C)); }

// Non-temporal stores for this output (plan.cpp): y of a call with a statistics pass, dx, or y
// of an inference from the population alone.
enum class StreamOut { Forward, Backward, Population };
bool useStreaming(const Dims& d, const Plan& p, const float* out, StreamOut o);

}  // namespace cpu
}  // namespace bln
