// Shared by the tfjs*.test.ts files: BLN written with plain tfjs ops (the reference the
// kernels are checked against, differentiated by tfjs autodiff), and small utilities.
import * as tf from '@tensorflow/tfjs';

import type { InferUse } from '../lib/index';

export type Pop = { batchMean: tf.Tensor; batchVar: tf.Tensor; featureMean: tf.Tensor; featureVar: tf.Tensor };

export const NO_POP: InferUse = { batchMean: false, batchVar: false, featureMean: false, featureVar: false };

export function allUses(): InferUse[] {
  return Array.from({ length: 16 }, (_, i) => ({
    batchMean: (i & 1) !== 0,
    batchVar: (i & 2) !== 0,
    featureMean: (i & 4) !== 0,
    featureVar: (i & 8) !== 0,
  }));
}

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
    const b = tf.moments(x, 0);
    const f = tf.moments(x, -1, true);
    const mb = use.batchMean ? pop!.batchMean.reshape(inner) : b.mean;
    const vb = use.batchVar ? pop!.batchVar.reshape(inner) : b.variance;
    const mf = use.featureMean ? pop!.featureMean.reshape(featShape) : f.mean;
    const vf = use.featureVar ? pop!.featureVar.reshape(featShape) : f.variance;
    const xb = x.sub(mb).div(vb.add(eps).sqrt());
    const xf = x.sub(mf).div(vf.add(eps).sqrt());
    const wf = 1 / N - 1e-4;
    const wb = 1 - (1 / N + 1e-4);
    return xf.mul(wf).add(xb.mul(wb)).mul(gamma).div(Math.sqrt(C)).add(beta);
  });
}

/** ||got - ref|| / ||ref||, in float64 on the host. */
export function relErr(got: tf.Tensor | ArrayLike<number>, ref: tf.Tensor | ArrayLike<number>): number {
  const g = got instanceof tf.Tensor ? got.dataSync() : got;
  const r = ref instanceof tf.Tensor ? ref.dataSync() : ref;
  if (g.length !== r.length) throw new Error(`length ${g.length} vs ${r.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < g.length; i++) {
    num += (g[i]! - r[i]!) ** 2;
    den += r[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** Memory now: tensors the engine tracks and data ids the backend holds. */
export function memory(): { tensors: number; dataIds: number } {
  return { tensors: tf.memory().numTensors, dataIds: tf.engine().backend.numDataIds() };
}

/** A seeded uniform generator (LCG), for fixed data. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) + 0.5) / 4294967296;
}

/** Fixed classification data: x ~ N(0,1) of the given shape, labels from a fixed random projection. */
export function classificationData(shape: number[], classes: number, seed: number): { x: tf.Tensor; y: tf.Tensor } {
  return tf.tidy(() => {
    const x = tf.randomNormal(shape, 0, 1, 'float32', seed);
    const flat = x.reshape([shape[0]!, -1]);
    const w = tf.randomNormal([flat.shape[1]!, classes], 0, 1, 'float32', seed + 1);
    const labels = flat.matMul(w).argMax(1);
    return { x, y: tf.oneHot(labels, classes).toFloat() };
  });
}

/** Saves into memory and loads back (tf.io.withSaveHandler / tf.io.fromMemory). */
export async function saveAndLoad(model: tf.LayersModel): Promise<{ loaded: tf.LayersModel; artifacts: tf.io.ModelArtifacts }> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
  return { loaded, artifacts: artifacts! };
}
