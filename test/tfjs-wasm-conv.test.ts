// registerWasmConvGradients(): the Conv2DBackpropFilter kernel for tfjs-backend-wasm, checked
// against the cpu backend's (pure-JS) kernel on the same inputs, with the engine's per-kernel
// leak check on (IS_TEST), and a Conv2D model training on wasm.
import * as tf from '@tensorflow/tfjs';

import { batchLayerNormalization, CONV2D_BACKPROP_FILTER, registerWasmConvGradients } from '../lib/tfjs';
import { memory, relErr } from './tfjs-helpers';
import { useBackend } from './tfjs-suites';

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  x: [number, number, number, number];
  k: [number, number];
  co: number;
  strides: number | [number, number];
  pad: Pad;
}

const CASES: Case[] = [
  // the paper's LeNet layers: 5x5 'valid' (batch 4 and 1: the cpu reference is slow)
  { x: [4, 28, 28, 1], k: [5, 5], co: 6, strides: 1, pad: 'valid' },
  { x: [1, 12, 12, 6], k: [5, 5], co: 16, strides: 1, pad: 'valid' },
  // odd and even kernels, 'same' (even kernels pad unevenly), batch 1
  { x: [1, 9, 9, 3], k: [3, 3], co: 4, strides: 1, pad: 'same' },
  { x: [3, 8, 7, 2], k: [4, 4], co: 3, strides: 1, pad: 'same' },
  { x: [2, 8, 8, 2], k: [2, 3], co: 5, strides: 1, pad: 'valid' },
  // explicit padding (as a number and per side)
  { x: [2, 7, 7, 1], k: [3, 3], co: 2, strides: 1, pad: 1 },
  { x: [1, 7, 6, 2], k: [3, 2], co: 2, strides: 1, pad: [[0, 0], [1, 2], [2, 0], [0, 0]] },
  // strides > 1: windows that do not reach the last rows/columns
  { x: [3, 10, 9, 2], k: [3, 3], co: 5, strides: 2, pad: 'same' },
  { x: [2, 11, 10, 2], k: [3, 4], co: 3, strides: [2, 3], pad: 'valid' },
  { x: [1, 9, 9, 1], k: [4, 4], co: 2, strides: 2, pad: 'same' },
];

/** The filter gradient of conv2d(x, w) for an upstream gradient dy, on the current backend. */
function filterGrad(c: Case, seed: number): Float32Array {
  return tf.tidy(() => {
    const x = tf.randomNormal(c.x, 0, 1, 'float32', seed) as tf.Tensor4D;
    const w = tf.randomNormal([c.k[0], c.k[1], c.x[3], c.co], 0, 1, 'float32', seed + 1) as tf.Tensor4D;
    const y = tf.conv2d(x, w, c.strides, c.pad);
    const dy = tf.randomNormal(y.shape, 0, 1, 'float32', seed + 2);
    return tf.grad((wv: tf.Tensor) => tf.conv2d(x, wv as tf.Tensor4D, c.strides, c.pad).mul(dy).sum())(w).dataSync() as Float32Array;
  });
}

describe('Conv2DBackpropFilter on wasm (registerWasmConvGradients)', () => {
  beforeAll(async () => {
    require('@tensorflow/tfjs-backend-wasm');
    registerWasmConvGradients();
    await useBackend('wasm');
  });
  afterAll(() => tf.env().set('IS_TEST', false));

  test('registering again keeps the kernel there unless forced', () => {
    const k = tf.getKernel(CONV2D_BACKPROP_FILTER, 'wasm');
    expect(k).toBeDefined();
    expect(registerWasmConvGradients()).toBe(false);
    expect(tf.getKernel(CONV2D_BACKPROP_FILTER, 'wasm')).toBe(k);
    expect(registerWasmConvGradients({ force: true })).toBe(true);
    expect(tf.getKernel(CONV2D_BACKPROP_FILTER, 'wasm')?.kernelFunc).toBe(k!.kernelFunc);
  });

  test.each(CASES.map((c) => [JSON.stringify(c), c] as const))('matches the cpu backend: %s', async (_name, c) => {
    await tf.setBackend('cpu');
    const ref = filterGrad(c, 7);
    await tf.setBackend('wasm');
    const before = memory();
    const got = filterGrad(c, 7);
    expect(memory()).toEqual(before);
    expect(got.length).toBe(c.k[0] * c.k[1] * c.x[3] * c.co);
    expect(relErr(got, ref)).toBeLessThan(1e-5);
  });

  test('the kernel called directly leaves only its output behind', () => {
    const x = tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 3);
    const dy = tf.randomNormal([2, 3, 3, 4], 0, 1, 'float32', 4);
    const before = memory();
    const dw = tf.engine().runKernel(CONV2D_BACKPROP_FILTER, { x, dy }, { strides: [2, 2], pad: 'same', dataFormat: 'NHWC', filterShape: [2, 2, 3, 4] }) as tf.Tensor;
    expect(dw.shape).toEqual([2, 2, 3, 4]);
    expect(memory()).toEqual({ tensors: before.tensors + 1, dataIds: before.dataIds + 1 });
    tf.dispose([x, dy, dw]);
  });

  test('NCHW is refused with a message', () => {
    const x = tf.zeros([1, 1, 4, 4]);
    const dy = tf.zeros([1, 1, 2, 2]);
    expect(() => tf.engine().runKernel(CONV2D_BACKPROP_FILTER, { x, dy }, { strides: [1, 1], pad: 'valid', dataFormat: 'NCHW', filterShape: [3, 3, 1, 1] })).toThrow(/NCHW/);
    tf.dispose([x, dy]);
  });

  test('a Conv2D + BLN model trains on wasm: loss falls, no tensors leak across steps', async () => {
    // The engine's per-kernel check is off here: tfjs-backend-wasm's own fused MatMul trips it inside training.
    tf.env().set('IS_TEST', false);
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
        batchLayerNormalization({ batchSize: 8 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
    const x = tf.randomNormal([8, 8, 8, 1], 0, 1, 'float32', 5);
    const y = tf.tidy(() => tf.oneHot(x.mean([1, 2, 3]).greater(0).toInt(), 2).toFloat());
    const first = (await model.trainOnBatch(x, y)) as number;
    const tensors = tf.memory().numTensors;
    let last = first;
    for (let i = 0; i < 30; i++) last = (await model.trainOnBatch(x, y)) as number;
    expect(tf.memory().numTensors).toBe(tensors);
    expect(last).toBeLessThan(0.5 * first);
    tf.dispose([x, y]);
    model.dispose();
    tf.env().set('IS_TEST', true);
  });
});
