// Model builders and the Model handle users hold.
import type { DeviceName } from './devices.js';
import type { ModelConfig, NativeModel } from '../index.js';
import { AdvbnError, DisposedError } from './errors.js';
import { assertFitsModel, fromArrays, type Dataset } from './data/dataset.js';
import { checkImages, type ImageArray } from './data/images.js';
import { callNative } from './native.js';
import { DEVICE_PATTERN, DEVICE_RULE, OptionReader, invalidOption } from './validation.js';

/** Options shared by every model builder. */
export interface ModelOptions {
  /**
   * Number of output classes (>= 2). Required without `weights`; with them, absent means the
   * class count of the file's classifier (the rows of `fc.weight`), so nothing is re-initialised.
   */
  numClasses?: number;
  /** `'cpu'`, `'cuda'`, `'cuda:N'` or `'auto'` (CUDA when available, else CPU); default `'auto'`. */
  device?: DeviceName;
  /** Seed of the weight initialisation; default 0. */
  seed?: number;
  /** Channels of the input images; default 3. */
  inChannels?: number;
  /**
   * Pretrained weights: a `.safetensors` or PyTorch `.pth` file with torchvision/timm names
   * (pickles are read without running any code). With a different `numClasses` the classifier
   * is left freshly initialised and {@link Model.weightsReport} says so. Missing, unexpected or
   * mis-shaped tensors reject with one error listing them all.
   */
  weights?: string;
}

/** What loading a weights file did (see {@link ModelOptions.weights}). */
export interface WeightsReport {
  /** The file that was read. */
  path: string;
  /** Number of tensors loaded. */
  loaded: number;
  /** Tensors kept at their fresh initialisation: the classifier when the class count differs. */
  reinitialized: string[];
  /** File entries not used (BatchNorm `num_batches_tracked` counters). */
  ignored: string[];
}

/** Options of {@link smallResnet}. */
export interface SmallResnetOptions extends ModelOptions {
  /** Depth 6n+2 (8, 14, 20, 32, 44, 56); default 20. */
  depth?: number;
  /** Channels of the first stage (doubled at each of the three stages); default 16. */
  width?: number;
}

/** Which BatchNorm branch a forward pass uses: the clean one or the adversarial one. */
export type BnBranch = 'clean' | 'adv';

/** Options of {@link Model.predict}. */
export interface PredictOptions {
  /** BatchNorm branch; default `'clean'`. `'adv'` needs a model fine-tuned with AdvBN. */
  bn?: BnBranch;
  /** Images per forward pass; default 256. */
  batchSize?: number;
  /** Per-channel mean applied to raw image arrays (as in {@link fromArrays}). */
  mean?: number[];
  /** Per-channel standard deviation applied to raw image arrays (as in {@link fromArrays}). */
  std?: number[];
}

/** Result of {@link Model.predict}. */
export interface Prediction {
  /** Row-major logits, `[count, numClasses]`. */
  logits: Float32Array;
  /** Number of classes (the row length of `logits`). */
  numClasses: number;
  /** Arg-max class of each image. */
  classes: Int32Array;
}

const trainingGuard = Symbol('advbn.training');

/** An image classifier backed by native memory. Dispose it when done (or use `using`). */
export class Model implements Disposable {
  #native: NativeModel | null;
  #training = false;
  /** Architecture name, e.g. `'resnet18'` or `'small_resnet'`. */
  readonly arch: string;
  /** Number of output classes. */
  readonly numClasses: number;
  /** Number of residual stages (the valid range of a fine-tune `cut`). */
  readonly numStages: number;
  /** Channels of the input images. */
  readonly inChannels: number;
  /** Device the weights live on, e.g. `'cpu'` or `'cuda:0'`. */
  readonly device: DeviceName;
  /** Number of parameters. */
  readonly parameterCount: number;
  /** What loading {@link ModelOptions.weights} did; `undefined` for a randomly initialised model. */
  readonly weightsReport: WeightsReport | undefined;

  /** @internal Use a builder such as {@link smallResnet}. */
  constructor(native: NativeModel) {
    this.#native = native;
    this.arch = native.arch;
    this.numClasses = native.numClasses;
    this.numStages = native.numStages;
    this.inChannels = native.inChannels;
    // The addon reports the device it resolved ('cpu', 'cuda:0', ...).
    this.device = native.device as DeviceName;
    this.parameterCount = native.parameterCount;
    this.weightsReport = native.weightsReport ?? undefined;
  }

  /** True once an AdvBN fine-tune has created the adversarial BatchNorm branch. */
  get hasAdvBn(): boolean {
    return this.#native?.hasAdvBn ?? false;
  }

  /** True after {@link Model.dispose}. */
  get isDisposed(): boolean {
    return this.#native === null;
  }

  /** @internal The live native handle; throws {@link DisposedError} after dispose. */
  nativeHandle(context: string): NativeModel {
    if (!this.#native) throw new DisposedError(`${context}: the model was used after dispose()`);
    return this.#native;
  }

  /**
   * @internal Marks the model busy for the duration of a training run: a second concurrent
   * fine-tune would interleave optimiser steps on the same weights.
   */
  [trainingGuard](context: string): () => void {
    if (this.#training) {
      throw new AdvbnError(`${context}: the model is already being trained; wait for the running fineTune to finish`, 'ADVBN_BUSY');
    }
    this.#training = true;
    return () => {
      this.#training = false;
    };
  }

  /**
   * Class scores for images. Accepts an image array (labels not needed) or a {@link Dataset}.
   * Runs in inference mode with the chosen BatchNorm branch.
   */
  async predict(images: ImageArray | Dataset, options: PredictOptions = {}): Promise<Prediction> {
    const rows: Float32Array[] = [];
    for await (const part of this.predictBatches(images, options)) rows.push(part);
    const logits = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
    let offset = 0;
    for (const part of rows) {
      logits.set(part, offset);
      offset += part.length;
    }
    return { logits, numClasses: this.numClasses, classes: argMaxRows(logits, this.numClasses) };
  }

  /**
   * {@link Model.predict} one batch at a time: the logits of each batch ([batch, numClasses],
   * row-major) as soon as it is computed, the data loader prefetching the next meanwhile.
   * @internal
   */
  async *predictBatches(images: ImageArray | Dataset, options: PredictOptions = {}): AsyncGenerator<Float32Array> {
    const context = 'predict';
    const native = this.nativeHandle(context);
    const o = new OptionReader(context, options).rejectUnknown(['bn', 'batchSize', 'mean', 'std']);
    const bn = readBnBranch(o, this);
    const batchSize = o.ruled('batchSize', 'evaluate.batchSize');
    const dataset = toPredictionDataset(context, images, this.numClasses, options);
    try {
      assertFitsModel(context, 'images', dataset.dataset, this);
      for await (const batch of dataset.dataset.batches({ batchSize, device: this.device })) {
        yield await callNative(() => native.predict(batch.handle, bn));
      }
    } finally {
      if (dataset.owned) dataset.dataset.dispose();
    }
  }

  /** Releases the model's native memory (idempotent). Later use rejects with {@link DisposedError}. */
  dispose(): void {
    this.#native?.dispose();
    this.#native = null;
  }

  /** Same as {@link Model.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** @internal Starts a training run on `model`; returns the function that ends it. */
export function beginTraining(model: Model, context: string): () => void {
  return model[trainingGuard](context);
}

/** @internal Reads the `bn` option and checks the adversarial branch exists when asked for. */
export function readBnBranch(o: OptionReader, model: Model): BnBranch {
  const bn = o.oneOf<BnBranch>('bn', ['clean', 'adv'], 'clean');
  if (bn === 'adv' && !model.hasAdvBn) {
    throw o.fail('bn', `"clean" for a model without adversarial BatchNorms (fine-tune it with method "advbn" first)`);
  }
  return bn;
}

function toPredictionDataset(context: string, images: ImageArray | Dataset, numClasses: number, options: PredictOptions) {
  if (typeof (images as Dataset).batches === 'function') return { dataset: images as Dataset, owned: false };
  const checked = checkImages(context, 'images', images);
  // Labels are irrelevant for prediction; zeros keep the dataset valid.
  const labels = new Int32Array(checked.count);
  const normalisation = {
    ...(options.mean !== undefined && { mean: options.mean }),
    ...(options.std !== undefined && { std: options.std }),
  };
  return { dataset: fromArrays(images as ImageArray, labels, { numClasses, ...normalisation }), owned: true };
}

function argMaxRows(logits: Float32Array, width: number): Int32Array {
  const rows = logits.length / width;
  const classes = new Int32Array(rows);
  for (let r = 0; r < rows; r += 1) {
    let best = 0;
    for (let c = 1; c < width; c += 1) if (logits[r * width + c]! > logits[r * width + best]!) best = c;
    classes[r] = best;
  }
  return classes;
}

function readCommon(context: string, options: unknown, extra: readonly string[]) {
  const o = new OptionReader(context, options).rejectUnknown(['numClasses', 'device', 'seed', 'inChannels', 'weights', ...extra]);
  const weights = o.optionalString('weights');
  // With weights and no class count, the core takes it from the file's classifier.
  const numClasses = weights !== undefined && !o.has('numClasses') ? undefined : o.ruled('numClasses', 'model.numClasses');
  return {
    o,
    config: {
      ...(numClasses !== undefined && { numClasses }),
      device: o.string('device', 'auto', DEVICE_PATTERN, DEVICE_RULE),
      seed: o.ruled('seed', 'seed'),
      inChannels: o.ruled('inChannels', 'model.inChannels'),
      ...(weights !== undefined && { weights }),
    },
  };
}

async function build(config: Parameters<typeof createNative>[0]): Promise<Model> {
  return new Model(await createNative(config));
}

function createNative(config: ModelConfig) {
  return callNative((n) => n.createModel(config));
}

function imagenetResnet(arch: 'resnet18' | 'resnet34' | 'resnet50') {
  return (options: ModelOptions): Promise<Model> => {
    const { config } = readCommon(arch, options, []);
    return build({ arch: { type: arch }, ...config });
  };
}

/**
 * ResNet-18 (ImageNet layout, 4 stages), randomly initialised or from `weights`.
 *
 * @example
 * ```ts
 * import { resnet18 } from 'advbn';
 *
 * // torchvision's weights; a different class count re-initialises only the classifier.
 * const model = await resnet18({ numClasses: 10, weights: 'resnet18-f37072fd.pth', device: 'auto' });
 * console.log(model.weightsReport?.reinitialized); // ['fc.weight', 'fc.bias']
 * ```
 */
export const resnet18: (options: ModelOptions) => Promise<Model> = imagenetResnet('resnet18');
/** ResNet-34 (ImageNet layout, 4 stages), randomly initialised. */
export const resnet34: (options: ModelOptions) => Promise<Model> = imagenetResnet('resnet34');
/** ResNet-50 (ImageNet layout, bottleneck blocks, 4 stages), randomly initialised. */
export const resnet50: (options: ModelOptions) => Promise<Model> = imagenetResnet('resnet50');

/**
 * CIFAR-style ResNet of depth 6n+2 with 3 stages (He et al. 2016), for small images and tests.
 *
 * @example
 * ```ts
 * import { smallResnet } from 'advbn';
 *
 * const model = await smallResnet({ numClasses: 10, depth: 20, width: 16, device: 'cpu' });
 * ```
 */
export async function smallResnet(options: SmallResnetOptions): Promise<Model> {
  const { o, config } = readCommon('smallResnet', options, ['depth', 'width']);
  const depth = o.ruled('depth', 'model.depth');
  if ((depth - 2) % 6 !== 0) throw o.fail('depth', 'of the form 6n+2 (8, 14, 20, 32, 44, 56, ...)');
  const width = o.ruled('width', 'model.width');
  return build({ arch: { type: 'smallResnet', depth, width }, ...config });
}

/**
 * Writes the model's weights as safetensors with torchvision names: the clean BatchNorm branch
 * under the standard names and the adversarial branch under `adv.`, so PyTorch loads the file
 * with `model.load_state_dict(state, strict=False)`. The write is atomic (temp file, fsync,
 * rename): an existing file is never left half-written.
 */
export async function saveWeights(model: Model, path: string): Promise<void> {
  const context = 'saveWeights';
  if (typeof path !== 'string' || path.length === 0) throw invalidOption(context, 'path', path, 'a non-empty file path');
  const native = model.nativeHandle(context);
  await callNative(() => native.saveWeights(path));
}
