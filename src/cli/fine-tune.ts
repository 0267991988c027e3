// `advbn fine-tune`: fine-tune a ResNet on an image folder from the command line, with
// checkpoints (resumable after a crash), a progress bar and a final summary.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { imageFolder } from '../data/sources.js';
import { centerCrop, horizontalFlip, randomResizedCrop, resizeShorter } from '../data/transforms.js';
import { evaluate } from '../evaluation/evaluate.js';
import { resnet18, resnet34, resnet50, saveWeights, type Model, type ModelOptions } from '../models.js';
import { Progress } from '../reproduce/progress.js';
import { AbortError } from '../errors.js';
import { csvLogger, trainingCurves } from '../training/builtins.js';
import { fineTune } from '../training/fine-tune.js';
import { FINE_TUNE_METHODS, type FineTuneMethod } from '../training/options.js';
import { badFlag, parseFlags, runCommand } from './args.js';
import type { DeviceName } from '../devices.js';
import { DEVICE_PATTERN, optionRule } from '../validation.js';

const usage = () => `usage: advbn fine-tune --data DIR --out DIR (--weights FILE | --from-scratch) [options]

DIR holds one sub-folder per class (JPEG/PNG). Writes OUT/checkpoint.safetensors after every epoch
(--resume continues from it), OUT/weights.safetensors, OUT/history.csv (one row per epoch),
OUT/curves.png (loss and accuracy per epoch of this invocation) and OUT/summary.json (also printed).

  --weights FILE   torchvision/timm ResNet weights (.pth or .safetensors) to start from
  --from-scratch   no weights: a random network, every stage trained (--method erm, cut 0)
  --model NAME     resnet18 (default), resnet34 or resnet50
  --method NAME    ${FINE_TUNE_METHODS.join(', ')} (default advbn)
  --epochs N       default ${optionRule('fineTune.epochs').default}
  --batch-size N   default ${optionRule('fineTune.batchSize').default}
  --lr X           default ${optionRule('fineTune.lr').default}
  --cut K          stage after which the network is split, 0..${STAGES} (default 1; 0 with erm only)
  --size PX        training crop (default 224)
  --val DIR        a validation folder: accuracy on both BN branches in the summary
  --device NAME    cpu, cuda, cuda:N or auto (default auto)
  --seed N         default 0
  --resume         continue from OUT/checkpoint.safetensors; with a larger --epochs, extend the run (the
                   epochs left follow the schedule of the new total; the default step schedule's
                   milestone, epoch floor(epochs / 2), must not move, else the error names it)
  --checkpoint-every N  also checkpoint every N steps (Ctrl-C / SIGTERM always checkpoints, then exits 130)`;

/** Stages of the ImageNet ResNets the CLI builds. */
const STAGES = 4;

/** The ImageNet ResNets the commands build, by `--model` / `--arch` name. */
export const BUILDERS: Record<string, (o: ModelOptions) => Promise<Model>> = { resnet18, resnet34, resnet50 };

function cutFlag(text: string | undefined, method: FineTuneMethod): number {
  const cut = text === undefined ? 1 : Number(text);
  const min = method === 'erm' ? 0 : 1;
  if (!Number.isInteger(cut) || cut < min || cut > STAGES) throw badFlag('cut', `must be a whole number ${min}..${STAGES} for ${method}`, text);
  return cut;
}

function number(name: string, text: string | undefined, fallback: number, integer: boolean): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw badFlag(name, `must be a positive ${integer ? 'whole ' : ''}number`, text);
  }
  return n;
}

/** The flags, checked: a {@link UsageError} names the first bad one. */
function readFlags(args: readonly string[]) {
  const v = parseFlags(args, {
    data: 'string',
    out: 'string',
    model: 'string',
    weights: 'string',
    method: 'string',
    epochs: 'string',
    'batch-size': 'string',
    lr: 'string',
    cut: 'string',
    size: 'string',
    val: 'string',
    device: 'string',
    seed: 'string',
    resume: 'boolean',
    'from-scratch': 'boolean',
    'checkpoint-every': 'string',
  });
  if (v.help) return { v, settings: undefined };
  if (!v.data) throw badFlag('data', 'is required');
  if (!v.out) throw badFlag('out', 'is required');
  if (v.device !== undefined && !DEVICE_PATTERN.test(v.device)) throw badFlag('device', 'must be cpu, cuda, cuda:N or auto', v.device);
  const model = v.model ?? 'resnet18';
  if (!BUILDERS[model]) throw badFlag('model', `must be one of ${Object.keys(BUILDERS).join(', ')}`, model);
  const fromScratch = v['from-scratch'] ?? false;
  const method = (v.method ?? (fromScratch ? 'erm' : 'advbn')) as FineTuneMethod;
  if (!FINE_TUNE_METHODS.includes(method)) throw badFlag('method', `must be one of ${FINE_TUNE_METHODS.join(', ')}`, v.method);
  if (fromScratch && v.weights !== undefined) throw badFlag('from-scratch', 'and --weights are exclusive');
  if (!fromScratch && v.weights === undefined) {
    throw badFlag('weights', 'is required (torchvision/timm ResNet weights, .pth or .safetensors); --from-scratch trains a randomly initialised network instead');
  }
  if (fromScratch && v.method !== undefined && v.method !== 'erm') {
    throw badFlag('method', 'must be erm with --from-scratch: every stage is trained, and the other methods freeze the stages before the cut', v.method);
  }
  if (fromScratch && v.cut !== undefined && v.cut !== '0') throw badFlag('cut', 'must be 0 with --from-scratch (nothing frozen is random)', v.cut);
  const settings = {
    model,
    method,
    // The library's defaults (the core's option rules), so the CLI and fineTune() agree.
    epochs: number('epochs', v.epochs, optionRule('fineTune.epochs').default!, true),
    batchSize: number('batch-size', v['batch-size'], optionRule('fineTune.batchSize').default!, true),
    lr: number('lr', v.lr, optionRule('fineTune.lr').default!, false),
    cut: fromScratch ? 0 : cutFlag(v.cut, method),
    size: number('size', v.size, 224, true),
    checkpointEvery: v['checkpoint-every'] === undefined ? undefined : number('checkpoint-every', v['checkpoint-every'], 1, true),
    seed: v.seed === undefined ? 0 : Number(v.seed),
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

type Flags = ReturnType<typeof readFlags>;

async function train(v: Flags['v'], settings: NonNullable<Flags['settings']>): Promise<number> {
  const { size } = settings;
  const train = await imageFolder(v.data!, { transforms: [randomResizedCrop(size), horizontalFlip()] });
  const val = v.val ? await imageFolder(v.val, { classes: train.classNames, transforms: [resizeShorter(Math.round(size / 0.875)), centerCrop(size)] }) : undefined;
  const model = await BUILDERS[settings.model]!({
    numClasses: train.numClasses,
    seed: settings.seed,
    ...(v.device !== undefined && { device: v.device as DeviceName }),
    ...(v.weights !== undefined && { weights: v.weights }),
  });
  try {
    if (model.weightsReport?.reinitialized.length) {
      console.error(`advbn fine-tune: ${model.weightsReport.reinitialized.join(', ')} re-initialised for ${train.numClasses} classes`);
    }
    mkdirSync(v.out!, { recursive: true });
    const steps = Math.ceil(train.length / settings.batchSize);
    const progress = new Progress(settings.epochs * steps);
    const started = performance.now();
    let current = 0;
    let trained = 0;
    // Ctrl-C or SIGTERM: fineTune checkpoints the position reached, then rejects with AbortError.
    const controller = new AbortController();
    const interrupt = (signal: string) => {
      console.error(`\nadvbn fine-tune: ${signal}: checkpointing and stopping`);
      controller.abort(signal);
    };
    process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
    const history = await fineTune(model, {
      signal: controller.signal,
      data: train,
      method: settings.method,
      epochs: settings.epochs,
      batchSize: settings.batchSize,
      lr: settings.lr,
      cut: settings.cut,
      seed: settings.seed,
      checkpoint: { dir: v.out!, ...(settings.checkpointEvery !== undefined && { every: settings.checkpointEvery }) },
      resume: v.resume ?? false,
      ...(val && { validationData: val }),
      callbacks: [
        csvLogger(join(v.out!, 'history.csv')),
        trainingCurves(join(v.out!, 'curves.png')),
        {
          onEpochBegin: (epoch) => {
            current = epoch + 1;
          },
          onBatchEnd: (batch, logs) => {
            trained += 1;
            progress.step(`epoch ${current}/${settings.epochs} batch ${batch + 1}/${steps} loss ${logs.loss.toFixed(4)}`);
          },
          onEpochEnd: (epoch, logs) =>
            console.error(
              `epoch ${epoch + 1}/${settings.epochs}: loss ${logs.loss.toFixed(4)} clean ${logs.cleanLoss.toFixed(4)}` +
                `${logs.advLoss === undefined ? '' : ` adv ${logs.advLoss.toFixed(4)}`} acc ${(100 * logs.accuracy).toFixed(1)}%` +
                `${logs.valAccuracy === undefined ? '' : ` val ${(100 * logs.valAccuracy).toFixed(1)}%`}`,
            ),
        },
      ],
    });
    progress.finish('fine-tune done');
    if (v.resume && trained === 0) {
      console.error(`advbn fine-tune: nothing left to train: the checkpoint in ${v.out} has finished all ${settings.epochs} epochs (pass a larger --epochs to extend the run)`);
    }
    const weights = join(v.out!, 'weights.safetensors');
    await saveWeights(model, weights);
    const last = history.epochs.length - 1;
    const summary = {
      model: settings.model,
      method: settings.method,
      classes: train.classNames,
      samples: train.length,
      epochs: history.epochs.length,
      finalLoss: history.history.loss[last],
      finalAccuracy: history.history.accuracy[last],
      // Both BatchNorm branches: the adversarial one is what AdvBN trained for shifted data.
      ...(val && { validation: { clean: await evaluate(model, val, { bn: 'clean' }), ...(model.hasAdvBn && { adv: await evaluate(model, val, { bn: 'adv' }) }) } }),
      seconds: Math.round((performance.now() - started) / 1000),
      weights,
    };
    writeFileSync(join(v.out!, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    console.log(JSON.stringify(summary, null, 2));
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
