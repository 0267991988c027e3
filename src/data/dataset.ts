// Datasets: anything that can hand out batches of (image, label) pairs on a device.
// The interface is small on purpose so that Rust-side streaming sources (image folders,
// MNIST, CIFAR) can implement it next to the in-memory ArrayDataset.
import type { DeviceName } from '../devices.js';
import type { NativeBatch, NativeDataset } from '../../index.js';
import { DisposedError, InvalidDataError } from '../errors.js';
import { callNative, callNativeSync } from '../native.js';
import { OptionReader, describeValue, invalidOption, isPlainObject, readDevice } from '../validation.js';
import { checkImages, type ImageArray, type Layout } from './images.js';

/** How {@link Dataset.batches} splits and orders one pass over a dataset. */
export interface BatchOptions {
  /** Samples per batch; default 64. */
  batchSize?: number;
  /** Shuffle the sample order (seeded); default `false`. */
  shuffle?: boolean;
  /** Seed of the shuffle; default 0. */
  seed?: number;
  /** Epoch number: with the same seed, each epoch gets its own order; default 0. */
  epoch?: number;
  /** Drop the last batch when it is smaller than `batchSize`; default `false`. */
  dropLast?: boolean;
  /** Device the batch is gathered on (`'cpu'`, `'cuda:0'`, ...); default `'cpu'`. */
  device?: DeviceName;
  /**
   * Image-space augmentation applied to every sample: `'augmix'` (AugMix, Hendrycks et al.
   * 2020, reference settings), seeded per (seed, epoch, sample). Default none.
   */
  augment?: 'augmix';
}

/**
 * One batch of samples, already on its device. Batches are owned by the iterator that
 * produced them: a batch is valid until the iterator advances, then its memory is released.
 */
export interface Batch {
  /** 0-based position of the batch in this pass. */
  readonly index: number;
  /** Number of samples in the batch. */
  readonly size: number;
  /**
   * Samples left out of this batch because they failed to load, as `"<file or record>: <reason>"`
   * (file sources with `onBadSample: 'skip'`). Absent or empty when none were.
   */
  readonly skipped?: readonly string[];
  /**
   * Native handle consumed by models and trainers.
   * @internal
   */
  readonly handle: NativeBatch;
  /** Releases the batch's memory now (idempotent). */
  dispose(): void;
}

/** A labelled image dataset that can be iterated in batches. */
export interface Dataset {
  /** Number of samples. */
  readonly length: number;
  /** Number of classes (labels are `0 .. numClasses - 1`). */
  readonly numClasses: number;
  /** Shape of one image, channels first: `[C, H, W]`; every batch has images of this shape. */
  readonly imageShape: readonly [number, number, number];
  /** One pass over the data in batches. */
  batches(options?: BatchOptions): AsyncIterable<Batch>;
  /** Releases the dataset's memory (idempotent). */
  dispose(): void;
  /** Same as {@link Dataset.dispose}, for `using`. */
  [Symbol.dispose](): void;
}

/** Options of {@link fromArrays}. */
export interface FromArraysOptions {
  /** Memory layout of `images.data`; default `images.layout`, else `'nchw'`. */
  layout?: Layout;
  /** Number of classes; default: largest label + 1. */
  numClasses?: number;
  /** Per-channel mean subtracted after the uint8 1/255 scaling (give `std` too). */
  mean?: number[];
  /** Per-channel standard deviation divided by after subtracting `mean`. */
  std?: number[];
}

/** Images and labels in memory, accepted wherever a {@link Dataset} is. */
export interface LabeledArrays extends FromArraysOptions {
  /** The images. */
  images: ImageArray;
  /** One label per image. */
  labels: Int32Array;
}

/** Either a {@link Dataset} or plain arrays that will be wrapped with {@link fromArrays}. */
export type DatasetInput = Dataset | LabeledArrays;

/** A {@link Batch} over a native batch handle. @internal */
export class HandleBatch implements Batch {
  #handle: NativeBatch | null;
  readonly size: number;
  readonly skipped: readonly string[];

  constructor(
    handle: NativeBatch,
    readonly index: number,
  ) {
    this.#handle = handle;
    this.size = handle.size;
    this.skipped = handle.skipped;
  }

  get handle(): NativeBatch {
    if (!this.#handle) throw new DisposedError(`batch ${this.index} was used after it was disposed (batches live until the iterator advances)`);
    return this.#handle;
  }

  dispose(): void {
    this.#handle?.dispose();
    this.#handle = null;
  }
}

class ArrayDataset implements Dataset {
  #native: NativeDataset | null;
  readonly length: number;
  readonly numClasses: number;
  readonly imageShape: readonly [number, number, number];

  constructor(native: NativeDataset) {
    this.#native = native;
    this.length = native.length;
    this.numClasses = native.numClasses;
    this.imageShape = [native.channels, native.height, native.width];
  }

  /** The native handle (for views of this dataset). @internal */
  get native(): NativeDataset {
    if (!this.#native) throw new DisposedError('the dataset was used after dispose()');
    return this.#native;
  }

  #live(): NativeDataset {
    return this.native;
  }

  async *batches(options: BatchOptions = {}): AsyncGenerator<Batch> {
    const { batchSize, shuffle, seed, epoch, dropLast, device, augment } = readBatchOptions(options);
    const native = this.#live();
    const augmix = augment === 'augmix' ? [seed, epoch] : undefined;
    const order = callNativeSync((n) => n.epochOrder(this.length, shuffle, seed, epoch));
    for (let start = 0, index = 0; start < order.length; start += batchSize, index += 1) {
      const end = Math.min(start + batchSize, order.length);
      if (dropLast && end - start < batchSize) break;
      const handle = await callNative(() => native.batch(order.subarray(start, end), device, augmix));
      const batch = new HandleBatch(handle, index);
      try {
        yield batch;
      } finally {
        // Runs when the consumer advances, breaks or throws: no batch outlives its step.
        batch.dispose();
      }
    }
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** {@link BatchOptions} with their defaults applied. @internal */
export type ResolvedBatchOptions = Required<Omit<BatchOptions, 'augment'>> & Pick<BatchOptions, 'augment'>;

/** Checks the options of {@link Dataset.batches} and fills in the defaults. @internal */
export function readBatchOptions(options: BatchOptions): ResolvedBatchOptions {
  const o = new OptionReader('batches', options).rejectUnknown(['batchSize', 'shuffle', 'seed', 'epoch', 'dropLast', 'device', 'augment']);
  return {
    augment: o.values.augment === undefined ? undefined : o.oneOf('augment', ['augmix'] as const, 'augmix'),
    batchSize: o.ruled('batchSize', 'fineTune.batchSize'),
    shuffle: o.boolean('shuffle', false),
    seed: o.ruled('seed', 'seed'),
    epoch: o.ruled('epoch', 'batches.epoch'),
    dropLast: o.boolean('dropLast', false),
    device: readDevice(o, 'device', 'cpu'),
  };
}

/**
 * Wraps in-memory images and labels as a {@link Dataset}. The data is copied and validated once
 * (NaN/Infinity, label range, shape); `Uint8Array` pixels are scaled by 1/255, then normalised
 * with `mean`/`std` when given.
 *
 * @example
 * ```ts
 * import { fromArrays } from 'advbn';
 *
 * const images = { data: new Float32Array(8 * 3 * 32 * 32), shape: [8, 3, 32, 32] as const };
 * const data = fromArrays(images, Int32Array.from([0, 1, 0, 1, 0, 1, 0, 1]));
 * ```
 */
export function fromArrays(images: ImageArray, labels: Int32Array, options: FromArraysOptions = {}): Dataset {
  const context = 'fromArrays';
  const o = new OptionReader(context, options).rejectUnknown(['layout', 'numClasses', 'mean', 'std']);
  const checked = checkImages(context, 'images', images, options.layout);
  if (!(labels instanceof Int32Array)) throw invalidOption(context, 'labels', labels, 'an Int32Array');
  if (labels.length !== checked.count) {
    throw new InvalidDataError(`${context}: labels has ${labels.length} entries but images has ${checked.count} (shape ${describeValue(checked.shape)})`);
  }
  const numClasses = o.has('numClasses') ? o.ruled('numClasses', 'fromArrays.numClasses') : undefined;
  const mean = o.has('mean') ? o.numberArray('mean', []) : undefined;
  const std = o.has('std') ? o.numberArray('std', [], { positive: true }) : undefined;
  if ((mean === undefined) !== (std === undefined)) {
    throw o.fail(mean === undefined ? 'std' : 'mean', 'given together with the other of "mean" and "std"');
  }
  if (mean && mean.length !== checked.channels) throw o.fail('mean', `an array of ${checked.channels} numbers (one per channel)`);
  if (std && std.length !== checked.channels) throw o.fail('std', `an array of ${checked.channels} numbers (one per channel)`);
  const native = callNativeSync((n) =>
    n.NativeDataset.fromArrays(checked.data, labels, {
      shape: checked.shape,
      layout: checked.layout,
      ...(numClasses !== undefined && { numClasses }),
      ...(mean && { mean }),
      ...(std && { std }),
    }),
  );
  return new ArrayDataset(native);
}

function isDataset(value: unknown): value is Dataset {
  return typeof value === 'object' && value !== null && typeof (value as Dataset).batches === 'function';
}

/** A dataset to use, and whether the caller created it (and so must dispose it). */
export interface ResolvedDataset {
  dataset: Dataset;
  owned: boolean;
}

/** Accepts a Dataset or `{ images, labels, ... }`; plain arrays default to `numClasses`. */
export function resolveDataset(context: string, option: string, input: unknown, numClasses: number): ResolvedDataset {
  if (isDataset(input)) return { dataset: input, owned: false };
  if (!isPlainObject(input) || input.images === undefined || input.labels === undefined) {
    throw invalidOption(context, option, input, 'a Dataset or an object { images, labels }');
  }
  const { images, labels, ...rest } = input as unknown as LabeledArrays;
  return { dataset: fromArrays(images, labels, { numClasses, ...rest }), owned: true };
}

/** Checks that a dataset's images and labels fit a model's input channels and class count. */
export function assertFitsModel(context: string, option: string, dataset: Dataset, model: { inChannels: number; numClasses: number }): void {
  const [channels, height, width] = dataset.imageShape;
  if (channels !== model.inChannels) {
    throw new InvalidDataError(
      `${context}: ${option} has ${channels}-channel images (image shape [${channels}, ${height}, ${width}]) but the model expects ${model.inChannels} channels`,
    );
  }
  if (dataset.numClasses > model.numClasses) {
    throw new InvalidDataError(`${context}: ${option} has numClasses ${dataset.numClasses} but the model has ${model.numClasses} classes`);
  }
  if (dataset.length === 0) throw new InvalidDataError(`${context}: ${option} is empty`);
}

/** @internal Wraps a dataset the native side built (e.g. the digits benchmark's splits). */
export function wrapNativeDataset(native: NativeDataset): Dataset {
  return new ArrayDataset(native);
}

/** @internal The native handle of an in-memory dataset (fromArrays, digits), else undefined. */
export function arrayHandle(dataset: Dataset): NativeDataset | undefined {
  return dataset instanceof ArrayDataset ? dataset.native : undefined;
}
