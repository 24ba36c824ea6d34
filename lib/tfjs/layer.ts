// BatchLayerNormalization: a tf.layers.Layer around the BLN kernels.
import * as tfc from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { LayerArgs } from '@tensorflow/tfjs-layers/dist/engine/topology';
import type { Kwargs } from '@tensorflow/tfjs-layers/dist/types';

import type { Device, InferUse } from '../types';
import { BATCH_LAYER_NORM, statShapes, type BatchLayerNormAttrs } from './kernels';
import { runInfer, type StatTensors } from './op';

type Serializable = tfc.serialization.Serializable;
/** An initializer, regularizer or constraint: an instance, its identifier ('ones', 'l1l2', ...) or its serialized {className, config}. */
export type SerializableSpec<T> = T | string | { className: string; config?: tfc.serialization.ConfigDict };

type Initializer = ReturnType<typeof tfl.initializers.ones>;
type Regularizer = ReturnType<typeof tfl.regularizers.l1l2>;
type Constraint = ReturnType<typeof tfl.constraints.nonNeg>;

export interface BatchLayerNormalizationArgs extends LayerArgs {
  /**
   * N of the spec: the mixing weights are wf = 1/N - 1e-4, wb = 1 - (1/N + 1e-4). Set it to the
   * training batch size so serving at another batch size keeps the trained mixing. Unset: each
   * call uses its input's batch dimension. (Unlike other layers' `batchSize`, this never fixes
   * the batch dimension of the input shape.)
   */
  batchSize?: number;
  /** Added to the variances. Default 1e-3 (the authors' `offset`). */
  epsilon?: number;
  /** Inference: batch mean from the population (the authors' flag name). Default false. */
  batchMovingMean?: boolean;
  /** Inference: batch variance from the population. Default false. */
  batchMovingVar?: boolean;
  /** Inference: feature mean from the population. Default false. */
  featureMovingMean?: boolean;
  /** Inference: feature variance from the population. Default false. */
  featureMovingVar?: boolean;
  /** Default 'ones'. */
  gammaInitializer?: SerializableSpec<Initializer>;
  /** Default 'zeros'. */
  betaInitializer?: SerializableSpec<Initializer>;
  gammaRegularizer?: SerializableSpec<Regularizer>;
  betaRegularizer?: SerializableSpec<Regularizer>;
  gammaConstraint?: SerializableSpec<Constraint>;
  betaConstraint?: SerializableSpec<Constraint>;
  /** Where the native core runs: 'auto' (default), 'cpu' or 'cuda'. Machine-specific, so not part of getConfig. */
  device?: Device;
}

// The identifiers tfjs-layers accepts as strings (its *_IDENTIFIER_REGISTRY_SYMBOL_MAP tables).
const IDENTIFIERS: Record<string, string> = {
  constant: 'Constant', glorotNormal: 'GlorotNormal', glorotUniform: 'GlorotUniform', heNormal: 'HeNormal',
  heUniform: 'HeUniform', identity: 'Identity', leCunNormal: 'LeCunNormal', leCunUniform: 'LeCunUniform',
  ones: 'Ones', orthogonal: 'Orthogonal', randomNormal: 'RandomNormal', randomUniform: 'RandomUniform',
  truncatedNormal: 'TruncatedNormal', varianceScaling: 'VarianceScaling', zeros: 'Zeros',
  l1l2: 'L1L2', maxNorm: 'MaxNorm', minMaxNorm: 'MinMaxNorm', nonNeg: 'NonNeg', unitNorm: 'UnitNorm',
};

/** Resolves an initializer/regularizer/constraint through tfjs's serialization registry (public API only). */
function resolve<T>(spec: SerializableSpec<T> | null | undefined, what: string): T | null {
  if (spec == null) return null;
  if (spec instanceof tfc.serialization.Serializable) return spec as T;
  let className: string;
  let config: tfc.serialization.ConfigDict = {};
  if (typeof spec === 'string') {
    className = IDENTIFIERS[spec] ?? spec;
  } else if (typeof spec === 'object' && typeof (spec as { className?: unknown }).className === 'string') {
    className = (spec as { className: string }).className;
    config = (spec as { config?: tfc.serialization.ConfigDict }).config ?? {};
  } else {
    throw new TypeError(`BatchLayerNormalization: cannot use ${JSON.stringify(spec)} as ${what}`);
  }
  const entry = tfc.serialization.SerializationMap.getMap().classNameMap[className];
  if (!entry) throw new TypeError(`BatchLayerNormalization: unknown ${what} '${className}'`);
  const [cls, fromConfig] = entry;
  return fromConfig(cls, config) as unknown as T;
}

function serialize(obj: unknown): tfc.serialization.ConfigDictValue {
  if (obj == null) return null;
  const s = obj as Serializable;
  return { className: s.getClassName(), config: s.getConfig() };
}

function flag(v: unknown, name: string): boolean {
  if (v == null) return false;
  if (typeof v !== 'boolean') throw new TypeError(`BatchLayerNormalization: ${name} must be a boolean`);
  return v;
}

/**
 * Batch Layer Normalization (Ziaee & Çano, arXiv 2209.08898) as a tfjs layer.
 *
 * Weights: trainable `gamma` and `beta` ([C]); non-trainable population accumulators
 * (`population_*_sum` and `population_steps`), so `model.save` keeps them. In training
 * (`kwargs.training`, default false) `call` uses mini-batch statistics and adds them to the
 * accumulators. At inference the four flags pick, per statistic, the population average or
 * the mini-batch at hand.
 */
export class BatchLayerNormalization extends tfl.layers.Layer {
  static className = 'BatchLayerNormalization';

  readonly blnBatchSize: number | null;
  readonly epsilon: number;
  /** Where the native core runs ('auto', 'cpu', 'cuda'); not serialized. */
  device: Device;
  batchMovingMean: boolean;
  batchMovingVar: boolean;
  featureMovingMean: boolean;
  featureMovingVar: boolean;
  private readonly gammaInitializer: Initializer;
  private readonly betaInitializer: Initializer;
  private readonly gammaRegularizer: Regularizer | null;
  private readonly betaRegularizer: Regularizer | null;
  private readonly gammaConstraint: Constraint | null;
  private readonly betaConstraint: Constraint | null;

  private gamma: tfl.LayerVariable | null = null;
  private beta: tfl.LayerVariable | null = null;
  private sums: { [K in keyof StatTensors]: tfl.LayerVariable } | null = null;
  private steps: tfl.LayerVariable | null = null;

  constructor(args: BatchLayerNormalizationArgs = {}) {
    // `batchSize` is ours (N of the spec): tfjs would turn it into a fixed batch dimension.
    const { batchSize, device, ...layerArgs } = args ?? {};
    super(layerArgs as LayerArgs);
    if (batchSize != null && (!Number.isInteger(batchSize) || batchSize < 1))
      throw new RangeError(`BatchLayerNormalization: batchSize must be a positive integer but is ${batchSize}`);
    const epsilon = args.epsilon ?? 1e-3;
    if (typeof epsilon !== 'number' || !Number.isFinite(epsilon) || epsilon <= 0)
      throw new RangeError(`BatchLayerNormalization: epsilon must be finite and > 0 but is ${epsilon}`);
    if (device != null && !['auto', 'cpu', 'cuda'].includes(device))
      throw new TypeError(`BatchLayerNormalization: device must be 'auto', 'cpu' or 'cuda' but is ${String(device)}`);
    this.device = device ?? 'auto';
    this.blnBatchSize = batchSize ?? null;
    this.epsilon = epsilon;
    this.batchMovingMean = flag(args.batchMovingMean, 'batchMovingMean');
    this.batchMovingVar = flag(args.batchMovingVar, 'batchMovingVar');
    this.featureMovingMean = flag(args.featureMovingMean, 'featureMovingMean');
    this.featureMovingVar = flag(args.featureMovingVar, 'featureMovingVar');
    this.gammaInitializer = resolve<Initializer>(args.gammaInitializer ?? 'ones', 'initializer')!;
    this.betaInitializer = resolve<Initializer>(args.betaInitializer ?? 'zeros', 'initializer')!;
    this.gammaRegularizer = resolve<Regularizer>(args.gammaRegularizer, 'regularizer');
    this.betaRegularizer = resolve<Regularizer>(args.betaRegularizer, 'regularizer');
    this.gammaConstraint = resolve<Constraint>(args.gammaConstraint, 'constraint');
    this.betaConstraint = resolve<Constraint>(args.betaConstraint, 'constraint');
    this.supportsMasking = true;
  }

  /** The inference flags as the core's `use` (true = population). */
  get use(): InferUse {
    return {
      batchMean: this.batchMovingMean,
      batchVar: this.batchMovingVar,
      featureMean: this.featureMovingMean,
      featureVar: this.featureMovingVar,
    };
  }

  set use(u: InferUse) {
    this.batchMovingMean = flag(u.batchMean, 'use.batchMean');
    this.batchMovingVar = flag(u.batchVar, 'use.batchVar');
    this.featureMovingMean = flag(u.featureMean, 'use.featureMean');
    this.featureMovingVar = flag(u.featureVar, 'use.featureVar');
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? (inputShape as tfl.Shape[])[0]! : inputShape) as tfl.Shape;
    if (shape.length < 2) throw new Error(`BatchLayerNormalization needs inputs of rank >= 2 ([batch, ..., features]) but got shape ${JSON.stringify(shape)}`);
    const inner = shape.slice(1);
    if (inner.some((d) => d == null))
      throw new Error(`BatchLayerNormalization needs every dimension but the batch one to be known (the population statistics have them) but got shape ${JSON.stringify(shape)}`);
    const dims = inner as number[];
    const C = dims[dims.length - 1]!;
    this.inputSpec = [new tfl.InputSpec({ ndim: shape.length, shape: [null, ...dims] })];
    this.gamma = this.addWeight('gamma', [C], 'float32', this.gammaInitializer, this.gammaRegularizer ?? undefined, true, this.gammaConstraint ?? undefined);
    this.beta = this.addWeight('beta', [C], 'float32', this.betaInitializer, this.betaRegularizer ?? undefined, true, this.betaConstraint ?? undefined);
    const s = statShapes([1, ...dims]);
    const zeros = tfl.initializers.zeros();
    const featureShape = s.population.length ? s.population : [1];
    this.sums = {
      batchMean: this.addWeight('population_batch_mean_sum', s.batch, 'float32', zeros, undefined, false),
      batchVar: this.addWeight('population_batch_var_sum', s.batch, 'float32', zeros, undefined, false),
      featureMean: this.addWeight('population_feature_mean_sum', featureShape, 'float32', zeros, undefined, false),
      featureVar: this.addWeight('population_feature_var_sum', featureShape, 'float32', zeros, undefined, false),
    };
    this.steps = this.addWeight('population_steps', [], 'float32', zeros, undefined, false);
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  private attrs(x: tfc.Tensor): BatchLayerNormAttrs {
    return { epsilon: this.epsilon, batchSize: this.blnBatchSize ?? x.shape[0]!, device: this.device };
  }

  override call(inputs: tfc.Tensor | tfc.Tensor[], kwargs: Kwargs): tfc.Tensor {
    return tfc.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      if (x.dtype !== 'float32') throw new TypeError(`BatchLayerNormalization: expected float32 input but received ${x.dtype}`);
      const training = kwargs?.['training'] == null ? false : !!kwargs['training'];
      const gamma = this.gamma!.read();
      const beta = this.beta!.read();
      if (training) {
        const [y, bm, bv, fm, fv] = tfc.engine().runKernel(
          BATCH_LAYER_NORM,
          { x, gamma, beta } as unknown as tfc.NamedTensorMap,
          this.attrs(x) as unknown as tfc.NamedAttrMap,
        ) as tfc.Tensor[];
        this.accumulate(x.shape, { batchMean: bm!, batchVar: bv!, featureMean: fm!, featureVar: fv! });
        return y!;
      }
      const use = this.use;
      const any = use.batchMean || use.batchVar || use.featureMean || use.featureVar;
      return runInfer(x, gamma, beta, any ? this.populationTensors() : {}, use, this.attrs(x));
    });
  }

  /** Adds one step's statistics to the accumulators (the spec's population, as sums). */
  private accumulate(shape: readonly number[], st: StatTensors): void {
    const B = shape[0]!;
    const C = shape[shape.length - 1]!;
    const cb = B > 1 ? B / (B - 1) : 1;
    const cc = C > 1 ? C / (C - 1) : 1;
    const S = this.sums!;
    tfc.tidy(() => {
      const add = (v: tfl.LayerVariable, t: tfc.Tensor) => v.write(tfc.add(v.read(), tfc.reshape(t, v.shape as number[])));
      add(S.batchMean, st.batchMean);
      add(S.batchVar, tfc.mul(st.batchVar, cb));
      add(S.featureMean, tfc.mean(st.featureMean, 0));
      add(S.featureVar, tfc.mul(tfc.mean(st.featureVar, 0), cc));
      this.steps!.write(tfc.add(this.steps!.read(), 1));
    });
  }

  /** Training steps accumulated since the last reset (or as loaded). */
  populationSteps(): number {
    return this.steps ? this.steps.read().dataSync()[0]! : 0;
  }

  /**
   * The population statistics (sums / steps) as new tensors the caller owns: batch statistics
   * of shape inputShape.slice(1), feature statistics of shape inputShape.slice(1, -1) ([1] for
   * rank-2 inputs). An Error before any training step.
   */
  population(): StatTensors {
    return tfc.tidy(() => this.populationTensors() as unknown as tfc.TensorContainer) as unknown as StatTensors;
  }

  private populationTensors(): StatTensors {
    if (!this.sums) throw new Error(`BatchLayerNormalization '${this.name}' is not built yet`);
    const n = this.populationSteps();
    if (!(n > 0))
      throw new Error(
        `BatchLayerNormalization '${this.name}': inference asks for population statistics (batchMovingMean/batchMovingVar/featureMovingMean/featureMovingVar) ` +
          'but none were accumulated yet: train the model (or load saved weights) first, or set the flags to false',
      );
    const S = this.sums;
    return {
      batchMean: tfc.div(S.batchMean.read(), n),
      batchVar: tfc.div(S.batchVar.read(), n),
      featureMean: tfc.div(S.featureMean.read(), n),
      featureVar: tfc.div(S.featureVar.read(), n),
    };
  }

  /** Clears the population accumulators (blnCallback does it at each epoch start). */
  resetPopulation(): void {
    if (!this.sums) return;
    tfc.tidy(() => {
      for (const v of [...Object.values(this.sums!), this.steps!]) v.write(tfc.zerosLike(v.read()));
    });
  }

  override getConfig(): tfc.serialization.ConfigDict {
    const config: tfc.serialization.ConfigDict = {
      batchSize: this.blnBatchSize,
      epsilon: this.epsilon,
      batchMovingMean: this.batchMovingMean,
      batchMovingVar: this.batchMovingVar,
      featureMovingMean: this.featureMovingMean,
      featureMovingVar: this.featureMovingVar,
      gammaInitializer: serialize(this.gammaInitializer),
      betaInitializer: serialize(this.betaInitializer),
      gammaRegularizer: serialize(this.gammaRegularizer),
      betaRegularizer: serialize(this.betaRegularizer),
      gammaConstraint: serialize(this.gammaConstraint),
      betaConstraint: serialize(this.betaConstraint),
    };
    return { ...config, ...super.getConfig() };
  }
}

tfc.serialization.registerClass(BatchLayerNormalization);

/** Factory, in the style of tf.layers.batchNormalization. */
export function batchLayerNormalization(args?: BatchLayerNormalizationArgs): BatchLayerNormalization {
  return new BatchLayerNormalization(args);
}
