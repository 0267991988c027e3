// Statistics of the comparisons: mean and spread, and the paired t confidence interval of a
// method's advantage over another across the (held-out domain x seed) pairs that share a
// baseline model.

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-15). */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let sum = c[0]!;
  for (let i = 1; i < 9; i += 1) sum += c[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** Continued fraction of the regularised incomplete beta function (modified Lentz). */
function betaFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  d = 1 / (Math.abs(d) < tiny ? tiny : d);
  let h = d;
  for (let m = 1; m <= 300; m += 1) {
    for (const numerator of [(m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)), (-(a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))]) {
      d = 1 + numerator * d;
      d = 1 / (Math.abs(d) < tiny ? tiny : d);
      c = 1 + numerator / c;
      if (Math.abs(c) < tiny) c = tiny;
      h *= d * c;
    }
    if (Math.abs(d * c - 1) < 1e-15) break;
  }
  return h;
}

/** I_x(a, b), the regularised incomplete beta function. */
function incompleteBeta(a: number, b: number, x: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaFraction(a, b, x)) / a : 1 - (front * betaFraction(b, a, 1 - x)) / b;
}

/** P(T <= t) for Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / 2, 0.5, df / (df + t * t));
  return t >= 0 ? 1 - tail : tail;
}

/** The `p` quantile of Student's t with `df` degrees of freedom (bisection on the CDF). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) throw new RangeError(`studentTQuantile: need 0 < p < 1 and df > 0, got p=${p}, df=${df}`);
  let lo = -1e3;
  let hi = 1e3;
  for (let i = 0; i < 200 && hi - lo > 1e-12; i += 1) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** A paired comparison: the mean of the differences and its 95% t interval. */
export interface PairedDifference {
  /** Mean of a - b over the pairs. */
  meanDiff: number;
  /** 95% confidence interval of the mean difference (t, n - 1 degrees of freedom); `null` with fewer than 2 pairs. */
  ci95: [number, number] | null;
  /** Number of pairs. */
  pairs: number;
  /** `better` when the interval lies above 0, `worse` below, `inconclusive` when it contains 0, `no interval` for < 2 pairs. */
  verdict: 'better' | 'worse' | 'inconclusive' | 'no interval';
}

/**
 * Paired t comparison of `a` with `b` (same length, pair i measured on the same baseline).
 * `resolution` is the smallest step a figure can take (1 / test images for an accuracy): the
 * spread of the differences is floored at it, so differences that happen to be identical
 * (counts of images are coarse) do not give a zero-width interval.
 */
export function pairedDifference(a: readonly number[], b: readonly number[], resolution = 0): PairedDifference {
  if (a.length !== b.length || a.length === 0) throw new RangeError(`pairedDifference: need two non-empty lists of one length, got ${a.length} and ${b.length}`);
  const diffs = a.map((v, i) => v - b[i]!);
  const n = diffs.length;
  const meanDiff = diffs.reduce((s, d) => s + d, 0) / n;
  if (n < 2) return { meanDiff, ci95: null, pairs: n, verdict: 'no interval' };
  const sd = Math.max(resolution, Math.sqrt(diffs.reduce((s, d) => s + (d - meanDiff) ** 2, 0) / (n - 1)));
  const half = studentTQuantile(0.975, n - 1) * (sd / Math.sqrt(n));
  const ci95: [number, number] = [meanDiff - half, meanDiff + half];
  const verdict = ci95[0] > 0 ? 'better' : ci95[1] < 0 ? 'worse' : 'inconclusive';
  return { meanDiff, ci95, pairs: n, verdict };
}
