// The self-check that a GPU passes before device 'auto' trusts it (lib/device.ts runs it once
// per process, on the first call that would pick CUDA): a fixed case through forward, backward
// and inference on the GPU and on the CPU, compared at the spec's bounds.
import { DEVICE_CPU, DEVICE_CUDA, native } from './addon';

// A fixed case that every kernel family sees: odd C (the scalar kernels), B > 1 and M > 1,
// values with an offset; forward, backward, and infer with two population statistics.
const SC = { B: 6, M: 3, C: 37, eps: 1e-3, N: 6 };
// BLN-SPEC.md's bounds (well-scaled data): forward, inference and statistics 1e-5,
// gradients 1e-4. The CUDA path meets them against the CPU path's own float32 results too.
const TOL_VALUES = 1e-5;
const TOL_GRADS = 1e-4;

function relErr(got: Float32Array, ref: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = got[i]! - ref[i]!;
    num += d * d;
    den += ref[i]! * ref[i]!;
  }
  const e = Math.sqrt(num / (den || 1));
  return Number.isNaN(e) ? Infinity : e;
}

function fill(n: number, k: number, offset: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = offset + Math.sin(i * k + 0.3) * (1 + 0.5 * Math.cos(i * 0.11));
  return a;
}

type Outputs = Record<string, Float32Array>;

function runCase(device: number): Outputs {
  const { B, M, C, eps, N } = SC;
  const n = B * M * C;
  const x = fill(n, 0.731, 2);
  const dy = fill(n, 1.377, 0);
  const gamma = fill(C, 0.53, 1);
  const beta = fill(C, 0.29, 0);
  const nat = native();
  const o: Outputs = {
    y: new Float32Array(n),
    batchMean: new Float32Array(M * C),
    batchVar: new Float32Array(M * C),
    featureMean: new Float32Array(B * M),
    featureVar: new Float32Array(B * M),
    dx: new Float32Array(n),
    dgamma: new Float32Array(C),
    dbeta: new Float32Array(C),
    yInfer: new Float32Array(n),
  };
  nat.forward(x, B, M, C, gamma, beta, eps, N, device, o.y!, o.batchMean!, o.batchVar!, o.featureMean!, o.featureVar!);
  nat.backward(dy, x, B, M, C, gamma, o.batchMean!, o.batchVar!, o.featureMean!, o.featureVar!, eps, N, device, o.dx!, o.dgamma!, o.dbeta!);
  // population: this batch's batch statistics and its batch-averaged feature statistics
  const pfm = new Float32Array(M);
  const pfv = new Float32Array(M);
  for (let b = 0; b < B; b++)
    for (let m = 0; m < M; m++) (pfm[m] += o.featureMean![b * M + m]! / B), (pfv[m] += o.featureVar![b * M + m]! / B);
  nat.infer(x, B, M, C, gamma, beta, o.batchMean!, undefined, undefined, pfv, 1 | 8, eps, N, device, o.yInfer!);
  return o;
}

export function runSelfCheck(): { passed: boolean; reason?: string } {
  let gpu: Outputs;
  try {
    gpu = runCase(DEVICE_CUDA);
  } catch (e) {
    return { passed: false, reason: `self-check failed: the GPU returned an error: ${(e as Error).message}` };
  }
  const cpu = runCase(DEVICE_CPU);
  for (const key of Object.keys(cpu)) {
    const tol = key === 'dx' || key === 'dgamma' || key === 'dbeta' ? TOL_GRADS : TOL_VALUES;
    const e = relErr(gpu[key]!, cpu[key]!);
    if (!(e <= tol))
      return {
        passed: false,
        reason: `self-check failed: ${key} on the GPU differs from the CPU path by ${e.toExponential(2)} (bound ${tol}) on [${SC.B}, ${SC.M}, ${SC.C}]; 'auto' uses the CPU, device: 'cuda' still runs where asked`,
      };
  }
  return { passed: true };
}
