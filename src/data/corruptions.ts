// ImageNet-C corruptions: their names, and writing corrupted copies of image files
// (`advbn corrupt` runs this). The pixel work runs in Rust, off the JS thread.
import { callNative, callNativeSync, loadNative } from '../native.js';
import { OptionReader, invalidOption, optionRule } from '../validation.js';

/**
 * The 19 corruptions: the 15 ImageNet-C benchmark ones (Hendrycks & Dietterich, 2019) in their
 * order, then the 4 extra ones.
 */
export const CORRUPTION_NAMES = [
  'gaussian_noise',
  'shot_noise',
  'impulse_noise',
  'defocus_blur',
  'glass_blur',
  'motion_blur',
  'zoom_blur',
  'snow',
  'frost',
  'fog',
  'brightness',
  'contrast',
  'elastic_transform',
  'pixelate',
  'jpeg_compression',
  'speckle_noise',
  'gaussian_blur',
  'spatter',
  'saturate',
] as const;

/** Name of one corruption, e.g. `'gaussian_noise'`. */
export type CorruptionName = (typeof CORRUPTION_NAMES)[number];

/** The 19 corruption names, as the native core knows them (the 15 benchmark ones first). */
export function listCorruptions(): CorruptionName[] {
  return callNativeSync((n) => n.listCorruptions()) as CorruptionName[];
}

/** Options of {@link corruptFiles}. */
export interface CorruptFilesOptions {
  /** An image file, or a folder searched recursively for `.jpg`/`.jpeg`/`.png` files. */
  input: string;
  /** Output folder (created); must not be inside the input folder. */
  output: string;
  /** Corruptions to apply; default `'all'` (the 19). */
  corruptions?: readonly CorruptionName[] | 'all';
  /** Severities (integers 1 to 5); default `'all'`. */
  severities?: readonly number[] | 'all';
  /** Seed; default 0. Each file's noise comes from the seed and the file's relative path. */
  seed?: number;
  /** Worker threads; default 0 (one per core). */
  threads?: number;
}

/** Files written for one corruption. */
export interface CorruptionCount {
  /** Corruption name. */
  name: CorruptionName;
  /** Files written (inputs x severities). */
  written: number;
}

/** What {@link corruptFiles} wrote. */
export interface CorruptFilesSummary {
  /** Input images read. */
  images: number;
  /** Files written in all. */
  written: number;
  /** Files written per corruption, in the order applied. */
  perCorruption: CorruptionCount[];
}

/**
 * Writes a corrupted copy of every input image per (corruption, severity) to
 * `output/<corruption>/<severity>/<path relative to the input>` (the ImageNet-C layout). PNG
 * stays PNG and JPEG stays JPEG (quality 95), 8 bits per channel. The same input, seed and
 * options always give the same bytes. Stops at the first file that cannot be read or decoded,
 * with an `InvalidDataError` naming it.
 */
export async function corruptFiles(options: CorruptFilesOptions): Promise<CorruptFilesSummary> {
  const context = 'corruptFiles';
  const o = new OptionReader(context, options).rejectUnknown(['input', 'output', 'corruptions', 'severities', 'seed', 'threads']);
  const path = (name: string) => {
    const value = o.values[name];
    if (typeof value !== 'string' || value === '') throw o.fail(name, 'a non-empty path');
    return value;
  };
  const input = path('input');
  const output = path('output');
  const corruptions = readList(
    o,
    'corruptions',
    CORRUPTION_NAMES,
    (v) => typeof v === 'string' && (CORRUPTION_NAMES as readonly string[]).includes(v),
    'an array of corruption names (see listCorruptions()) or "all"',
  );
  const severities = readList(
    o,
    'severities',
    [1, 2, 3, 4, 5],
    (v) => typeof v === 'number' && loadNative().optionAccepts('transform.severity', v),
    `an array of severities (each ${optionRule('transform.severity').requirement}), or "all"`,
  );
  const seed = o.ruled('seed', 'seed');
  const threads = o.ruled('threads', 'source.threads');
  const summary = await callNative((n) => n.corruptFiles({ input, output, corruptions: [...corruptions], severities: [...severities], seed, threads }));
  return { ...summary, perCorruption: summary.perCorruption.map((c) => ({ name: c.name as CorruptionName, written: c.written })) };
}

function readList<T>(o: OptionReader, name: string, all: readonly T[], ok: (v: unknown) => boolean, rule: string): readonly T[] {
  const value = o.values[name];
  if (value === undefined || value === 'all') return all;
  if (!Array.isArray(value) || value.length === 0 || !value.every(ok)) throw invalidOption(o.context, name, value, rule);
  return value as T[];
}
