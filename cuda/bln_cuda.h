// CUDA path of batch-layer-norm: the host API the binding calls. Plain C++ (no CUDA
// headers), so a g++-compiled translation unit can include it.
//
// Every function takes HOST pointers (the same batons as the CPU path), copies the
// inputs to the device, runs the kernels of cuda/*.cu on a per-thread stream and
// copies the outputs back before it returns. Device buffers are cached per thread
// and per device (grow-only), so repeated calls do not allocate.
//
// Errors: ArgumentError (bln.h) for inconsistent arguments, the same checks as the
// CPU path; std::runtime_error whose text starts with "CUDA error: " for anything
// the CUDA runtime reports (out of memory, no device, a failed launch). After an
// error the process goes on: the non-sticky error state is cleared, and after a
// sticky one (a kernel fault) the device is reset and the caches are rebuilt.
#pragma once

#include <cstddef>
#include <string>

#include "bln.h"

namespace bln {

struct CudaInfo {
  bool available = false;
  std::string reason;             // why not available (empty when available)
  std::string name;               // device name
  std::string computeCapability;  // "9.0"
  std::string driverVersion;      // CUDA version the driver supports, "12.4"; "none" without a driver
  std::string runtimeVersion;     // CUDA runtime this library was built with, "13.0"
  size_t memoryBytes = 0;
  bool emulated = false;          // the host emulator of cuda/emu/ (test builds only), not a GPU
};

// What the current device (cudaGetDevice, 0 by default) offers. Cheap: computed once
// per process and cached. Never throws.
CudaInfo cudaInfo();

void cudaForward(const ForwardArgs& a);
void cudaBackward(const BackwardArgs& a);
void cudaInfer(const InferArgs& a);

// Frees this thread's cached device buffers and stream (they are rebuilt on the next
// call). Optional: thread exit does the same.
void cudaReleaseThreadCache();

#ifdef BLN_EMU
// Emulated builds only (test machinery): kernels launched so far in this process.
unsigned long long emuKernelLaunches();
#endif

}  // namespace bln
