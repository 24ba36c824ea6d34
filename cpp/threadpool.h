// A persistent worker pool shared by every call. Several callers (the main thread
// and libuv's pool threads) may run jobs at once: each caller works on its own job
// too, so a job always makes progress even when every worker is busy elsewhere.
#pragma once

#include <cstdint>

namespace bln {

// Body of a job: handles items [begin, end) as participant `slot` (0 <= slot < maxSlots).
using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end, int slot);

// Runs fn over [0, n) in chunks of `grain` items, on at most `maxSlots` threads
// (the caller included). Returns when every item is done. An exception thrown by
// fn is rethrown here (the first one); the remaining chunks are skipped.
void parallelRun(int64_t n, int64_t grain, int maxSlots, RangeFn fn, void* ctx);

template <class F>
void parallelFor(int64_t n, int64_t grain, int maxSlots, F&& f) {
  if (maxSlots <= 1 || n <= grain) {
    f(int64_t(0), n, 0);
    return;
  }
  parallelRun(
      n, grain, maxSlots,
      [](void* c, int64_t b, int64_t e, int slot) { (*static_cast<F*>(c))(b, e, slot); },
      static_cast<void*>(&f));
}

}  // namespace bln
