// Per-sample image transforms of the file sources (imageFolder, mnist, cifar10): typed builders,
// their plain-object form, and the one validation of a transform list. The transforms run in
// Rust, on the loader's worker threads, with torchvision semantics and seeded randomness.
import type { TransformSpec } from '../../index.js';
import { CORRUPTION_NAMES, type CorruptionName } from './corruptions.js';
import { OptionReader } from '../validation.js';

/** ImageNet's per-channel (RGB) mean, as torchvision and timm pretrained weights expect. */
export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
/** ImageNet's per-channel (RGB) standard deviation. */
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];
/** ImageNet's mean and std averaged over the channels, for 1-channel images (as timm). */
const IMAGENET_GRAY = { mean: [0.449], std: [0.226] } as const;

/** Resize to exactly `height` x `width` (bilinear with antialiasing, like PIL). */
export interface ResizeTransform {
  /** Transform kind. */
  readonly type: 'resize';
  /** Output height in pixels. */
  readonly height: number;
  /** Output width in pixels. */
  readonly width: number;
}

/** Resize so that the shorter side is `size`, keeping the aspect ratio (torchvision `Resize(int)`). */
export interface ResizeShorterTransform {
  /** Transform kind. */
  readonly type: 'resizeShorter';
  /** Length of the shorter side after resizing. */
  readonly size: number;
}

/** The central `size` x `size` square; zero-padded where the image is smaller. */
export interface CenterCropTransform {
  /** Transform kind. */
  readonly type: 'centerCrop';
  /** Side of the square. */
  readonly size: number;
}

/** torchvision's `RandomResizedCrop`: a random area and aspect ratio, resized to `size` x `size`. */
export interface RandomResizedCropTransform {
  /** Transform kind. */
  readonly type: 'randomResizedCrop';
  /** Output side. */
  readonly size: number;
  /** Range of the cropped area as a fraction of the image; default `[0.08, 1]`. */
  readonly scale?: readonly [number, number];
  /** Range of the aspect ratio (width / height), drawn log-uniformly; default `[3/4, 4/3]`. */
  readonly ratio?: readonly [number, number];
}

/** Mirror left-right with probability `p`. */
export interface HorizontalFlipTransform {
  /** Transform kind. */
  readonly type: 'horizontalFlip';
  /** Probability of flipping; default 0.5. */
  readonly p?: number;
}

/** ITU-R 601-2 luma (as PIL `convert("L")`), repeated to `channels`. */
export interface GrayscaleTransform {
  /** Transform kind. */
  readonly type: 'grayscale';
  /** Output channels, 1 or 3; default 1. */
  readonly channels?: 1 | 3;
}

/**
 * An ImageNet-C corruption (see {@link listCorruptions}). Each sample gets its own noise drawn
 * from its random stream, so a pass is the same for the same seed and epoch. Images must be at
 * least 28 x 28 pixels.
 */
export interface CorruptTransform {
  /** Transform kind. */
  readonly type: 'corrupt';
  /** Corruption name, e.g. `'gaussian_noise'`. */
  readonly name: CorruptionName;
  /** Severity, an integer from 1 to 5. */
  readonly severity: number;
}

/** `(pixel - mean) / std` per channel, pixels in [0, 1]. Must be the last transform. */
export interface NormalizeTransform {
  /** Transform kind. */
  readonly type: 'normalize';
  /** One mean per output channel. */
  readonly mean: readonly number[];
  /** One standard deviation per output channel, each > 0. */
  readonly std: readonly number[];
}

/**
 * torchvision's `ColorJitter`: brightness, contrast, saturation and hue adjusted in a random
 * order with factors drawn per sample (brightness, contrast, saturation in `[max(0, 1 - x), 1 + x]`,
 * a hue shift in `[-hue, hue]` turns). An absent or 0 strength leaves that property alone;
 * saturation and hue do nothing to 1-channel images.
 */
export interface ColorJitterTransform {
  /** Transform kind. */
  readonly type: 'colorJitter';
  /** Brightness strength, 0..10; default 0. */
  readonly brightness?: number;
  /** Contrast strength, 0..10; default 0. */
  readonly contrast?: number;
  /** Saturation strength, 0..10; default 0. */
  readonly saturation?: number;
  /** Hue strength, 0..0.5; default 0. */
  readonly hue?: number;
}

/** torchvision's `RandomRotation(degrees)`: an angle in `[-degrees, degrees]` counter-clockwise, nearest neighbour, size kept, uncovered pixels 0. */
export interface RandomRotationTransform {
  /** Transform kind. */
  readonly type: 'randomRotation';
  /** Largest angle, 0..180. */
  readonly degrees: number;
}

/** One step of a source's per-sample pipeline; build them with the functions below or write the objects. */
export type Transform =
  | ResizeTransform
  | ColorJitterTransform
  | RandomRotationTransform
  | ResizeShorterTransform
  | CenterCropTransform
  | RandomResizedCropTransform
  | HorizontalFlipTransform
  | GrayscaleTransform
  | CorruptTransform
  | NormalizeTransform;

/** Options of {@link randomResizedCrop}. */
export interface RandomResizedCropOptions {
  /** Range of the cropped area as a fraction of the image; default `[0.08, 1]`. */
  scale?: readonly [number, number];
  /** Range of the aspect ratio (width / height); default `[3/4, 4/3]`. */
  ratio?: readonly [number, number];
}

/** Options of {@link corrupt}. */
export interface CorruptOptions {
  /** Corruption name, e.g. `'gaussian_noise'` (see {@link listCorruptions}). */
  name: CorruptionName;
  /** Severity, an integer from 1 to 5. */
  severity: number;
}

/** {@link ResizeTransform} to `height` x `width` (`width` defaults to `height`). */
export function resize(height: number, width: number = height): ResizeTransform {
  return { type: 'resize', height, width };
}

/** {@link ResizeShorterTransform}: shorter side to `size`. */
export function resizeShorter(size: number): ResizeShorterTransform {
  return { type: 'resizeShorter', size };
}

/** {@link CenterCropTransform}: the central `size` x `size` square. */
export function centerCrop(size: number): CenterCropTransform {
  return { type: 'centerCrop', size };
}

/** {@link RandomResizedCropTransform} to `size` x `size`. */
export function randomResizedCrop(size: number, options: RandomResizedCropOptions = {}): RandomResizedCropTransform {
  return { ...options, type: 'randomResizedCrop', size };
}

/** {@link HorizontalFlipTransform} with probability `p` (default 0.5). */
export function horizontalFlip(p = 0.5): HorizontalFlipTransform {
  return { type: 'horizontalFlip', p };
}

/** {@link ColorJitterTransform} with these strengths (each default 0). */
export function colorJitter(options: Omit<ColorJitterTransform, 'type'> = {}): ColorJitterTransform {
  return { ...options, type: 'colorJitter' };
}

/** {@link RandomRotationTransform} by at most `degrees`. */
export function randomRotation(degrees: number): RandomRotationTransform {
  return { type: 'randomRotation', degrees };
}

/** {@link GrayscaleTransform} to `channels` (default 1). */
export function grayscale(channels: 1 | 3 = 1): GrayscaleTransform {
  return { type: 'grayscale', channels };
}

/** {@link CorruptTransform}: corruption `name` at `severity`. */
export function corrupt(options: CorruptOptions): CorruptTransform {
  return { ...options, type: 'corrupt' };
}

/** {@link NormalizeTransform}; defaults to the ImageNet mean and std. */
export function normalize(mean: readonly number[] = IMAGENET_MEAN, std: readonly number[] = IMAGENET_STD): NormalizeTransform {
  return { type: 'normalize', mean, std };
}

const TYPES = ['resize', 'resizeShorter', 'centerCrop', 'randomResizedCrop', 'horizontalFlip', 'grayscale', 'colorJitter', 'randomRotation', 'corrupt', 'normalize'] as const;

/** A validated transform list in the form the native loader takes. */
export interface ResolvedPipeline {
  specs: TransformSpec[];
  mean?: number[];
  std?: number[];
  /** Channels after the transforms. */
  channels: number;
  /** [height, width] after the transforms when they fix it, else undefined (known after decoding). */
  size?: [number, number];
}

/**
 * Validates `options.transforms` (each entry named `transforms[i]` in errors). `channels` is the
 * source's channel count; `imagenetDefault` appends ImageNet normalisation when the list has none.
 */
export function resolvePipeline(o: OptionReader, channels: number, imagenetDefault: boolean, prefix: TransformSpec[] = []): ResolvedPipeline {
  const list = o.values.transforms ?? [];
  if (!Array.isArray(list)) throw o.fail('transforms', 'an array of transforms');
  const out: ResolvedPipeline = { specs: [...prefix], channels };
  list.forEach((value: unknown, i: number) => {
    const t = new OptionReader(o.context, value, `${o.path('transforms')}[${i}].`);
    if (!t.has('type')) throw t.fail('type', `one of ${TYPES.map((n) => JSON.stringify(n)).join(', ')}`);
    const type = t.oneOf('type', TYPES, 'resize');
    if (out.mean) throw t.fail('type', 'a transform before "normalize" (normalize must be the last transform)');
    switch (type) {
      case 'resize': {
        t.rejectUnknown(['type', 'height', 'width']);
        const height = t.ruled('height', 'transform.side');
        const width = t.ruled('width', 'transform.side');
        out.specs.push({ type, height, width });
        out.size = [height, width];
        break;
      }
      case 'resizeShorter':
      case 'centerCrop': {
        t.rejectUnknown(['type', 'size']);
        const size = t.ruled('size', 'transform.side');
        out.specs.push({ type, size });
        out.size = type === 'centerCrop' ? [size, size] : undefined;
        break;
      }
      case 'randomResizedCrop': {
        t.rejectUnknown(['type', 'size', 'scale', 'ratio']);
        const size = t.ruled('size', 'transform.side');
        // Absent ranges stay absent: the core's torchvision defaults apply.
        const scale = readRange(t, 'scale', 1);
        const ratio = readRange(t, 'ratio', Number.MAX_VALUE);
        out.specs.push({ type, size, ...(scale && { scale }), ...(ratio && { ratio }) });
        out.size = [size, size];
        break;
      }
      case 'horizontalFlip':
        t.rejectUnknown(['type', 'p']);
        out.specs.push({ type, ...(t.has('p') && { p: t.ruled('p', 'transform.p') }) });
        break;
      case 'grayscale': {
        t.rejectUnknown(['type', 'channels']);
        const c = t.ruled('channels', 'transform.channels');
        if (c === 2) throw t.fail('channels', '1 or 3');
        out.specs.push({ type, channels: c });
        out.channels = c;
        break;
      }
      case 'colorJitter': {
        t.rejectUnknown(['type', 'brightness', 'contrast', 'saturation', 'hue']);
        const strength = (name: 'brightness' | 'contrast' | 'saturation' | 'hue') =>
          t.has(name) ? { [name]: t.ruled(name, name === 'hue' ? 'transform.hue' : 'transform.jitter') } : {};
        out.specs.push({ type, ...strength('brightness'), ...strength('contrast'), ...strength('saturation'), ...strength('hue') });
        break;
      }
      case 'randomRotation':
        t.rejectUnknown(['type', 'degrees']);
        out.specs.push({ type, degrees: t.ruled('degrees', 'transform.degrees') });
        break;
      case 'corrupt':
        t.rejectUnknown(['type', 'name', 'severity']);
        if (!t.has('name')) throw t.fail('name', 'a corruption name (see listCorruptions())');
        out.specs.push({
          type,
          name: t.oneOf('name', CORRUPTION_NAMES, 'gaussian_noise'),
          severity: t.ruled('severity', 'transform.severity'),
        });
        break;
      case 'normalize': {
        t.rejectUnknown(['type', 'mean', 'std']);
        const rule = `an array of ${out.channels} number${out.channels > 1 ? 's' : ''} (one per channel after the transforms before it)`;
        const mean = t.numberArray('mean', []);
        const std = t.numberArray('std', [], { positive: true });
        if (mean.length !== out.channels) throw t.fail('mean', rule);
        if (std.length !== out.channels) throw t.fail('std', rule.replace('number', 'positive number'));
        out.mean = mean;
        out.std = std;
        break;
      }
    }
  });
  if (!out.mean && imagenetDefault) {
    out.mean = out.channels === 1 ? [...IMAGENET_GRAY.mean] : [...IMAGENET_MEAN];
    out.std = out.channels === 1 ? [...IMAGENET_GRAY.std] : [...IMAGENET_STD];
  }
  return out;
}

function readRange(t: OptionReader, name: string, max: number): [number, number] | undefined {
  if (!t.has(name)) return undefined;
  const value = t.numberArray(name, [], { positive: true });
  const [lo, hi] = value;
  if (value.length !== 2 || lo === undefined || hi === undefined || lo > hi || hi > max) {
    throw t.fail(name, `[min, max] with 0 < min <= max${max === 1 ? ' <= 1' : ''}`);
  }
  return [lo, hi];
}
