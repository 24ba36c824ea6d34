// Lowers the glibc version the prebuilt addon needs (BLN_GLIBC_COMPAT, cmake/glibc-compat.cmake).
//
// Built against glibc 2.36, the addon (with libstdc++, libgcc and cudart linked in statically) would
// need glibc 2.36. Every reference to the symbols below is redirected at link time (ld --wrap=SYM makes
// each undefined SYM resolve to __wrap_SYM), and each __wrap_ here either jumps to an older version of
// the same function that every glibc keeps, or replaces a newer one:
//   - pthread_*, sem_*, shm_*, dl*: moved into libc.so.6 in glibc 2.34 (GLIBC_2.34); the old versions
//     (x86_64 GLIBC_2.2.5, aarch64 GLIBC_2.17; dlmopen 2.3.4) are the same functions, found in
//     libpthread/libdl/librt on older systems (Node loads those into its global scope).
//   - __libc_single_threaded (2.32, read by libstdc++): a constant 0, "maybe threaded", the safe answer.
//   - arc4random (2.36), getentropy (2.25), used by std::random_device: the getrandom system call.
//   - _dl_find_object (2.35, the unwinder's FDE lookup in static libgcc): glibc's own when this glibc
//     has it (looked up at run time), otherwise the same answer from dl_iterate_phdr.
#include <unistd.h>  // defines __GLIBC__ (features.h) on glibc
#if defined(__linux__) && defined(__GLIBC__)
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define BLN_GLIBC_BASE "GLIBC_2.2.5"
#define BLN_GLIBC_DLMOPEN "GLIBC_2.3.4"
#define BLN_TAIL_JUMP(target) "jmp " target "@PLT\n"
#elif defined(__aarch64__)
#define BLN_GLIBC_BASE "GLIBC_2.17"
#define BLN_GLIBC_DLMOPEN "GLIBC_2.17"
#define BLN_TAIL_JUMP(target) "b " target "\n"
#else
#error "glibc_compat.cpp: only x86_64 and aarch64 are handled; configure with -DBLN_GLIBC_COMPAT=OFF"
#endif

// __wrap_SYM: a hidden function that tail-jumps (arguments untouched) to SYM@VERSION.
#define BLN_OLD(sym, ver)                                                        \
  __asm__(".symver bln_old_" #sym ", " #sym "@" ver "\n"                          \
          ".text\n.globl __wrap_" #sym "\n.hidden __wrap_" #sym "\n"              \
          ".type __wrap_" #sym ", @function\n__wrap_" #sym ":\n" BLN_TAIL_JUMP("bln_old_" #sym) \
          ".size __wrap_" #sym ", .-__wrap_" #sym "\n");
#define BLN_BASE(sym) BLN_OLD(sym, BLN_GLIBC_BASE)

BLN_BASE(__pthread_key_create) BLN_BASE(pthread_key_create) BLN_BASE(pthread_key_delete)
BLN_BASE(pthread_getspecific) BLN_BASE(pthread_setspecific) BLN_BASE(pthread_once)
BLN_BASE(pthread_create) BLN_BASE(pthread_detach) BLN_BASE(pthread_join) BLN_BASE(pthread_kill)
BLN_BASE(pthread_mutex_trylock) BLN_BASE(pthread_mutexattr_init) BLN_BASE(pthread_mutexattr_destroy)
BLN_BASE(pthread_mutexattr_settype) BLN_BASE(pthread_mutexattr_setpshared) BLN_BASE(pthread_condattr_setpshared)
BLN_BASE(pthread_rwlock_init) BLN_BASE(pthread_rwlock_destroy) BLN_BASE(pthread_rwlock_rdlock)
BLN_BASE(pthread_rwlock_wrlock) BLN_BASE(pthread_rwlock_tryrdlock) BLN_BASE(pthread_rwlock_trywrlock)
BLN_BASE(pthread_rwlock_timedrdlock) BLN_BASE(pthread_rwlock_timedwrlock) BLN_BASE(pthread_rwlock_unlock)
BLN_BASE(pthread_rwlockattr_init) BLN_BASE(pthread_rwlockattr_destroy) BLN_BASE(pthread_rwlockattr_setpshared)
BLN_BASE(pthread_spin_init) BLN_BASE(pthread_spin_destroy) BLN_BASE(pthread_spin_lock)
BLN_BASE(pthread_spin_trylock) BLN_BASE(pthread_spin_unlock)
BLN_BASE(sem_init) BLN_BASE(sem_destroy) BLN_BASE(sem_post) BLN_BASE(sem_wait) BLN_BASE(sem_trywait)
BLN_BASE(sem_timedwait) BLN_BASE(shm_open) BLN_BASE(shm_unlink)
BLN_BASE(dlopen) BLN_BASE(dlclose) BLN_BASE(dlsym) BLN_BASE(dlvsym) BLN_BASE(dlerror)
BLN_OLD(dlmopen, BLN_GLIBC_DLMOPEN)

#define BLN_HIDDEN extern "C" __attribute__((visibility("hidden")))

extern "C" {
__attribute__((visibility("hidden"))) char __wrap___libc_single_threaded = 0;
}

static int blnRandomBytes(void* buf, size_t len) {
  unsigned char* p = static_cast<unsigned char*>(buf);
  while (len > 0) {
    long n = syscall(SYS_getrandom, p, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // no getrandom (kernel < 3.17): /dev/urandom
      int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
      if (fd < 0) return -1;
      while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { close(fd); errno = EIO; return -1; }
        p += r, len -= static_cast<size_t>(r);
      }
      close(fd);
      return 0;
    }
    p += n, len -= static_cast<size_t>(n);
  }
  return 0;
}

BLN_HIDDEN int __wrap_getentropy(void* buf, size_t len) {
  if (len > 256) { errno = EIO; return -1; }
  return blnRandomBytes(buf, len);
}

BLN_HIDDEN uint32_t __wrap_arc4random(void) {
  uint32_t v = 0;
  if (blnRandomBytes(&v, sizeof v) != 0) __builtin_trap();  // as glibc's arc4random: never a weak value
  return v;
}

// glibc 2.35's struct dl_find_object, declared here so that older headers would do too.
struct BlnDlFindObject {
  unsigned long long dlfo_flags;
  void* dlfo_map_start;
  void* dlfo_map_end;
  struct link_map* dlfo_link_map;
  void* dlfo_eh_frame;
  unsigned long long __dlfo_reserved[7];
};

namespace {
struct FindArg {
  uintptr_t pc;
  BlnDlFindObject* out;
  bool found;
};

int findObject(struct dl_phdr_info* info, size_t, void* data) {
  FindArg* a = static_cast<FindArg*>(data);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  bool inside = false;
  const ElfW(Phdr)* eh = nullptr;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD) {
      uintptr_t start = info->dlpi_addr + ph.p_vaddr, end = start + ph.p_memsz;
      if (start < lo) lo = start;
      if (end > hi) hi = end;
      if (a->pc >= start && a->pc < end) inside = true;
    } else if (ph.p_type == PT_GNU_EH_FRAME) {
      eh = &ph;
    }
  }
  if (!inside) return 0;
  a->out->dlfo_flags = 0;
  a->out->dlfo_map_start = reinterpret_cast<void*>(lo);
  a->out->dlfo_map_end = reinterpret_cast<void*>(hi);
  a->out->dlfo_link_map = nullptr;
  a->out->dlfo_eh_frame = eh ? reinterpret_cast<void*>(info->dlpi_addr + eh->p_vaddr) : nullptr;
  a->found = true;
  return 1;
}

using DlFindObjectFn = int (*)(void*, BlnDlFindObject*);
}  // namespace

BLN_HIDDEN int __wrap__dl_find_object(void* pc, BlnDlFindObject* result) {
  // Resolved once; dlsym here is itself redirected to its old version above.
  static DlFindObjectFn glibcOwn = reinterpret_cast<DlFindObjectFn>(dlsym(RTLD_DEFAULT, "_dl_find_object"));
  if (glibcOwn) return glibcOwn(pc, result);
  FindArg a{reinterpret_cast<uintptr_t>(pc), result, false};
  dl_iterate_phdr(findObject, &a);
  return a.found ? 0 : -1;
}
#endif
