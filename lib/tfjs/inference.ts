// Model-level helpers: the epoch callback, the inference flags, and the authors' grid search.
import * as tfc from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import { STAT_KEYS, type InferUse } from '../types';
import { BatchLayerNormalization } from './layer';
import { resolveUse } from './op';

/** Something holding layers: a LayersModel (Sequential or functional, nested ones too), a layer, or a list. */
export type LayerContainer = tfl.LayersModel | tfl.layers.Layer | readonly (tfl.LayersModel | tfl.layers.Layer)[];

/** Every BatchLayerNormalization layer inside `target`, nested models included, each once. */
export function batchLayerNormLayers(target: LayerContainer): BatchLayerNormalization[] {
  const found: BatchLayerNormalization[] = [];
  const seen = new Set<unknown>();
  const visit = (l: unknown): void => {
    if (l == null || seen.has(l)) return;
    seen.add(l);
    if (l instanceof BatchLayerNormalization) {
      found.push(l);
      return;
    }
    if (Array.isArray(l)) return l.forEach(visit);
    const inner = (l as { layers?: unknown[] }).layers;
    if (Array.isArray(inner)) inner.forEach(visit);
    // Wrappers (TimeDistributed, Bidirectional) hold their layer(s) here.
    visit((l as { layer?: unknown }).layer);
    visit((l as { forwardLayer?: unknown }).forwardLayer);
    visit((l as { backwardLayer?: unknown }).backwardLayer);
  };
  visit(target);
  return found;
}

/** Clears the population accumulators of every BLN layer in `target`. */
export function resetPopulation(target: LayerContainer): void {
  for (const l of batchLayerNormLayers(target)) l.resetPopulation();
}

/**
 * The callback blnCallback() returns: a tf.CustomCallback that resets every BLN layer's
 * accumulators at each epoch start. It also resolves the epoch logs at each epoch end, as any
 * CustomCallback with onEpochEnd does, so their scalars are freed every epoch.
 */
export class BatchLayerNormCallback extends tfl.CustomCallback {
  private fitModel: unknown = null;

  constructor(private readonly target?: LayerContainer) {
    super(
      {
        onEpochBegin: async () => {
          const t = (this.target ?? this.fitModel) as LayerContainer | null;
          if (t) resetPopulation(t);
        },
        onEpochEnd: async () => {},
      },
      'never',
    );
  }

  /** model.fit hands the model being trained here. */
  override setModel(model: Parameters<tfl.CustomCallback['setModel']>[0]): void {
    this.fitModel = model;
  }
}

/**
 * A tf.Callback for model.fit: at the start of every epoch it resets the population
 * accumulators of every BLN layer of the model being trained (or of `target`), so inference
 * reads the statistics of the last epoch (the authors' callback).
 */
export function blnCallback(target?: LayerContainer): BatchLayerNormCallback {
  return new BatchLayerNormCallback(target);
}

/** Sets the four inference flags of every BLN layer in the model (missing keys: false). No rebuild. */
export function setInferenceConfig(model: LayerContainer, use: Partial<InferUse>): void {
  const u = resolveUse(use);
  for (const l of batchLayerNormLayers(model)) l.use = u;
}

/** All 16 inference configurations; index bit i is STAT_KEYS[i] (batchMean, batchVar, featureMean, featureVar). */
export function allInferenceConfigs(): InferUse[] {
  return Array.from({ length: 16 }, (_, i) => ({
    batchMean: (i & 1) !== 0,
    batchVar: (i & 2) !== 0,
    featureMean: (i & 4) !== 0,
    featureVar: (i & 8) !== 0,
  }));
}

export interface SearchInferenceConfigOptions {
  /** Batch size of the evaluation (it sets the mini-batch statistics). Default: the first BLN layer's batchSize, else 32. */
  batchSize?: number;
  /** What to rank by: 'loss' (default) or one of model.metricsNames. */
  rankBy?: string;
  /** Whether larger is better for rankBy. Default false for losses, true for names containing 'acc'. */
  higherIsBetter?: boolean;
  /** Leave the best configuration set on the model (default false: the flags are restored). */
  apply?: boolean;
  /** Called after each configuration is evaluated (done = 1..16). */
  onProgress?: (done: number, total: number) => void;
}

export interface InferenceConfigResult {
  use: InferUse;
  loss: number;
  /** The compiled metrics by name (model.metricsNames minus 'loss'). */
  metrics: Record<string, number>;
}

/**
 * The authors' grid search: evaluates the model on held-out (x, y) under each of the 16
 * inference configurations and returns them ranked best first. The model must be compiled.
 * Nothing is rebuilt or reloaded: only the layers' flags change, and they are restored
 * (or set to the best with `apply: true`).
 */
export async function searchInferenceConfig(
  model: tfl.LayersModel,
  x: tfc.Tensor | tfc.Tensor[],
  y: tfc.Tensor | tfc.Tensor[],
  options: SearchInferenceConfigOptions = {},
): Promise<InferenceConfigResult[]> {
  if (!(model instanceof tfl.LayersModel)) throw new TypeError('searchInferenceConfig: model must be a tf.LayersModel');
  const layers = batchLayerNormLayers(model);
  if (layers.length === 0) throw new Error('searchInferenceConfig: the model has no BatchLayerNormalization layer');
  const names = model.metricsNames;
  if (!names || names.length === 0) throw new Error('searchInferenceConfig: compile the model first (model.compile({loss, metrics}))');
  const rankBy = options.rankBy ?? 'loss';
  if (!names.includes(rankBy)) throw new RangeError(`searchInferenceConfig: rankBy '${rankBy}' is not one of ${names.join(', ')}`);
  const higher = options.higherIsBetter ?? (rankBy !== 'loss' && /acc/i.test(rankBy));
  const batchSize = options.batchSize ?? layers.find((l) => l.blnBatchSize != null)?.blnBatchSize ?? 32;
  const saved = layers.map((l) => l.use);
  const results: (InferenceConfigResult & { index: number })[] = [];
  try {
    for (const [index, use] of allInferenceConfigs().entries()) {
      for (const l of layers) l.use = use;
      const out = model.evaluate(x, y, { batchSize, verbose: 0 });
      const scalars = Array.isArray(out) ? out : [out];
      const values = await Promise.all(scalars.map(async (s) => (await s.data())[0]!));
      tfc.dispose(scalars);
      const metrics: Record<string, number> = {};
      names.forEach((n, i) => {
        if (n !== 'loss') metrics[n] = values[i]!;
      });
      results.push({ use: { ...use }, loss: values[names.indexOf('loss')] ?? values[0]!, metrics, index });
      options.onProgress?.(index + 1, 16);
    }
  } finally {
    layers.forEach((l, i) => (l.use = saved[i]!));
  }
  const key = (r: InferenceConfigResult) => (rankBy === 'loss' ? r.loss : r.metrics[rankBy]!);
  // NaN ranks last; ties keep the configuration order.
  results.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (Number.isNaN(ka) !== Number.isNaN(kb)) return Number.isNaN(ka) ? 1 : -1;
    const d = higher ? kb - ka : ka - kb;
    return d !== 0 && !Number.isNaN(d) ? d : a.index - b.index;
  });
  if (options.apply) for (const l of layers) l.use = results[0]!.use;
  return results.map(({ use, loss, metrics }) => ({ use, loss, metrics }));
}

export { STAT_KEYS };
