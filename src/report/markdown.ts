// report.md: settings, result tables (mean ± std over seeds, in %), chart links, and a verdict
// computed from the numbers, which never claims a difference smaller than the seed spread.
import { corruptionNames, domainNames } from './charts.js';
import { hasCorruptionResults, type BnChoice, type BranchFigures, type Results, type Stat } from './schema.js';

/** How one method's figure compares with another's, given the spread over seeds. */
export type Comparison = 'better' | 'worse' | 'within noise';

/** A {@link Comparison} with the numbers behind it (fractions, as in the results). */
export interface ComparisonDetail {
  /** The outcome for the first method. */
  outcome: Comparison;
  /** First mean minus second mean. */
  diff: number;
  /** The larger of the two stds: a difference smaller than this is within noise. */
  noise: number;
}

/**
 * Compares figure `a` with figure `b`: `'within noise'` when |difference of means| is below the
 * larger std (or zero), otherwise `'better'` or `'worse'` for `a` by the direction of the figure.
 */
export function compareStats(a: Stat, b: Stat, higherIsBetter: boolean): ComparisonDetail {
  const diff = a.mean - b.mean;
  const noise = Math.max(a.std, b.std);
  // The tolerance keeps float error (0.775 - 0.725 < 0.05) from deciding a tie at exactly one std.
  if (diff === 0 || Math.abs(diff) < noise - 1e-9) return { outcome: 'within noise', diff, noise };
  return { outcome: diff > 0 === higherIsBetter ? 'better' : 'worse', diff, noise };
}

/** Free text for markdown (table cells included): punctuation that markdown or HTML would read is escaped. */
function cell(text: string): string {
  return text.replace(/[\\|<>&*[\]`]/g, (c) => `\\${c}`).replace(/\r?\n/g, ' ');
}

/** A fenced code block longer than any run of backticks in `text`. */
function codeBlock(text: string, lang: string): string[] {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return [`${fence}${lang}`, text, fence];
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((_, i) => (i === 0 ? ':--' : '--:'))), ...rows.map(line)].join('\n');
}

const pct = (v: number): string => (v * 100).toFixed(1);
const stat = (s: Stat | undefined): string => (s ? `${pct(s.mean)} ± ${pct(s.std)}` : 'n/a');
const mean = (xs: readonly number[]): number => xs.reduce((s, v) => s + v, 0) / xs.length;

type Row = { name: string; figures: BranchFigures; bn: BnChoice };

/**
 * `(adv BN)` when every row used one branch for this kind of figure; otherwise both branches
 * and a numbered note saying which method used which.
 */
function branchLabel(rows: Row[], kind: keyof BnChoice, label: string, notes: string[]): string {
  const by = new Map<string, string[]>();
  for (const r of rows) by.set(r.bn[kind], [...(by.get(r.bn[kind]) ?? []), r.name]);
  if (by.size <= 1) return `(${[...by.keys()][0] ?? 'clean'} BN)`;
  const parts = [...by.entries()].map(([branch, names]) => `${branch} BN for ${names.join(', ')}`);
  notes.push(`${label} use ${parts.join('; ')}.`);
  return `(${[...by.keys()].join('/')} BN [${notes.length}])`;
}

function figuresTable(rows: Row[], domains: string[], withCorruption: boolean): string {
  const notes: string[] = [];
  const domainBn = branchLabel(rows, 'domains', 'Domain columns', notes);
  const header = ['Method', `clean ${branchLabel(rows, 'clean', 'The clean column', notes)}`, ...domains.map((d) => `${cell(d)} ${domainBn}`), `domain mean ${domainBn}`];
  if (withCorruption) {
    const corruptionBn = branchLabel(rows, 'corruption', 'Corruption columns', notes);
    header.push(`mCE ${corruptionBn}`, `relative mCE ${corruptionBn}`);
  }
  const body = rows.map((r) => {
    const c = [cell(r.name), stat(r.figures.clean), ...domains.map((d) => stat(r.figures.domains[d])), stat(r.figures.domainMean)];
    if (withCorruption) c.push(stat(r.figures.corruption?.mCE), stat(r.figures.corruption?.relativeMCE));
    return c;
  });
  return [table(header, body), ...notes.map((n, i) => `\n[${i + 1}] ${cell(n)}`)].join('\n');
}

function findMethod(results: Results, name: string): string | undefined {
  return Object.keys(results.methods).find((k) => k.toLowerCase() === name);
}

function describe(label: string, detail: ComparisonDetail, a: Stat, b: Stat, lowerIsBetter: boolean): string {
  const numbers = `AdvBN ${stat(a)} vs ERM ${stat(b)}`;
  const points = Math.abs(detail.diff * 100).toFixed(1);
  if (detail.outcome === 'within noise') {
    const gap = detail.diff === 0 ? 'no difference' : `difference ${points} points, below the larger std ${pct(detail.noise)}`;
    return `- ${label}: **within noise** (${numbers}; ${gap}).`;
  }
  const ratio = detail.noise > 0 ? `, ${(Math.abs(detail.diff) / detail.noise).toFixed(1)}× the larger std` : ', no spread measured';
  const direction = lowerIsBetter ? (detail.diff < 0 ? 'lower' : 'higher') : detail.diff > 0 ? 'higher' : 'lower';
  return `- ${label}: AdvBN is **${detail.outcome}** by ${points} points (${direction}${ratio}; ${numbers}).`;
}

/** The verdict section: AdvBN against ERM per domain, on the domain mean and on mCE. */
function verdict(results: Results): string {
  const advName = findMethod(results, 'advbn');
  const ermName = findMethod(results, 'erm');
  if (!advName || !ermName) return 'No verdict: it compares the methods named "advbn" and "erm", and these results do not have both.';
  const adv = results.methods[advName]!;
  const erm = results.methods[ermName]!;
  const lines: string[] = [];
  const counts: Record<Comparison, number> = { better: 0, worse: 0, 'within noise': 0 };
  const domains = domainNames(results).filter((d) => adv.domains[d] && erm.domains[d]);
  for (const d of domains) {
    const detail = compareStats(adv.domains[d]!, erm.domains[d]!, true);
    counts[detail.outcome]++;
    lines.push(describe(`${cell(d)} accuracy`, detail, adv.domains[d]!, erm.domains[d]!, false));
  }
  const meanDetail = compareStats(adv.domainMean, erm.domainMean, true);
  lines.push(describe('Domain mean accuracy', meanDetail, adv.domainMean, erm.domainMean, false));
  let mceOutcome: Comparison | undefined;
  if (adv.corruption && erm.corruption) {
    const detail = compareStats(adv.corruption.mCE, erm.corruption.mCE, false);
    mceOutcome = detail.outcome;
    lines.push(describe('mCE (lower is better)', detail, adv.corruption.mCE, erm.corruption.mCE, true));
  }
  const seeds = results.seeds.length;
  const summary =
    `Summary: over ${domains.length} domain${domains.length === 1 ? '' : 's'}, AdvBN is better than ERM beyond the seed spread on ${counts.better}, ` +
    `worse on ${counts.worse} and within noise on ${counts['within noise']}; on the domain mean it is ${meanDetail.outcome}` +
    (mceOutcome ? `; on mCE it is ${mceOutcome}.` : '; no corruption figures to compare.');
  const caveat =
    seeds < 2
      ? 'With a single seed there is no spread to measure noise by: these differences are not evidence either way.'
      : `"Within noise" means the difference of the means is smaller than the larger std over the ${seeds} seeds; ` +
        `with so few seeds even a larger difference is weak evidence.`;
  const branches = `AdvBN's domain figures use its ${adv.bn.domains} BN branch, ERM's its ${erm.bn.domains} BN branch.`;
  return [`Comparing "${cell(advName)}" with "${cell(ermName)}" (mean ± std over seeds, accuracy in %). ${branches}`, '', ...lines, '', summary, caveat].join('\n');
}

/**
 * Renders `report.md`: title, command and date, a settings table, the main results table (one
 * row per method; every column header names the BN branch it used), the alternate-branch table
 * when a method has one, per-corruption errors, links to the chart files written by
 * {@link writeReport}, and a verdict comparing "advbn" with "erm" that calls any difference
 * smaller than the larger std "within noise".
 */
export function renderReportMarkdown(results: Results): string {
  const domains = domainNames(results);
  const withCorruption = hasCorruptionResults(results);
  const seeds = results.seeds.length;
  const out: string[] = [
    `# AdvBN reproduction: ${results.preset}`,
    '',
    ...codeBlock(results.command, 'sh'),
    '',
    `Run finished ${results.createdAt} with ${cell(results.package.name)} ${cell(results.package.version)} on ${cell(results.hardware || 'unknown hardware')} (device ${cell(results.device)}).`,
    '',
    '## Settings',
    '',
    table(
      ['Setting', 'Value'],
      [
        ['preset', results.preset],
        ['seeds', results.seeds.join(', ')],
        ['device', cell(results.device)],
        ['hardware', cell(results.hardware)],
        ['mCE baseline', cell(results.baseline)],
        ...Object.entries(results.config).map(([k, v]) => [cell(k), cell(typeof v === 'string' ? v : JSON.stringify(v) ?? String(v))]),
      ],
    ),
    '',
    '## Results',
    '',
    `Top-1 accuracy on the clean test set and on each domain, and corruption error (mCE relative to "${cell(results.baseline)}"), ` +
      `in %, mean ± std over ${seeds} seed${seeds === 1 ? '' : 's'}. Higher accuracy is better; lower mCE is better.`,
    '',
    figuresTable(Object.entries(results.methods).map(([name, m]) => ({ name, figures: m, bn: m.bn })), domains, withCorruption),
  ];
  const alternates = Object.entries(results.methods).flatMap(([name, m]) => (m.alternate ? [{ name, figures: m.alternate, bn: m.alternate.bn }] : []));
  if (alternates.length > 0) {
    out.push('', '## Other BN branch', '', 'The same figures on the branch the main table did not use, for models that have two.', '');
    out.push(figuresTable(alternates, domains, alternates.some((a) => a.figures.corruption)));
  }
  if (withCorruption) {
    const names = corruptionNames(results);
    const methods = Object.entries(results.methods).filter(([, m]) => m.corruption);
    const err = (per: Record<string, number[]>, c: string): string => (per[c] ? pct(mean(per[c])) : 'n/a');
    const rows = names.map((c) => [cell(c), ...methods.map(([, m]) => err(m.corruption!.perCorruption, c))]);
    rows.push(['**mean**', ...methods.map(([, m]) => pct(mean(Object.values(m.corruption!.perCorruption).map(mean))))]);
    out.push('', '## Error per corruption', '', 'Top-1 error in %, mean over severities 1-5 (each already a mean over seeds).', '');
    out.push(table(['Corruption', ...methods.map(([name]) => cell(name))], rows));
  }
  out.push('', '## Charts', '', `![Accuracy per test set](domains.svg) ([PNG](domains.png))`);
  if (withCorruption) {
    out.push('', `![Error per corruption](corruptions.svg) ([PNG](corruptions.png))`, '', `![Error per severity](severity.svg) ([PNG](severity.png))`);
  }
  out.push('', '## Verdict', '', verdict(results), '');
  return out.join('\n');
}
