// evaluation.md, the readable side of evaluation.json: accuracy per test set and BatchNorm
// branch, corruption errors with CE / mCE, per-class accuracy and confusion matrices. Every
// figure names the branch it was measured with.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BnBranch } from '../models.js';
import type { EvaluationResult } from './evaluate.js';
import type { CorruptionFigures } from './robustness.js';
import type { EvaluationFile } from './schema.js';

/** Confusion matrices are drawn in evaluation.md up to this many classes (all are in evaluation.json). */
const MATRIX_CLASSES = 20;
/** Per-class accuracy lists every class up to this many; beyond, the 10 weakest. */
const LIST_CLASSES = 50;

const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (text: string) => `\`${text.replace(/`/g, "'")}\``;
const row = (cells: readonly (string | number)[]) => `| ${cells.join(' | ')} |`;
const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const BRANCH_WORDS: Record<BnBranch, string> = { clean: 'clean BNs', adv: 'adversarial BNs' };

/** The Markdown report of an evaluation. */
export function renderEvaluationMarkdown(file: EvaluationFile): string {
  const { report, model, settings } = file;
  const lines: string[] = ['# advbn evaluation', '', '```sh', file.command, '```', ''];
  const resize = Math.round(settings.size / 0.875);
  lines.push(
    `Model: ${model.arch} from ${code(model.weights)} (${model.numClasses} classes, ${model.hasAdvBn ? 'with' : 'without'} adversarial BatchNorms), on ${model.device}. ` +
      `Images: shorter side resized to ${resize} px, centre crop ${settings.size} px, ImageNet normalisation. ` +
      `${file.createdAt}, ${file.package.name} ${file.package.version}, ${file.seconds.toFixed(1)} s.`,
    '',
    `Every figure names the BatchNorm branch it was measured with: **clean** (the standard BNs) or **adv** (the adversarial BNs an AdvBN fine-tune trains). ` +
      `Measured here: ${report.branches.map((b) => `**${b}**`).join(' and ')}. The paper reports the clean BNs for clean and corrupted data and the adversarial BNs for style domains.`,
    '',
    '## Accuracy',
    '',
    row(['test set', 'folder', 'BN', 'images', 'top-1', 'top-5', 'loss']),
    row(['---', '---', '---', '--:', '--:', '--:', '--:']),
  );
  const sets: [string, string, Partial<Record<BnBranch, EvaluationResult>>][] = [
    ['clean', file.data.clean, report.details.clean],
    ...Object.entries(report.details.domains).map(([name, results]): [string, string, Partial<Record<BnBranch, EvaluationResult>>] => [
      name,
      file.data.domains[name] ?? '',
      results,
    ]),
  ];
  for (const [name, folder, results] of sets) {
    for (const bn of report.branches) {
      const r = results[bn];
      if (r) lines.push(row([cell(name), code(folder), bn, r.count, pct(r.accuracy), pct(r.top5), r.loss.toFixed(4)]));
    }
  }
  lines.push('');
  if (report.corruption) lines.push(...corruptionSection(file));
  lines.push(...perClassSection(file, sets));
  lines.push(...confusionSection(file));
  return `${lines.join('\n')}\n`;
}

function corruptionSection(file: EvaluationFile): string[] {
  const { report } = file;
  const lines = [`## Corruptions (${code(file.data.corruptions ?? '')})`, ''];
  const against =
    file.baseline?.kind === 'alexnet'
      ? "ImageNet-C's AlexNet errors (the published normalisation)"
      : file.baseline?.kind === 'file'
        ? `the baseline ${code(file.baseline.path)} (its clean-BN errors)`
        : undefined;
  lines.push(
    `Top-1 error per severity; CE = the model's summed error over the severities / the reference's${against ? `, against ${against}` : ''}; ` +
      `relative CE the same on the rise above each one's clean error. mCE averages CE over the 15 ImageNet-C benchmark corruptions. Lower is better.`,
    '',
  );
  for (const bn of report.branches) {
    const figures = report.corruption?.[bn];
    if (!figures) continue;
    lines.push(`### BN: ${bn} (${BRANCH_WORDS[bn]}), clean error ${pct(figures.cleanError)}`, '');
    lines.push(row(['corruption', '1', '2', '3', '4', '5', 'mean', 'top-5 error (mean)', 'CE', 'relative CE']));
    lines.push(row(['---', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:']));
    for (const [name, errors] of Object.entries(figures.errors)) {
      const top5 = figures.top5Errors?.[name];
      lines.push(
        row([
          name,
          ...errors.map(pct),
          pct(mean(errors)),
          top5 ? pct(mean(top5)) : 'n/a',
          against ? pct(figures.CE?.[name]) : '-',
          against ? pct(figures.relativeCE?.[name]) : '-',
        ]),
      );
    }
    lines.push('', ...metricLines(figures, against), '');
  }
  return lines;
}

function metricLines(figures: CorruptionFigures, against: string | undefined): string[] {
  if (!against) return ['No baseline given (`--baseline FILE` or `--alexnet`): CE and mCE are not computed.'];
  const mce = figures.mCE !== undefined ? `**mCE ${pct(figures.mCE)}**` : `**mCE n/a**: ${figures.mCEReason ?? 'undefined'}`;
  const rel = figures.relativeMCE !== undefined ? `relative mCE ${pct(figures.relativeMCE)}` : `relative mCE n/a: ${figures.relativeMCEReason ?? 'undefined'}`;
  return [`${mce}; ${rel}.`];
}

function perClassSection(file: EvaluationFile, sets: readonly [string, string, Partial<Record<BnBranch, EvaluationResult>>][]): string[] {
  const { report } = file;
  const columns = sets.flatMap(([name, , results]) => report.branches.filter((bn) => results[bn]).map((bn) => ({ label: `${cell(name)}, BN ${bn}`, result: results[bn]! })));
  const classes = file.classes;
  let shown = classes.map((_, i) => i);
  const lines = ['## Per-class accuracy', ''];
  if (classes.length > LIST_CLASSES) {
    const first = columns[0]!.result.perClass;
    shown = shown.sort((a, b) => (first[a] ?? 2) - (first[b] ?? 2)).slice(0, 10);
    lines.push(`Top-1 accuracy of the 10 weakest classes (by ${columns[0]!.label}) of ${classes.length}; every class is in evaluation.json (\`perClass\`).`, '');
  } else {
    lines.push('Top-1 accuracy on the images of each class (n/a: the class has no images in that set).', '');
  }
  lines.push(row(['class', ...columns.map((c) => c.label)]), row(['---', ...columns.map(() => '--:')]));
  for (const i of shown) lines.push(row([cell(classes[i]!), ...columns.map((c) => pct(c.result.perClass[i]))]));
  return [...lines, ''];
}

function confusionSection(file: EvaluationFile): string[] {
  const { report, classes } = file;
  const lines = ['## Confusion matrix (clean test set)', ''];
  if (classes.length > MATRIX_CLASSES) {
    return [
      ...lines,
      `${classes.length} classes: the matrices are in evaluation.json (\`report.details.clean.<BN>.confusion\`, rows the true class, columns the predicted one).`,
      '',
    ];
  }
  for (const bn of report.branches) {
    const r = report.details.clean[bn];
    if (!r) continue;
    lines.push(`BN: ${bn} (${BRANCH_WORDS[bn]}); rows: true class, columns: predicted class, counts of images.`, '');
    lines.push(row(['true \\ predicted', ...classes.map(cell)]), row(['---', ...classes.map(() => '--:')]));
    r.confusion.forEach((counts, i) => void lines.push(row([cell(classes[i]!), ...counts])));
    lines.push('');
  }
  return lines;
}

/** Indented JSON with each array of numbers (a confusion-matrix row, five severities) on one line. */
function compactJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/\[\s*((?:-?[\d.eE+-]+|null)(?:,\s*(?:-?[\d.eE+-]+|null))*)\s*\]/g, (_, items: string) => `[${items.split(/,\s*/).join(', ')}]`);
}

/** Writes `dir/evaluation.json` and `dir/evaluation.md` (creating `dir`); returns their paths. */
export function writeEvaluation(dir: string, file: EvaluationFile): string[] {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'evaluation.json');
  const md = join(dir, 'evaluation.md');
  writeFileSync(json, `${compactJson(file)}\n`);
  writeFileSync(md, renderEvaluationMarkdown(file));
  return [json, md];
}
