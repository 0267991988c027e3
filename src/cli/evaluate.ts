// `advbn evaluate`: a ResNet's weights on an image folder, optionally on ImageNet-C style
// corruptions (CE / mCE against an earlier evaluation or ImageNet-C's AlexNet) and on
// style-shifted folders, with each BatchNorm branch; writes evaluation.json and evaluation.md.
import { readFileSync } from 'node:fs';
import { imageFolder } from '../data/sources.js';
import { writeEvaluation } from '../evaluation/markdown.js';
import { evaluateRobustness, type RobustnessReport } from '../evaluation/robustness.js';
import { type EvaluationFile, validateEvaluation } from '../evaluation/schema.js';
import { InvalidDataError } from '../errors.js';
import type { BnBranch } from '../models.js';
import { packageInfo } from '../package-root.js';
import { Progress } from '../reproduce/progress.js';
import { badFlag, parseFlags, runCommand } from './args.js';
import { buildModel, evalTransforms, existingDomainFolders, existingFile, existingFolder, modelFlagsHelp, outFolder, readDomainFlags, readModelFlags } from './model-flags.js';

const usage = () => `usage: advbn evaluate --weights FILE --data DIR --out DIR [options]

Evaluates a ResNet on an image folder DIR/<class>/<image> (class folders sorted by name give the
labels, as in training; as many as the classifier has classes) with each BatchNorm branch asked
for, and optionally on ImageNet-C style corruptions and style-shifted folders. Reports top-1 and
top-5 accuracy, per-class accuracy and the confusion matrix, every figure labelled with its BN
branch. Writes OUT/evaluation.json (schema: docs/evaluation.schema.json) and OUT/evaluation.md
only when the evaluation succeeds, and prints a summary.

${modelFlagsHelp()}
  --data DIR          the clean test images
  --out DIR           where evaluation.json and evaluation.md are written (created)
  --bn BRANCH         clean, adv or both (default both: every branch the weights have; adv needs
                      an AdvBN fine-tune's weights)
  --corruptions DIR   ImageNet-C layout DIR/<corruption>/<severity>/<class>/<image>, severities 1-5
                      (advbn corrupt --input DATA --output DIR writes it): top-1/top-5 error per
                      corruption and severity
  --corruption-bn BRANCH
                      the branches the corruptions use, among --bn's: clean, adv or both (default
                      both; clean halves an AdvBN model's corruption pass, the paper's convention)
  --domain NAME=DIR   a style-shifted test folder with the same class folders, e.g.
                      sketch=imagenet-sketch (repeatable)
  --baseline FILE     an earlier evaluation.json with corruptions (e.g. of the model before
                      fine-tuning): CE, mCE and relative mCE against its clean-BN errors
  --alexnet           CE, mCE and relative mCE against ImageNet-C's published AlexNet errors
                      (ImageNet-C only: the corruptions must be its 15 benchmark ones)`;

const BN_CHOICES = ['clean', 'adv', 'both'] as const;

/** The flags, checked: a {@link UsageError} names the first bad one. Reads nothing but the baseline file. */
function readFlags(args: readonly string[]) {
  const v = parseFlags(args, {
    weights: 'string',
    arch: 'string',
    data: 'string',
    out: 'string',
    bn: 'string',
    corruptions: 'string',
    'corruption-bn': 'string',
    domain: 'strings',
    baseline: 'string',
    alexnet: 'boolean',
    size: 'string',
    'batch-size': 'string',
    device: 'string',
  });
  if (v.help) return undefined;
  const model = readModelFlags(v);
  if (v.data === undefined) throw badFlag('data', 'is required (an image folder DIR/<class>/<image>)');
  if (v.out === undefined) throw badFlag('out', 'is required (the folder evaluation.json and evaluation.md go to)');
  const bn = (v.bn ?? 'both') as (typeof BN_CHOICES)[number];
  if (!BN_CHOICES.includes(bn)) throw badFlag('bn', `must be ${BN_CHOICES.join(', ')}`, v.bn);
  const corruptionBn = (v['corruption-bn'] ?? 'both') as (typeof BN_CHOICES)[number];
  if (!BN_CHOICES.includes(corruptionBn)) throw badFlag('corruption-bn', `must be ${BN_CHOICES.join(', ')}`, v['corruption-bn']);
  if (v['corruption-bn'] !== undefined && v.corruptions === undefined) throw badFlag('corruption-bn', 'needs --corruptions');
  if (bn !== 'both' && corruptionBn !== 'both' && corruptionBn !== bn) throw badFlag('corruption-bn', `must be a branch --bn measures (${bn})`, corruptionBn);
  const domains = readDomainFlags(v.domain, ['clean']);
  if (v.baseline !== undefined && v.alexnet) throw badFlag('baseline', 'and --alexnet are exclusive (CE is against one reference)');
  if ((v.baseline !== undefined || v.alexnet) && v.corruptions === undefined) {
    throw badFlag(v.alexnet ? 'alexnet' : 'baseline', 'needs --corruptions (CE and mCE are corruption figures)');
  }
  // The paths, before any model or image is loaded.
  existingFile('weights', model.weights);
  existingFolder('data', v.data);
  if (v.corruptions !== undefined) existingFolder('corruptions', v.corruptions);
  existingDomainFolders(domains);
  outFolder(v.out);
  const baseline = v.baseline === undefined ? undefined : readBaseline(existingFile('baseline', v.baseline));
  return {
    model,
    data: v.data,
    out: v.out,
    bn,
    corruptionBn: bn === 'both' ? corruptionBn : bn,
    corruptions: v.corruptions,
    domains,
    baseline,
    alexnet: v.alexnet ?? false,
    baselinePath: v.baseline,
  };
}

/** An earlier evaluation.json with clean-branch corruption errors. */
function readBaseline(path: string): EvaluationFile {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw badFlag('baseline', `must be an evaluation.json written by advbn evaluate (${err instanceof Error ? err.message : String(err)})`, path);
  }
  const problems = validateEvaluation(value);
  if (problems.length > 0) throw badFlag('baseline', `is not a valid evaluation.json (${problems.slice(0, 3).join('; ')})`, path);
  const file = value as EvaluationFile;
  if (!file.report.corruption?.clean) throw badFlag('baseline', 'has no clean-BN corruption results (evaluate the baseline with --corruptions and --bn clean or both)', path);
  return file;
}

export async function runEvaluate(args: readonly string[]): Promise<number> {
  return runCommand('evaluate', async () => {
    const flags = readFlags(args);
    if (!flags) {
      console.log(usage());
      return 0;
    }
    return evaluateCommand(args, flags);
  });
}

type Settings = NonNullable<ReturnType<typeof readFlags>>;

async function evaluateCommand(args: readonly string[], flags: Settings): Promise<number> {
  const started = performance.now();
  const transforms = evalTransforms(flags.model.size);
  const clean = await imageFolder(flags.data, { transforms });
  try {
    using model = await buildModel(flags.model);
    if (clean.numClasses !== model.numClasses) {
      throw new InvalidDataError(
        `--data ${flags.data} has ${clean.numClasses} class folders (${clean.classNames.slice(0, 5).join(', ')}${clean.numClasses > 5 ? ', ...' : ''}) but the classifier in ${flags.model.weights} has ${model.numClasses} classes`,
      );
    }
    const baseClasses = flags.baseline?.classes;
    if (baseClasses && baseClasses.join('\n') !== clean.classNames.join('\n')) {
      throw new InvalidDataError(
        `--baseline ${flags.baselinePath} was evaluated on other classes (${baseClasses.slice(0, 5).join(', ')}, ...) than --data (${clean.classNames.slice(0, 5).join(', ')}, ...)`,
      );
    }
    let progress: Progress | undefined;
    const report = await evaluateRobustness(model, {
      clean,
      domains: flags.domains,
      ...(flags.corruptions !== undefined && { corruptions: flags.corruptions }),
      folders: { transforms, classes: clean.classNames },
      ...(flags.baseline && { baseline: flags.baseline.report as RobustnessReport }),
      ...(flags.alexnet && { baseline: 'alexnet' as const }),
      bn: flags.bn,
      ...(flags.corruptions !== undefined && { corruptionBn: flags.corruptionBn }),
      batchSize: flags.model.batchSize,
      onProgress: (_done, total, label) => {
        progress ??= new Progress(total);
        progress.step(`evaluated ${label}`);
      },
    });
    progress?.finish('evaluation done');
    const file: EvaluationFile = {
      kind: 'advbn-evaluation',
      command: ['advbn evaluate', ...args].join(' '),
      createdAt: new Date().toISOString(),
      package: packageInfo(),
      model: { arch: model.arch, weights: flags.model.weights, numClasses: model.numClasses, hasAdvBn: model.hasAdvBn, device: model.device },
      settings: { size: flags.model.size, batchSize: flags.model.batchSize, bn: flags.bn, ...(flags.corruptions !== undefined && { corruptionBn: flags.corruptionBn }) },
      data: { clean: flags.data, domains: flags.domains, ...(flags.corruptions !== undefined && { corruptions: flags.corruptions }) },
      ...(flags.baselinePath !== undefined && { baseline: { kind: 'file' as const, path: flags.baselinePath } }),
      ...(flags.alexnet && { baseline: { kind: 'alexnet' as const } }),
      classes: [...clean.classNames],
      report: { ...report, details: report.details!, classNames: [...clean.classNames] },
      seconds: (performance.now() - started) / 1000,
    };
    const problems = validateEvaluation(file);
    if (problems.length > 0) throw new Error(`advbn internal error: evaluation.json does not match its schema: ${problems.join('; ')}`);
    const written = writeEvaluation(flags.out, file);
    console.log(summary(file, written));
    return 0;
  } finally {
    clean.dispose();
  }
}

/** A few lines for the terminal: top-1/top-5 per set and branch, corruption error and mCE. */
function summary(file: EvaluationFile, written: readonly string[]): string {
  const pct = (x: number | undefined) => (x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  const { report } = file;
  const lines: string[] = [];
  const sets = [['clean', report.details.clean] as const, ...Object.entries(report.details.domains)];
  for (const [name, results] of sets) {
    const parts = report.branches.map((bn: BnBranch) => `BN ${bn}: top-1 ${pct(results[bn]?.accuracy)} top-5 ${pct(results[bn]?.top5)}`);
    lines.push(`${name}: ${parts.join(' | ')}`);
  }
  for (const bn of report.branches) {
    const c = report.corruption?.[bn];
    if (!c) continue;
    const errors = Object.values(c.errors).flat();
    const mean = errors.reduce((a, b) => a + b, 0) / errors.length;
    const mce = c.normalization ? `, mCE ${c.mCE === undefined ? `n/a (${c.mCEReason})` : pct(c.mCE)} against ${c.normalization === 'alexnet' ? 'AlexNet' : 'the baseline'}` : '';
    lines.push(`corruptions, BN ${bn}: mean top-1 error ${pct(mean)} over ${Object.keys(c.errors).length} corruptions x 5 severities${mce}`);
  }
  lines.push(`wrote ${written.join(', ')}`);
  return lines.join('\n');
}
