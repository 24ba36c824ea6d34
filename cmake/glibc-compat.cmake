# BLN_GLIBC_COMPAT=ON (scripts/prebuild.sh): the addon target `bln` needs glibc 2.17 (aarch64) or
# 2.17-era symbols (x86_64) instead of the build machine's glibc; see cmake/glibc_compat.cpp.
# Only for Linux/glibc on x86_64 and aarch64, and only with BLN_STATIC_RUNTIME (the static libstdc++
# and libgcc are what reference most of these symbols).
set(BLN_GLIBC_WRAPPED
  __pthread_key_create pthread_key_create pthread_key_delete pthread_getspecific pthread_setspecific
  pthread_once pthread_create pthread_detach pthread_join pthread_kill pthread_mutex_trylock
  pthread_mutexattr_init pthread_mutexattr_destroy pthread_mutexattr_settype pthread_mutexattr_setpshared
  pthread_condattr_setpshared pthread_rwlock_init pthread_rwlock_destroy pthread_rwlock_rdlock
  pthread_rwlock_wrlock pthread_rwlock_tryrdlock pthread_rwlock_trywrlock pthread_rwlock_timedrdlock
  pthread_rwlock_timedwrlock pthread_rwlock_unlock pthread_rwlockattr_init pthread_rwlockattr_destroy
  pthread_rwlockattr_setpshared pthread_spin_init pthread_spin_destroy pthread_spin_lock
  pthread_spin_trylock pthread_spin_unlock sem_init sem_destroy sem_post sem_wait sem_trywait
  sem_timedwait shm_open shm_unlink dlopen dlclose dlsym dlvsym dlerror dlmopen
  __libc_single_threaded getentropy arc4random _dl_find_object)

function(bln_glibc_compat target)
  if(NOT CMAKE_SYSTEM_NAME STREQUAL "Linux" OR NOT CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|aarch64")
    message(FATAL_ERROR "BLN_GLIBC_COMPAT is for Linux x86_64/aarch64 (glibc); this is ${CMAKE_SYSTEM_NAME} ${CMAKE_SYSTEM_PROCESSOR}")
  endif()
  target_sources(${target} PRIVATE ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/glibc_compat.cpp)
  set(_opts "")
  foreach(sym IN LISTS BLN_GLIBC_WRAPPED)
    list(APPEND _opts "LINKER:--wrap=${sym}")
  endforeach()
  target_link_options(${target} PRIVATE ${_opts})
endfunction()
