// `advbn fine-tune`: fine-tune a ResNet on an image folder from the command line, with
// checkpoints (resumable after a crash or Ctrl-C), a progress line per epoch and a final summary.
// Every flag maps onto the fineTune option of the same meaning and is checked by that option's
// rule before any data is read; --help shows the library's defaults.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { imageFolder } from '../data/sources.js';
import { centerCrop, horizontalFlip, randomResizedCrop, resizeShorter } from '../data/transforms.js';
import { evaluate } from '../evaluation/evaluate.js';
import { resnet18, resnet34, resnet50, saveWeights, type Model, type ModelOptions } from '../models.js';
import { AbortError } from '../errors.js';
import { csvLogger, trainingCurves } from '../training/builtins.js';
import type { History } from '../training/fine-tune.js';
import { fineTune } from '../training/fine-tune.js';
import {
  FINE_TUNE_METHODS,
  resolveFineTuneOptions,
  type AdvbnAttackOptions,
  type FineTuneMethod,
  type FineTuneOptions,
  type OptimizerOptions,
  type ScheduleOptions,
} from '../training/options.js';
import { UsageError, badFlag, type Flags, parseFlags, ruleDefault, ruledFlag, runCommand, wholeFlag } from './args.js';
import type { DeviceName } from '../devices.js';
import { DEVICE_PATTERN, optionRule } from '../validation.js';
import { existingFile, existingFolder, outFolder } from './model-flags.js';

/** Stages of the ImageNet ResNets the CLI builds. */
const STAGES = 4;

/** Default `--size`: ImageNet's training crop. */
const DEFAULT_SIZE = 224;

/** The methods with an AdvBN attack (the --advbn-* flags apply to them). */
const ADVBN_METHODS: readonly FineTuneMethod[] = ['advbn', 'advbn_mixstyle', 'advbn_dsu'];

const OPTIMIZERS = ['sgd', 'adamw'] as const;

/** The ImageNet ResNets the commands build, by `--model` / `--arch` name. */
export const BUILDERS: Record<string, (o: ModelOptions) => Promise<Model>> = { resnet18, resnet34, resnet50 };
const SCHEDULES = ['step', 'cosine', 'constant'] as const;

const usage = () => `usage: advbn fine-tune --data DIR --out DIR (--weights FILE | --from-scratch) [options]

DIR holds one sub-folder per class (JPEG/PNG). Writes OUT/checkpoint.safetensors after every epoch
(--resume continues from it), OUT/weights.safetensors, OUT/history.csv (one row per epoch, the
epochs of earlier runs kept on --resume), OUT/curves.png (loss and accuracy per epoch of this
invocation) and OUT/summary.json. Prints a progress line per epoch on stdout (images/s, the time
left of the run, the losses; on a terminal also a bar redrawn per batch with the epoch's ETA).
Each option is the fineTune() option of the same meaning, with the library's default.

model and data:
  --weights FILE         torchvision/timm ResNet weights (.pth or .safetensors) to start from
  --from-scratch         no weights: a random network, every stage trained (--method erm, cut 0)
  --model NAME           ${Object.keys(BUILDERS).join(', ')} (default resnet18)
  --val DIR              a validation folder: valLoss/valAccuracy per epoch (clean BNs), and the
                         accuracy on both BN branches in the summary
  --size PX              training crop: random resized crop and flip; --val: shorter side to
                         round(PX / 0.875), centre crop (default ${DEFAULT_SIZE})
  --threads N            decoding threads of the data loader (default ${ruleDefault('source.threads')}: one per core)
  --prefetch N           batches the loader prepares ahead (default ${ruleDefault('source.prefetch')})
  --device NAME          cpu, cuda, cuda:N or auto (default auto)

training:
  --method NAME          ${FINE_TUNE_METHODS.join(', ')} (default advbn; erm
                         with --from-scratch)
  --cut K                stage after which the network is split, 0..${STAGES} (default 1; 0 with erm only):
                         the stem and stages 1..K are frozen
  --epochs N             passes over the data (default ${ruleDefault('fineTune.epochs')})
  --batch-size N         samples per step (default ${ruleDefault('fineTune.batchSize')})
  --seed N               seed of the shuffle, the augmentations and the attack (default ${ruleDefault('seed')})
  --augmix               train on AugMix-augmented images on top of the method (default off)

optimiser:
  --optimizer NAME       sgd (default) or adamw
  --lr X                 learning rate (default ${ruleDefault('fineTune.lr')})
  --weight-decay X       sgd: L2 weight decay (default ${ruleDefault('fineTune.sgd.weightDecay')}); adamw: decoupled weight
                         decay (default ${ruleDefault('fineTune.adamw.weightDecay')})
  --momentum X           sgd: momentum (default ${ruleDefault('fineTune.sgd.momentum')})
  --nesterov             sgd: Nesterov momentum (default off)
  --beta1 X              adamw: first-moment decay (default ${ruleDefault('fineTune.adamw.beta1')})
  --beta2 X              adamw: second-moment decay (default ${ruleDefault('fineTune.adamw.beta2')})
  --eps X                adamw: denominator epsilon (default ${ruleDefault('fineTune.adamw.eps')})

learning-rate schedule:
  --schedule NAME        step (default), cosine or constant
  --milestones E[,E...]  step: the rate is multiplied by --gamma from each of these epochs on,
                         counted from 0 (default floor(epochs / 2): x${ruleDefault('fineTune.schedule.gamma')} after epoch 10 of 20)
  --gamma X              step: factor per milestone (default ${ruleDefault('fineTune.schedule.gamma')})
  --min-lr X             cosine: the final rate (default ${ruleDefault('fineTune.schedule.minLr')})
  --warmup-epochs N      cosine: epochs of linear warm-up first, at most --epochs (default ${ruleDefault('fineTune.schedule.warmupEpochs')})

AdvBN attack (${ADVBN_METHODS.join(', ')}):
  --advbn-steps K        sign-gradient ascent steps (default ${ruleDefault('fineTune.advbn.steps')}; 0: no attack)
  --advbn-step-size X    size of each step (default ${ruleDefault('fineTune.advbn.stepSize')})
  --advbn-epsilon X      box half-width: the scales of the channel means and spreads stay in
                         [1 - X, 1 + X] (default ${ruleDefault('fineTune.advbn.epsilon')})

checkpoints:
  --checkpoint-every N   also checkpoint every N steps (Ctrl-C / SIGTERM always checkpoints, then
                         exits 130)
  --resume               continue from OUT/checkpoint.safetensors, with the same options; with a
                         larger --epochs, extend the run: the epochs left follow the schedule of the
                         new total (the default step schedule's milestone, epoch floor(epochs / 2),
                         must not move, else the error names it; --milestones pins it; cosine
                         decays over the new total from the rate reached)`;

function cutFlag(text: string | undefined, method: FineTuneMethod): number {
  const cut = text === undefined ? 1 : /^\d+$/.test(text) ? Number(text) : Number.NaN;
  const min = method === 'erm' ? 0 : 1;
  if (!Number.isInteger(cut) || cut < min || cut > STAGES) throw badFlag('cut', `must be a whole number ${min}..${STAGES} for ${method}`, text);
  return cut;
}

const FLAGS = {
  data: 'string',
  out: 'string',
  model: 'string',
  weights: 'string',
  method: 'string',
  epochs: 'string',
  'batch-size': 'string',
  cut: 'string',
  size: 'string',
  val: 'string',
  device: 'string',
  seed: 'string',
  threads: 'string',
  prefetch: 'string',
  augmix: 'boolean',
  optimizer: 'string',
  lr: 'string',
  'weight-decay': 'string',
  momentum: 'string',
  nesterov: 'boolean',
  beta1: 'string',
  beta2: 'string',
  eps: 'string',
  schedule: 'string',
  milestones: 'string',
  gamma: 'string',
  'min-lr': 'string',
  'warmup-epochs': 'string',
  'advbn-steps': 'string',
  'advbn-step-size': 'string',
  'advbn-epsilon': 'string',
  resume: 'boolean',
  'from-scratch': 'boolean',
  'checkpoint-every': 'string',
} as const;

type Values = Flags<typeof FLAGS>;

/** A flag that only some choice of another flag takes (`--momentum` with `--optimizer sgd`). */
function onlyWith(v: Values, flags: readonly (keyof typeof FLAGS)[], applies: boolean, what: string): void {
  const given = flags.find((f) => v[f] !== undefined);
  if (given !== undefined && !applies) throw new UsageError(`--${given} applies to ${what} only`);
}

function choice<T extends string>(name: string, text: string | undefined, choices: readonly T[], fallback: T): T {
  if (text === undefined) return fallback;
  if (!(choices as readonly string[]).includes(text)) throw badFlag(name, `must be ${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}`, text);
  return text as T;
}

/** The optimiser flags as fineTune's `optimizer` option (absent figures left to the library's defaults). */
function readOptimizer(v: Values): OptimizerOptions {
  const type = choice('optimizer', v.optimizer, OPTIMIZERS, 'sgd');
  onlyWith(v, ['momentum', 'nesterov'], type === 'sgd', '--optimizer sgd');
  onlyWith(v, ['beta1', 'beta2', 'eps'], type === 'adamw', '--optimizer adamw');
  const lr = ruledFlag('lr', v.lr, 'fineTune.lr');
  const weightDecay = ruledFlag('weight-decay', v['weight-decay'], `fineTune.${type}.weightDecay`);
  const common = { ...(lr !== undefined && { lr }), ...(weightDecay !== undefined && { weightDecay }) };
  if (type === 'sgd') {
    const momentum = ruledFlag('momentum', v.momentum, 'fineTune.sgd.momentum');
    return { type, ...common, ...(momentum !== undefined && { momentum }), ...(v.nesterov && { nesterov: true }) };
  }
  const betas = {
    beta1: ruledFlag('beta1', v.beta1, 'fineTune.adamw.beta1'),
    beta2: ruledFlag('beta2', v.beta2, 'fineTune.adamw.beta2'),
    eps: ruledFlag('eps', v.eps, 'fineTune.adamw.eps'),
  };
  return { type, ...common, ...Object.fromEntries(Object.entries(betas).filter(([, x]) => x !== undefined)) };
}

/** The schedule flags as fineTune's `schedule` option. */
function readSchedule(v: Values, epochs: number | undefined): ScheduleOptions {
  const type = choice('schedule', v.schedule, SCHEDULES, 'step');
  onlyWith(v, ['milestones', 'gamma'], type === 'step', '--schedule step');
  onlyWith(v, ['min-lr', 'warmup-epochs'], type === 'cosine', '--schedule cosine');
  if (type === 'constant') return { type };
  if (type === 'cosine') {
    const minLr = ruledFlag('min-lr', v['min-lr'], 'fineTune.schedule.minLr');
    const warmupEpochs = ruledFlag('warmup-epochs', v['warmup-epochs'], 'fineTune.schedule.warmupEpochs');
    const total = epochs ?? Number(ruleDefault('fineTune.epochs'));
    if (warmupEpochs !== undefined && warmupEpochs > total) throw badFlag('warmup-epochs', `must be at most the ${total} epochs`, v['warmup-epochs']);
    return { type, ...(minLr !== undefined && { minLr }), ...(warmupEpochs !== undefined && { warmupEpochs }) };
  }
  const gamma = ruledFlag('gamma', v.gamma, 'fineTune.schedule.gamma');
  let milestones: number[] | undefined;
  if (v.milestones !== undefined) {
    milestones = v.milestones.split(',').map((m) => ruledFlag('milestones', m.trim(), 'fineTune.schedule.milestones')!);
    if (milestones.some((m, i) => i > 0 && m <= milestones![i - 1]!)) throw badFlag('milestones', 'must be strictly increasing', v.milestones);
  }
  return { type, ...(milestones && { milestones }), ...(gamma !== undefined && { gamma }) };
}

/** The --advbn-* flags as fineTune's `advbn` option. */
function readAttack(v: Values, method: FineTuneMethod): AdvbnAttackOptions | undefined {
  onlyWith(v, ['advbn-steps', 'advbn-step-size', 'advbn-epsilon'], ADVBN_METHODS.includes(method), `the AdvBN methods (--method ${ADVBN_METHODS.join(', ')})`);
  const attack = {
    steps: ruledFlag('advbn-steps', v['advbn-steps'], 'fineTune.advbn.steps'),
    stepSize: ruledFlag('advbn-step-size', v['advbn-step-size'], 'fineTune.advbn.stepSize'),
    epsilon: ruledFlag('advbn-epsilon', v['advbn-epsilon'], 'fineTune.advbn.epsilon'),
  };
  const given = Object.entries(attack).filter(([, x]) => x !== undefined);
  return given.length > 0 ? Object.fromEntries(given) : undefined;
}

/** The training options without data, callbacks, signal and checkpoint: what the flags set. */
type FineTuneFlagOptions = Pick<FineTuneOptions, 'method' | 'cut' | 'epochs' | 'batchSize' | 'seed' | 'optimizer' | 'schedule' | 'advbn' | 'augmix'>;

/**
 * The flags, checked: a {@link UsageError} names the first bad one. Reads no file (the paths are
 * only checked to exist): the options are also run through fineTune's own validation (with a
 * stand-in for the data), so nothing the library would refuse gets as far as reading the images.
 */
function readFlags(args: readonly string[]) {
  const v = parseFlags(args, FLAGS);
  if (v.help) return { v, settings: undefined };
  if (!v.data) throw badFlag('data', 'is required');
  if (!v.out) throw badFlag('out', 'is required');
  if (v.device !== undefined && !DEVICE_PATTERN.test(v.device)) throw badFlag('device', 'must be cpu, cuda, cuda:N or auto', v.device);
  const model = v.model ?? 'resnet18';
  if (!BUILDERS[model]) throw badFlag('model', `must be one of ${Object.keys(BUILDERS).join(', ')}`, model);
  const fromScratch = v['from-scratch'] ?? false;
  const method = choice('method', v.method, FINE_TUNE_METHODS, fromScratch ? 'erm' : 'advbn');
  if (fromScratch && v.weights !== undefined) throw badFlag('from-scratch', 'and --weights are exclusive');
  if (!fromScratch && v.weights === undefined) {
    throw badFlag('weights', 'is required (torchvision/timm ResNet weights, .pth or .safetensors); --from-scratch trains a randomly initialised network instead');
  }
  if (fromScratch && v.method !== undefined && v.method !== 'erm') {
    throw badFlag('method', 'must be erm with --from-scratch: every stage is trained, and the other methods freeze the stages before the cut', v.method);
  }
  if (fromScratch && v.cut !== undefined && v.cut !== '0') throw badFlag('cut', 'must be 0 with --from-scratch (nothing frozen is random)', v.cut);
  const epochs = ruledFlag('epochs', v.epochs, 'fineTune.epochs');
  const batchSize = ruledFlag('batch-size', v['batch-size'], 'fineTune.batchSize');
  const seed = ruledFlag('seed', v.seed, 'seed');
  const advbn = readAttack(v, method);
  // Absent figures are left out: fineTune applies its own defaults (the core's rule table).
  const options: FineTuneFlagOptions = {
    method,
    cut: fromScratch ? 0 : cutFlag(v.cut, method),
    ...(epochs !== undefined && { epochs }),
    ...(batchSize !== undefined && { batchSize }),
    ...(seed !== undefined && { seed }),
    optimizer: readOptimizer(v),
    schedule: readSchedule(v, epochs),
    ...(advbn && { advbn }),
    ...(v.augmix && { augmix: true }),
  };
  const threads = ruledFlag('threads', v.threads, 'source.threads');
  const prefetch = ruledFlag('prefetch', v.prefetch, 'source.prefetch');
  const checkpointEvery = wholeFlag('checkpoint-every', v['checkpoint-every'], 1);
  // What fineTune resolves the options to (the defaults filled in); anything it would refuse is refused now.
  const resolved = resolveFineTuneOptions({ ...options, data: {} }, { numStages: STAGES } as Model);
  const size = ruledFlag('size', v.size, 'transform.side') ?? DEFAULT_SIZE;
  // Last, the paths (existence only: nothing is read yet).
  existingFolder('data', v.data);
  if (v.val !== undefined) existingFolder('val', v.val);
  if (v.weights !== undefined) existingFile('weights', v.weights);
  outFolder(v.out);
  const settings = {
    model,
    options,
    resolved,
    size,
    loader: { ...(threads !== undefined && { threads }), ...(prefetch !== undefined && { prefetch }) },
    checkpointEvery,
  };
  return { v, settings };
}

export async function runFineTune(args: readonly string[]): Promise<number> {
  return runCommand('fine-tune', async () => {
    const { v, settings } = readFlags(args);
    if (!settings) {
      console.log(usage());
      return 0;
    }
    return train(v, settings);
  });
}

type Read = ReturnType<typeof readFlags>;

async function train(v: Read['v'], settings: NonNullable<Read['settings']>): Promise<number> {
  const { size, loader } = settings;
  const epochs = settings.resolved.trainer.epochs;
  const train = await imageFolder(v.data!, { transforms: [randomResizedCrop(size), horizontalFlip()], ...loader });
  const val = v.val ? await imageFolder(v.val, { classes: train.classNames, transforms: [resizeShorter(Math.round(size / 0.875)), centerCrop(size)], ...loader }) : undefined;
  const model = await BUILDERS[settings.model]!({
    numClasses: train.numClasses,
    ...(settings.options.seed !== undefined && { seed: settings.options.seed }),
    ...(v.device !== undefined && { device: v.device as DeviceName }),
    ...(v.weights !== undefined && { weights: v.weights }),
  });
  try {
    if (model.weightsReport?.reinitialized.length) {
      console.error(`advbn fine-tune: ${model.weightsReport.reinitialized.join(', ')} re-initialised for ${train.numClasses} classes`);
    }
    mkdirSync(v.out!, { recursive: true });
    const started = performance.now();
    let trained = 0;
    // Ctrl-C or SIGTERM: fineTune checkpoints the position reached, then rejects with AbortError.
    const controller = new AbortController();
    const interrupt = (signal: string) => {
      console.error(`\nadvbn fine-tune: ${signal}: checkpointing and stopping`);
      controller.abort(signal);
    };
    process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
    const history = await fineTune(model, {
      ...settings.options,
      data: train,
      signal: controller.signal,
      checkpoint: { dir: v.out!, ...(settings.checkpointEvery !== undefined && { every: settings.checkpointEvery }) },
      resume: v.resume ?? false,
      ...(val && { validationData: val }),
      // The library's progress line (progressLogger) on stdout: a bar per batch on a terminal, one line per epoch otherwise.
      verbose: 1,
      callbacks: [
        csvLogger(join(v.out!, 'history.csv'), { append: v.resume ?? false }),
        trainingCurves(join(v.out!, 'curves.png')),
        {
          onBatchEnd: () => {
            trained += 1;
          },
        },
      ],
    });
    if (v.resume && trained === 0) {
      console.error(`advbn fine-tune: nothing left to train: the checkpoint in ${v.out} has finished all ${epochs} epochs (pass a larger --epochs to extend the run)`);
    }
    const weights = join(v.out!, 'weights.safetensors');
    await saveWeights(model, weights);
    const summary = {
      model: settings.model,
      method: settings.resolved.trainer.method,
      classes: train.classNames,
      samples: train.length,
      epochs: history.epochs.length,
      finalLoss: last(history, 'loss'),
      finalAccuracy: last(history, 'accuracy'),
      // The adversarial branch on the attack's worst case (methods with that branch).
      ...(history.history.advAccuracy && { finalAdvAccuracy: last(history, 'advAccuracy') }),
      // Both BatchNorm branches: the adversarial one is what AdvBN trained for shifted data.
      ...(val && { validation: { clean: await evaluate(model, val, { bn: 'clean' }), ...(model.hasAdvBn && { adv: await evaluate(model, val, { bn: 'adv' }) }) } }),
      // The settings the run used, defaults filled in.
      settings: {
        cut: settings.resolved.trainer.cut,
        epochs,
        batchSize: settings.resolved.batchSize,
        seed: settings.resolved.trainer.seed,
        lr: settings.resolved.trainer.lr,
        optimizer: settings.resolved.trainer.optimizer,
        schedule: settings.resolved.trainer.schedule,
        ...(ADVBN_METHODS.includes(settings.resolved.trainer.method as FineTuneMethod) && { advbn: settings.resolved.trainer.advbn }),
        augmix: settings.resolved.augmix,
        size,
        threads: loader.threads ?? optionRule('source.threads').default,
        prefetch: loader.prefetch ?? optionRule('source.prefetch').default,
      },
      seconds: Math.round((performance.now() - started) / 1000),
      weights,
    };
    writeFileSync(join(v.out!, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    console.log(summaryLines(summary, v.out!));
    return 0;
  } catch (err) {
    if (!(err instanceof AbortError)) throw err;
    console.error(`advbn fine-tune: interrupted; the checkpoint in ${v.out} holds the position reached: rerun with --resume to continue`);
    return 130;
  } finally {
    process.removeAllListeners('SIGINT').removeAllListeners('SIGTERM');
    model.dispose();
    train.dispose();
    val?.dispose();
  }
}

function last(history: History, key: 'loss' | 'accuracy' | 'advAccuracy'): number | undefined {
  return history.history[key]?.[history.epochs.length - 1];
}

/** The end of the run for the terminal: the final figures, both BN branches of --val, the files written. */
function summaryLines(
  summary: {
    epochs: number;
    finalLoss: number | undefined;
    finalAccuracy: number | undefined;
    finalAdvAccuracy?: number | undefined;
    validation?: { clean: { accuracy: number }; adv?: { accuracy: number } };
  },
  out: string,
): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const adv = summary.finalAdvAccuracy;
  const figures =
    summary.finalLoss === undefined
      ? 'no epoch trained'
      : `final loss ${summary.finalLoss.toPrecision(4)}, training accuracy ${pct(summary.finalAccuracy!)} (clean BN)${adv !== undefined && Number.isFinite(adv) ? `, ${pct(adv)} (adversarial BN)` : ''}`;
  const val = summary.validation;
  const validation = val ? `; validation accuracy: clean BN ${pct(val.clean.accuracy)}${val.adv ? `, adversarial BN ${pct(val.adv.accuracy)}` : ''}` : '';
  const files = ['weights.safetensors', 'checkpoint.safetensors', 'history.csv', 'curves.png', 'summary.json'].map((f) => join(out, f));
  return `fine-tune done: ${summary.epochs} epoch${summary.epochs === 1 ? '' : 's'}, ${figures}${validation}\nwrote ${files.join(', ')}`;
}
