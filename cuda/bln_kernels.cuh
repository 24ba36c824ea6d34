// Kernel plans and launchers of the CUDA path, on DEVICE pointers. The host API
// (bln_cuda.cu) and the harness (harness/bln_bench.cu) both call these.
//
// View x as [B, M, C] (row r = b*M + m holds C contiguous floats; column mc = m*C + c
// holds B floats M*C apart). Two structures:
//
//  Slab  (one block per m): the [B, C] slab of one m is loaded into shared memory
//        once; the block computes the column (batch) statistics, then each lane group
//        computes one row's (feature) statistics and writes that row's output.
//        Global traffic: forward 8 B/element, backward 12 B/element.
//  Tiled (any shape): a statistics kernel over [rows-chunk x column-tile] tiles
//        writes per-tile partials (Chan (mean, M2) pairs for forward, plain sums for
//        backward), small finalize kernels merge them into per-column and per-row
//        coefficients, and an apply kernel writes the output.
//        Global traffic: forward 12 B/element, backward 20 B/element, inference with
//        all four population statistics 8 B/element (no statistics kernel).
//
// Every kernel exists as V = 4 (128-bit loads/stores; needs C % 4 == 0 and 16-byte
// aligned pointers) and V = 1 (any C, any 4-byte alignment).
#pragma once

#include "bln_cuda_common.cuh"

namespace bln {
namespace gpu {

struct DeviceLimits {
  int smCount = 108;
  size_t smemOptin = 48 * 1024;  // cudaDevAttrMaxSharedMemoryPerBlockOptin
  // Grids of the kernels that loop over work items (m for the slab kernels, tiles for the
  // statistics kernels): one block per item up to `onGpu`, grid-stride beyond it. Emulated
  // builds cap them at 2 blocks per SM, so that blocks loop over several items there and the
  // barriers guarding shared memory between two items are exercised (a GPU gets one per item).
  int64_t gridCap(int64_t onGpu) const {
#ifdef BLN_EMU
    (void)onGpu;
    return 2 * static_cast<int64_t>(smCount);
#else
    return onGpu;
#endif
  }
};

enum class Path : int { Auto = 0, Slab = 1, Tiled = 2 };
inline const char* pathName(Path p) { return p == Path::Slab ? "slab" : p == Path::Tiled ? "tiled" : "auto"; }

// Largest slab (floats of x, plus dy for backward) the slab kernels take, and the
// most dynamic shared memory they ask for (2 blocks fit on an A100 or H100 SM).
constexpr int64_t kSlabMaxFloats = 16384;
constexpr size_t kSlabMaxBytes = 80 * 1024;

// ------------------------------------------------------------------ forward / infer

struct FwdDev {
  Dims d;
  const float* x = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float* y = nullptr;
  StatsOut stats;  // forward: the four mini-batch statistics (device); infer: all null
  StatsIn pop;     // infer: population statistics (device), read where `use` says so
  InferUse use;
  double eps = 1e-3;
  double batchSize = 1;
};

struct FwdPlan {
  bool ok = true;
  const char* why = "";
  Path path = Path::Tiled;
  int vec = 1;              // 4 or 1
  int lpr = 32;             // lanes per row (power of two <= 32)
  int64_t nCT = 1;          // column tiles per row (tiled)
  int64_t nChunks = 1;      // row chunks per column (tiled)
  int64_t chunkRows = 1;    // rows per chunk
  size_t slabSmem = 0;      // dynamic shared memory of the slab kernel
  int64_t grid = 1;         // blocks of the slab or statistics kernel (DeviceLimits::gridCap)
  bool needCol = true, needRow = true;
  size_t offColPart = 0, offRowPart = 0, offColCoef = 0, offRowCoef = 0;
  size_t wsBytes = 0;       // device workspace the launch needs (0 for the slab path)
};

// Chooses the kernels for this shape, these pointers' alignment and this device.
// force = Slab where the slab does not fit gives ok = false (with why).
FwdPlan planForward(const FwdDev& a, const DeviceLimits& lim, Path force = Path::Auto, bool forceScalar = false);
// Launches the plan on `stream` (asynchronous). ws: plan.wsBytes of device memory.
cudaError_t launchForward(const FwdDev& a, const FwdPlan& p, void* ws, cudaStream_t stream);

// ------------------------------------------------------------------ backward

struct BwdDev {
  Dims d;
  const float* dy = nullptr;
  const float* x = nullptr;
  const float* gamma = nullptr;
  StatsIn stats;  // mini-batch statistics of the forward pass (device)
  double eps = 1e-3;
  double batchSize = 1;
  float* dx = nullptr;
  float* dgamma = nullptr;
  float* dbeta = nullptr;
};

struct BwdPlan {
  bool ok = true;
  const char* why = "";
  Path path = Path::Tiled;
  int vec = 1;
  int lpr = 32;
  int64_t nCT = 1, nChunks = 1, chunkRows = 1;
  size_t slabSmem = 0;
  int64_t grid = 1;  // blocks of the slab or statistics kernel
  // workspace
  size_t offRf = 0, offColPart = 0, offRowPart = 0, offColCoef = 0, offRowCoef = 0;
  size_t offContrib = 0, offRed1 = 0, offRed2 = 0;
  size_t wsBytes = 0;
};

BwdPlan planBackward(const BwdDev& a, const DeviceLimits& lim, Path force = Path::Auto, bool forceScalar = false);
cudaError_t launchBackward(const BwdDev& a, const BwdPlan& p, void* ws, cudaStream_t stream);

// A kernel that does nothing: cudaInfo() asks the runtime for its attributes to learn
// whether this build has code for the device.
cudaError_t probeKernelImage();

// ------------------------------------------------------------------ kernel parameters

struct FwdK {
  const float *x, *gamma, *beta;
  float* y;
  float *outBm, *outBv, *outFm, *outFv;        // null in infer
  const float *popBm, *popBv, *popFm, *popFv;  // read where use* is set
  int useBm, useBv, useFm, useFv;
  int needCol, needRow;
  int64_t B, M, C;
  double eps, wb, invSqrtC;
  float fScale;  // float(wf / sqrt(C))
  // tiled
  int lpr, tw;
  int64_t nCT, nChunks, chunkRows, nTiles;
  double2* colPart;  // [nChunks][M*C] (mean, M2)
  double2* rowPart;  // [B*M][nCT] (mean, M2)
  float *mbh, *mbl, *A;  // [M*C]
  float *mfh, *mfl, *F;  // [B*M]
};

struct BwdK {
  const float *dy, *x, *gamma, *bm, *bv, *fm, *fv;
  float* dx;
  int64_t B, M, C;
  double eps, wf, wb, invSqrtC;
  int lpr, tw;
  int64_t nCT, nChunks, chunkRows, nTiles;
  float* rf;                 // [B*M] 1/sqrt(var_f + eps)
  double *cp0, *cp1, *cp2;   // [nChunks][M*C]: sum dy, sum dy*(x-mub), sum dy*rf*(x-muf)
  double2* rowPart;          // [B*M][nCT]: sum dy*gamma, sum dy*gamma*(x-muf)
  float *U, *V, *W;          // [M*C]
  float *P, *Q, *T;          // [B*M]
  double2* contrib;          // [M][C]: dgamma and dbeta terms of each (m, c)
};

struct RedK {
  const double2* in;  // [G][C]
  int64_t G, C, rowsPerChunk;
  double2* out;       // [ceil(G/rowsPerChunk)][C] (intermediate stages)
  float *dgamma, *dbeta;  // final stage (out == null)
};

// Shared-memory layouts of the slab kernels (bytes), used by plans and kernels alike.
struct FwdSlabLayout {
  size_t red, colH, colL, colA, slab, total;
};
BLN_HD FwdSlabLayout fwdSlabLayout(int64_t B, int64_t C) {
  FwdSlabLayout l;
  size_t o = 0;
  l.red = o, o += sizeof(double) * 2 * kThreads;
  l.colH = o, o += align16(sizeof(float) * C);
  l.colL = o, o += align16(sizeof(float) * C);
  l.colA = o, o += align16(sizeof(float) * C);
  l.slab = o, o += align16(sizeof(float) * B * C);
  l.total = o;
  return l;
}

struct BwdSlabLayout {
  size_t red, muf, rf, mub, U, V, W, xs, ds, total;
};
BLN_HD BwdSlabLayout bwdSlabLayout(int64_t B, int64_t C) {
  BwdSlabLayout l;
  size_t o = 0;
  l.red = o, o += sizeof(double) * 3 * kThreads;
  l.muf = o, o += align16(sizeof(float) * B);
  l.rf = o, o += align16(sizeof(float) * B);
  l.mub = o, o += align16(sizeof(float) * C);
  l.U = o, o += align16(sizeof(float) * C);
  l.V = o, o += align16(sizeof(float) * C);
  l.W = o, o += align16(sizeof(float) * C);
  l.xs = o, o += align16(sizeof(float) * B * C);
  l.ds = o, o += align16(sizeof(float) * B * C);
  l.total = o;
  return l;
}

}  // namespace gpu
}  // namespace bln
