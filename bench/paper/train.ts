// One run of the demo: a model trained at one batch size with one norm and one seed, validated
// after every epoch, with the best-validation-loss checkpoint kept; then the test set on the
// last epoch's and on that checkpoint's weights, and, for BLN, the 16 inference configurations
// ranked on the validation set (the authors' grid search, ranked on validation instead of test).
import * as tf from '@tensorflow/tfjs';

import { allInferenceConfigs, resetPopulation, setInferenceConfig, type InferUse } from '../../lib/tfjs';
import { batchTensors, permutation, type Dataset, type Split } from './data';
import { buildCnn, NORM_NAMES, type Norm } from './model';
import type { EpochRow, GridRow, RunResult } from './report';

export interface RunSpec {
  norm: Norm;
  batchSize: number;
  train: number;
  epochs: number;
  seed: number;
}

/** Where a run reports its progress (bars in the main thread; messages from a worker). */
export interface RunProgress {
  /** A new epoch of `total` rows (training + validation). */
  epoch(label: string, total: number): void;
  /** `n` more rows done (of the run's total: see runTotal). */
  tick(n: number, phase: string, info: string): Promise<void> | void;
  log(line: string): void;
}

/** Rows a run processes, for its progress bar: training and validation per epoch, the test set twice, BLN's grid. */
export function runTotal(spec: RunSpec, val: number, test: number): number {
  return spec.epochs * (spec.train + val) + 2 * test + (spec.norm === 'bln' ? 16 * val : 0);
}

/** Rows evaluated per model.evaluate call: a multiple of the evaluation batch (a batch never spans two calls). */
function chunkRows(batchSize: number): number {
  return batchSize >= 100 ? batchSize : batchSize * Math.floor(100 / batchSize);
}

/**
 * Loss and accuracy of `model` on `split`, evaluated at `batchSize` (inference mode). The split
 * is fed in chunks built from its Float32Array: model.evaluate slices each batch out of the tensor
 * it is given, and a wasm slice copies that whole tensor first.
 */
export async function evaluateSplit(model: tf.LayersModel, split: Split, batchSize: number, onChunk?: (rows: number) => Promise<void> | void): Promise<{ loss: number; acc: number }> {
  const rows = chunkRows(batchSize);
  let loss = 0;
  let acc = 0;
  for (let s = 0; s < split.n; s += rows) {
    const e = Math.min(split.n, s + rows);
    const { x, y } = batchTensors(split, null, s, e);
    const out = model.evaluate(x, y, { batchSize, verbose: 0 }) as tf.Scalar[];
    const [l, a] = out.map((t) => t.dataSync()[0]!);
    tf.dispose([x, y, ...out]);
    loss += l! * (e - s);
    acc += a! * (e - s);
    await onChunk?.(e - s);
  }
  return { loss: loss / split.n, acc: acc / split.n };
}

/** Batch size for evaluation: BatchNorm (moving statistics) and LayerNorm (per example) do not depend on it; BLN does. */
function evalBatch(norm: Norm, batchSize: number): number {
  return norm === 'bln' ? batchSize : 500;
}

function snapshot(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync().slice() as Float32Array);
}

function restore(model: tf.LayersModel, values: Float32Array[]): void {
  const ws = model.getWeights();
  const ts = values.map((v, i) => tf.tensor(v, ws[i]!.shape));
  model.setWeights(ts);
  tf.dispose(ts);
}

export async function runOne(spec: RunSpec, data: Dataset, bars: RunProgress): Promise<RunResult> {
  const { norm, batchSize, epochs: nEpochs, seed } = spec;
  const train: Split = { x: data.train.x.subarray(0, spec.train * 784), labels: data.train.labels.subarray(0, spec.train), n: spec.train };
  const title = `${NORM_NAMES[norm]} b${batchSize} s${seed}`;
  const model = buildCnn(norm, batchSize, seed * 100);
  const steps = Math.ceil(train.n / batchSize);
  const eb = evalBatch(norm, batchSize);
  const epochs: EpochRow[] = [];
  let trainSeconds = 0;
  let evalSeconds = 0;
  let best: { epoch: number; valLoss: number; weights: Float32Array[] } | null = null;
  for (let e = 0; e < nEpochs; e++) {
    bars.epoch(`epoch ${e + 1}/${nEpochs}`, train.n + data.val.n);
    const t0 = performance.now();
    // A fixed shuffle per seed and epoch; the population statistics restart each epoch (the authors' callback).
    const order = permutation(train.n, seed * 1000 + e);
    if (norm === 'bln') resetPopulation(model);
    let lossSum = 0;
    let accSum = 0;
    for (let s = 0; s < steps; s++) {
      const start = s * batchSize;
      const end = Math.min(train.n, start + batchSize);
      const { x, y } = batchTensors(train, order, start, end);
      const [l, a] = (await model.trainOnBatch(x, y)) as number[];
      tf.dispose([x, y]);
      lossSum += l! * (end - start);
      accSum += a! * (end - start);
      await bars.tick(end - start, 'train', `loss ${(lossSum / end).toFixed(3)}`);
    }
    const t1 = performance.now();
    const val = await evaluateSplit(model, data.val, eb, (n) => bars.tick(n, 'validation', ''));
    const t2 = performance.now();
    trainSeconds += (t1 - t0) / 1000;
    evalSeconds += (t2 - t1) / 1000;
    const row: EpochRow = { epoch: e + 1, trainLoss: lossSum / train.n, trainAcc: accSum / train.n, valLoss: val.loss, valAcc: val.acc, seconds: (t2 - t0) / 1000 };
    epochs.push(row);
    if (best === null || row.valLoss < best.valLoss) best = { epoch: row.epoch, valLoss: row.valLoss, weights: snapshot(model) };
    bars.log(
      `  ${title} epoch ${row.epoch}: train loss ${row.trainLoss.toFixed(4)} acc ${(100 * row.trainAcc).toFixed(2)}% | ` +
        `val loss ${row.valLoss.toFixed(4)} acc ${(100 * row.valAcc).toFixed(2)}% | ${row.seconds.toFixed(1)} s`,
    );
  }
  const t3 = performance.now();
  const tick = (phase: string) => (n: number) => bars.tick(n, phase, '');
  const test = await evaluateSplit(model, data.test, eb, tick('test'));
  restore(model, best!.weights);
  const testAtBest = await evaluateSplit(model, data.test, eb, tick('test (best epoch)'));
  const result: RunResult = { norm, batchSize, seed, train: train.n, epochs, test, bestEpoch: best!.epoch, testAtBest, trainSeconds, evalSeconds: 0 };
  if (norm === 'bln') {
    // The 16 configurations on the validation set, on the best-validation-loss checkpoint; ranked by
    // validation loss (ties keep the configuration order), as searchInferenceConfig ranks.
    const grid: (GridRow & { i: number })[] = [];
    for (const [i, use] of allInferenceConfigs().entries()) {
      setInferenceConfig(model, use);
      const v = await evaluateSplit(model, data.val, batchSize, tick(`grid search ${i + 1}/16`));
      grid.push({ use, loss: v.loss, acc: v.acc, i });
    }
    grid.sort((a, b) => (Number.isNaN(a.loss) !== Number.isNaN(b.loss) ? (Number.isNaN(a.loss) ? 1 : -1) : a.loss - b.loss || a.i - b.i));
    result.grid = grid.map(({ use, loss, acc }) => ({ use, loss, acc }));
    setInferenceConfig(model, grid[0]!.use);
    result.testBest = await evaluateSplit(model, data.test, batchSize);
    const none: InferUse = { batchMean: false, batchVar: false, featureMean: false, featureVar: false };
    setInferenceConfig(model, none);
  }
  evalSeconds += (performance.now() - t3) / 1000;
  result.evalSeconds = evalSeconds;
  model.optimizer.dispose();
  model.dispose();
  return result;
}
