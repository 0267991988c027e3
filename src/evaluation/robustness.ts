// Robustness of a model: clean accuracy, accuracy per style domain, and top-1 error per
// corruption and severity with mCE / relative mCE against a baseline model. Every figure is
// measured with each BatchNorm branch the model has and labelled with it; the paper's
// convention (clean BNs for clean and corrupted data, adversarial BNs for style domains) picks
// which one a summary reports.
import type { Dataset, DatasetInput } from '../data/dataset.js';
import { InvalidOptionError } from '../errors.js';
import { evaluateIn } from './evaluate.js';
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
  /** Clean test data (the source domain). */
  clean: DatasetInput;
  /** Style-shifted test sets by name, e.g. `{ sketch, mnist_m }`. */
  domains?: Record<string, DatasetInput>;
  /** Corrupted copies of the clean test data (ImageNet-C style). */
  corruptions?: CorruptionProvider;
  /** Report of the baseline model that mCE and relative mCE are measured against. */
  baseline?: RobustnessReport;
  /** Samples per forward pass; default 256. */
  batchSize?: number;
  /** Called after each evaluated set, e.g. for a progress bar. */
  onProgress?: (done: number, total: number, label: string) => void;
}

/** Accuracy (or error) per BatchNorm branch the model has. */
export type PerBranch = Partial<Record<BnBranch, number>>;

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
  /** Top-1 error on the clean data with the same branch. */
  cleanError: number;
  /** Mean corruption error against the baseline (absent without a baseline). */
  mCE?: number;
  /** Relative mCE against the baseline (absent without a baseline, or when undefined for some corruption). */
  relativeMCE?: number;
}

/** What {@link evaluateRobustness} resolves to. */
export interface RobustnessReport {
  /** Branches measured: `['clean']`, or `['clean', 'adv']` for an AdvBN model. */
  branches: BnBranch[];
  /** The paper's convention for this model (adversarial BNs only when it has them). */
  convention: BranchConvention;
  /** Clean accuracy per branch. */
  clean: PerBranch;
  /** Accuracy per style domain and branch. */
  domains: Record<string, PerBranch>;
  /** Corruption results per branch (absent without `corruptions`). */
  corruption?: Partial<Record<BnBranch, CorruptionFigures>>;
}

const CONTEXT = 'evaluateRobustness';
const SEVERITIES = [1, 2, 3, 4, 5] as const;

/**
 * Measures a model's robustness to style shifts and corruptions; see {@link RobustnessReport}.
 *
 * @example
 * ```ts
 * import { evaluateRobustness } from 'advbn';
 *
 * const baseline = await evaluateRobustness(erm, { clean, domains: { sketch } });
 * const report = await evaluateRobustness(advbnModel, { clean, domains: { sketch }, baseline });
 * ```
 */
export async function evaluateRobustness(model: Model, options: RobustnessOptions): Promise<RobustnessReport> {
  const o = new OptionReader(CONTEXT, options).rejectUnknown(['clean', 'domains', 'corruptions', 'baseline', 'batchSize', 'onProgress']);
  if (!o.has('clean')) throw o.fail('clean', 'a Dataset or { images, labels }');
  const batchSize = o.ruled('batchSize', 'evaluate.batchSize');
  const domains = options.domains ?? {};
  if (!isPlainObject(domains)) throw o.fail('domains', 'an object of datasets by name');
  const provider = options.corruptions;
  if (provider !== undefined && typeof provider.dataset !== 'function') throw o.fail('corruptions', 'an object with a dataset(name, severity) method');
  const names = provider ? [...(provider.names ?? callNativeSync((n) => n.benchmarkCorruptions()))] : [];
  const onProgress = options.onProgress;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw o.fail('onProgress', 'a function');

  const branches: BnBranch[] = model.hasAdvBn ? ['clean', 'adv'] : ['clean'];
  const total = 1 + Object.keys(domains).length + names.length * SEVERITIES.length;
  let done = 0;
  const tick = (label: string) => onProgress?.((done += 1), total, label);
  const measure = async (data: DatasetInput): Promise<PerBranch> => {
    const out: PerBranch = {};
    for (const bn of branches) out[bn] = (await evaluateIn(CONTEXT, model, data, { bn, batchSize })).accuracy;
    return out;
  };

  const report: RobustnessReport = {
    branches,
    convention: { clean: 'clean', corruption: 'clean', domains: model.hasAdvBn ? 'adv' : 'clean' },
    clean: await measure(options.clean),
    domains: {},
  };
  tick('clean');
  for (const [name, data] of Object.entries(domains)) {
    report.domains[name] = await measure(data);
    tick(name);
  }
  if (provider) {
    const errors: Partial<Record<BnBranch, Record<string, number[]>>> = {};
    for (const name of names) {
      for (const severity of SEVERITIES) {
        const data = await provider.dataset(name, severity);
        try {
          const accuracy = await measure(data);
          for (const bn of branches) ((errors[bn] ??= {})[name] ??= []).push(1 - accuracy[bn]!);
        } finally {
          if (provider.keepsDatasets !== true) data.dispose();
        }
        tick(`${name} s${severity}`);
      }
    }
    report.corruption = {};
    for (const bn of branches) report.corruption[bn] = corruptionFigures(errors[bn]!, 1 - report.clean[bn]!, options.baseline);
  }
  return report;
}

/** `report` with its mCE and relative mCE (re)computed against `baseline`, without evaluating again. */
export function compareToBaseline(report: RobustnessReport, baseline: RobustnessReport): RobustnessReport {
  if (!report.corruption) throw invalidOption('compareToBaseline', 'report', '(no corruption results)', 'a report with corruption results');
  const corruption: Partial<Record<BnBranch, CorruptionFigures>> = {};
  for (const [bn, figures] of Object.entries(report.corruption) as [BnBranch, CorruptionFigures][]) {
    corruption[bn] = corruptionFigures(figures.errors, figures.cleanError, baseline);
  }
  return { ...report, corruption };
}

/** mCE and relative mCE of one branch's errors against the baseline's clean-branch errors. */
function corruptionFigures(errors: Record<string, number[]>, cleanError: number, baseline: RobustnessReport | undefined): CorruptionFigures {
  const figures: CorruptionFigures = { errors, cleanError };
  if (baseline === undefined) return figures;
  const base = baseline.corruption?.clean;
  if (!base) throw invalidOption(CONTEXT, 'baseline', '(a report without corruption results)', 'a report from evaluateRobustness with corruptions');
  const missing = Object.keys(errors).filter((name) => !base.errors[name]);
  if (missing.length > 0) {
    throw new InvalidOptionError(`${CONTEXT}: option "baseline" lacks corruptions ${missing.join(', ')}`, 'baseline', missing);
  }
  const metrics = callNativeSync((n) => n.corruptionMetrics({ clean: cleanError, corruptions: errors }, { clean: base.cleanError, corruptions: base.errors }));
  figures.mCE = metrics.mCE;
  if (metrics.relativeMCE !== undefined && metrics.relativeMCE !== null) figures.relativeMCE = metrics.relativeMCE;
  return figures;
}
