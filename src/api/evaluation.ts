/**
 * Evaluation: accuracy and loss on a dataset, and robustness to corruptions and style domains
 * (CE, mCE, relative mCE) on either BatchNorm branch.
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
  type RobustnessOptions,
  type RobustnessReport,
} from '../evaluation/robustness.js';
