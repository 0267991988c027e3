// fineTune options: public types, defaults (from the AdvBN paper's recipe) and validation.
import type { AdvbnSettings, OptimizerSettings, ScheduleSettings, TrainerConfig } from '../../index.js';
import type { DatasetInput } from '../data/dataset.js';
import type { Model } from '../models.js';
import { OptionReader, invalidOption } from '../validation.js';
import { progressLogger } from './builtins.js';
import type { Callback } from './callbacks.js';
import { readCheckpointOptions, type CheckpointOptions, type ResolvedCheckpoint } from './checkpoint.js';

/** SGD with momentum and L2 weight decay: the paper's optimiser. */
export interface SgdOptions {
  /** Optimiser kind; default `'sgd'`. */
  type?: 'sgd';
  /** Learning rate; default 1e-3. */
  lr?: number;
  /** Momentum; default 0.9. */
  momentum?: number;
  /** L2 weight decay; default 1e-4. */
  weightDecay?: number;
  /** Nesterov momentum; default `false`. */
  nesterov?: boolean;
}

/** AdamW (decoupled weight decay). */
export interface AdamWOptions {
  /** Optimiser kind. */
  type: 'adamw';
  /** Learning rate; default 1e-3. */
  lr?: number;
  /** First-moment decay; default 0.9. */
  beta1?: number;
  /** Second-moment decay; default 0.999. */
  beta2?: number;
  /** Denominator epsilon; default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 1e-2. */
  weightDecay?: number;
}

/** Optimiser choice. */
export type OptimizerOptions = SgdOptions | AdamWOptions;

/** Multiply the learning rate by `gamma` at each milestone epoch (the paper: x0.1 after epoch 10 of 20). */
export interface StepScheduleOptions {
  /** Schedule kind. */
  type: 'step';
  /** 0-based epochs from which the rate is multiplied by `gamma`; default `[floor(epochs / 2)]`. */
  milestones?: number[];
  /** Factor per milestone; default 0.1. */
  gamma?: number;
}

/** Cosine decay from the base rate to `minLr`, after an optional linear warm-up. */
export interface CosineScheduleOptions {
  /** Schedule kind. */
  type: 'cosine';
  /** Final learning rate; default 0. */
  minLr?: number;
  /** Epochs of linear warm-up; default 0. */
  warmupEpochs?: number;
}

/** A constant learning rate. */
export interface ConstantScheduleOptions {
  /** Schedule kind. */
  type: 'constant';
}

/** Learning-rate schedule. */
export type ScheduleOptions = StepScheduleOptions | CosineScheduleOptions | ConstantScheduleOptions;

/** The AdvBN inner maximisation (sign gradient ascent on the feature-statistics scales). */
export interface AdvbnAttackOptions {
  /** Ascent steps K; default 6. 0 means no attack (alpha = beta = 1). */
  steps?: number;
  /** Step size of each sign step; default 0.2. */
  stepSize?: number;
  /** Half-width of the box: alpha and beta stay in [1 - epsilon, 1 + epsilon]; default 1.1. */
  epsilon?: number;
  /** Clamp perturbed features at 0; `'auto'` (default) clamps when the cut follows a ReLU (ResNets). */
  reluClamp?: 'auto' | boolean;
}

/** The training methods {@link fineTune} offers (see {@link FineTuneOptions.method}). */
export const FINE_TUNE_METHODS = ['advbn', 'erm', 'mixstyle', 'dsu', 'advbn_mixstyle', 'advbn_dsu'] as const;

/** A training method of {@link fineTune}. */
export type FineTuneMethod = (typeof FINE_TUNE_METHODS)[number];

/** Options of {@link fineTune}. */
export interface FineTuneOptions {
  /** Training data: a Dataset or `{ images, labels }`. */
  data: DatasetInput;
  /**
   * `'advbn'` (default); `'erm'` (plain fine-tuning, the baseline); `'mixstyle'` or `'dsu'`
   * (per-instance feature-statistics augmentations inserted at the same cut, same budget as ERM);
   * `'advbn_mixstyle'` or `'advbn_dsu'`: AdvBN on the style-perturbed features (the clean branch
   * trains on mixstyle(x) or dsu(x), and the attack starts from those same features for the
   * adversarial branch).
   */
  method?: FineTuneMethod;
  /** Stage after which the network is split (encoder frozen); default 1. erm: 0..numStages, others: 1..numStages. */
  cut?: number;
  /** Passes over the data; default 20. */
  epochs?: number;
  /** Samples per step; default 64. */
  batchSize?: number;
  /** Shuffle every epoch (seeded); default `true`. */
  shuffle?: boolean;
  /** Seed of the shuffling and the attack; default 0. */
  seed?: number;
  /** Optimiser; default SGD lr 1e-3, momentum 0.9, weight decay 1e-4. */
  optimizer?: OptimizerOptions;
  /** Shorthand for `optimizer.lr`. */
  lr?: number;
  /** Learning-rate schedule; default step schedule, x0.1 at `floor(epochs / 2)`. */
  schedule?: ScheduleOptions;
  /** AdvBN attack settings (the methods with AdvBN only). */
  advbn?: AdvbnAttackOptions;
  /** Hooks called during training, in order. */
  callbacks?: Callback | Callback[];
  /** Cancels training before the next batch; rejects with {@link Runtime!AbortError | AbortError}. With `checkpoint`, the position reached is checkpointed first (`resume` continues there). */
  signal?: AbortSignal;
  /** Evaluated at each epoch end with the clean BatchNorms: adds `valLoss` and `valAccuracy` to the logs. */
  validationData?: DatasetInput;
  /**
   * Train on AugMix-augmented images (image-space augmentation, seeded per sample) on top of
   * the method: the paper's "complementary" setting. Default `false`.
   */
  augmix?: boolean;
  /** 1: print a Keras-style progress line per epoch (images/s, ETA, losses) on stdout; 0 (default): silent. */
  verbose?: 0 | 1;
  /** Write a crash-safe checkpoint every epoch (or every N steps) to `checkpoint.dir`. */
  checkpoint?: CheckpointOptions;
  /**
   * Continue from `checkpoint.dir`'s checkpoint when there is one (bit-identical to an
   * uninterrupted run on the CPU); start from scratch when there is none. Default `false`.
   */
  resume?: boolean;
}

/** Validated options, ready for the training loop. `stepsPerEpoch` is filled in once the data is known. */
export interface ResolvedFineTune {
  trainer: Omit<TrainerConfig, 'stepsPerEpoch'>;
  batchSize: number;
  shuffle: boolean;
  callbacks: Callback[];
  signal: AbortSignal | undefined;
  checkpoint: ResolvedCheckpoint | undefined;
  augmix: boolean;
}

const CONTEXT = 'fineTune';
const CALLBACK_HOOKS = ['setModel', 'shouldStop', 'onTrainBegin', 'onEpochBegin', 'onBatchBegin', 'onBatchEnd', 'onEpochEnd', 'onTrainEnd'] as const;

export function resolveFineTuneOptions(options: unknown, model: Model): ResolvedFineTune {
  const o = new OptionReader(CONTEXT, options).rejectUnknown([
    'data',
    'method',
    'cut',
    'epochs',
    'batchSize',
    'shuffle',
    'seed',
    'optimizer',
    'lr',
    'schedule',
    'advbn',
    'callbacks',
    'signal',
    'validationData',
    'checkpoint',
    'resume',
    'augmix',
    'verbose',
  ]);
  if (!o.has('data')) throw o.fail('data', 'a Dataset or an object { images, labels }');
  const method = o.oneOf<FineTuneMethod>('method', FINE_TUNE_METHODS, 'advbn');
  const minCut = method === 'erm' ? 0 : 1;
  const cut = o.number('cut', 1, { integer: true, min: minCut, max: model.numStages });
  const epochs = o.ruled('epochs', 'fineTune.epochs');
  const batchSize = o.ruled('batchSize', 'fineTune.batchSize');
  const shuffle = o.boolean('shuffle', true);
  const seed = o.ruled('seed', 'seed');
  return {
    trainer: { method, cut, epochs, seed, ...readOptimizer(o), schedule: readSchedule(o, epochs), advbn: readAttack(o) },
    batchSize,
    shuffle,
    callbacks: [...readCallbacks(o), ...(readVerbose(o) === 1 ? [progressLogger()] : [])],
    signal: readSignal(o),
    checkpoint: readCheckpointOptions(o),
    augmix: o.boolean('augmix', false),
  };
}

function readOptimizer(o: OptionReader): { lr: number; optimizer: OptimizerSettings } {
  const opt = o.nested('optimizer');
  const type = opt.oneOf('type', ['sgd', 'adamw'] as const, 'sgd');
  opt.rejectUnknown(type === 'sgd' ? ['type', 'lr', 'momentum', 'weightDecay', 'nesterov'] : ['type', 'lr', 'beta1', 'beta2', 'eps', 'weightDecay']);
  if (o.has('lr') && opt.has('lr')) throw o.fail('lr', 'omitted when optimizer.lr is given (they are the same setting)');
  const lr = o.has('lr') ? o.ruled('lr', 'fineTune.lr') : opt.ruled('lr', 'fineTune.lr');
  const weightDecay = opt.ruled('weightDecay', `fineTune.${type}.weightDecay`);
  if (type === 'sgd') return { lr, optimizer: { type, momentum: opt.ruled('momentum', 'fineTune.sgd.momentum'), weightDecay, nesterov: opt.boolean('nesterov', false) } };
  const [beta1, beta2, eps] = (['beta1', 'beta2', 'eps'] as const).map((name) => opt.ruled(name, `fineTune.adamw.${name}`)) as [number, number, number];
  return { lr, optimizer: { type, beta1, beta2, eps, weightDecay } };
}

function readSchedule(o: OptionReader, epochs: number): ScheduleSettings {
  const s = o.nested('schedule');
  const type = s.oneOf('type', ['step', 'cosine', 'constant'] as const, 'step');
  const known = { step: ['type', 'milestones', 'gamma'], cosine: ['type', 'minLr', 'warmupEpochs'], constant: ['type'] } as const;
  s.rejectUnknown(known[type]);
  switch (type) {
    case 'constant':
      return { type };
    case 'cosine':
      return { type, minLr: s.ruled('minLr', 'fineTune.schedule.minLr'), warmupEpochs: warmupEpochs(s, epochs) };
    case 'step': {
      const half = Math.floor(epochs / 2);
      const milestones = s.ruledArray('milestones', 'fineTune.schedule.milestones', half >= 1 ? [half] : []);
      if (milestones.some((m, i) => i > 0 && m <= milestones[i - 1]!)) throw s.fail('milestones', 'strictly increasing');
      return { type, milestones, gamma: s.ruled('gamma', 'fineTune.schedule.gamma') };
    }
  }
}

/** At most the run's epochs, on top of the core's rule. */
function warmupEpochs(s: OptionReader, epochs: number): number {
  const value = s.ruled('warmupEpochs', 'fineTune.schedule.warmupEpochs');
  if (value > epochs) throw s.fail('warmupEpochs', `at most the ${epochs} epochs`);
  return value;
}

function readAttack(o: OptionReader): AdvbnSettings {
  const a = o.nested('advbn').rejectUnknown(['steps', 'stepSize', 'epsilon', 'reluClamp']);
  const reluClamp = a.values.reluClamp;
  if (reluClamp !== undefined && reluClamp !== 'auto' && typeof reluClamp !== 'boolean') throw a.fail('reluClamp', '"auto", true or false');
  return {
    steps: a.ruled('steps', 'fineTune.advbn.steps'),
    stepSize: a.ruled('stepSize', 'fineTune.advbn.stepSize'),
    epsilon: a.ruled('epsilon', 'fineTune.advbn.epsilon'),
    ...(typeof reluClamp === 'boolean' && { reluClamp }),
  };
}

function readCallbacks(o: OptionReader): Callback[] {
  const value = o.values.callbacks;
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const [i, callback] of list.entries()) {
    const name = Array.isArray(value) ? `callbacks[${i}]` : 'callbacks';
    if (typeof callback !== 'object' || callback === null) throw invalidOption(CONTEXT, name, callback, 'an object of hooks');
    for (const hook of CALLBACK_HOOKS) {
      const fn = (callback as Record<string, unknown>)[hook];
      if (fn !== undefined && typeof fn !== 'function') {
        throw invalidOption(CONTEXT, `${name}.${hook}`, fn, 'a function');
      }
    }
  }
  return list as Callback[];
}

function readVerbose(o: OptionReader): 0 | 1 {
  const value = o.values.verbose ?? 0;
  if (value !== 0 && value !== 1) throw o.fail('verbose', '0 or 1');
  return value;
}

function readSignal(o: OptionReader): AbortSignal | undefined {
  const value = o.values.signal;
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw o.fail('signal', 'an AbortSignal');
  return value;
}
