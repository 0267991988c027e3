// Per-seed robustness reports of one method, aggregated into the figures of results.json.
import type { BnBranch } from '../models.js';
import type { RobustnessReport } from '../evaluation/robustness.js';
import type { AlternateFigures, BnChoice, BranchFigures, MethodResult, Stat } from '../report/index.js';

/** Mean and population standard deviation. */
export function stat(values: readonly number[]): Stat {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}

function figures(reports: readonly RobustnessReport[], bn: BnChoice): BranchFigures {
  const domainNames = Object.keys(reports[0]!.domains);
  const at = (values: Partial<Record<BnBranch, number>>, branch: BnBranch) => values[branch]!;
  const out: BranchFigures = {
    clean: stat(reports.map((r) => at(r.clean, bn.clean))),
    domains: Object.fromEntries(domainNames.map((d) => [d, stat(reports.map((r) => at(r.domains[d]!, bn.domains)))])),
    domainMean: stat(reports.map((r) => domainNames.reduce((sum, d) => sum + at(r.domains[d]!, bn.domains), 0) / domainNames.length)),
  };
  const corruption = reports.map((r) => r.corruption?.[bn.corruption]);
  if (corruption.every((c) => c !== undefined && c.mCE !== undefined)) {
    const names = Object.keys(corruption[0]!.errors);
    const relative = corruption.map((c) => c!.relativeMCE).filter((v): v is number => v !== undefined);
    out.corruption = {
      mCE: stat(corruption.map((c) => c!.mCE!)),
      // Undefined for a seed whose baseline lost no accuracy under some corruption: left out.
      relativeMCE: relative.length > 0 ? stat(relative) : { mean: 0, std: 0 },
      perCorruption: Object.fromEntries(names.map((n) => [n, [0, 1, 2, 3, 4].map((s) => stat(corruption.map((c) => c!.errors[n]![s]!)).mean)])),
    };
  }
  return out;
}

/** results.json figures of one method from its per-seed reports and training times. */
export function aggregateMethod(reports: readonly RobustnessReport[], trainSeconds: readonly number[]): MethodResult {
  const convention = reports[0]!.convention;
  const result: MethodResult = { ...figures(reports, convention), bn: convention, trainSeconds: stat(trainSeconds) };
  if (reports[0]!.branches.includes('adv')) {
    const flip = (b: BnBranch): BnBranch => (b === 'clean' ? 'adv' : 'clean');
    const bn: BnChoice = { clean: flip(convention.clean), corruption: flip(convention.corruption), domains: flip(convention.domains) };
    const alternate: AlternateFigures = { ...figures(reports, bn), bn };
    result.alternate = alternate;
  }
  return result;
}
