// In-memory image tensors as users hand them over, and their checks.
import { InvalidDataError } from '../errors.js';
import { describeValue, invalidOption } from '../validation.js';

/** Memory layout of an image tensor: channels first (`'nchw'`) or channels last (`'nhwc'`). */
export type Layout = 'nchw' | 'nhwc';

/**
 * A batch of images in one typed array.
 * `Uint8Array` pixels are scaled by 1/255; `Float32Array` pixels are used as given.
 */
export interface ImageArray {
  /** Pixel values, row-major in the order given by `layout`. */
  data: Float32Array | Uint8Array;
  /** `[N, C, H, W]` for `'nchw'`, `[N, H, W, C]` for `'nhwc'`. */
  shape: readonly [number, number, number, number];
  /** Memory layout; default `'nchw'`. */
  layout?: Layout;
}

/** An {@link ImageArray} whose shape has been checked, with its dimensions named. */
export interface CheckedImages {
  data: Float32Array | Uint8Array;
  shape: [number, number, number, number];
  layout: Layout;
  count: number;
  channels: number;
  height: number;
  width: number;
}

const LAYOUTS: readonly Layout[] = ['nchw', 'nhwc'];

/** Checks the structure of an image array (types, shape, length); values are checked natively. */
export function checkImages(context: string, option: string, images: unknown, layoutOverride?: unknown): CheckedImages {
  if (typeof images !== 'object' || images === null) {
    throw invalidOption(context, option, images, 'an image array { data, shape, layout? }');
  }
  const { data, shape, layout: ownLayout } = images as Partial<ImageArray>;
  if (!(data instanceof Float32Array) && !(data instanceof Uint8Array)) {
    throw invalidOption(context, `${option}.data`, data, 'a Float32Array or a Uint8Array');
  }
  if (!Array.isArray(shape) || shape.length !== 4) {
    throw new InvalidDataError(`${context}: ${option}.shape must have 4 dimensions ([N, C, H, W] or [N, H, W, C]), got ${describeValue(shape)}`);
  }
  if (!shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new InvalidDataError(`${context}: ${option}.shape must contain positive integers, got ${describeValue(shape)}`);
  }
  if (ownLayout !== undefined && !LAYOUTS.includes(ownLayout)) {
    throw invalidOption(context, `${option}.layout`, ownLayout, '"nchw" or "nhwc"');
  }
  if (layoutOverride !== undefined && !LAYOUTS.includes(layoutOverride as Layout)) {
    throw invalidOption(context, 'layout', layoutOverride, '"nchw" or "nhwc"');
  }
  if (layoutOverride !== undefined && ownLayout !== undefined && layoutOverride !== ownLayout) {
    throw invalidOption(context, 'layout', layoutOverride, `the same as ${option}.layout (${describeValue(ownLayout)})`);
  }
  const layout = (layoutOverride as Layout | undefined) ?? ownLayout ?? 'nchw';
  const dims = [...shape] as [number, number, number, number];
  const expected = dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new InvalidDataError(`${context}: ${option}.data has ${data.length} values but shape ${describeValue(dims)} needs ${expected}`);
  }
  const [count, a, b, c] = dims;
  const [channels, height, width] = layout === 'nchw' ? [a, b, c] : [c, a, b];
  return { data, shape: dims, layout, count, channels, height, width };
}
