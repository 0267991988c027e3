/**
 * Data: in-memory arrays, image folders, MNIST and CIFAR-10 files, the embedded digits
 * benchmark, transforms and the ImageNet-C corruptions.
 *
 * @module Data
 */
export type { ImageArray, Layout } from '../data/images.js';
export { concat, split, subset, type SplitOptions, type SubsetSelection } from '../data/selection.js';
export { fromArrays, type Batch, type BatchOptions, type Dataset, type DatasetInput, type FromArraysOptions, type LabeledArrays } from '../data/dataset.js';
export {
  cifar10,
  imageFiles,
  imageFolder,
  mnist,
  type Cifar10Options,
  type FilesDataset,
  type ImageFilesOptions,
  type ImageFolderOptions,
  type MnistOptions,
  type OnBadSample,
  type SourceDataset,
  type SourceOptions,
} from '../data/sources.js';
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
} from '../data/digits.js';
export { EXPORT_DEFAULT_PER_DOMAIN, exportDigits, type DigitsExportManifest, type ExportDigitsOptions, type ExportedSplit } from '../data/digits-export.js';
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  centerCrop,
  colorJitter,
  corrupt,
  grayscale,
  horizontalFlip,
  normalize,
  randomResizedCrop,
  randomRotation,
  resize,
  resizeShorter,
  type CenterCropTransform,
  type ColorJitterTransform,
  type CorruptOptions,
  type CorruptTransform,
  type GrayscaleTransform,
  type HorizontalFlipTransform,
  type NormalizeTransform,
  type RandomResizedCropOptions,
  type RandomResizedCropTransform,
  type RandomRotationTransform,
  type ResizeShorterTransform,
  type ResizeTransform,
  type Transform,
} from '../data/transforms.js';
export {
  CORRUPTION_NAMES,
  corruptFiles,
  listCorruptions,
  type CorruptFilesOptions,
  type CorruptFilesSummary,
  type CorruptionCount,
  type CorruptionName,
} from '../data/corruptions.js';
