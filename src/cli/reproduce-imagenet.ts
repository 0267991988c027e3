// `advbn reproduce --preset imagenet`: the paper's ImageNet recipe on the user's data (see
// src/reproduce/imagenet.ts). Every flag and path is checked before anything is read; Ctrl-C or
// SIGTERM checkpoints training (or ends the evaluation after its current test set) and exits 130,
// and the same command resumes.
import { AbortError } from '../errors.js';
import { IMAGENET, IMAGENET_PAPER } from '../reproduce/presets.js';
import { missingBenchmarkCorruptions, reproduceImageNet } from '../reproduce/imagenet.js';
import type { DeviceName } from '../devices.js';
import { DEVICE_PATTERN, optionRule } from '../validation.js';
import { badFlag, parseFlags, runCommand, UsageError, wholeFlag } from './args.js';
import { existingDomainFolders, existingFile, existingFolder, outFolder, readDomainFlags } from './model-flags.js';

/** The help of the preset (also part of `advbn reproduce --help`). */
export function imagenetUsage(): string {
  const known = Object.entries(IMAGENET_PAPER)
    .filter(([name]) => name !== 'val' && name !== 'imagenet-c')
    .map(([name, f]) => `${name} (${f.label}, ${f.bn} BNs)`)
    .join(', ');
  return `usage: advbn reproduce --preset imagenet --weights FILE --train DIR --val DIR --out DIR
                       [--imagenet-c DIR] [--domain NAME=DIR ...] [--device cpu|cuda|auto]
                       [--epochs N] [--batch-size N] [--size PX] [--eval-batch-size N]
                       [--checkpoint-every N]

The paper's ImageNet experiment on your data (nothing is downloaded): ResNet-50 from torchvision
weights, cut after layer1, dual BatchNorms, AdvBN fine-tune of the tail for ${IMAGENET.epochs} epochs with SGD
(lr ${IMAGENET.optimizer.lr}, momentum ${IMAGENET.optimizer.momentum}, weight decay ${IMAGENET.optimizer.weightDecay}), lr x${IMAGENET.schedule.gamma} after epoch ${IMAGENET.epochs / 2}, batch ${IMAGENET.batchSize} on one
device; training crops randomResizedCrop ${IMAGENET.size} + horizontal flip, evaluation resize 256 + centre
crop 224. Evaluates the weights as given ("standard") and the fine-tune on both BN branches:
ImageNet val, ImageNet-C (mCE normalised by AlexNet; the paper reports the clean BNs) and each
domain. Writes OUT/report.md (the paper's numbers beside ours, the command), OUT/results.json
(schema: docs/imagenet-results.schema.json), OUT/curves.svg/.png and every evaluation as
OUT/evaluations/<standard|advbn>/<set>/evaluation.json/.md. Resumable: OUT/checkpoint.safetensors
is written every --checkpoint-every steps and after each epoch; rerunning the same command
continues training and skips the evaluations already written (other training settings in the
same OUT are refused). Ctrl-C or SIGTERM checkpoints and exits 130 (during an evaluation: after
its current test set; a second Ctrl-C stops at once).

  --weights FILE      torchvision ResNet-50 weights, .pth or .safetensors (e.g. resnet50-0676ba61.pth)
  --train DIR         ImageNet train, DIR/<class>/<image> (class folders sorted = the classifier's order)
  --val DIR           ImageNet val, the same class folders
  --out DIR           the run's folder (created; the same OUT resumes)
  --imagenet-c DIR    ImageNet-C, DIR/<corruption>/<severity>/<class>/<image> with the 15 benchmark
                      corruptions (extra ones are evaluated, not counted in mCE)
  --domain NAME=DIR   a style-shifted test folder with the same class folders (repeatable); the
                      paper's figures exist for ${known}
  --device NAME       cpu, cuda, cuda:N or auto (default auto)
  --epochs N          override the paper's ${IMAGENET.epochs} (the report then says it is not the paper's recipe)
  --batch-size N      override the paper's ${IMAGENET.batchSize} (e.g. for a GPU with less memory)
  --size PX           override the paper's ${IMAGENET.size} px crops (evaluation resizes to round(PX / 0.875))
  --eval-batch-size N images per evaluation pass (default ${optionRule('evaluate.batchSize').default})
  --checkpoint-every N  steps between checkpoints within an epoch (default ${IMAGENET.checkpointEvery})`;
}

/** Flags of the other presets, refused here by name. */
const OTHER_PRESETS = ['quick', 'full', 'seeds', 'methods', 'save-models', 'no-corruptions', 'data'] as const;

/** The flags, checked (a {@link UsageError} names the first bad one); reads nothing but folder listings. */
function readFlags(args: readonly string[]) {
  const v = parseFlags(args, {
    preset: 'string',
    weights: 'string',
    train: 'string',
    val: 'string',
    out: 'string',
    'imagenet-c': 'string',
    domain: 'strings',
    device: 'string',
    epochs: 'string',
    'batch-size': 'string',
    size: 'string',
    'eval-batch-size': 'string',
    'checkpoint-every': 'string',
    // The other presets' flags, parsed only to be refused by name.
    quick: 'boolean',
    full: 'boolean',
    'no-corruptions': 'boolean',
    seeds: 'string',
    methods: 'string',
    'save-models': 'string',
    data: 'string',
  });
  if (v.help) return undefined;
  for (const flag of OTHER_PRESETS) if (v[flag] !== undefined) throw badFlag(flag, 'is an option of the digits and PACS presets, not of --preset imagenet');
  const need = (name: 'weights' | 'train' | 'val' | 'out', what: string) => {
    const value = v[name];
    if (value === undefined) throw badFlag(name, `is required (${what})`);
    return value;
  };
  const weights = need('weights', 'torchvision ResNet-50 weights, .pth or .safetensors');
  const train = need('train', 'ImageNet train, DIR/<class>/<image>');
  const val = need('val', 'ImageNet val, DIR/<class>/<image>');
  const out = need('out', "the run's folder; the same folder resumes");
  if (v.device !== undefined && !DEVICE_PATTERN.test(v.device)) throw badFlag('device', 'must be cpu, cuda, cuda:N or auto', v.device);
  const epochs = wholeFlag('epochs', v.epochs, 1);
  const batchSize = wholeFlag('batch-size', v['batch-size'], 1);
  const size = wholeFlag('size', v.size, 1);
  const evalBatchSize = wholeFlag('eval-batch-size', v['eval-batch-size'], 1);
  const checkpointEvery = wholeFlag('checkpoint-every', v['checkpoint-every'], 1);
  const domains = readDomainFlags(v.domain, ['val', 'imagenet-c', 'clean']);
  // The paths, before anything is read.
  existingFile('weights', weights);
  existingFolder('train', train);
  existingFolder('val', val);
  const imagenetC = v['imagenet-c'];
  if (imagenetC !== undefined) {
    existingFolder('imagenet-c', imagenetC);
    const missing = missingBenchmarkCorruptions(imagenetC);
    if (missing.length > 0) {
      throw badFlag('imagenet-c', `must hold the 15 ImageNet-C benchmark corruptions (DIR/<corruption>/<severity>/<class>/<image>); it lacks ${missing.join(', ')}`, imagenetC);
    }
  }
  existingDomainFolders(domains);
  outFolder(out);
  return {
    weights,
    train,
    val,
    out,
    domains,
    ...(imagenetC !== undefined && { imagenetC }),
    ...(v.device !== undefined && { device: v.device as DeviceName }),
    ...(epochs !== undefined && { epochs }),
    ...(batchSize !== undefined && { batchSize }),
    ...(size !== undefined && { size }),
    ...(evalBatchSize !== undefined && { evalBatchSize }),
    ...(checkpointEvery !== undefined && { checkpointEvery }),
  };
}

/** Runs `advbn reproduce --preset imagenet ARGS`. */
export async function runReproduceImageNet(args: readonly string[]): Promise<number> {
  return runCommand('reproduce', async () => {
    const flags = readFlags(args);
    if (!flags) {
      console.log(imagenetUsage());
      return 0;
    }
    const controller = new AbortController();
    const interrupt = (signal: string) => {
      if (controller.signal.aborted) {
        console.error(`\nadvbn reproduce: ${signal} again: stopping now (the test set being evaluated is evaluated again on the rerun)`);
        process.exit(130);
      }
      console.error(`\nadvbn reproduce: ${signal}: checkpointing training, or finishing the test set being evaluated, then stopping (${signal} again stops at once)`);
      controller.abort(signal);
    };
    process.on('SIGINT', interrupt).on('SIGTERM', interrupt);
    try {
      const { results, files } = await reproduceImageNet({ ...flags, signal: controller.signal, command: ['advbn reproduce', ...args].join(' ') });
      const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
      for (const row of results.table) {
        const paper = row.paper ? `paper ${pct(row.paper.standard)} -> ${pct(row.paper.advbn)} (${row.paperBn} BNs)` : 'not in the doc';
        console.log(`${row.label} ${row.metric}: standard ${pct(row.standard)}, AdvBN clean BNs ${pct(row.advbn.clean)}, adv BNs ${pct(row.advbn.adv)}; ${paper}`);
      }
      console.log(`wrote ${files.join(', ')}`);
      return 0;
    } catch (err) {
      if (!(err instanceof AbortError)) throw err;
      console.error(`advbn reproduce: interrupted; ${flags.out} holds the position reached: rerun the same command to continue`);
      return 130;
    } finally {
      process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
    }
  });
}
