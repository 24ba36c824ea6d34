// BLN written with plain tfjs ops: what a tfjs user would write without this package. It is
// the reference the tfjs bridge's tests check against (differentiated by tfjs autodiff), and
// one of the peers the benchmark times (bench/peers/tfjs.ts re-exports it from here).
import * as tf from '@tensorflow/tfjs';

import type { InferUse } from '../lib/index';

export type Pop = { batchMean: tf.Tensor; batchVar: tf.Tensor; featureMean: tf.Tensor; featureVar: tf.Tensor };

export const NO_POP: InferUse = { batchMean: false, batchVar: false, featureMean: false, featureVar: false };
export const ALL_POP: InferUse = { batchMean: true, batchVar: true, featureMean: true, featureVar: true };

/**
 * BLN-SPEC with tfjs ops. With `pop`/`use`, each statistic flagged in `use` comes from `pop`
 * (batch statistics of shape x.shape.slice(1), feature statistics of size M); otherwise from x.
 */
export function blnComposite(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  N: number = x.shape[0]!,
  eps = 1e-3,
  pop?: Pop,
  use: InferUse = NO_POP,
): tf.Tensor {
  return tf.tidy(() => {
    const C = x.shape[x.rank - 1]!;
    const inner = x.shape.slice(1);
    const featShape = [1, ...x.shape.slice(1, -1), 1];
    // moments only where a statistic comes from the mini-batch
    const b = use.batchMean && use.batchVar ? undefined : tf.moments(x, 0);
    const f = use.featureMean && use.featureVar ? undefined : tf.moments(x, -1, true);
    const mb = use.batchMean ? pop!.batchMean.reshape(inner) : b!.mean;
    const vb = use.batchVar ? pop!.batchVar.reshape(inner) : b!.variance;
    const mf = use.featureMean ? pop!.featureMean.reshape(featShape) : f!.mean;
    const vf = use.featureVar ? pop!.featureVar.reshape(featShape) : f!.variance;
    const xb = x.sub(mb).div(vb.add(eps).sqrt());
    const xf = x.sub(mf).div(vf.add(eps).sqrt());
    const wf = 1 / N - 1e-4;
    const wb = 1 - (1 / N + 1e-4);
    return xf.mul(wf).add(xb.mul(wb)).mul(gamma).div(Math.sqrt(C)).add(beta);
  });
}

/** dx, dgamma, dbeta of sum(dy * blnComposite(x)) by tfjs autodiff (it re-runs the forward). */
export function blnCompositeGrads(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, dy: tf.Tensor, N?: number, eps?: number): tf.Tensor[] {
  return tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => blnComposite(xx, gg, bb, N, eps))([x, gamma, beta], dy);
}
