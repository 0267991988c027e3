/**
 * advbn: fine-tune image classifiers with Adversarial Batch Normalization
 * (Shu et al., NeurIPS 2021), on a Rust/Candle native core.
 *
 * @packageDocumentation
 */
export {
  AbortError,
  AdvbnError,
  DeviceError,
  DisposedError,
  InvalidDataError,
  InvalidOptionError,
  NativeLoadError,
  NativePanicError,
  TrainingDivergedError,
  type AdvbnErrorOptions,
} from './errors.js';
export {
  Model,
  resnet18,
  resnet34,
  resnet50,
  saveWeights,
  smallResnet,
  type BnBranch,
  type ModelOptions,
  type PredictOptions,
  type Prediction,
  type SmallResnetOptions,
  type WeightsReport,
} from './models.js';
export type { ImageArray, Layout } from './data/images.js';
export {
  fromArrays,
  type Batch,
  type BatchOptions,
  type Dataset,
  type DatasetInput,
  type FromArraysOptions,
  type LabeledArrays,
} from './data/dataset.js';
export {
  cifar10,
  imageFolder,
  mnist,
  type Cifar10Options,
  type ImageFolderOptions,
  type MnistOptions,
  type OnBadSample,
  type SourceDataset,
  type SourceOptions,
} from './data/sources.js';
export {
  DIGIT_DOMAINS,
  DigitsBenchmark,
  loadDigits,
  mnistDataDir,
  type DigitDomain,
  type DigitPart,
  type DigitSplitOptions,
  type DomainSplitOptions,
  type MixtureOptions,
} from './data/digits.js';
export {
  EXPORT_DEFAULT_PER_DOMAIN,
  exportDigits,
  type DigitsExportManifest,
  type ExportDigitsOptions,
  type ExportedSplit,
} from './data/digits-export.js';
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  centerCrop,
  corrupt,
  grayscale,
  horizontalFlip,
  normalize,
  randomResizedCrop,
  resize,
  resizeShorter,
  type CenterCropTransform,
  type CorruptOptions,
  type CorruptTransform,
  type GrayscaleTransform,
  type HorizontalFlipTransform,
  type NormalizeTransform,
  type RandomResizedCropOptions,
  type RandomResizedCropTransform,
  type ResizeShorterTransform,
  type ResizeTransform,
  type Transform,
} from './data/transforms.js';
export {
  CORRUPTION_NAMES,
  corruptFiles,
  listCorruptions,
  type CorruptFilesOptions,
  type CorruptFilesSummary,
  type CorruptionCount,
  type CorruptionName,
} from './data/corruptions.js';
export { fineTune, type History, type HistoryParams, type HistoryRecord } from './training/fine-tune.js';
export type {
  AdamWOptions,
  AdvbnAttackOptions,
  ConstantScheduleOptions,
  CosineScheduleOptions,
  FineTuneMethod,
  FineTuneOptions,
  OptimizerOptions,
  ScheduleOptions,
  SgdOptions,
  StepScheduleOptions,
} from './training/options.js';
export { FINE_TUNE_METHODS } from './training/options.js';
export type { BatchBeginLogs, BatchLogs, Callback, EpochBeginLogs, EpochLogs } from './training/callbacks.js';
export { evaluate, type EvaluateOptions, type EvaluationResult } from './evaluation/evaluate.js';
export {
  compareToBaseline,
  evaluateRobustness,
  type BranchConvention,
  type CorruptionFigures,
  type CorruptionProvider,
  type PerBranch,
  type RobustnessOptions,
  type RobustnessReport,
} from './evaluation/robustness.js';
export { listDevices, nativeInfo, selfCheck, type DeviceInfo, type DeviceName, type NativeInfo, type SelfCheckReport } from './devices.js';
export { nativeLoadReport, type NativeLoadAttempt, type NativeLoadReport, type NativeVariant } from './native.js';
export {
  PALETTE,
  RESULTS_SCHEMA,
  corruptionErrorChart,
  domainAccuracyChart,
  hasCorruptionResults,
  methodColors,
  renderReportMarkdown,
  severityChart,
  statOf,
  validateResults,
  writeReport,
  type AlternateFigures,
  type BnChoice,
  type BranchFigures,
  type Chart,
  type ComparisonResult,
  type Protocol,
  type TargetStat,
  type CorruptionStats,
  type MethodResult,
  type Results as ReproduceResults,
  type Stat,
} from './report/index.js';
export type { CheckpointOptions } from './training/checkpoint.js';
export { reproduce, type ReproduceOptions, type ReproduceOutput } from './reproduce/index.js';
export type { DigitsConfig } from './reproduce/presets.js';
export { DIGITS as DIGITS_PRESET, METHODS as REPRODUCE_METHODS, type MethodSpec } from './reproduce/presets.js';
export { visualizeAdversarialFeatures, type VisualizeOptions, type VisualizeResult } from './visualize.js';
