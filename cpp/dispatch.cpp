// The one dispatch point: picks the widest kernel table this CPU runs, unless
// BLN_SIMD (or setSimdLevel) asks for another supported level.
#include <atomic>
#include <cstdlib>
#include <string>

#include "kernels.h"

namespace bln {
namespace {

bool cpuHas(SimdLevel l) {
  switch (l) {
    case SimdLevel::Scalar:
      return true;
#if defined(BLN_HAVE_X86)
    case SimdLevel::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SimdLevel::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma");
#endif
#if defined(BLN_HAVE_NEON)
    case SimdLevel::Neon:
      return true;
#endif
    default:
      return false;
  }
}

KernelTable tableFor(SimdLevel l) {
  switch (l) {
#if defined(BLN_HAVE_X86)
    case SimdLevel::Avx2:
      return kernelTableAvx2();
    case SimdLevel::Avx512:
      return kernelTableAvx512();
#endif
#if defined(BLN_HAVE_NEON)
    case SimdLevel::Neon:
      return kernelTableNeon();
#endif
    default:
      return kernelTableScalar();
  }
}

struct Tables {
  KernelTable byLevel[4];
  std::atomic<int> active;
  Tables() : active(0) {
    for (int i = 0; i < 4; ++i) byLevel[i] = tableFor(static_cast<SimdLevel>(i));
    SimdLevel l = bestSimdLevel();
    if (const char* s = std::getenv("BLN_SIMD")) {
      SimdLevel want;
      // An unknown or unsupported request falls back to the best level; backendInfo
      // shows which level is active.
      if (parseSimdLevel(s, &want) && cpuHas(want)) l = want;
    }
    active.store(static_cast<int>(l));
  }
};

Tables& tables() {
  static Tables t;
  return t;
}

}  // namespace

const char* simdName(SimdLevel l) {
  switch (l) {
    case SimdLevel::Scalar: return "scalar";
    case SimdLevel::Neon: return "neon";
    case SimdLevel::Avx2: return "avx2";
    case SimdLevel::Avx512: return "avx512";
  }
  return "unknown";
}

bool parseSimdLevel(const std::string& s, SimdLevel* out) {
  for (int i = 0; i < 4; ++i) {
    auto l = static_cast<SimdLevel>(i);
    if (s == simdName(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

bool simdSupported(SimdLevel l) { return cpuHas(l); }

SimdLevel bestSimdLevel() {
  for (int i = 3; i > 0; --i)
    if (cpuHas(static_cast<SimdLevel>(i))) return static_cast<SimdLevel>(i);
  return SimdLevel::Scalar;
}

SimdLevel activeSimdLevel() { return static_cast<SimdLevel>(tables().active.load()); }

void setSimdLevel(SimdLevel l) {
  if (!cpuHas(l)) throw ArgumentError(std::string("SIMD level '") + simdName(l) + "' is not supported by this CPU or build");
  tables().active.store(static_cast<int>(l));
}

const KernelTable& activeKernels() {
  Tables& t = tables();
  return t.byLevel[t.active.load()];
}

}  // namespace bln
