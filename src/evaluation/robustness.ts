// Robustness of a model: clean accuracy, accuracy per style domain, and top-1 error per
// corruption and severity with CE / mCE / relative mCE against a baseline model (or ImageNet-C's
// AlexNet). Every figure is measured with each BatchNorm branch asked for and labelled with it;
// the paper's convention (clean BNs for clean and corrupted data, adversarial BNs for style
// domains) picks which one a summary reports. Test sets are datasets or image folders (an
// ImageNet-C tree for the corruptions).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ErrorTable } from '../../index.js';
import { CORRUPTION_NAMES } from '../data/corruptions.js';
import type { Dataset, DatasetInput } from '../data/dataset.js';
import { imageFolder, type ImageFolderOptions } from '../data/sources.js';
import { centerCrop, resizeShorter } from '../data/transforms.js';
import { InvalidDataError, InvalidOptionError } from '../errors.js';
import { evaluateIn, type EvaluationResult } from './evaluate.js';
import type { BnBranch, Model } from '../models.js';
import { callNativeSync } from '../native.js';
import { OptionReader, invalidOption, isPlainObject } from '../validation.js';

/** Hands out corrupted copies of the test data, one (corruption, severity) at a time. */
export interface CorruptionProvider {
  /** Corruptions to evaluate; default the 15 ImageNet-C benchmark corruptions. */
  names?: readonly string[];
  /** The test data under `name` at `severity` (1..5); disposed after evaluation unless `keepsDatasets`. */
  dataset(name: string, severity: number): Promise<Dataset>;
  /** The provider owns the datasets it hands out (e.g. a cache shared by several models) and disposes them itself. */
  keepsDatasets?: boolean;
}

/** Options of {@link evaluateRobustness}. */
export interface RobustnessOptions {
  /** Clean test data (the source domain): a dataset, or an image folder `DIR/<class>/<image>`. */
  clean: DatasetInput | string;
  /** Style-shifted test sets by name, e.g. `{ sketch, mnist_m }`: datasets or image folders. */
  domains?: Record<string, DatasetInput | string>;
  /**
   * Corrupted copies of the clean test data (ImageNet-C style): a provider, or a folder in the
   * ImageNet-C layout `DIR/<corruption>/<severity>/<class>/<image>` (what `advbn corrupt` writes
   * for an image folder): every sub-folder a corruption name (see `listCorruptions()`) with the
   * severities `1` to `5`, each with every class folder. The layout is checked before anything
   * is evaluated.
   */
  corruptions?: CorruptionProvider | string;
  /**
   * How the folders given as paths are read ({@link imageFolder}'s options). Default transforms
   * `[resizeShorter(256), centerCrop(224)]` (then ImageNet normalisation); default classes: the
   * clean folder's (or the clean dataset's `classNames`), so every folder labels alike.
   */
  folders?: ImageFolderOptions;
  /**
   * What CE, mCE and relative mCE are measured against: the report of a baseline model (its
   * clean-branch corruption errors), or `'alexnet'`, ImageNet-C's published AlexNet errors (only
   * meaningful on ImageNet-C: the corruptions must be exactly the 15 benchmark ones).
   */
  baseline?: RobustnessReport | 'alexnet';
  /** Branches to measure: `'clean'`, `'adv'` or `'both'` (default: every branch the model has). */
  bn?: BnBranch | 'both';
  /**
   * Branches the corruption sets are measured with, among `bn`'s (default: all of them). `'clean'`
   * halves an AdvBN model's corruption pass: the paper reports corruptions with the clean BNs.
   */
  corruptionBn?: BnBranch | 'both';
  /** Samples per forward pass; default 256. */
  batchSize?: number;
  /** Called after each evaluated set, e.g. for a progress bar. */
  onProgress?: (done: number, total: number, label: string) => void;
}

/** Accuracy (or error) per BatchNorm branch measured. */
export type PerBranch = Partial<Record<BnBranch, number>>;

/** Full results ({@link evaluate}'s: top-1, top-5, per class, confusion matrix) per BatchNorm branch measured. */
export type PerBranchResults = Partial<Record<BnBranch, EvaluationResult>>;

/** Which branch each kind of figure uses under the paper's convention. */
export interface BranchConvention {
  /** Branch for the clean test set. */
  clean: BnBranch;
  /** Branch for corrupted data. */
  corruption: BnBranch;
  /** Branch for style domains. */
  domains: BnBranch;
}

/** Corruption results of one branch. */
export interface CorruptionFigures {
  /** Top-1 error per corruption, severities 1..5. */
  errors: Record<string, number[]>;
  /** Top-5 error per corruption, severities 1..5. */
  top5Errors?: Record<string, number[]>;
  /** Top-1 error on the clean data with the same branch. */
  cleanError: number;
  /** What CE and mCE are relative to: the baseline report's clean branch, or ImageNet-C's AlexNet (absent without a baseline). */
  normalization?: 'baseline' | 'alexnet';
  /** CE per corruption against the baseline; `null` where undefined (the baseline made no mistake under it). */
  CE?: Record<string, number | null>;
  /** Relative CE per corruption; `null` where undefined (the baseline's error did not rise above its clean error). */
  relativeCE?: Record<string, number | null>;
  /** Mean CE over the 15 benchmark corruptions (absent without a baseline, or when undefined: see `mCEReason`). */
  mCE?: number;
  /** Why `mCE` is absent although a baseline was given. */
  mCEReason?: string;
  /** Relative mCE against the baseline (absent without a baseline, or when undefined: see `relativeMCEReason`). */
  relativeMCE?: number;
  /** Why `relativeMCE` is absent although a baseline was given. */
  relativeMCEReason?: string;
}

/** {@link evaluate}'s full results of each test set, per branch. */
export interface RobustnessDetails {
  /** The clean test set. */
  clean: PerBranchResults;
  /** Each style domain, by name. */
  domains: Record<string, PerBranchResults>;
}

/** What {@link evaluateRobustness} resolves to. */
export interface RobustnessReport {
  /** Branches measured: by default `['clean']`, or `['clean', 'adv']` for an AdvBN model. */
  branches: BnBranch[];
  /** The paper's convention for this model, among the branches measured. */
  convention: BranchConvention;
  /** Clean top-1 accuracy per branch. */
  clean: PerBranch;
  /** Top-1 accuracy per style domain and branch. */
  domains: Record<string, PerBranch>;
  /** Every figure of the clean set and of each domain per branch: loss, top-1, top-5, per-class accuracy, confusion matrix. */
  details?: RobustnessDetails;
  /** Class names in label order, when the clean data has them (image folders). */
  classNames?: string[];
  /** Corruption results per branch measured with them (absent without `corruptions`; see `corruptionBn`). */
  corruption?: Partial<Record<BnBranch, CorruptionFigures>>;
}

const CONTEXT = 'evaluateRobustness';
const SEVERITIES = [1, 2, 3, 4, 5] as const;

/** The 15 ImageNet-C benchmark corruptions, in their order. */
function benchmarkCorruptions(): string[] {
  return callNativeSync((n) => n.benchmarkCorruptions());
}

/**
 * Measures a model's robustness to style shifts and corruptions; see {@link RobustnessReport}.
 * Test sets may be image folders: ImageNet val, an ImageNet-C tree, ImageNet-Sketch, ...
 *
 * @example
 * ```ts
 * import { evaluateRobustness } from 'advbn';
 *
 * const baseline = await evaluateRobustness(erm, { clean, domains: { sketch } });
 * const report = await evaluateRobustness(advbnModel, { clean, domains: { sketch }, baseline });
 * // On folders, with ImageNet-C's AlexNet normalisation of mCE:
 * const imagenet = await evaluateRobustness(model, { clean: 'imagenet/val', corruptions: 'imagenet-c', domains: { sketch: 'imagenet-sketch' }, baseline: 'alexnet' });
 * ```
 */
export async function evaluateRobustness(model: Model, options: RobustnessOptions): Promise<RobustnessReport> {
  const o = new OptionReader(CONTEXT, options).rejectUnknown(['clean', 'domains', 'corruptions', 'folders', 'baseline', 'bn', 'corruptionBn', 'batchSize', 'onProgress']);
  if (!o.has('clean')) throw o.fail('clean', 'a Dataset, { images, labels } or an image folder path');
  const batchSize = o.ruled('batchSize', 'evaluate.batchSize');
  const domains = options.domains ?? {};
  if (!isPlainObject(domains)) throw o.fail('domains', 'an object of datasets or folder paths by name');
  const corruptionsOption = options.corruptions;
  if (corruptionsOption !== undefined && typeof corruptionsOption !== 'string' && typeof corruptionsOption?.dataset !== 'function') {
    throw o.fail('corruptions', 'an ImageNet-C folder path or an object with a dataset(name, severity) method');
  }
  const folders = options.folders ?? {};
  if (!isPlainObject(folders)) throw o.fail('folders', "an object of imageFolder's options");
  const onProgress = options.onProgress;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw o.fail('onProgress', 'a function');
  const branches = readBranches(o, model);
  const corruptionBranches = readCorruptionBranches(o, branches);
  const baseline = options.baseline;
  if (baseline !== undefined && baseline !== 'alexnet' && !isPlainObject(baseline)) throw o.fail('baseline', "a report from evaluateRobustness or 'alexnet'");

  const owned: Dataset[] = [];
  try {
    // Every folder is listed (and the ImageNet-C layout checked) before anything is evaluated.
    const folderOptions: ImageFolderOptions = { transforms: [resizeShorter(256), centerCrop(224)], ...folders };
    const read = (path: string, classes?: readonly string[]) => imageFolder(path, { ...folderOptions, ...(classes && !folderOptions.classes && { classes }) });
    const open = async (path: string, classes?: readonly string[]) => {
      const dataset = await read(path, classes);
      owned.push(dataset);
      return dataset;
    };
    const clean = typeof options.clean === 'string' ? await open(options.clean) : options.clean;
    const named = (clean as { classNames?: readonly string[] }).classNames;
    const classNames = folderOptions.classes ?? (Array.isArray(named) ? named : undefined);
    const domainData: [string, DatasetInput][] = [];
    for (const [name, data] of Object.entries(domains)) {
      domainData.push([name, typeof data === 'string' ? await open(data, classNames) : (data as DatasetInput)]);
    }
    const provider = typeof corruptionsOption === 'string' ? corruptionFolder(corruptionsOption, classNames, (path) => read(path, classNames)) : corruptionsOption;
    const names = provider ? [...(provider.names ?? benchmarkCorruptions())] : [];
    const reference = provider && baseline !== undefined ? baselineTable(baseline, names) : undefined;

    const total = 1 + domainData.length + names.length * SEVERITIES.length;
    let done = 0;
    const tick = (label: string) => onProgress?.((done += 1), total, label);
    const measure = async (data: DatasetInput, which: readonly BnBranch[] = branches): Promise<PerBranchResults> => {
      const out: PerBranchResults = {};
      for (const bn of which) out[bn] = await evaluateIn(CONTEXT, model, data, { bn, batchSize });
      return out;
    };
    const accuracies = (results: PerBranchResults): PerBranch => Object.fromEntries(branches.map((bn) => [bn, results[bn]!.accuracy]));

    const cleanResults = await measure(clean);
    const report: RobustnessReport = {
      branches,
      convention: convention(branches, corruptionBranches),
      clean: accuracies(cleanResults),
      domains: {},
      details: { clean: cleanResults, domains: {} },
      ...(classNames && { classNames: [...classNames] }),
    };
    tick('clean');
    for (const [name, data] of domainData) {
      const results = await measure(data);
      report.domains[name] = accuracies(results);
      report.details!.domains[name] = results;
      tick(name);
    }
    if (provider) {
      const top1: Partial<Record<BnBranch, Record<string, number[]>>> = {};
      const top5: Partial<Record<BnBranch, Record<string, number[]>>> = {};
      for (const name of names) {
        for (const severity of SEVERITIES) {
          const data = await provider.dataset(name, severity);
          try {
            const results = await measure(data, corruptionBranches);
            for (const bn of corruptionBranches) {
              ((top1[bn] ??= {})[name] ??= []).push(1 - results[bn]!.accuracy);
              ((top5[bn] ??= {})[name] ??= []).push(1 - results[bn]!.top5);
            }
          } finally {
            if (provider.keepsDatasets !== true) data.dispose();
          }
          tick(`${name} s${severity}`);
        }
      }
      report.corruption = {};
      for (const bn of corruptionBranches) {
        const figures: CorruptionFigures = { errors: top1[bn] ?? {}, top5Errors: top5[bn] ?? {}, cleanError: 1 - report.clean[bn]! };
        report.corruption[bn] = reference ? withMetrics(figures, reference) : figures;
      }
    }
    return report;
  } finally {
    for (const dataset of owned) dataset.dispose();
  }
}

/** `report` with its CE, mCE and relative mCE (re)computed against `baseline`, without evaluating again. */
export function compareToBaseline(report: RobustnessReport, baseline: RobustnessReport | 'alexnet'): RobustnessReport {
  if (!report.corruption) throw invalidOption('compareToBaseline', 'report', '(no corruption results)', 'a report with corruption results');
  const names = Object.keys(Object.values(report.corruption)[0]?.errors ?? {});
  const reference = baselineTable(baseline, names, 'compareToBaseline');
  const corruption: Partial<Record<BnBranch, CorruptionFigures>> = {};
  for (const [bn, figures] of Object.entries(report.corruption) as [BnBranch, CorruptionFigures][]) corruption[bn] = withMetrics(figures, reference);
  return { ...report, corruption };
}

function readBranches(o: OptionReader, model: Model): BnBranch[] {
  const bn = o.oneOf<BnBranch | 'both'>('bn', ['clean', 'adv', 'both'], 'both');
  if (bn === 'adv' && !model.hasAdvBn) throw o.fail('bn', `"clean" or "both" for a model without adversarial BatchNorms (fine-tune it with method "advbn" first)`);
  if (bn === 'both') return model.hasAdvBn ? ['clean', 'adv'] : ['clean'];
  return [bn];
}

function readCorruptionBranches(o: OptionReader, branches: readonly BnBranch[]): BnBranch[] {
  const bn = o.oneOf<BnBranch | 'both'>('corruptionBn', ['clean', 'adv', 'both'], 'both');
  if (bn === 'both') return [...branches];
  if (!branches.includes(bn)) throw o.fail('corruptionBn', `a branch among those measured (${branches.join(', ')}; see option "bn")`);
  return [bn];
}

/** The paper's branches (clean BNs for clean and corrupted data, adversarial ones for style domains) among those measured. */
function convention(branches: readonly BnBranch[], corruptionBranches: readonly BnBranch[]): BranchConvention {
  const pick = (among: readonly BnBranch[], wanted: BnBranch) => (among.includes(wanted) ? wanted : among[0]!);
  return { clean: pick(branches, 'clean'), corruption: pick(corruptionBranches, 'clean'), domains: pick(branches, 'adv') };
}

/** The baseline's error table for the corruption metrics, checked against the corruptions evaluated. */
function baselineTable(baseline: RobustnessReport | 'alexnet', names: readonly string[], context = CONTEXT): { table: ErrorTable; kind: 'baseline' | 'alexnet' } {
  if (baseline === 'alexnet') {
    const benchmark = benchmarkCorruptions();
    const missing = benchmark.filter((n) => !names.includes(n));
    const extra = names.filter((n) => !benchmark.includes(n));
    if (missing.length > 0 || extra.length > 0) {
      const problems = [
        ...(missing.length > 0 ? [`missing ${missing.join(', ')}`] : []),
        ...(extra.length > 0 ? [`not ImageNet-C benchmark corruptions: ${extra.join(', ')}`] : []),
      ];
      throw new InvalidOptionError(
        `${context}: option "baseline" 'alexnet' normalises by ImageNet-C's AlexNet errors, published for the 15 benchmark corruptions only; the corruptions evaluated do not match them (${problems.join('; ')})`,
        'baseline',
        baseline,
      );
    }
    return { table: callNativeSync((n) => n.alexnetErrors()), kind: 'alexnet' };
  }
  const base = baseline.corruption?.clean;
  if (!base || !isPlainObject(base.errors)) {
    throw invalidOption(
      context,
      'baseline',
      '(a report without clean-branch corruption results)',
      'a report from evaluateRobustness with corruptions measured on the clean branch',
    );
  }
  const missing = names.filter((name) => !base.errors[name]);
  if (missing.length > 0) throw new InvalidOptionError(`${context}: option "baseline" lacks corruptions ${missing.join(', ')}`, 'baseline', missing);
  return { table: { clean: base.cleanError, corruptions: Object.fromEntries(names.map((n) => [n, base.errors[n]!])) }, kind: 'baseline' };
}

/** `figures` with CE per corruption, mCE and relative mCE against the reference table. */
function withMetrics(figures: CorruptionFigures, reference: { table: ErrorTable; kind: 'baseline' | 'alexnet' }): CorruptionFigures {
  const measured = { errors: figures.errors, ...(figures.top5Errors && { top5Errors: figures.top5Errors }), cleanError: figures.cleanError };
  const metrics = callNativeSync((n) => n.corruptionMetrics({ clean: figures.cleanError, corruptions: figures.errors }, reference.table));
  const names = Object.keys(figures.errors);
  const out: CorruptionFigures = {
    ...measured,
    normalization: reference.kind,
    CE: Object.fromEntries(names.map((c) => [c, metrics.perCorruption[c]?.CE ?? null])),
    relativeCE: Object.fromEntries(names.map((c) => [c, metrics.perCorruption[c]?.relativeCE ?? null])),
  };
  if (metrics.mCE !== undefined && metrics.mCE !== null) out.mCE = metrics.mCE;
  else if (metrics.mCEReason) out.mCEReason = metrics.mCEReason;
  if (metrics.relativeMCE !== undefined && metrics.relativeMCE !== null) out.relativeMCE = metrics.relativeMCE;
  else if (metrics.relativeMCEReason) out.relativeMCEReason = metrics.relativeMCEReason;
  return out;
}

const visible = (dir: string) => readdirSync(dir, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
const isDir = (path: string) => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};

/**
 * A provider over an ImageNet-C tree `dir/<corruption>/<severity>/<class>/<image>`; the layout
 * (known corruption names, severities 1..5, every class folder) is checked now.
 */
function corruptionFolder(dir: string, classes: readonly string[] | undefined, open: (path: string) => Promise<Dataset>): CorruptionProvider {
  const layout = 'the ImageNet-C layout DIR/<corruption>/<severity>/<class>/<image>';
  const bad = (why: string) => new InvalidDataError(`${CONTEXT}: corruptions folder ${dir}: ${why} (expected ${layout})`);
  if (!isDir(dir)) throw bad('is not a folder');
  const found = visible(dir)
    .filter((e) => isDir(join(dir, e.name)))
    .map((e) => e.name);
  const known: readonly string[] = CORRUPTION_NAMES;
  const unknown = found.filter((n) => !known.includes(n));
  if (unknown.length > 0)
    throw bad(`${unknown.map((n) => JSON.stringify(n)).join(', ')} ${unknown.length === 1 ? 'is not a corruption name' : 'are not corruption names'} (see advbn corrupt --list)`);
  if (found.length === 0) throw bad('has no corruption folders');
  const names = known.filter((n) => found.includes(n));
  for (const name of names) {
    const severities = visible(join(dir, name))
      .filter((e) => isDir(join(dir, name, e.name)))
      .map((e) => e.name);
    const wrong = severities.filter((s) => !/^[1-5]$/.test(s));
    if (wrong.length > 0) throw bad(`${name}/${wrong[0]} is not a severity 1 to 5`);
    const missing = SEVERITIES.filter((s) => !severities.includes(String(s)));
    if (missing.length > 0) throw bad(`${name} lacks severit${missing.length === 1 ? 'y' : 'ies'} ${missing.join(', ')}`);
    for (const severity of SEVERITIES) {
      const lacking = (classes ?? []).filter((c) => !isDir(join(dir, name, String(severity), c)));
      if (lacking.length > 0)
        throw bad(`${name}/${severity} lacks the class folder${lacking.length === 1 ? '' : 's'} ${lacking.slice(0, 5).join(', ')}${lacking.length > 5 ? ', ...' : ''}`);
    }
  }
  return { names, dataset: (name, severity) => open(join(dir, name, String(severity))) };
}
