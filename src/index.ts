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
export { fineTune, type History, type HistoryParams, type HistoryRecord } from './training/fine-tune.js';
export type {
  AdamWOptions,
  AdvbnAttackOptions,
  ConstantScheduleOptions,
  CosineScheduleOptions,
  FineTuneOptions,
  OptimizerOptions,
  ScheduleOptions,
  SgdOptions,
  StepScheduleOptions,
} from './training/options.js';
export type { BatchBeginLogs, BatchLogs, Callback, EpochBeginLogs, EpochLogs } from './training/callbacks.js';
export { evaluate, type EvaluateOptions, type EvaluationResult } from './evaluation.js';
export { listDevices, nativeInfo, selfCheck, type DeviceInfo, type NativeInfo, type SelfCheckReport } from './devices.js';
export { nativeLoadReport, type NativeLoadAttempt, type NativeLoadReport, type NativeVariant } from './native.js';
