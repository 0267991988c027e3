/**
 * Reports: the reproduction (`advbn reproduce`), its presets, results.json (schema and
 * validation) and the report writer. The command line itself is documented in the README.
 *
 * @module Reports
 */
export { reproduce, type ReproduceOptions, type ReproduceOutput } from '../reproduce/index.js';
export type { DigitsConfig, PacsOverrides, PacsPreset, PresetAttack, PresetBaseline } from '../reproduce/presets.js';
export { DIGITS as DIGITS_PRESET, METHODS as REPRODUCE_METHODS, type MethodSpec } from '../reproduce/presets.js';
export {
  RESULTS_SCHEMA,
  renderReportMarkdown,
  validateResults,
  writeReport,
  type AlternateFigures,
  type BnChoice,
  type BranchFigures,
  type ComparisonResult,
  type CorruptionStats,
  type MethodResult,
  type Protocol,
  type Results as ReproduceResults,
  type RunProvenance,
  type Stat,
  type TargetStat,
  type TrainingCurves,
} from '../report/index.js';
export { reproduceImageNet, type ImageNetReproduceOptions, type ImageNetReproduceOutput } from '../reproduce/imagenet.js';
export { IMAGENET as IMAGENET_PRESET, IMAGENET_PAPER, type ImageNetPreset, type PaperFigure } from '../reproduce/presets.js';
export {
  IMAGENET_RESULTS_SCHEMA,
  renderImageNetReport,
  validateImageNetResults,
  type ImageNetResults,
  type ImageNetRow,
  type ImageNetTraining,
} from '../report/imagenet.js';
