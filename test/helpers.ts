// Small deterministic fixtures: a tiny ResNet and linearly separable generated images.
import { smallResnet, type ImageArray, type Model } from '../src/index.js';

export const NUM_CLASSES = 4;
export const SIZE = 16;
export const CHANNELS = 3;

/** Deterministic PRNG (mulberry32): fixtures must not depend on Math.random. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Arrays {
  images: ImageArray & { layout: 'nchw' };
  labels: Int32Array;
}

/**
 * `count` NCHW images whose class decides which image quadrant is bright: easy to separate,
 * so a few steps of training visibly lower the loss.
 */
export function separableData(count: number, seed = 1): Arrays {
  const next = rng(seed);
  const data = new Float32Array(count * CHANNELS * SIZE * SIZE);
  const labels = new Int32Array(count);
  const half = SIZE / 2;
  for (let n = 0; n < count; n += 1) {
    const label = n % NUM_CLASSES;
    labels[n] = label;
    const qy = label >> 1;
    const qx = label & 1;
    for (let c = 0; c < CHANNELS; c += 1) {
      for (let y = 0; y < SIZE; y += 1) {
        for (let x = 0; x < SIZE; x += 1) {
          const inQuadrant = Math.floor(y / half) === qy && Math.floor(x / half) === qx;
          data[((n * CHANNELS + c) * SIZE + y) * SIZE + x] = (inQuadrant ? 1 : 0) + 0.3 * (next() - 0.5);
        }
      }
    }
  }
  return { images: { data, shape: [count, CHANNELS, SIZE, SIZE], layout: 'nchw' }, labels };
}

/** The same images, channels last. */
export function toNhwc(images: ImageArray): ImageArray {
  const [n, c, h, w] = images.shape;
  const out = new Float32Array(images.data.length);
  for (let i = 0; i < n; i += 1)
    for (let ch = 0; ch < c; ch += 1)
      for (let y = 0; y < h; y += 1) for (let x = 0; x < w; x += 1) out[((i * h + y) * w + x) * c + ch] = images.data[((i * c + ch) * h + y) * w + x]!;
  return { data: out, shape: [n, h, w, c], layout: 'nhwc' };
}

export function tinyModel(seed = 0): Promise<Model> {
  return smallResnet({ numClasses: NUM_CLASSES, depth: 8, width: 8, device: 'cpu', seed });
}

/** Runs `fn` and returns what it rejected with (fails the test if it resolved). */
export async function rejection(fn: () => unknown): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection, but the call succeeded');
}
