// Datasets read from files: an image folder tree, MNIST IDX files, CIFAR-10 binary batches.
// Samples are decoded and transformed in Rust by worker threads that prefetch batches while
// the model trains; each pass of `batches()` runs one native loader and stops it when the
// loop ends, breaks or throws.
import type { NativeLoader, NativeSource, TransformSpec } from '../../index.js';
import { DisposedError } from '../errors.js';
import { callNative, callNativeSync } from '../native.js';
import { OptionReader, invalidOption } from '../validation.js';
import { HandleBatch, readBatchOptions, type Batch, type BatchOptions, type Dataset } from './dataset.js';
import { resolvePipeline, type ResolvedPipeline, type Transform } from './transforms.js';

/** What to do with a sample whose file cannot be read or decoded (or fails a transform). */
export type OnBadSample = 'error' | 'skip';

/** Options shared by {@link imageFolder}, {@link mnist} and {@link cifar10}. */
export interface SourceOptions {
  /**
   * Per-sample transforms, in order (see {@link Transform}); a `normalize` must come last.
   * Random transforms draw from a stream keyed by (seed, epoch, sample), so a pass is the same
   * for the same `seed` and `epoch` whatever the thread count. Default: none (plus ImageNet
   * normalisation for {@link imageFolder}).
   */
  transforms?: readonly Transform[];
  /** Decoding threads; default 0, one per CPU core. */
  threads?: number;
  /** Batches prepared ahead of the training loop (at least one per thread); default 2. */
  prefetch?: number;
  /**
   * `'error'` (default): a bad sample (a truncated or corrupt file, an image too small for a
   * corruption) ends the pass with an `InvalidDataError` naming it. `'skip'`: it is left out
   * of its batch, named in `Batch.skipped` and counted in the `skipped` logs of
   * `fineTune` and `evaluate`.
   */
  onBadSample?: OnBadSample;
}

/** Options of {@link imageFolder}. */
export interface ImageFolderOptions extends SourceOptions {
  /** Class names (sub-folders of the root) in label order; default: every sub-folder, sorted by name. */
  classes?: readonly string[];
  /**
   * Channels images are decoded to: 3 (default; gray files are repeated to RGB, as PIL
   * `convert("RGB")`) or 1 (luma).
   */
  channels?: 1 | 3;
  /**
   * Largest image (width x height) a file may declare; larger ones are bad samples, refused from
   * the header before any decoding (an image bomb costs nothing). Default 40,000,000.
   */
  maxPixels?: number;
  /** Largest file read, in bytes; larger files, and anything but regular files, are bad samples. Default 128 MiB. */
  maxFileBytes?: number;
}

/** Options of {@link mnist}: the two uncompressed IDX files (MNIST, Fashion-MNIST, KMNIST, ...). */
export interface MnistOptions extends SourceOptions {
  /** The IDX3 image file, e.g. `train-images-idx3-ubyte` (gunzipped). */
  images: string;
  /** The IDX1 label file, e.g. `train-labels-idx1-ubyte` (gunzipped). */
  labels: string;
}

/** Options of {@link cifar10}. */
export interface Cifar10Options extends SourceOptions {
  /** CIFAR-10 binary batch files (`data_batch_1.bin` ...), read in this order. */
  files: readonly string[];
}

/** A {@link Dataset} read from files, with its class names. */
export interface SourceDataset extends Dataset {
  /** Class names in label order (folder names; `'0'`..`'9'` for MNIST; CIFAR-10's names). */
  readonly classNames: readonly string[];
}

const SOURCE_OPTIONS = ['transforms', 'threads', 'prefetch', 'onBadSample'] as const;

export interface LoaderSettings {
  pipeline: ResolvedPipeline;
  threads: number;
  prefetch: number;
  onBadSample: OnBadSample;
}

function readSourceOptions(o: OptionReader, channels: number, imagenetDefault: boolean, prefix: TransformSpec[] = []): LoaderSettings {
  return {
    pipeline: resolvePipeline(o, channels, imagenetDefault, prefix),
    threads: o.ruled('threads', 'source.threads'),
    prefetch: o.ruled('prefetch', 'source.prefetch'),
    onBadSample: o.oneOf('onBadSample', ['error', 'skip'], 'error'),
  };
}

function readPath(o: OptionReader, name: string, value: unknown = o.values[name]): string {
  if (typeof value !== 'string' || value === '') throw invalidOption(o.context, name, value, 'a non-empty path');
  return value;
}

/**
 * Images in `root/<class>/**` (`.jpg`, `.jpeg`, `.png`, any case; hidden files and other files
 * ignored), like torchvision's `ImageFolder`: labels follow the sorted class folder names.
 * Files are listed now and decoded while iterating.
 *
 * `imageShape` is the size the transforms produce when they fix it (`resize`, `centerCrop`,
 * `randomResizedCrop` not followed by `resizeShorter`); otherwise the first image is decoded
 * now and its size after the transforms is the dataset's. Every sample must have that shape:
 * one that differs ends the pass with an `InvalidDataError` asking for a resize or crop.
 * Without a `normalize` transform, the ImageNet mean and std are applied.
 *
 * @example
 * ```ts
 * import { centerCrop, imageFolder, resizeShorter } from 'advbn';
 *
 * const val = await imageFolder('imagenette/val', { transforms: [resizeShorter(256), centerCrop(224)], onBadSample: 'skip' });
 * console.log(val.length, val.classNames);
 * ```
 */
export async function imageFolder(root: string, options: ImageFolderOptions = {}): Promise<SourceDataset> {
  const o = new OptionReader('imageFolder', options).rejectUnknown([...SOURCE_OPTIONS, 'classes', 'channels', 'maxPixels', 'maxFileBytes']);
  const path = readPath(o, 'root', root);
  let classes: string[] | undefined;
  if (o.has('classes')) {
    const value = o.values.classes;
    if (!Array.isArray(value) || value.length === 0 || !value.every((c) => typeof c === 'string' && c !== '')) {
      throw o.fail('classes', 'a non-empty array of folder names');
    }
    classes = [...(value as string[])];
  }
  const { settings, limits } = readFileOptions(o);
  return open(await callNative((n) => n.NativeSource.imageFolder(path, classes, limits)), settings);
}

/** `channels`, the file limits and the source options shared by {@link imageFolder} and {@link imageFiles}. */
function readFileOptions(o: OptionReader) {
  const channels = o.ruled('channels', 'imageFolder.channels');
  if (channels === 2) throw o.fail('channels', '1 or 3');
  const convert: TransformSpec = channels === 3 ? { type: 'toRgb' } : { type: 'grayscale', channels: 1 };
  const settings = readSourceOptions(o, channels, true, [convert]);
  const limits = { maxPixels: o.ruled('maxPixels', 'imageFolder.maxPixels'), maxFileBytes: o.ruled('maxFileBytes', 'imageFolder.maxFileBytes') };
  return { settings, limits };
}

/** Options of {@link imageFiles}: those of {@link imageFolder} but `classes`. */
export type ImageFilesOptions = Omit<ImageFolderOptions, 'classes'>;

/** A {@link Dataset} of unlabelled image files (every label 0), with the file of each sample. */
export interface FilesDataset extends SourceDataset {
  /** The file of each sample, in sample order. */
  readonly files: readonly string[];
}

/**
 * Image files to predict on: the `paths` in the order given, each folder standing for its
 * `.jpg`/`.jpeg`/`.png` files (searched recursively, hidden entries skipped, sorted by path).
 * Files are read and decoded as {@link imageFolder}'s are (same limits and transforms, ImageNet
 * normalisation by default); there are no labels (`numClasses` 1, every label 0).
 *
 * @example
 * ```ts
 * import { centerCrop, imageFiles, resizeShorter } from 'advbn';
 *
 * const photos = await imageFiles(['cat.jpg', 'more-photos/'], { transforms: [resizeShorter(256), centerCrop(224)] });
 * const { classes } = await model.predict(photos);
 * photos.files.forEach((file, i) => console.log(file, classes[i]));
 * ```
 */
export async function imageFiles(paths: readonly string[], options: ImageFilesOptions = {}): Promise<FilesDataset> {
  const o = new OptionReader('imageFiles', options).rejectUnknown([...SOURCE_OPTIONS, 'channels', 'maxPixels', 'maxFileBytes']);
  if (!Array.isArray(paths) || paths.length === 0) throw invalidOption('imageFiles', 'paths', paths, 'a non-empty array of image files or folders');
  const list = paths.map((p, i) => readPath(o, `paths[${i}]`, p));
  const { settings, limits } = readFileOptions(o);
  return open(await callNative((n) => n.NativeSource.imageFiles(list, limits)), settings, true) as Promise<FilesDataset>;
}

/** MNIST-style IDX files (uncompressed): 1-channel images, labels 0-9. */
export async function mnist(options: MnistOptions): Promise<SourceDataset> {
  const o = new OptionReader('mnist', options).rejectUnknown([...SOURCE_OPTIONS, 'images', 'labels']);
  const images = readPath(o, 'images');
  const labels = readPath(o, 'labels');
  const settings = readSourceOptions(o, 1, false);
  return open(await callNative((n) => n.NativeSource.mnist(images, labels)), settings);
}

/** CIFAR-10 binary batches: 3 x 32 x 32 images, CIFAR-10's 10 classes. */
export async function cifar10(options: Cifar10Options): Promise<SourceDataset> {
  const o = new OptionReader('cifar10', options).rejectUnknown([...SOURCE_OPTIONS, 'files']);
  const value = o.values.files;
  if (!Array.isArray(value) || value.length === 0) throw o.fail('files', 'a non-empty array of paths');
  const files = value.map((f, i) => readPath(o, `files[${i}]`, f));
  const settings = readSourceOptions(o, 3, false);
  return open(await callNative((n) => n.NativeSource.cifar10(files)), settings);
}

/** Works out the image shape (probing the first sample when the transforms do not fix it). */
async function open(source: NativeSource, settings: LoaderSettings, withFiles = false): Promise<SourceDataset> {
  try {
    const { channels, size } = settings.pipeline;
    let shape: [number, number, number];
    if (size) {
      shape = [channels, size[0], size[1]];
    } else {
      const probe = newLoader(source, settings, { batchSize: 1, shuffle: false, seed: 0, dropLast: false });
      try {
        const [c = channels, h = 0, w = 0] = await callNative(() => probe.firstSampleShape());
        shape = [c, h, w];
      } finally {
        probe.close();
      }
    }
    const dataset = new FileDataset(source, settings, shape);
    if (withFiles) Object.defineProperty(dataset, 'files', { value: Object.freeze(source.sampleNames()), enumerable: true });
    return dataset;
  } catch (err) {
    source.dispose();
    throw err;
  }
}

function newLoader(
  source: NativeSource,
  settings: LoaderSettings,
  pass: { batchSize: number; shuffle: boolean; seed: number; dropLast: boolean },
  imageShape?: readonly number[],
  augment?: 'augmix',
): NativeLoader {
  const { pipeline, threads, prefetch, onBadSample } = settings;
  // Augmentation works on [0, 1] pixels: it runs after the transforms, before normalisation.
  const transforms: TransformSpec[] = augment === 'augmix' ? [...pipeline.specs, { type: 'augmix' }] : pipeline.specs;
  return callNativeSync(
    (n) =>
      new n.NativeLoader(source, {
        ...pass,
        threads,
        prefetch,
        onBadSample,
        transforms,
        ...(pipeline.mean && { mean: pipeline.mean, std: pipeline.std }),
        ...(imageShape && { imageShape: [...imageShape] }),
      }),
  );
}

class FileDataset implements SourceDataset {
  #source: NativeSource | null;
  readonly #settings: LoaderSettings;
  readonly length: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly imageShape: readonly [number, number, number];

  constructor(source: NativeSource, settings: LoaderSettings, imageShape: [number, number, number]) {
    this.#source = source;
    this.#settings = settings;
    this.length = source.length;
    this.numClasses = source.numClasses;
    this.classNames = Object.freeze(source.classNames);
    this.imageShape = Object.freeze(imageShape);
  }

  /** The native source and how it is loaded (for views of this dataset). @internal */
  get parts(): FileParts {
    if (!this.#source) throw new DisposedError('the dataset was used after dispose()');
    return { source: this.#source, settings: this.#settings, imageShape: this.imageShape };
  }

  async *batches(options: BatchOptions = {}): AsyncGenerator<Batch> {
    const { batchSize, shuffle, seed, epoch, dropLast, device, augment } = readBatchOptions(options);
    if (!this.#source) throw new DisposedError('the dataset was used after dispose()');
    const loader = newLoader(this.#source, this.#settings, { batchSize, shuffle, seed, dropLast }, this.imageShape, augment);
    try {
      callNativeSync(() => loader.epoch(epoch));
      for (let index = 0; ; index += 1) {
        const handle = await callNative(() => loader.next(device));
        if (!handle) break;
        const batch = new HandleBatch(handle, index);
        try {
          yield batch;
        } finally {
          batch.dispose();
        }
      }
    } finally {
      // Runs when the loop ends, breaks or throws: the workers stop after the sample in hand.
      loader.close();
    }
  }

  dispose(): void {
    this.#source?.dispose();
    this.#source = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** What a file dataset is made of: its source, loader settings and image shape. @internal */
export interface FileParts {
  source: NativeSource;
  settings: LoaderSettings;
  imageShape: readonly [number, number, number];
}

/** @internal The parts of a file dataset (imageFolder, mnist, cifar10, views of them), else undefined. */
export function fileParts(dataset: Dataset): FileParts | undefined {
  return dataset instanceof FileDataset ? dataset.parts : undefined;
}

/** @internal A file dataset over `source`, loaded as `like` is. */
export function fileDatasetLike(source: NativeSource, like: FileParts): SourceDataset {
  return new FileDataset(source, like.settings, [...like.imageShape] as [number, number, number]);
}
