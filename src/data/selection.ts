// Views of datasets, as torch.utils.data and tf.data users expect: concat, subset, split.
// The indices are picked by the core (seeded, the same on any machine) and the views share the
// data they come from: no file is re-listed, no image is copied (but concatenating in-memory
// datasets made separately, which copies their images once).
import type { NativeDataset, NativeSource } from '../../index.js';
import { InvalidOptionError } from '../errors.js';
import { callNativeSync } from '../native.js';
import { OptionReader, describeValue, invalidOption } from '../validation.js';
import { arrayHandle, wrapNativeDataset, type Dataset } from './dataset.js';
import { fileDatasetLike, fileParts, type FileParts, type SourceDataset } from './sources.js';

/** Which samples {@link subset} keeps: their indices, or a seeded random sample of `limit`. */
export type SubsetSelection =
  | readonly number[]
  | Uint32Array
  | {
      /** Samples to draw (all of them when the dataset has fewer). */
      limit: number;
      /** Seed of the draw; default 0. */
      seed?: number;
    };

/** Options of {@link split}. */
export interface SplitOptions {
  /** Seed of the per-class shuffles; default 0. */
  seed?: number;
}

/** A dataset this module can view, as its native handle. */
type Viewable = { kind: 'arrays'; native: NativeDataset } | { kind: 'files'; parts: FileParts };

function viewable(context: string, option: string, dataset: unknown): Viewable {
  if (typeof dataset === 'object' && dataset !== null) {
    const native = arrayHandle(dataset as Dataset);
    if (native) return { kind: 'arrays', native };
    const parts = fileParts(dataset as Dataset);
    if (parts) return { kind: 'files', parts };
  }
  throw invalidOption(context, option, dataset, 'a dataset made by this library (fromArrays, loadDigits, imageFolder, mnist, cifar10, or a concat / subset / split of them)');
}

function view(of: Viewable, selectArrays: (n: NativeDataset) => NativeDataset, selectFiles: (s: NativeSource) => NativeSource): Dataset {
  if (of.kind === 'arrays') return wrapNativeDataset(callNativeSync(() => selectArrays(of.native)));
  return fileDatasetLike(
    callNativeSync(() => selectFiles(of.parts.source)),
    of.parts,
  );
}

function labelsOf(of: Viewable): Uint32Array {
  return callNativeSync(() => (of.kind === 'arrays' ? of.native.labels() : of.parts.source.labels()));
}

/**
 * The datasets one after another, like `torch.utils.data.ConcatDataset`. All must be in-memory
 * datasets (fromArrays, digits) with the same image shape and normalisation, or all file
 * datasets (imageFolder, mnist, cifar10) opened with the same options and naming the same
 * classes, so that every batch is loaded alike and a label means one class. The result shares
 * the data of its parts and outlives them (disposing a part does not affect it).
 *
 * @example
 * ```ts
 * import { concat, imageFolder } from 'advbn';
 *
 * const train = concat([await imageFolder('photos/train'), await imageFolder('photos/extra')]);
 * ```
 */
export function concat(datasets: readonly SourceDataset[]): SourceDataset;
export function concat(datasets: readonly Dataset[]): Dataset;
export function concat(datasets: readonly Dataset[]): Dataset {
  const context = 'concat';
  if (!Array.isArray(datasets) || datasets.length === 0) throw invalidOption(context, 'datasets', datasets, 'a non-empty array of datasets');
  const parts = datasets.map((d, i) => viewable(context, `datasets[${i}]`, d));
  const kinds = new Set(parts.map((p) => p.kind));
  if (kinds.size > 1) {
    const at = parts.findIndex((p) => p.kind !== parts[0]?.kind);
    throw invalidOption(
      context,
      `datasets[${at}]`,
      datasets[at],
      `the same kind as datasets[0]: in-memory datasets (fromArrays, digits) and file datasets (imageFolder, mnist, cifar10) cannot be mixed`,
    );
  }
  const first = parts[0] as Viewable;
  if (first.kind === 'arrays') {
    const natives = parts.map((p) => (p as Extract<Viewable, { kind: 'arrays' }>).native);
    return wrapNativeDataset(callNativeSync((n) => n.NativeDataset.concat(natives)));
  }
  const files = parts.map((p) => (p as Extract<Viewable, { kind: 'files' }>).parts);
  const settings = JSON.stringify(first.parts.settings);
  files.forEach((p, i) => {
    if (JSON.stringify(p.settings) !== settings || p.imageShape.join() !== first.parts.imageShape.join()) {
      throw invalidOption(
        context,
        `datasets[${i}]`,
        datasets[i],
        `a dataset opened with the same transforms, threads, prefetch and onBadSample as datasets[0] (image shape [${first.parts.imageShape.join(', ')}]); this one has image shape [${p.imageShape.join(', ')}] and ${describeSettingsDifference(first.parts, p)}`,
      );
    }
  });
  return fileDatasetLike(
    callNativeSync((n) => n.NativeSource.concat(files.map((p) => p.source))),
    first.parts,
  );
}

function describeSettingsDifference(a: FileParts, b: FileParts): string {
  const differ = (Object.keys(a.settings) as (keyof FileParts['settings'])[]).filter((k) => JSON.stringify(a.settings[k]) !== JSON.stringify(b.settings[k]));
  return differ.length === 0 ? 'the same options' : `a different ${differ.map((k) => (k === 'pipeline' ? 'transforms' : k)).join(', ')}`;
}

/**
 * The samples `selection` names, like `torch.utils.data.Subset`: their indices (in that order; an
 * index may repeat), or `{ limit, seed }` for a seeded random sample of at most `limit` samples
 * without replacement (kept in dataset order). The result shares the dataset's data and outlives
 * it.
 *
 * @example
 * ```ts
 * import { imageFolder, subset } from 'advbn';
 *
 * const small = subset(await imageFolder('photos/train'), { limit: 500, seed: 1 });
 * ```
 */
export function subset(dataset: SourceDataset, selection: SubsetSelection): SourceDataset;
export function subset(dataset: Dataset, selection: SubsetSelection): Dataset;
export function subset(dataset: Dataset, selection: SubsetSelection): Dataset {
  const context = 'subset';
  const of = viewable(context, 'dataset', dataset);
  const indices = readSelection(context, selection, dataset.length);
  return view(
    of,
    (n) => n.select(indices),
    (s) => s.subset(indices),
  );
}

function readSelection(context: string, selection: unknown, length: number): Uint32Array {
  if (Array.isArray(selection) || selection instanceof Uint32Array) {
    const values = selection as ArrayLike<unknown>;
    if (values.length === 0) throw invalidOption(context, 'selection', selection, 'a non-empty array of sample indices');
    const indices = new Uint32Array(values.length);
    for (let i = 0; i < values.length; i += 1) {
      const v = values[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= length) {
        throw invalidOption(context, `selection[${i}]`, v, `a sample index, an integer from 0 to ${length - 1}`);
      }
      indices[i] = v;
    }
    return indices;
  }
  if (typeof selection !== 'object' || selection === null) {
    throw invalidOption(context, 'selection', selection, 'an array of sample indices or { limit, seed }');
  }
  const o = new OptionReader(context, selection as Record<string, unknown>).rejectUnknown(['limit', 'seed']);
  const limit = o.requiredNumber('limit', { integer: true, min: 1 });
  const seed = o.ruled('seed', 'seed');
  return callNativeSync((n) => n.randomSubset(length, Math.min(limit, length), seed));
}

/**
 * Splits the dataset into disjoint parts of the given fractions (each > 0, summing to 1), class
 * by class, so every part has each class in about its fraction (scikit-learn's stratified
 * split): e.g. `split(data, [0.9, 0.1])` for training and validation. Seeded; the same on any
 * machine. Each part keeps dataset order, shares the dataset's data and outlives it.
 *
 * @example
 * ```ts
 * import { imageFolder, split } from 'advbn';
 *
 * const [train, val] = split(await imageFolder('photos'), [0.8, 0.2], { seed: 0 });
 * ```
 */
export function split(dataset: SourceDataset, fractions: readonly number[], options?: SplitOptions): SourceDataset[];
export function split(dataset: Dataset, fractions: readonly number[], options?: SplitOptions): Dataset[];
export function split(dataset: Dataset, fractions: readonly number[], options: SplitOptions = {}): Dataset[] {
  const context = 'split';
  const of = viewable(context, 'dataset', dataset);
  const seed = new OptionReader(context, options).rejectUnknown(['seed']).ruled('seed', 'seed');
  if (!Array.isArray(fractions) || fractions.length < 2) throw invalidOption(context, 'fractions', fractions, 'an array of at least two fractions');
  fractions.forEach((f, i) => {
    if (typeof f !== 'number' || !Number.isFinite(f) || f <= 0 || f >= 1) throw invalidOption(context, `fractions[${i}]`, f, 'a number > 0 and < 1');
  });
  const total = fractions.reduce((a, b) => a + b, 0);
  if (Math.abs(total - 1) > 1e-6) {
    throw new InvalidOptionError(`${context}: fractions must sum to 1, got ${describeValue(fractions)} (sum ${total})`, 'fractions', fractions);
  }
  const parts = callNativeSync((n) => n.stratifiedSplit(labelsOf(of), [...fractions], seed));
  return parts.map((indices) =>
    view(
      of,
      (n) => n.select(indices),
      (s) => s.subset(indices),
    ),
  );
}
