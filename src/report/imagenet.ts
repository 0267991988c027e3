// The report of `advbn reproduce --preset imagenet`: results.json (type, JSON Schema, validator)
// and report.md, the paper's ImageNet table beside ours. The figures of every test set live in
// the evaluation.json files of `advbn evaluate`'s format that the run writes; results.json holds
// the table drawn from them, the recipe, the training history and where each evaluation is.
import type { BnBranch } from '../models.js';
import { schemaErrors } from '../json-schema.js';
import type { RunProvenance } from './schema.js';
import type { ImageNetPreset } from '../reproduce/presets.js';
import { duration } from '../training/builtins.js';

/** One test set of the ImageNet table: the paper's figures beside ours. Fractions; `null` where there is no figure. */
export interface ImageNetRow {
  /** The test set: `'val'`, `'imagenet-c'` or a `--domain` name. */
  set: string;
  /** Readable name, e.g. `'Stylized-ImageNet'`. */
  label: string;
  /** Top-1 accuracy (higher is better) or ImageNet-C's AlexNet-normalised mCE (lower is better). */
  metric: 'top-1' | 'mCE';
  /** The branch the paper reports for this set (for a domain the paper does not name: the adversarial BNs, its convention for style shifts). */
  paperBn: BnBranch;
  /** The paper's figures (method doc), `null` when the doc has none for this set. */
  paper: {
    /** The standard (pretrained) ResNet-50. */
    standard: number;
    /** The AdvBN fine-tune. */
    advbn: number;
  } | null;
  /** Ours: the `--weights` model before fine-tuning, clean BNs (it has no other). */
  standard: number | null;
  /** Ours: the AdvBN fine-tune, on each BN branch. */
  advbn: {
    /** Clean BNs. */
    clean: number | null;
    /** Adversarial BNs. */
    adv: number | null;
  };
  /** Why a figure of ours is `null` (an mCE without definition). */
  reason?: string;
}

/** The training run of an {@link ImageNetResults}: one entry per epoch in every series. */
export interface ImageNetTraining {
  /** 0-based epochs. */
  epochs: number[];
  /** Loss optimised (clean + adversarial cross-entropy). */
  loss: number[];
  /** Cross-entropy of the clean BN branch. */
  cleanLoss: number[];
  /** Cross-entropy of the adversarial BN branch. */
  advLoss: number[];
  /** Training accuracy of the clean branch. */
  accuracy: number[];
  /**
   * Training accuracy of the adversarial branch on the attack's worst-case features; absent when
   * an epoch was trained before advbn counted it (a run resumed from an older checkpoint).
   */
  advAccuracy?: number[];
  /** Learning rate at the epoch's start. */
  lr: number[];
  /** Wall-clock milliseconds. */
  timeMs: number[];
  /** Training images skipped as unreadable. */
  skipped: number[];
  /** Training images. */
  samples: number;
  /** Steps per epoch. */
  stepsPerEpoch: number;
  /** The fine-tuned weights (safetensors, both BN branches), relative to the run's folder. */
  weights: string;
}

/** What `advbn reproduce --preset imagenet` measured: the content of its `results.json`. */
export interface ImageNetResults extends RunProvenance {
  /** Always `'advbn-imagenet-reproduction'`. */
  kind: 'advbn-imagenet-reproduction';
  /** Always `'imagenet'`. */
  preset: 'imagenet';
  /** The recipe as run. */
  config: ImageNetPreset & {
    /** The starting weights (torchvision ResNet-50). */
    weights: string;
    /** Whether every setting is the paper's (no override of epochs, batch size or size). */
    paperRecipe: boolean;
    /** Each setting that differs from the paper's, in words. */
    differences: string[];
    /** The training transforms, in words. */
    trainTransforms: string;
    /** The evaluation transforms of ImageNet val and the domains, in words. */
    evalTransforms: string;
    /** The transforms of the ImageNet-C images, in words. */
    corruptionTransforms: string;
    /** Images per evaluation forward pass. */
    evalBatchSize: number;
  };
  /** The folders. */
  data: {
    /** ImageNet train (image-folder layout). */
    train: string;
    /** ImageNet val (image-folder layout). */
    val: string;
    /** The ImageNet-C tree, when given. */
    imagenetC?: string;
    /** Style-shifted folders by name. */
    domains: Record<string, string>;
  };
  /** Classes of the classifier. */
  numClasses: number;
  /** The fine-tune. */
  training: ImageNetTraining;
  /** Each model's evaluation.json per test set, relative to the run's folder. */
  evaluations: {
    /** The `--weights` model before fine-tuning. */
    standard: Record<string, string>;
    /** The AdvBN fine-tune. */
    advbn: Record<string, string>;
  };
  /** The table: one row per test set. */
  table: ImageNetRow[];
}

const unit = { type: 'number', minimum: 0, maximum: 1 };
const nonEmpty = { type: 'string', minLength: 1 };
const figure = { anyOf: [{ type: 'number', minimum: 0 }, { type: 'null' }] };
const series = (items: Record<string, unknown>) => ({ type: 'array', items });
const paths = { type: 'object', additionalProperties: nonEmpty };

/** JSON Schema (draft 2020-12) of {@link ImageNetResults}; `docs/imagenet-results.schema.json` is this object. */
export const IMAGENET_RESULTS_SCHEMA: Readonly<Record<string, unknown>> = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://github.com/advbn/advbn/docs/imagenet-results.schema.json',
  title: 'advbn reproduce --preset imagenet results',
  description:
    "results.json written by `advbn reproduce --preset imagenet`: the paper's ImageNet table beside ours. Accuracies and mCE are fractions; every figure names its BatchNorm branch.",
  type: 'object',
  required: ['kind', 'preset', 'command', 'createdAt', 'package', 'hardware', 'device', 'config', 'data', 'numClasses', 'training', 'evaluations', 'table'],
  additionalProperties: false,
  properties: {
    kind: { enum: ['advbn-imagenet-reproduction'] },
    preset: { enum: ['imagenet'] },
    command: nonEmpty,
    createdAt: { type: 'string', format: 'date-time' },
    package: { type: 'object', required: ['name', 'version'], additionalProperties: false, properties: { name: nonEmpty, version: nonEmpty } },
    hardware: { type: 'string' },
    device: nonEmpty,
    config: {
      type: 'object',
      required: ['model', 'method', 'cut', 'epochs', 'batchSize', 'optimizer', 'schedule', 'advbn', 'size', 'seed', 'checkpointEvery', 'weights', 'paperRecipe', 'differences'],
      properties: {
        epochs: { type: 'integer', minimum: 1 },
        batchSize: { type: 'integer', minimum: 1 },
        size: { type: 'integer', minimum: 1 },
        weights: nonEmpty,
        paperRecipe: { type: 'boolean' },
        differences: { type: 'array', items: nonEmpty },
      },
    },
    data: {
      type: 'object',
      required: ['train', 'val', 'domains'],
      additionalProperties: false,
      properties: { train: nonEmpty, val: nonEmpty, imagenetC: nonEmpty, domains: paths },
    },
    numClasses: { type: 'integer', minimum: 2 },
    training: {
      type: 'object',
      required: ['epochs', 'loss', 'cleanLoss', 'advLoss', 'accuracy', 'lr', 'timeMs', 'skipped', 'samples', 'stepsPerEpoch', 'weights'],
      additionalProperties: false,
      properties: {
        epochs: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
        loss: series({ type: 'number', minimum: 0 }),
        cleanLoss: series({ type: 'number', minimum: 0 }),
        advLoss: series({ type: 'number', minimum: 0 }),
        accuracy: series(unit),
        advAccuracy: series(unit),
        lr: series({ type: 'number', minimum: 0 }),
        timeMs: series({ type: 'number', minimum: 0 }),
        skipped: series({ type: 'integer', minimum: 0 }),
        samples: { type: 'integer', minimum: 1 },
        stepsPerEpoch: { type: 'integer', minimum: 1 },
        weights: nonEmpty,
      },
    },
    evaluations: {
      type: 'object',
      required: ['standard', 'advbn'],
      additionalProperties: false,
      properties: { standard: paths, advbn: paths },
    },
    table: { type: 'array', minItems: 1, items: { $ref: '#/$defs/row' } },
  },
  $defs: {
    branch: { enum: ['clean', 'adv'] },
    row: {
      type: 'object',
      required: ['set', 'label', 'metric', 'paperBn', 'paper', 'standard', 'advbn'],
      additionalProperties: false,
      properties: {
        set: nonEmpty,
        label: nonEmpty,
        metric: { enum: ['top-1', 'mCE'] },
        paperBn: { $ref: '#/$defs/branch' },
        paper: {
          anyOf: [{ type: 'object', required: ['standard', 'advbn'], additionalProperties: false, properties: { standard: unit, advbn: unit } }, { type: 'null' }],
        },
        standard: figure,
        advbn: { type: 'object', required: ['clean', 'adv'], additionalProperties: false, properties: { clean: figure, adv: figure } },
        reason: nonEmpty,
      },
    },
  },
};

/**
 * Lists every way `value` violates {@link IMAGENET_RESULTS_SCHEMA}, as `<JSON path>: <problem>`,
 * plus what the schema cannot say: every training series has one entry per epoch, each table row
 * names a test set once and has an evaluation of both models. Empty means valid.
 */
export function validateImageNetResults(value: unknown): string[] {
  const errors = schemaErrors(IMAGENET_RESULTS_SCHEMA, value);
  if (errors.length > 0) return errors;
  const results = value as ImageNetResults;
  const t = results.training;
  for (const key of ['loss', 'cleanLoss', 'advLoss', 'accuracy', 'advAccuracy', 'lr', 'timeMs', 'skipped'] as const) {
    if (t[key] !== undefined && t[key].length !== t.epochs.length) errors.push(`$.training.${key}: must have one entry per epoch (${t.epochs.length}), got ${t[key].length}`);
  }
  const seen = new Set<string>();
  for (const [i, row] of results.table.entries()) {
    if (seen.has(row.set)) errors.push(`$.table[${i}].set: ${row.set} appears twice`);
    seen.add(row.set);
    for (const model of ['standard', 'advbn'] as const) {
      if (!results.evaluations[model][row.set]) errors.push(`$.evaluations.${model}: lacks the evaluation of ${row.set}`);
    }
  }
  return errors;
}

/** Free text for markdown (table cells included). */
function cell(text: string): string {
  return text.replace(/[\\|<>&*[\]`]/g, (c) => `\\${c}`).replace(/\r?\n/g, ' ');
}

function table(header: string[], rows: string[][]): string[] {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((_, i) => (i === 0 ? ':--' : '--:'))), ...rows.map(line)];
}

const pct = (v: number | null | undefined): string => (v === null || v === undefined ? 'n/a' : (100 * v).toFixed(1));
const num = (v: number): string => String(Number(v.toPrecision(6)));
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/**
 * Renders the report.md of an ImageNet run: the command, the recipe (and how it differs from the
 * paper's), the table with the paper's figures beside ours (ours on both BN branches, the paper's
 * branch in bold), the training per epoch, links to every evaluation.md and the training curves.
 */
export function renderImageNetReport(results: ImageNetResults): string {
  const { config, training } = results;
  const fence = '`'.repeat(Math.max(3, ...(results.command.match(/`+/g) ?? []).map((r) => r.length + 1)));
  const out: string[] = [
    '# AdvBN reproduction: imagenet',
    '',
    `${fence}sh`,
    results.command,
    fence,
    '',
    `Report written ${results.createdAt} with ${cell(results.package.name)} ${cell(results.package.version)} on ${cell(results.hardware || 'unknown hardware')}; ` +
      `training took ${duration(sum(training.timeMs) / 1000)} over ${training.epochs.length} epochs.`,
    '',
    '## Recipe',
    '',
    config.paperRecipe
      ? "The paper's recipe (method doc): every setting below is the paper's."
      : `**Not the paper's recipe**: ${config.differences.map(cell).join('; ')}. The figures below are not comparable with the paper's.`,
    '',
    ...table(
      ['Setting', 'Value'],
      [
        ['model', `${config.model.arch} from \`${cell(config.weights)}\`, ${results.numClasses} classes`],
        ['method', `${config.method}: tail after stage ${config.cut} (\`layer${config.cut}\`) trained, dual BatchNorms (clean and adversarial)`],
        ['epochs', String(config.epochs)],
        ['batch size', `${config.batchSize} on one device`],
        [
          'optimiser',
          `SGD lr ${config.optimizer.lr}, momentum ${config.optimizer.momentum}, weight decay ${config.optimizer.weightDecay}; lr x${config.schedule.gamma} from epoch ${Math.floor(config.epochs / 2) + 1} (after epoch ${Math.floor(config.epochs / 2)})`,
        ],
        ['AdvBN attack', `K = ${config.advbn.steps} sign steps of ${config.advbn.stepSize}, box [${num(1 - config.advbn.epsilon)}, ${num(1 + config.advbn.epsilon)}]`],
        ['training images', `${training.samples} (${cell(results.data.train)}), ${config.trainTransforms}; ${sum(training.skipped)} unreadable skipped`],
        ['evaluation', `${config.evalTransforms}; ImageNet-C: ${config.corruptionTransforms}; ${config.evalBatchSize} images per pass`],
        ['seed', String(config.seed)],
      ].map(([k, v]) => [k!, v!]),
    ),
    '',
    'The paper trains on 4 GPUs with 64 images each and computes the AdvBN statistics per GPU (the tail BNs synchronised); here one device computes them over the whole batch.',
    '',
    '## Results',
    '',
    "Top-1 accuracy in % (higher is better), ImageNet-C as mCE in % normalised by AlexNet's errors (lower is better). " +
      '**standard** is the `--weights` model before fine-tuning (clean BNs, the only ones it has); **AdvBN** the fine-tune, on both BatchNorm branches. ' +
      "The paper reports clean BNs for ImageNet, ImageNet-C and ImageNet-Instagram and adversarial BNs for Stylized-ImageNet and ImageNet-Sketch: that branch's figure is in bold. " +
      'The paper\'s figures come from the method doc; "not in the doc" where it has none.',
    '',
  ];
  const bold = (row: ImageNetRow, bn: BnBranch, text: string) => (row.paperBn === bn ? `**${text}**` : text);
  const notes: string[] = [];
  const rows = results.table.map((row) => {
    if (row.reason) notes.push(`${row.label}: ${row.reason}`);
    return [
      `${cell(row.label)}${row.set === row.label ? '' : ` (\`${cell(row.set)}\`)`}`,
      row.metric === 'mCE' ? 'mCE (AlexNet)' : 'top-1',
      `${row.paperBn}${bnNote(row)}`,
      row.paper ? pct(row.paper.standard) : 'not in the doc',
      row.paper ? bold(row, row.paperBn, pct(row.paper.advbn)) : 'not in the doc',
      pct(row.standard),
      bold(row, 'clean', pct(row.advbn.clean)),
      bold(row, 'adv', pct(row.advbn.adv)),
    ];
  });
  out.push(...table(['Test set', 'Metric', "Paper's BN", 'Paper: standard', 'Paper: AdvBN', 'Ours: standard (clean BN)', 'Ours: AdvBN, clean BNs', 'Ours: AdvBN, adv BNs'], rows));
  if (results.table.some((r) => !r.paper && r.metric === 'top-1')) {
    out.push('', 'For a domain the paper does not report, the bold branch is the adversarial one (its convention for style shifts); both are measured.');
  }
  for (const note of notes) out.push('', `Note: ${cell(note)}`);
  out.push(
    '',
    '## Training',
    '',
    `Per epoch: learning rate at its start, losses (clean + adversarial branch), training accuracy in % (clean branch${training.advAccuracy ? "; adversarial branch on the attack's worst case" : ''}), time.`,
    '',
  );
  out.push(
    ...table(
      ['Epoch', 'lr', 'loss', 'clean loss', 'adv loss', 'accuracy', ...(training.advAccuracy ? ['adv accuracy'] : []), 'time', 'skipped'],
      training.epochs.map((e, i) => [
        String(e + 1),
        String(Number(training.lr[i]!.toPrecision(6))),
        training.loss[i]!.toFixed(4),
        training.cleanLoss[i]!.toFixed(4),
        training.advLoss[i]!.toFixed(4),
        pct(training.accuracy[i]),
        ...(training.advAccuracy ? [pct(training.advAccuracy[i])] : []),
        duration(training.timeMs[i]! / 1000),
        String(training.skipped[i]),
      ]),
    ),
    '',
    `![Training curves](curves.svg) ([PNG](curves.png))`,
    '',
    '## Evaluations',
    '',
    "Every figure of each test set (top-1 and top-5 per BN branch, per-class accuracy, confusion matrices; per corruption and severity for ImageNet-C) is in the evaluation files, in `advbn evaluate`'s format:",
    '',
  );
  for (const row of results.table) {
    const link = (model: 'standard' | 'advbn') => {
      const json = results.evaluations[model][row.set]!;
      const md = json.replace(/\.json$/, '.md');
      return `[${model}](${md})`;
    };
    out.push(`- ${cell(row.label)}: ${link('standard')}, ${link('advbn')}`);
  }
  out.push('');
  return out.join('\n');
}

/** A footnote mark for a domain whose branch is the convention, not the paper's statement. */
function bnNote(row: ImageNetRow): string {
  return row.paper ? '' : ' (convention)';
}
