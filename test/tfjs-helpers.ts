// Small utilities shared by the tfjs*.test.ts files (the reference they check against, BLN
// written with plain tfjs ops, is in tfjs-composite.ts).
import * as tf from '@tensorflow/tfjs';

/** ||got - ref|| / ||ref||, in float64 on the host (bench/bench.ts uses it too). */
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
