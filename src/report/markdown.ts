// report.md: settings, result tables (mean ± std, in %), chart links, and a verdict from the
// paired comparisons' 95% intervals, which never calls a difference whose interval contains 0.
import { corruptionNames, domainNames } from './charts.js';
import { hasCorruptionResults, type BnChoice, type BranchFigures, type ComparisonResult, type Results, type Stat } from './schema.js';

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
const stat = (s: Stat | null | undefined): string => (s ? `${pct(s.mean)} ± ${pct(s.std)}` : 'n/a');
const signed = (v: number): string => `${v >= 0 ? '+' : ''}${pct(v)}`;
const mean = (xs: readonly number[]): number => xs.reduce((s, v) => s + v, 0) / xs.length;

type Row = { name: string; figures: BranchFigures & { corruptionOmitted?: string }; bn: BnChoice };

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

function figuresTable(rows: Row[], domains: string[], withCorruption: boolean, lodo: boolean): string {
  const notes: string[] = [];
  const domainBn = branchLabel(rows, 'domains', 'Domain columns', notes);
  const cleanLabel = lodo ? 'in-domain' : 'clean';
  const domainLabel = (d: string) => (lodo ? `held out ${cell(d)}` : cell(d));
  const header = [
    'Method',
    `${cleanLabel} ${branchLabel(rows, 'clean', `The ${cleanLabel} column`, notes)}`,
    ...domains.map((d) => `${domainLabel(d)} ${domainBn}`),
    `${lodo ? 'held-out mean' : 'domain mean'} ${domainBn}`,
  ];
  if (withCorruption) {
    const corruptionBn = branchLabel(rows, 'corruption', 'Corruption columns', notes);
    header.push(`mCE ${corruptionBn}`, `relative mCE ${corruptionBn}`);
  }
  const body = rows.map((r) => {
    const c = [cell(r.name), stat(r.figures.clean), ...domains.map((d) => stat(r.figures.domains[d])), stat(r.figures.domainMean)];
    if (withCorruption && !r.figures.corruption && r.figures.corruptionOmitted) {
      // One note for every row with the same reason.
      const note = `mCE and relative mCE are n/a: ${r.figures.corruptionOmitted}.`;
      if (!notes.includes(note)) notes.push(note);
      const n = notes.indexOf(note) + 1;
      c.push(`n/a [${n}]`, `n/a [${n}]`);
    } else if (withCorruption) {
      const relative = r.figures.corruption?.relativeMCE;
      const reason = r.figures.corruption?.relativeMCEReason;
      if (relative === null && reason) notes.push(`relative mCE of ${r.name} is n/a: ${reason}.`);
      c.push(stat(r.figures.corruption?.mCE), relative === null && reason ? `n/a [${notes.length}]` : stat(relative));
    }
    return c;
  });
  return [table(header, body), ...notes.map((n, i) => `\n[${i + 1}] ${cell(n)}`)].join('\n');
}

const VERDICT_WORD: Record<ComparisonResult['verdict'], string> = {
  better: '**better**',
  worse: '**worse**',
  inconclusive: 'inconclusive',
  'no interval': 'no interval (one pair)',
};

/** The paired comparisons: one table per method pair, domains as rows, the verdict from the 95% interval. */
function comparisonsSection(results: Results): string {
  const comparisons = results.comparisons ?? [];
  if (comparisons.length === 0) return 'No comparisons: these results have no (held-out domain, seed) pairs.';
  const pairs = results.protocol?.pairs ?? 0;
  const rows = comparisons.map((c) => [
    cell(c.method),
    cell(c.versus),
    c.scope === 'overall' ? '**overall**' : cell(c.scope),
    signed(c.meanDiff),
    c.ci95 ? `[${signed(c.ci95[0])}, ${signed(c.ci95[1])}]` : 'n/a',
    String(c.pairs),
    VERDICT_WORD[c.verdict],
  ]);
  const overall = comparisons.filter((c) => c.scope === 'overall');
  const said = (verdict: ComparisonResult['verdict']) => overall.filter((c) => c.verdict === verdict).map((c) => `${c.method} (vs ${c.versus})`);
  const summary: string[] = [];
  for (const [verdict, words] of [
    ['better', 'better than'],
    ['worse', 'worse than'],
    ['inconclusive', 'not distinguishable from'],
  ] as const) {
    const list = said(verdict);
    if (list.length > 0) summary.push(`${words} its reference overall: ${list.map(cell).join(', ')}`);
  }
  const perDomain = comparisons.filter((c) => c.scope !== 'overall' && (c.verdict === 'better' || c.verdict === 'worse'));
  return [
    `Held-out accuracy differences in points (method − reference), paired over the ${pairs} (held-out domain, seed) pairs that share a baseline; ` +
      "each method is compared with ERM, and ERM with the baseline it was fine-tuned from. The 95% interval is Student's t with n − 1 degrees of freedom " +
      '(the spread of the differences floored at one test image, so identical differences do not make a zero-width interval); ' +
      'the verdict is **better** or **worse** only when the interval excludes 0.',
    '',
    table(['Method', 'vs', 'Scope', 'Mean diff', '95% CI', 'Pairs', 'Verdict'], rows),
    '',
    `Summary: ${summary.length > 0 ? summary.join('; ') : 'no overall comparison'}.` +
      (perDomain.length > 0
        ? ` Per held-out domain, intervals that exclude 0: ${perDomain.map((c) => `${cell(c.method)} ${c.verdict} on ${cell(c.scope)} (${signed(c.meanDiff)})`).join(', ')}.`
        : ' No per-domain interval excludes 0.'),
    overall.some((c) => c.verdict === 'no interval') ? 'With one pair per scope there is no spread to measure: those differences are not evidence either way.' : '',
  ].join('\n');
}

/**
 * Renders `report.md`: title, command and date, a settings table, the main results table (one
 * row per method; every column header names the BN branch it used), the alternate-branch table
 * when a method has one, per-corruption errors, links to the chart files written by
 * {@link writeReport}, the baseline's held-out vs in-domain accuracy (leave-one-domain-out
 * runs), and a verdict from `results.comparisons`: better or worse only where the 95% interval
 * of the paired difference excludes 0.
 */
export function renderReportMarkdown(results: Results): string {
  const domains = domainNames(results);
  const withCorruption = hasCorruptionResults(results);
  const seeds = results.seeds.length;
  const lodo = results.protocol !== undefined;
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
        // Numbers to 6 significant digits: a scheduled lr prints 0.005, not 0.005000000000000001.
        ...Object.entries(results.config).map(([k, v]) => [
          cell(k),
          cell(typeof v === 'string' ? v : (JSON.stringify(v, (_, x) => (typeof x === 'number' ? Number(x.toPrecision(6)) : x)) ?? String(v))),
        ]),
      ],
    ),
    '',
    '## Results',
    '',
    lodo
      ? `${cell(results.protocol!.description)} Top-1 accuracy in %, mean ± std over the seeds of each held-out domain ` +
        `(in-domain, held-out mean and mCE: over all ${results.protocol!.pairs} pairs); mCE relative to each pair's "${cell(results.baseline)}". ` +
        "Held-out columns use each model's paper-convention BN branch (adversarial BNs for AdvBN models), named in the header. Higher accuracy is better; lower mCE is better."
      : `Top-1 accuracy on the clean test set and on each domain, and corruption error (mCE relative to "${cell(results.baseline)}"), ` +
        `in %, mean ± std over ${seeds} seed${seeds === 1 ? '' : 's'}. Higher accuracy is better; lower mCE is better.`,
    '',
    figuresTable(
      Object.entries(results.methods).map(([name, m]) => ({ name, figures: m, bn: m.bn })),
      domains,
      withCorruption,
      lodo,
    ),
  ];
  const base = results.methods[results.baseline]?.targets;
  if (base) {
    out.push(
      '',
      '## Baseline: held out vs in domain',
      '',
      "The shared baseline of each held-out domain (ERM on the other domains), in %: accuracy on the domain it never saw and on its source domains' test digits. Chance is 10% for digits.",
      '',
    );
    out.push(
      table(
        ['Held out', 'held-out accuracy', 'in-domain accuracy', 'pairs'],
        Object.entries(base).map(([d, t]) => [cell(d), stat(t), stat(t.inDomain), String(t.n)]),
      ),
    );
  }
  const alternates = Object.entries(results.methods).flatMap(([name, m]) => (m.alternate ? [{ name, figures: m.alternate, bn: m.alternate.bn }] : []));
  if (alternates.length > 0) {
    out.push('', '## Other BN branch', '', 'The same figures on the branch the main table did not use, for models that have two.', '');
    out.push(
      figuresTable(
        alternates,
        domains,
        alternates.some((a) => a.figures.corruption || a.figures.corruptionOmitted),
        lodo,
      ),
    );
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
  if (Object.values(results.methods).some((m) => m.training)) out.push('', `![Training curves](curves.svg) ([PNG](curves.png))`);
  out.push('', '## Verdict', '', comparisonsSection(results), '');
  return out.join('\n');
}
