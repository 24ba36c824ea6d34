// The paper's CNN (a LeNet-5): conv(6, 5x5, tanh), avgpool, norm, conv(16, 5x5, tanh), avgpool,
// norm, dense(120, tanh), norm, dense(84, tanh), norm, dense(10, softmax); Adam lr 0.002.
import * as tf from '@tensorflow/tfjs';

import { batchLayerNormalization } from '../../lib/tfjs';

export type Norm = 'bln' | 'bn' | 'ln';
export const NORMS: readonly Norm[] = ['bln', 'bn', 'ln'];
export const NORM_NAMES: Record<Norm, string> = {
  bln: 'BatchLayerNorm',
  bn: 'BatchNorm',
  ln: 'LayerNorm',
};

function normLayer(norm: Norm, batchSize: number, i: number): tf.layers.Layer {
  const name = `${norm}_${i}`;
  if (norm === 'bln') return batchLayerNormalization({ batchSize, name });
  if (norm === 'bn') return tf.layers.batchNormalization({ name });
  return tf.layers.layerNormalization({ name });
}

/** The CNN with `norm` after each hidden block; weights from fixed seeds (the same for every norm). */
export function buildCnn(norm: Norm, batchSize: number, seed: number, learningRate = 0.002): tf.Sequential {
  const init = (k: number) => tf.initializers.glorotUniform({ seed: seed + k });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 6, kernelSize: 5, activation: 'tanh', kernelInitializer: init(1) }),
      tf.layers.averagePooling2d({ poolSize: 2 }),
      normLayer(norm, batchSize, 1),
      tf.layers.conv2d({ filters: 16, kernelSize: 5, activation: 'tanh', kernelInitializer: init(2) }),
      tf.layers.averagePooling2d({ poolSize: 2 }),
      normLayer(norm, batchSize, 2),
      tf.layers.flatten(),
      tf.layers.dense({ units: 120, activation: 'tanh', kernelInitializer: init(3) }),
      normLayer(norm, batchSize, 3),
      tf.layers.dense({ units: 84, activation: 'tanh', kernelInitializer: init(4) }),
      normLayer(norm, batchSize, 4),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(5) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(learningRate), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  return model;
}
