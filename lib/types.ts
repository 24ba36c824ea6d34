// The public types of batch-layer-norm (re-exported by index.ts).

export type Device = 'auto' | 'cpu' | 'cuda';
export const DEVICES: readonly Device[] = ['auto', 'cpu', 'cuda'];

export interface Options {
  /** Added to each variance before the square root. Default 1e-3 (the authors' `offset`). */
  epsilon?: number;
  /** N of the spec: sets the mixing weights 1/N. Default shape[0]. */
  batchSize?: number;
  /**
   * 'auto' uses CUDA where a GPU is usable and has passed the self-check, else the CPU; 'cuda'
   * demands a GPU. Default: the environment variable BLN_DEVICE, else 'auto'.
   */
  device?: Device;
}

/** Mini-batch statistics: batch stats have M*C entries, feature stats B*M. Variances are biased. */
export interface Stats {
  batchMean: Float32Array;
  batchVar: Float32Array;
  featureMean: Float32Array;
  featureVar: Float32Array;
}

/** Population statistics: batch stats M*C entries, feature stats M. Variances are unbiased. */
export type Population = Stats;

/** For each statistic: true takes it from the population, false from the mini-batch. */
export interface InferUse {
  batchMean: boolean;
  batchVar: boolean;
  featureMean: boolean;
  featureVar: boolean;
}

export interface ForwardOptions extends Options {
  /** Preallocated outputs (any subset), for allocation-free training loops. */
  out?: Partial<Stats & { y: Float32Array }>;
}
export interface BackwardOptions extends Options {
  out?: Partial<BackwardResult>;
}
export interface InferOptions extends Options {
  out?: Float32Array;
}

export interface ForwardResult {
  y: Float32Array;
  stats: Stats;
}
export interface BackwardResult {
  dx: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
}

export const STAT_KEYS = ['batchMean', 'batchVar', 'featureMean', 'featureVar'] as const;
export type StatKey = (typeof STAT_KEYS)[number];

export interface DeviceInfo {
  type: 'cpu' | 'cuda';
  available: boolean;
  name?: string;
  reason?: string;
  [key: string]: unknown;
}

export interface BackendInfo {
  devices: DeviceInfo[];
  /** SIMD level the CPU kernels use now. */
  simd: string;
  /** SIMD levels this CPU and build support. */
  simdSupported: string[];
  /** Threads the CPU path uses now (BLN_THREADS caps it). */
  threads: number;
  maxThreads: number;
  version: string;
}

export interface ConfigureOptions {
  /** Force a SIMD level ('scalar', 'avx2', 'avx512', 'neon'); it must be supported. */
  simd?: string;
  /** Threads for the CPU path, 1..maxThreads. */
  threads?: number;
}
