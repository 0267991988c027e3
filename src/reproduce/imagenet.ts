// `reproduce --preset imagenet`: the paper's recipe on the user's ImageNet. The torchvision
// ResNet-50 weights are evaluated as they are (the "standard" row), fine-tuned with AdvBN by
// fineTune with the preset's options (checkpointed into the run's folder), and the fine-tune is
// evaluated on both BN branches; every evaluation is evaluateRobustness on folders, written as
// `advbn evaluate`'s evaluation.json / .md. The run is resumable: rerunning the same call
// continues training from the checkpoint and skips every evaluation already written.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { SourceDataset } from '../data/sources.js';
import { imageFolder } from '../data/sources.js';
import { centerCrop, horizontalFlip, randomResizedCrop, resizeShorter, type Transform } from '../data/transforms.js';
import { type DeviceName, hardwareDescription } from '../devices.js';
import { AbortError, InvalidDataError, InvalidOptionError } from '../errors.js';
import { writeEvaluation } from '../evaluation/markdown.js';
import { compareToBaseline, evaluateRobustness, type CorruptionFigures, type RobustnessOptions, type RobustnessReport } from '../evaluation/robustness.js';
import { type EvaluationFile, validateEvaluation } from '../evaluation/schema.js';
import { type BnBranch, type Model, resnet50, saveWeights } from '../models.js';
import { callNativeSync } from '../native.js';
import { packageInfo } from '../package-root.js';
import { PALETTE, trainingCurvesChart } from '../report/charts.js';
import { duration } from '../training/builtins.js';
import { type ImageNetResults, type ImageNetRow, renderImageNetReport, validateImageNetResults } from '../report/imagenet.js';
import { progressLogger } from '../training/builtins.js';
import type { Callback } from '../training/callbacks.js';
import { fineTune, type History } from '../training/fine-tune.js';
import { isPlainObject, OptionReader, readDevice } from '../validation.js';
import { IMAGENET, IMAGENET_PAPER, type ImageNetPreset } from './presets.js';
import { Progress } from './progress.js';

/** Options of {@link reproduceImageNet}. */
export interface ImageNetReproduceOptions {
  /** torchvision ResNet-50 weights, `.pth` or `.safetensors` (e.g. `resnet50-0676ba61.pth`); the classifier's classes are the class folders'. */
  weights: string;
  /** ImageNet train in the image-folder layout `DIR/<class>/<image>` (the class folders sorted by name are torchvision's class order). */
  train: string;
  /** ImageNet val in the same layout, with the same class folders. */
  val: string;
  /** ImageNet-C: `DIR/<corruption>/<severity>/<class>/<image>` with the 15 benchmark corruptions (extra ones are evaluated too, not counted in mCE). */
  imagenetC?: string;
  /** Style-shifted test folders by name, with the same class folders: `stylized` (Stylized-ImageNet), `sketch` (ImageNet-Sketch), `instagram` or any other name. */
  domains?: Record<string, string>;
  /** The run's folder: checkpoint, weights, evaluations, results.json, report.md, curves (created; reused to resume). */
  out: string;
  /** Device; default `'auto'` (CUDA when available). */
  device?: DeviceName;
  /** Override of the paper's 20 epochs (the report then says the recipe is not the paper's). */
  epochs?: number;
  /** Override of the paper's batch of 256 (e.g. a GPU with less memory). */
  batchSize?: number;
  /** Override of the paper's 224 px crops (evaluation resizes the shorter side to `round(size / 0.875)`). */
  size?: number;
  /** Images per evaluation forward pass; default evaluate's 256. */
  evalBatchSize?: number;
  /** Steps between checkpoints within an epoch; default 500 (one is also written after every epoch). */
  checkpointEvery?: number;
  /** Stops the run: training checkpoints the position reached, an evaluation stops after its current test set; rejects with `AbortError`. Rerun to continue. */
  signal?: AbortSignal;
  /** The command line recorded in the report; default `advbn reproduce --preset imagenet`. */
  command?: string;
}

/** What {@link reproduceImageNet} resolves to. */
export interface ImageNetReproduceOutput {
  /** The content of results.json. */
  results: ImageNetResults;
  /** Paths of the report files written (results.json, report.md, curves.svg, curves.png). */
  files: string[];
}

const CONTEXT = 'reproduceImageNet';
/** Names of the test sets that are not domains. */
const RESERVED = ['val', 'imagenet-c', 'clean'];
const DOMAIN_NAME = /^[A-Za-z0-9][\w.-]*$/;

/** The 15 ImageNet-C benchmark corruptions, in ImageNet-C's order. */
function benchmarkCorruptions(): string[] {
  return callNativeSync((n) => n.benchmarkCorruptions());
}

/** The ImageNet-C benchmark corruptions that `dir` has no sub-folder for (its full layout is checked when it is evaluated). */
export function missingBenchmarkCorruptions(dir: string): string[] {
  const present = new Set(
    readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() || (e.isSymbolicLink() && isFolder(join(dir, e.name))))
      .map((e) => e.name),
  );
  return benchmarkCorruptions().filter((name) => !present.has(name));
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The evaluation transforms: shorter side to round(size / 0.875), centre crop (256 / 224 at 224). */
function evalTransforms(size: number): Transform[] {
  return [resizeShorter(Math.round(size / 0.875)), centerCrop(size)];
}

interface Settings {
  preset: ImageNetPreset;
  weights: string;
  train: string;
  val: string;
  imagenetC: string | undefined;
  domains: Record<string, string>;
  out: string;
  device: DeviceName;
  evalBatchSize: number;
  signal: AbortSignal | undefined;
  command: string;
}

function readOptions(options: ImageNetReproduceOptions): Settings {
  const o = new OptionReader(CONTEXT, options).rejectUnknown([
    'weights',
    'train',
    'val',
    'imagenetC',
    'domains',
    'out',
    'device',
    'epochs',
    'batchSize',
    'size',
    'evalBatchSize',
    'checkpointEvery',
    'signal',
    'command',
  ]);
  const required = (name: string, what: string) => {
    const value = o.optionalString(name);
    if (value === undefined) throw o.fail(name, what);
    return value;
  };
  const folder = (name: string, value: string) => {
    if (!isFolder(value)) throw o.fail(name, 'an existing folder');
    return value;
  };
  const weights = required('weights', 'a torchvision ResNet-50 weights file (.pth or .safetensors)');
  if (!existsSync(weights) || !statSync(weights).isFile()) throw o.fail('weights', 'an existing weights file (.pth or .safetensors)');
  const train = folder('train', required('train', 'the ImageNet train folder (DIR/<class>/<image>)'));
  const val = folder('val', required('val', 'the ImageNet val folder (DIR/<class>/<image>)'));
  const imagenetC = o.optionalString('imagenetC');
  if (imagenetC !== undefined) {
    folder('imagenetC', imagenetC);
    const missing = missingBenchmarkCorruptions(imagenetC);
    if (missing.length > 0) throw o.fail('imagenetC', `an ImageNet-C folder with the 15 benchmark corruptions (it lacks ${missing.join(', ')})`);
  }
  const domains = options.domains ?? {};
  if (!isPlainObject(domains)) throw o.fail('domains', 'an object of folder paths by name');
  for (const [name, dir] of Object.entries(domains)) {
    if (!DOMAIN_NAME.test(name) || RESERVED.includes(name))
      throw o.fail('domains', `names of letters, digits, _ . - other than ${RESERVED.join(', ')} (got ${JSON.stringify(name)})`);
    if (typeof dir !== 'string' || !isFolder(dir)) throw o.fail('domains', `existing folders (${name}: ${JSON.stringify(dir)} is not one)`);
  }
  const out = required('out', "the run's folder");
  if (existsSync(out) && !isFolder(out)) throw o.fail('out', 'a folder (it exists and is not one)');
  const device = readDevice(o, 'device', 'auto');
  const epochs = o.has('epochs') ? o.ruled('epochs', 'fineTune.epochs') : IMAGENET.epochs;
  const batchSize = o.has('batchSize') ? o.ruled('batchSize', 'fineTune.batchSize') : IMAGENET.batchSize;
  const size = o.number('size', IMAGENET.size, { integer: true, min: 1 });
  const evalBatchSize = o.ruled('evalBatchSize', 'evaluate.batchSize');
  const checkpointEvery = o.number('checkpointEvery', IMAGENET.checkpointEvery, { integer: true, min: 1 });
  const signal = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw o.fail('signal', 'an AbortSignal');
  const command = o.optionalString('command') ?? 'advbn reproduce --preset imagenet';
  return {
    preset: { ...IMAGENET, epochs, batchSize, size, checkpointEvery },
    weights,
    train,
    val,
    imagenetC,
    domains: { ...(domains as Record<string, string>) },
    out,
    device,
    evalBatchSize,
    signal,
    command,
  };
}

/** The settings a rerun in the same folder must share: anything that changes the fine-tune. */
function runKey(s: Settings): Record<string, unknown> {
  const p = s.preset;
  return {
    arch: p.model.arch,
    weights: resolve(s.weights),
    train: resolve(s.train),
    method: p.method,
    cut: p.cut,
    epochs: p.epochs,
    batchSize: p.batchSize,
    optimizer: p.optimizer,
    schedule: { ...p.schedule, milestones: [Math.floor(p.epochs / 2)] },
    advbn: p.advbn,
    size: p.size,
    seed: p.seed,
  };
}

/** Checks that an earlier run in OUT (its run.json) had the same settings; true when there was one. */
function checkFolder(s: Settings): boolean {
  const path = join(s.out, 'run.json');
  const key = runKey(s);
  if (existsSync(path)) {
    let earlier: Record<string, unknown>;
    try {
      earlier = JSON.parse(readFileSync(path, 'utf8')).settings;
    } catch (err) {
      throw new InvalidDataError(`${CONTEXT}: ${path} is not a run record of advbn (${err instanceof Error ? err.message : String(err)}); give another out folder`);
    }
    for (const [name, value] of Object.entries(key)) {
      const there = JSON.stringify(earlier?.[name]);
      if (there !== JSON.stringify(value)) {
        throw new InvalidOptionError(
          `${CONTEXT}: ${s.out} holds a run with other settings (${name}: ${there ?? 'absent'} there, ${JSON.stringify(value)} here); rerun with that run's settings to resume it, or give another out folder`,
          name,
          value,
        );
      }
    }
    return true;
  }
  return false;
}

/** Records the run's settings in OUT/run.json. */
function claimFolder(s: Settings): void {
  mkdirSync(s.out, { recursive: true });
  writeAtomic(join(s.out, 'run.json'), `${JSON.stringify({ kind: 'advbn-imagenet-run', settings: runKey(s) }, null, 2)}\n`);
}

function writeAtomic(path: string, content: string | Buffer): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError(`${CONTEXT} was aborted`, { cause: signal.reason });
}

const say = (line: string) => process.stderr.write(`reproduce imagenet: ${line}\n`);

/** A test set: its name, the folders it reads, and evaluateRobustness's options for it. */
interface TestSet {
  name: string;
  data: EvaluationFile['data'];
  options: (val: SourceDataset) => RobustnessOptions;
  alexnet: boolean;
}

function testSets(s: Settings, classes: readonly string[]): TestSet[] {
  const size = s.preset.size;
  const sets: TestSet[] = [{ name: 'val', data: { clean: s.val, domains: {} }, options: (val) => ({ clean: val }), alexnet: false }];
  if (s.imagenetC !== undefined) {
    const dir = s.imagenetC;
    sets.push({
      name: 'imagenet-c',
      data: { clean: s.val, domains: {}, corruptions: dir },
      // ImageNet-C's images are the val images already resized and cropped to 224 x 224: as its
      // own test script, they are only centre-cropped (a no-op at 224).
      options: (val) => ({ clean: val, corruptions: dir, folders: { transforms: [centerCrop(size)], classes: [...classes] } }),
      alexnet: true,
    });
  }
  for (const [name, dir] of Object.entries(s.domains)) {
    sets.push({
      name,
      data: { clean: s.val, domains: { [name]: dir } },
      options: (val) => ({ clean: val, domains: { [name]: dir }, folders: { transforms: evalTransforms(size), classes: [...classes] } }),
      alexnet: false,
    });
  }
  return sets;
}

/** `report` with CE / mCE against ImageNet-C's AlexNet over the 15 benchmark corruptions; extra corruptions keep their errors, without CE. */
function withAlexnet(report: RobustnessReport): RobustnessReport {
  const benchmark = benchmarkCorruptions();
  const pick = (table: Record<string, number[]> | undefined) => Object.fromEntries(Object.entries(table ?? {}).filter(([name]) => benchmark.includes(name)));
  const branches = Object.entries(report.corruption ?? {}) as [BnBranch, CorruptionFigures][];
  const restricted = { ...report, corruption: Object.fromEntries(branches.map(([bn, f]) => [bn, { ...f, errors: pick(f.errors), top5Errors: pick(f.top5Errors) }])) };
  const scored = compareToBaseline(restricted, 'alexnet');
  return {
    ...report,
    corruption: Object.fromEntries(branches.map(([bn, f]) => [bn, { ...scored.corruption![bn]!, errors: f.errors, ...(f.top5Errors && { top5Errors: f.top5Errors }) }])),
  };
}

/** The evaluation.json already written for this model, set and settings, if any. */
function written(path: string, expect: { weights: string; data: EvaluationFile['data']; size: number; classes: readonly string[] }): EvaluationFile | undefined {
  if (!existsSync(path)) return undefined;
  let file: EvaluationFile;
  try {
    file = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  if (validateEvaluation(file).length > 0) return undefined;
  const same =
    file.model.weights === expect.weights &&
    JSON.stringify(file.data) === JSON.stringify(expect.data) &&
    file.settings.size === expect.size &&
    file.classes.join('\n') === expect.classes.join('\n');
  return same ? file : undefined;
}

interface Evaluator {
  s: Settings;
  val: SourceDataset;
  classes: readonly string[];
}

/** Evaluates `model` on every set (skipping those already written); resolves to each set's file by name. */
async function evaluateAll(ev: Evaluator, which: 'standard' | 'advbn', model: Model, weights: string): Promise<Record<string, EvaluationFile>> {
  const { s, val, classes } = ev;
  const files: Record<string, EvaluationFile> = {};
  for (const set of testSets(s, classes)) {
    throwIfAborted(s.signal);
    const dir = join(s.out, 'evaluations', which, set.name);
    const done = written(join(dir, 'evaluation.json'), { weights, data: set.data, size: s.preset.size, classes });
    const what = `${which === 'standard' ? 'the standard model (--weights)' : 'the AdvBN fine-tune'} on ${set.name}`;
    if (done) {
      say(`${what}: already evaluated (${join(dir, 'evaluation.json')}), skipped`);
      files[set.name] = done;
      continue;
    }
    say(`evaluating ${what}`);
    const started = performance.now();
    let progress: Progress | undefined;
    let report = await evaluateRobustness(model, {
      ...set.options(val),
      bn: 'both',
      batchSize: s.evalBatchSize,
      onProgress: (done, total, label) => {
        progress ??= new Progress(total);
        progress.step(`${which} · ${set.name} · ${label}`);
        // An abort stops after the test set in hand (nothing of this evaluation is written), unless it was the last.
        if (done < total) throwIfAborted(s.signal);
      },
    });
    progress?.finish(`${what}: done`);
    if (set.alexnet) report = withAlexnet(report);
    const file: EvaluationFile = {
      kind: 'advbn-evaluation',
      command: s.command,
      createdAt: new Date().toISOString(),
      package: packageInfo(),
      model: { arch: model.arch, weights, numClasses: model.numClasses, hasAdvBn: model.hasAdvBn, device: model.device },
      settings: { size: s.preset.size, batchSize: s.evalBatchSize, bn: 'both' },
      data: set.data,
      ...(set.alexnet && { baseline: { kind: 'alexnet' as const } }),
      classes: [...classes],
      report: { ...report, details: report.details!, classNames: [...classes] },
      seconds: (performance.now() - started) / 1000,
    };
    const problems = validateEvaluation(file);
    if (problems.length > 0) throw new Error(`advbn internal error: evaluation.json does not match its schema: ${problems.join('; ')}`);
    writeEvaluation(dir, file);
    files[set.name] = file;
  }
  return files;
}

/**
 * Off a terminal, a line every `every` steps with the time left of the fine-tune (progressLogger
 * prints one line per epoch there, and an ImageNet epoch takes hours).
 */
function stepLines(epochs: number, every: number): Callback {
  let steps = 0;
  let epoch = 0;
  let ran = 0;
  let started = 0;
  return {
    onTrainBegin(logs) {
      steps = logs.stepsPerEpoch;
      started = performance.now();
    },
    onEpochBegin(e) {
      epoch = e;
    },
    onBatchEnd(batch) {
      ran += 1;
      if (process.stderr.isTTY || ran % every !== 0) return;
      const left = epochs * steps - (epoch * steps + batch + 1);
      const elapsed = (performance.now() - started) / 1000;
      say(`training: epoch ${epoch + 1}/${epochs} step ${batch + 1}/${steps}; ${duration(elapsed)} in this run, about ${duration((elapsed / ran) * left)} of training left`);
    },
  };
}

/** The fine-tune's record, OUT/training.json, written once training has finished. */
interface TrainingRecord {
  history: History;
  weights: string;
}

function readTraining(path: string, epochs: number): TrainingRecord | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const record = JSON.parse(readFileSync(path, 'utf8')) as TrainingRecord;
    return record.history?.epochs?.length === epochs ? record : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The paper's ImageNet experiment (see {@link IMAGENET_PRESET}) on the user's data: evaluates
 * the `weights` model as it is ("standard"), fine-tunes it with AdvBN by {@link fineTune} with
 * the preset's options (`checkpoint` into `out`, `resume`), and evaluates the fine-tune on both
 * BN branches: ImageNet val, ImageNet-C (mCE normalised by AlexNet, the clean BNs as the paper
 * reports), and each domain (Stylized-ImageNet and ImageNet-Sketch on the adversarial BNs as the
 * paper reports). Writes `out/results.json` ({@link IMAGENET_RESULTS_SCHEMA}), `out/report.md`
 * (the paper's numbers beside ours), `out/curves.svg`/`.png`, and every evaluation as
 * `out/evaluations/<standard|advbn>/<set>/evaluation.json` / `.md`. Rerunning the same call
 * resumes training from `out/checkpoint.safetensors` and skips the evaluations already written;
 * a call with other training settings is refused, naming the first difference. Nothing is
 * downloaded. `advbn reproduce --preset imagenet` runs this.
 *
 * @example
 * ```ts
 * import { reproduceImageNet } from 'advbn';
 *
 * const { results } = await reproduceImageNet({
 *   weights: 'resnet50-0676ba61.pth', train: 'imagenet/train', val: 'imagenet/val', imagenetC: 'imagenet-c',
 *   domains: { stylized: 'stylized-imagenet/val', sketch: 'imagenet-sketch' }, out: 'runs/imagenet',
 * });
 * console.log(results.table);
 * ```
 */
export async function reproduceImageNet(options: ImageNetReproduceOptions): Promise<ImageNetReproduceOutput> {
  const s = readOptions(options);
  const p = s.preset;
  const trainingPath = join(s.out, 'training.json');
  const advbnWeights = join(s.out, 'advbn.safetensors');
  // An earlier run in `out` with other settings is refused before anything is read.
  const resuming = checkFolder(s);
  const trainedBefore = resuming ? readTraining(trainingPath, p.epochs) : undefined;
  const val = await imageFolder(s.val, { transforms: evalTransforms(p.size) });
  let train: SourceDataset | undefined;
  let model: Model | undefined;
  try {
    const classes = val.classNames;
    // The training images are listed (and their classes checked) before anything is evaluated.
    if (!trainedBefore || !existsSync(advbnWeights)) {
      train = await imageFolder(s.train, { transforms: [randomResizedCrop(p.size), horizontalFlip()], onBadSample: 'skip' });
      if (train.classNames.join('\n') !== classes.join('\n')) {
        throw new InvalidDataError(
          `${CONTEXT}: the class folders of train (${train.numClasses}: ${train.classNames.slice(0, 3).join(', ')}, ...) and val (${val.numClasses}: ${classes.slice(0, 3).join(', ')}, ...) differ`,
        );
      }
    }
    model = await resnet50({ weights: s.weights, device: s.device });
    if (model.numClasses !== classes.length) {
      throw new InvalidDataError(
        `${CONTEXT}: the classifier in ${s.weights} has ${model.numClasses} classes but val has ${classes.length} class folders; the preset fine-tunes the pretrained classifier, so the folders must be its classes`,
      );
    }
    if (model.hasAdvBn) throw new InvalidDataError(`${CONTEXT}: ${s.weights} already has adversarial BatchNorms (an AdvBN fine-tune); give the standard torchvision weights`);
    if (!resuming) claimFolder(s);
    const ev: Evaluator = { s, val, classes };
    say(`1/3: the standard model (${s.weights}) on ${testSets(s, classes).length} test set(s)`);
    const standard = await evaluateAll(ev, 'standard', model, s.weights);

    throwIfAborted(s.signal);
    let record = trainedBefore && existsSync(advbnWeights) ? trainedBefore : undefined;
    if (record) {
      say(`2/3: training finished earlier (${trainingPath}); loading ${advbnWeights}`);
      model.dispose();
      model = await resnet50({ weights: advbnWeights, device: s.device });
    } else {
      say(
        `2/3: AdvBN fine-tune of ${train!.length} images, ${p.epochs} epochs of ${Math.ceil(train!.length / p.batchSize)} steps (batch ${p.batchSize}) on ${model.device}; ` +
          `checkpoints in ${s.out} (every ${p.checkpointEvery} steps and each epoch; rerun the same command to resume)`,
      );
      const history = await fineTune(model, {
        data: train!,
        method: p.method,
        cut: p.cut,
        epochs: p.epochs,
        batchSize: p.batchSize,
        seed: p.seed,
        optimizer: p.optimizer,
        schedule: { type: 'step', milestones: [Math.floor(p.epochs / 2)], gamma: p.schedule.gamma },
        advbn: p.advbn,
        checkpoint: { dir: s.out, every: p.checkpointEvery },
        resume: true,
        ...(s.signal && { signal: s.signal }),
        callbacks: [progressLogger(process.stderr), stepLines(p.epochs, p.checkpointEvery)],
      });
      await saveWeights(model, advbnWeights);
      record = { history, weights: 'advbn.safetensors' };
      writeAtomic(trainingPath, `${JSON.stringify(record)}\n`);
    }
    train?.dispose();
    train = undefined;

    throwIfAborted(s.signal);
    say('3/3: the AdvBN fine-tune on both BN branches');
    const advbn = await evaluateAll(ev, 'advbn', model, advbnWeights);
    const results = assemble(s, model, classes.length, record, standard, advbn);
    const files = writeImageNetReport(s.out, results);
    say(`done: ${files.join(', ')}`);
    return { results, files };
  } finally {
    model?.dispose();
    train?.dispose();
    val.dispose();
  }
}

function assemble(
  s: Settings,
  model: Model,
  numClasses: number,
  record: TrainingRecord,
  standard: Record<string, EvaluationFile>,
  advbn: Record<string, EvaluationFile>,
): ImageNetResults {
  const p = s.preset;
  const differences = [
    ...(p.epochs !== IMAGENET.epochs ? [`${p.epochs} epochs (the paper: ${IMAGENET.epochs})`] : []),
    ...(p.batchSize !== IMAGENET.batchSize ? [`batch ${p.batchSize} (the paper: ${IMAGENET.batchSize})`] : []),
    ...(p.size !== IMAGENET.size ? [`${p.size} px crops (the paper: ${IMAGENET.size})`] : []),
  ];
  const h = record.history.history;
  const path = (which: string, set: string) => `evaluations/${which}/${set}/evaluation.json`;
  const names = Object.keys(advbn);
  return {
    kind: 'advbn-imagenet-reproduction',
    preset: 'imagenet',
    command: s.command,
    createdAt: new Date().toISOString(),
    package: packageInfo(),
    hardware: hardwareDescription(model.device),
    device: model.device,
    config: {
      ...p,
      weights: s.weights,
      paperRecipe: differences.length === 0,
      differences,
      trainTransforms: `randomResizedCrop(${p.size}) (scale 0.08-1, ratio 3/4-4/3) + horizontalFlip(0.5), ImageNet normalisation`,
      evalTransforms: `resizeShorter(${Math.round(p.size / 0.875)}) + centerCrop(${p.size}), ImageNet normalisation`,
      corruptionTransforms: `centerCrop(${p.size}) only, as ImageNet-C's own test script (its images are val images already resized to 256 and cropped to 224), ImageNet normalisation`,
      evalBatchSize: s.evalBatchSize,
    },
    data: { train: s.train, val: s.val, ...(s.imagenetC !== undefined && { imagenetC: s.imagenetC }), domains: s.domains },
    numClasses,
    training: {
      epochs: record.history.epochs,
      loss: h.loss,
      cleanLoss: h.cleanLoss,
      advLoss: h.advLoss ?? [],
      accuracy: h.accuracy,
      // Only when every epoch counted it (not so for epochs resumed from an older checkpoint).
      ...(h.advAccuracy?.length === record.history.epochs.length && h.advAccuracy.every(Number.isFinite) && { advAccuracy: h.advAccuracy }),
      lr: h.lr,
      timeMs: h.timeMs,
      skipped: h.skipped,
      samples: record.history.params.samples,
      stepsPerEpoch: record.history.params.stepsPerEpoch,
      weights: record.weights,
    },
    evaluations: {
      standard: Object.fromEntries(Object.keys(standard).map((n) => [n, path('standard', n)])),
      advbn: Object.fromEntries(names.map((n) => [n, path('advbn', n)])),
    },
    table: names.map((name) => row(name, standard[name]!, advbn[name]!)),
  };
}

/** The table row of one test set, from the two models' evaluations. */
function row(set: string, standard: EvaluationFile, advbn: EvaluationFile): ImageNetRow {
  const paper = IMAGENET_PAPER[set];
  const metric = set === 'imagenet-c' ? 'mCE' : 'top-1';
  const reasons: string[] = [];
  const figure = (file: EvaluationFile, bn: BnBranch): number | null => {
    const r = file.report;
    if (set === 'val') return r.clean[bn] ?? null;
    if (set === 'imagenet-c') {
      const c = r.corruption?.[bn];
      if (c && c.mCE === undefined && c.mCEReason) reasons.push(`mCE (BN ${bn}) n/a: ${c.mCEReason}`);
      return c?.mCE ?? null;
    }
    return r.domains[set]?.[bn] ?? null;
  };
  return {
    set,
    label: paper?.label ?? set,
    metric,
    paperBn: paper?.bn ?? 'adv',
    paper: paper ? { standard: paper.standard, advbn: paper.advbn } : null,
    standard: figure(standard, 'clean'),
    advbn: { clean: figure(advbn, 'clean'), adv: figure(advbn, 'adv') },
    ...(reasons.length > 0 && { reason: reasons.join('; ') }),
  };
}

/** Writes results.json (validated first), report.md and the training curves into `dir`; returns the paths. */
function writeImageNetReport(dir: string, results: ImageNetResults): string[] {
  const problems = validateImageNetResults(results);
  if (problems.length > 0) throw new Error(`advbn internal error: results.json does not match its schema:\n  ${problems.join('\n  ')}`);
  const t = results.training;
  const chart = trainingCurvesChart({
    title: `AdvBN fine-tune of ResNet-50 (${t.epochs.length} epoch${t.epochs.length === 1 ? '' : 's'}, ${t.samples} training images)`,
    numClasses: results.numClasses,
    runs: [
      {
        name: '',
        color: PALETTE[0]!,
        epochs: t.epochs.map((e) => e + 1),
        cleanLoss: t.cleanLoss,
        advLoss: t.advLoss,
        accuracy: t.accuracy,
        ...(t.advAccuracy && { advAccuracy: t.advAccuracy }),
      },
    ],
  });
  const files: [string, string | Buffer][] = [
    ['results.json', `${JSON.stringify(results, null, 2)}\n`],
    ['report.md', renderImageNetReport(results)],
    ['curves.svg', chart.svg],
    ['curves.png', chart.png],
  ];
  return files.map(([name, content]) => {
    const path = join(dir, name);
    writeAtomic(path, content);
    return path;
  });
}
