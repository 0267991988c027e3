// The figures of results.json from the reports of the (held-out domain, seed) pairs: per method
// its held-out accuracies, in-domain accuracy and corruption figures, and the paired comparisons
// of every method with ERM over the pairs that share a baseline.
import type { BnBranch } from '../models.js';
import type { HistoryRecord } from '../training/fine-tune.js';
import type { RobustnessReport } from '../evaluation/robustness.js';
import {
  statOf,
  type AlternateFigures,
  type BnChoice,
  type BranchFigures,
  type ComparisonResult,
  type CorruptionStats,
  type MethodResult,
  type TargetStat,
  type TrainingCurves,
} from '../report/index.js';
import { pairedDifference } from './stats.js';

/** One (held-out domain, seed) pair: its baseline and every method fine-tuned from it. */
export interface PairOutcome {
  heldOut: string;
  seed: number;
  /** Per model name (`baseline` included): evaluated with `domains = { [heldOut]: target }`. */
  reports: Record<string, RobustnessReport>;
  /** Per model name: training seconds. */
  seconds: Record<string, number>;
  /** Per model name: its fineTune history, and the epoch its training continued from (a fine-tune's baseline epochs). */
  histories?: Record<string, { history: HistoryRecord; after: number }>;
  /** Test images of the held-out domain (an accuracy moves in steps of 1 / this). */
  targetCount: number;
}

const at = (values: Partial<Record<BnBranch, number>>, branch: BnBranch): number => {
  const v = values[branch];
  if (v === undefined) throw new Error(`internal: no ${branch}-branch figure`);
  return v;
};

/** The held-out accuracy of a report with the convention's (or the given) branch. */
function target(pair: PairOutcome, name: string, branch?: BnBranch): number {
  const report = pair.reports[name]!;
  return at(report.domains[pair.heldOut]!, branch ?? report.convention.domains);
}

/** Corruptions whose baseline error, summed over severities, is not above its clean error. */
function undefinedRelative(report: RobustnessReport): string[] {
  const base = report.corruption?.clean;
  if (!base) return [];
  return Object.entries(base.errors)
    .filter(([, errors]) => errors.reduce((s, e) => s + (e - base.cleanError), 0) <= 0)
    .map(([name]) => name);
}

function corruptionStats(pairs: readonly PairOutcome[], name: string, branch: BnBranch): CorruptionStats | undefined {
  const figures = pairs.map((p) => p.reports[name]!.corruption?.[branch]);
  if (!figures.every((c) => c !== undefined && c.mCE !== undefined)) return undefined;
  const names = Object.keys(figures[0]!.errors);
  const relative = figures.map((c) => c!.relativeMCE);
  const perCorruption = Object.fromEntries(names.map((n) => [n, [0, 1, 2, 3, 4].map((s) => statOf(figures.map((c) => c!.errors[n]![s]!)).mean)]));
  const out: CorruptionStats = { mCE: statOf(figures.map((c) => c!.mCE!)), relativeMCE: null, perCorruption };
  if (relative.every((r): r is number => r !== undefined)) {
    out.relativeMCE = statOf(relative);
  } else {
    const missing = pairs.filter((_, i) => relative[i] === undefined);
    const where = missing.map((p) => {
      const names = undefinedRelative(p.reports.baseline ?? p.reports[name]!);
      return `held out ${p.heldOut}, seed ${p.seed}${names.length > 0 ? ` (${names.join(', ')})` : ''}`;
    });
    out.relativeMCEReason =
      `undefined in ${missing.length} of ${pairs.length} runs: the baseline's error under a corruption was not above its clean error, ` +
      `so relative mCE has no denominator: ${where.join('; ')}`;
  }
  return out;
}

function figures(pairs: readonly PairOutcome[], name: string, bn: BnChoice): BranchFigures {
  const heldOut = [...new Set(pairs.map((p) => p.heldOut))];
  const out: BranchFigures = {
    clean: statOf(pairs.map((p) => at(p.reports[name]!.clean, bn.clean))),
    domains: Object.fromEntries(heldOut.map((d) => [d, statOf(pairs.filter((p) => p.heldOut === d).map((p) => target(p, name, bn.domains)))])),
    // Over every pair: each pair's model is tested on the one domain it never saw.
    domainMean: statOf(pairs.map((p) => target(p, name, bn.domains))),
  };
  const corruption = corruptionStats(pairs, name, bn.corruption);
  if (corruption) out.corruption = corruption;
  return out;
}

/** Per epoch, mean and std over the pairs of the training figures of `name`; undefined when a pair has none. */
function trainingCurves(pairs: readonly PairOutcome[], name: string): TrainingCurves | undefined {
  const runs = pairs.map((p) => p.histories?.[name]);
  if (!runs.every((r) => r !== undefined) || runs.length === 0) return undefined;
  const epochs = Math.min(...runs.map((r) => r.history.loss.length));
  if (epochs === 0) return undefined;
  const per = (key: 'loss' | 'cleanLoss' | 'advLoss' | 'accuracy' | 'advAccuracy') => {
    if (!runs.every((r) => r.history[key] !== undefined)) return undefined;
    return Array.from({ length: epochs }, (_, e) => statOf(runs.map((r) => r.history[key]![e]!)));
  };
  const after = runs[0]!.after;
  const advLoss = per('advLoss');
  const advAccuracy = per('advAccuracy');
  return {
    epochs: Array.from({ length: epochs }, (_, e) => after + e + 1),
    loss: per('loss')!,
    cleanLoss: per('cleanLoss')!,
    ...(advLoss && { advLoss }),
    accuracy: per('accuracy')!,
    ...(advAccuracy && { advAccuracy }),
  };
}

/** results.json's figures of model `name` over every pair. */
export function aggregateMethod(pairs: readonly PairOutcome[], name: string): MethodResult {
  const first = pairs[0]!.reports[name]!;
  const convention = first.convention;
  const heldOut = [...new Set(pairs.map((p) => p.heldOut))];
  const targets: Record<string, TargetStat> = {};
  for (const d of heldOut) {
    const these = pairs.filter((p) => p.heldOut === d);
    const acc = statOf(these.map((p) => target(p, name)));
    targets[d] = { ...acc, n: these.length, bn: convention.domains, inDomain: statOf(these.map((p) => at(p.reports[name]!.clean, convention.clean))) };
  }
  const result: MethodResult = {
    ...figures(pairs, name, convention),
    bn: convention,
    targets,
    trainSeconds: statOf(pairs.map((p) => p.seconds[name]!)),
  };
  const training = trainingCurves(pairs, name);
  if (training) result.training = training;
  if (first.branches.includes('adv')) {
    const flip = (b: BnBranch): BnBranch => (b === 'clean' ? 'adv' : 'clean');
    const bn: BnChoice = { clean: flip(convention.clean), corruption: flip(convention.corruption), domains: flip(convention.domains) };
    const alternate: AlternateFigures = { ...figures(pairs, name, bn), bn };
    if (result.corruption && !alternate.corruption) {
      alternate.corruptionOmitted = `not measured: the corruption sets were evaluated with the ${convention.corruption} BNs only`;
    }
    result.alternate = alternate;
  }
  return result;
}

/**
 * Every method against ERM (ERM against the baseline), paired over the pairs that share a
 * baseline: per held-out domain and overall, on held-out accuracy with each model's convention
 * branch; the spread is floored at one test image (see {@link pairedDifference}).
 */
export function compareMethods(pairs: readonly PairOutcome[], names: readonly string[]): ComparisonResult[] {
  const heldOut = [...new Set(pairs.map((p) => p.heldOut))];
  const out: ComparisonResult[] = [];
  for (const method of names) {
    if (method === 'baseline') continue;
    const versus = method === 'erm' || !names.includes('erm') ? 'baseline' : 'erm';
    for (const scope of [...heldOut, 'overall']) {
      const these = scope === 'overall' ? pairs : pairs.filter((p) => p.heldOut === scope);
      const resolution = 1 / Math.min(...these.map((p) => p.targetCount));
      const d = pairedDifference(
        these.map((p) => target(p, method)),
        these.map((p) => target(p, versus)),
        resolution,
      );
      out.push({ method, versus, scope, ...d });
    }
  }
  return out;
}
