/**
 * Training: {@link fineTune} with AdvBN, ERM, MixStyle, DSU or their combinations, its options,
 * callbacks and checkpoints, and the picture of adversarial features.
 *
 * @module Training
 */
export { fineTune, type History, type HistoryParams, type HistoryRecord } from '../training/fine-tune.js';
export {
  FINE_TUNE_METHODS,
  type AdamWOptions,
  type AdvbnAttackOptions,
  type ConstantScheduleOptions,
  type CosineScheduleOptions,
  type FineTuneMethod,
  type FineTuneOptions,
  type OptimizerOptions,
  type ScheduleOptions,
  type SgdOptions,
  type StepScheduleOptions,
} from '../training/options.js';
export type { BatchBeginLogs, BatchLogs, Callback, EpochBeginLogs, EpochLogs } from '../training/callbacks.js';
export {
  csvLogger,
  type CsvLoggerOptions,
  earlyStopping,
  jsonLogger,
  modelCheckpoint,
  progressLogger,
  trainingCurves,
  type EarlyStopping,
  type EarlyStoppingOptions,
  type ModelCheckpoint,
  type ModelCheckpointOptions,
  type Monitor,
  type MonitorMode,
  type ProgressStream,
} from '../training/builtins.js';
export type { CheckpointOptions } from '../training/checkpoint.js';
export { visualizeAdversarialFeatures, type VisualizeOptions, type VisualizeResult } from '../visualize.js';
