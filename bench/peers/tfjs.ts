// The tfjs peers besides BLN written with tfjs ops (that composite is the tests' reference and
// lives in test/tfjs-composite.ts): tfjs's own normalization (moments + batchNorm) as a
// yardstick, and the utilities the benchmark uses to run tfjs backends.
import * as tf from '@tensorflow/tfjs';

/**
 * tfjs's own batch normalization over axis 0: moments + batchNorm (one normalization, not two).
 * x is viewed as [B, M*C] with gamma/beta tiled to M*C: tfjs's batchNorm gradient fails on
 * broadcast ranks (scale [1,..,C] against x [B,..,C]), so this is how a user gets it to train.
 * With `pop`, the batch statistics (M*C each) come from it (inference).
 */
export function tfjsBatchNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-3, pop?: { mean: tf.Tensor; variance: tf.Tensor }): tf.Tensor {
  return tf.tidy(() => {
    const C = x.shape[x.rank - 1]!;
    const MC = x.size / x.shape[0]!;
    const x2 = x.reshape([x.shape[0]!, MC]);
    const { mean, variance } = pop ? { mean: pop.mean.reshape([MC]), variance: pop.variance.reshape([MC]) } : tf.moments(x2, 0);
    const tile = (t: tf.Tensor) => (MC === C ? t : tf.tile(t, [MC / C]));
    return tf.batchNorm(x2, mean, variance, tile(beta), tile(gamma), eps).reshape(x.shape);
  });
}

/** Selects an initialized backend synchronously (tfjs only awaits backends that init asynchronously). */
export function useBackend(name: string): void {
  if (tf.getBackend() === name) return;
  void tf.setBackend(name);
  if (tf.getBackend() !== name) throw new Error(`tfjs backend '${name}' is not initialized`);
}

/** Reads a tensor and disposes it (forces completion on every backend). */
export function take(t: tf.Tensor | tf.Tensor[]): Float32Array[] {
  const list = Array.isArray(t) ? t : [t];
  const out = list.map((v) => v.dataSync() as Float32Array);
  tf.dispose(list);
  return out;
}
