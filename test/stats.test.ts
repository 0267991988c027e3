// The paired statistics of reproduce's comparisons against published t quantiles and by hand.
import { describe, expect, it } from 'vitest';
import type { RobustnessReport } from '../src/index.js';
import { aggregateMethod, compareMethods, type PairOutcome } from '../src/reproduce/aggregate.js';
import { pairedDifference, studentTCdf, studentTQuantile } from '../src/reproduce/stats.js';

describe('paired statistics', () => {
  it('t quantiles match the tables', () => {
    // t_{0.975} for 1, 2, 5, 11, 29 degrees of freedom (any statistics table).
    for (const [df, t] of [
      [1, 12.7062],
      [2, 4.3027],
      [5, 2.5706],
      [11, 2.201],
      [29, 2.0452],
    ] as const) {
      expect(studentTQuantile(0.975, df)).toBeCloseTo(t, 3);
    }
    expect(studentTCdf(0, 7)).toBeCloseTo(0.5, 12);
    expect(studentTCdf(-2.201, 11) + studentTCdf(2.201, 11)).toBeCloseTo(1, 12);
    expect(() => studentTQuantile(1, 3)).toThrow(RangeError);
  });

  it('gives the mean difference, its 95% interval and a verdict from the interval', () => {
    // diffs 0.02, 0.04, 0.03, 0.05: mean 0.035, sd 0.01291, half-width 3.1824 * 0.01291 / 2.
    const d = pairedDifference([0.52, 0.64, 0.33, 0.75], [0.5, 0.6, 0.3, 0.7]);
    expect(d.meanDiff).toBeCloseTo(0.035, 12);
    expect(d.ci95![0]).toBeCloseTo(0.035 - (3.18245 * 0.0129099) / 2, 4);
    expect(d.ci95![1]).toBeCloseTo(0.035 + (3.18245 * 0.0129099) / 2, 4);
    expect([d.pairs, d.verdict]).toEqual([4, 'better']);
    expect(pairedDifference([0.5, 0.4], [0.6, 0.45]).verdict).toBe('inconclusive');
    expect(pairedDifference([0.5, 0.4, 0.3], [0.6, 0.52, 0.41]).verdict).toBe('worse');
    // Two identical differences: the spread is floored at the resolution (one of 500 images), not 0.
    const same = pairedDifference([0.508, 0.61], [0.5, 0.602], 1 / 500);
    expect(same.verdict).toBe('inconclusive');
    expect(same.ci95![1] - same.ci95![0]).toBeCloseTo((2 * 12.7062 * 0.002) / Math.SQRT2, 3);
    expect(pairedDifference([0.508, 0.61], [0.5, 0.602]).ci95![1] - pairedDifference([0.508, 0.61], [0.5, 0.602]).ci95![0]).toBeCloseTo(0, 12);
    expect(pairedDifference([0.7], [0.6])).toEqual({ meanDiff: 0.7 - 0.6, ci95: null, pairs: 1, verdict: 'no interval' });
    expect(() => pairedDifference([0.1], [0.1, 0.2])).toThrow(RangeError);
  });
});

/** A one-branch report: held-out accuracy `target`, clean accuracy 0.9, one corruption. */
function report(heldOut: string, target: number, relativeMCE: number | undefined, baseErrors = [0.2, 0.3, 0.4, 0.5, 0.6]): RobustnessReport {
  return {
    branches: ['clean'],
    convention: { clean: 'clean', corruption: 'clean', domains: 'clean' },
    clean: { clean: 0.9 },
    domains: { [heldOut]: { clean: target } },
    corruption: { clean: { errors: { fog: baseErrors }, cleanError: 0.1, mCE: 1, ...(relativeMCE !== undefined && { relativeMCE }) } },
  };
}

describe('aggregation over (held-out domain, seed) pairs', () => {
  it('reports per-domain targets with n and in-domain accuracy, and an undefined relative mCE as null with its reason', () => {
    const pairs: PairOutcome[] = [
      { heldOut: 'sketch', seed: 0, reports: { baseline: report('sketch', 0.4, 1), erm: report('sketch', 0.5, 1.1) }, seconds: { baseline: 3, erm: 1 }, targetCount: 500 },
      { heldOut: 'sketch', seed: 1, reports: { baseline: report('sketch', 0.42, 1), erm: report('sketch', 0.47, 0.9) }, seconds: { baseline: 3, erm: 1 }, targetCount: 500 },
      {
        heldOut: 'inverted',
        seed: 0,
        reports: { baseline: report('inverted', 0.3, undefined, [0.05, 0.05, 0.1, 0.1, 0.1]), erm: report('inverted', 0.35, undefined) },
        seconds: { baseline: 3, erm: 1 },
        targetCount: 400,
      },
    ];
    const erm = aggregateMethod(pairs, 'erm');
    expect(erm.targets!.sketch).toMatchObject({ n: 2, bn: 'clean', inDomain: { mean: 0.9, std: 0 } });
    expect(erm.targets!.sketch!.mean).toBeCloseTo(0.485, 12);
    expect(erm.targets!.inverted!.n).toBe(1);
    expect(erm.domainMean.mean).toBeCloseTo((0.5 + 0.47 + 0.35) / 3, 12);
    expect(erm.corruption!.relativeMCE).toBeNull();
    expect(erm.corruption!.relativeMCEReason).toMatch(/1 of 3 runs.*held out inverted, seed 0 \(fog\)/);
    const comparisons = compareMethods(pairs, ['baseline', 'erm']);
    expect(comparisons.map((c) => [c.method, c.versus, c.scope, c.pairs])).toEqual([
      ['erm', 'baseline', 'sketch', 2],
      ['erm', 'baseline', 'inverted', 1],
      ['erm', 'baseline', 'overall', 3],
    ]);
    expect(comparisons[1]!.verdict).toBe('no interval');
    expect(comparisons[2]!.meanDiff).toBeCloseTo((0.1 + 0.05 + 0.05) / 3, 12);
  });
});
