// Report writers for `advbn reproduce`: results.json, report.md and the charts.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidDataError } from '../errors.js';
import { corruptionErrorChart, domainAccuracyChart, resultsCurvesChart, severityChart, type Chart } from './charts.js';
import { renderReportMarkdown } from './markdown.js';
import { hasCorruptionResults, validateResults, type Results } from './schema.js';

export {
  PALETTE,
  corruptionErrorChart,
  domainAccuracyChart,
  methodColors,
  resultsCurvesChart,
  severityChart,
  trainingCurvesChart,
  type Chart,
  type CurveRun,
} from './charts.js';
export { renderReportMarkdown } from './markdown.js';
export {
  RESULTS_SCHEMA,
  hasCorruptionResults,
  statOf,
  validateResults,
  type AlternateFigures,
  type BnChoice,
  type BranchFigures,
  type ComparisonResult,
  type CorruptionStats,
  type MethodResult,
  type Protocol,
  type Results,
  type RunProvenance,
  type Stat,
  type TargetStat,
  type TrainingCurves,
} from './schema.js';

/**
 * Writes the report of `results` into `dir` (created if missing): `results.json` (pretty),
 * `report.md`, `domains.svg`/`.png`, `corruptions.svg`/`.png` and `severity.svg`/`.png`
 * when corruption results exist, and `curves.svg`/`.png` when methods carry training curves. Rejects with an {@link InvalidDataError} listing every schema
 * violation before writing anything when `results` is not valid. Resolves to the paths written.
 */
export async function writeReport(dir: string, results: Results): Promise<string[]> {
  const problems = validateResults(results);
  if (problems.length > 0) throw new InvalidDataError(`writeReport: invalid results:\n  ${problems.join('\n  ')}`);
  await mkdir(dir, { recursive: true });
  const files: [string, string | Buffer][] = [
    ['results.json', `${JSON.stringify(results, null, 2)}\n`],
    ['report.md', renderReportMarkdown(results)],
  ];
  const charts: [string, (r: Results) => Chart | undefined][] = [['domains', domainAccuracyChart]];
  if (hasCorruptionResults(results)) charts.push(['corruptions', corruptionErrorChart], ['severity', severityChart]);
  charts.push(['curves', resultsCurvesChart]);
  for (const [name, draw] of charts) {
    const chart = draw(results);
    if (chart) files.push([`${name}.svg`, chart.svg], [`${name}.png`, chart.png]);
  }
  const paths: string[] = [];
  for (const [name, content] of files) {
    const path = join(dir, name);
    await writeFile(path, content);
    paths.push(path);
  }
  return paths;
}
