// Memory advice for large outputs (see bln.h).
#include <cstdint>

#include "bln.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace bln {

size_t adviseHugePages(void* p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end <= begin) return 0;
  // Fails harmlessly where THP is off ('never') or the range is not anonymous memory.
  if (madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE) != 0) return 0;
  return end - begin;
#else
  (void)p;
  (void)bytes;
  return 0;
#endif
}

}  // namespace bln
