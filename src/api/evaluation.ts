/**
 * Evaluation: loss, top-1/top-5 accuracy, per-class accuracy and the confusion matrix on a
 * dataset, and robustness to corruptions and style domains (CE, mCE, relative mCE; image folders
 * and ImageNet-C trees included) on either BatchNorm branch; evaluation.json (schema, validation)
 * and evaluation.md as `advbn evaluate` writes them.
 *
 * @module Evaluation
 */
export { evaluate, type EvaluateOptions, type EvaluationResult } from '../evaluation/evaluate.js';
export {
  compareToBaseline,
  evaluateRobustness,
  type BranchConvention,
  type CorruptionFigures,
  type CorruptionProvider,
  type PerBranch,
  type PerBranchResults,
  type RobustnessDetails,
  type RobustnessOptions,
  type RobustnessReport,
} from '../evaluation/robustness.js';
export { EVALUATION_SCHEMA, validateEvaluation, type BaselineAlexnet, type BaselineFile, type EvaluationFile, type EvaluationReport } from '../evaluation/schema.js';
export { renderEvaluationMarkdown, writeEvaluation } from '../evaluation/markdown.js';
