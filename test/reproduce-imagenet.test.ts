// `advbn reproduce --preset imagenet` end to end on a tiny ImageNet-layout tree the test writes
// (3 classes x 4 images of 32 x 32 px), an ImageNet-C tree made from its val folder by
// `advbn corrupt` (the 15 benchmark corruptions plus one extra), and ResNet-50 weights written by
// saveWeights. The preset's size, epochs and batch are overridden (--size 32 --epochs 2
// --batch-size 6: two steps per epoch), still ResNet-50 with the paper's optimiser, schedule,
// cut and attack. Checks the report files, both BN branches of every figure, the paper's numbers,
// that a rerun skips everything, that an interrupted run resumes to the same weights, and the
// error paths.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EvaluationFile,
  IMAGENET_PAPER,
  IMAGENET_PRESET,
  IMAGENET_RESULTS_SCHEMA,
  type ImageNetResults,
  InvalidOptionError,
  reproduceImageNet,
  resnet50,
  saveWeights,
  validateEvaluation,
  validateImageNetResults,
} from '../src/index.js';
import { pattern, tempDir, writeImage } from './image-files.js';
import { CLI, runCli, IMAGENET_C_BENCHMARK, ALEXNET_ERRORS } from './cli-run.js';

const dir = tempDir('reproduce-imagenet');
afterAll(() => dir.cleanup());

const advbn = (...args: string[]) => runCli(args, 18_0000);

const CLASSES = ['n01440764', 'n01443537', 'n01484850'];
const BENCHMARK = IMAGENET_C_BENCHMARK;
// ImageNet-C's AlexNet errors, from the method doc (an independent check of the mCE).
const ALEXNET = ALEXNET_ERRORS;

const path = (...parts: string[]) => join(dir.path, ...parts);
const train = path('imagenet', 'train');
const val = path('imagenet', 'val');
const inverted = path('sketch');
const shifted = path('stylized');
const imagenetC = path('imagenet-c');
const weights = path('resnet50.safetensors');
const fourClasses = path('resnet50-4.safetensors');
const twoClassTrain = path('two-class-train');
const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);
const small = ['--device', 'cpu', '--epochs', '2', '--batch-size', '6', '--size', '32'];
const domains = ['--domain', `sketch=${inverted}`, '--domain', `stylized=${shifted}`, '--domain', `paintings=${shifted}`];
const full = (out: string) => [
  'reproduce',
  '--preset',
  'imagenet',
  '--weights',
  weights,
  '--train',
  train,
  '--val',
  val,
  '--imagenet-c',
  imagenetC,
  ...domains,
  '--out',
  out,
  ...small,
];
const readJson = <T>(file: string) => JSON.parse(readFileSync(file, 'utf8')) as T;

beforeAll(async () => {
  for (const [label, name] of CLASSES.entries()) {
    for (let i = 0; i < 4; i += 1) {
      writeImage(join(train, name, `${i}.png`), pattern(32, 32, i, label), 32, 32, 'png');
      const pixels = pattern(32, 32, i + 5, label);
      writeImage(join(val, name, `ILSVRC2012_val_${label}${i}.png`), pixels, 32, 32, 'png');
      writeImage(
        join(inverted, name, `${i}.png`),
        pixels.map((v) => 255 - v),
        32,
        32,
        'png',
      );
      writeImage(join(shifted, name, `${i}.png`), pattern(32, 32, i + 9, (label + 1) % 4), 32, 32, 'png');
      if (label < 2) writeImage(join(twoClassTrain, name, `${i}.png`), pattern(32, 32, i, label), 32, 32, 'png');
    }
  }
  const made = advbn('corrupt', '--input', val, '--output', imagenetC, '--corruption', [...BENCHMARK, 'speckle_noise'].join(','), '--severity', 'all');
  expect(made.status, made.stderr).toBe(0);
  using model = await resnet50({ numClasses: 3, device: 'cpu', seed: 1 });
  await saveWeights(model, weights);
  using four = await resnet50({ numClasses: 4, device: 'cpu', seed: 1 });
  await saveWeights(four, fourClasses);
}, 120_000);

describe('advbn reproduce --preset imagenet', () => {
  const out = path('run');
  let results: ImageNetResults;
  const evaluation = (model: 'standard' | 'advbn', set: string) => readJson<EvaluationFile>(join(out, 'evaluations', model, set, 'evaluation.json'));

  it("fine-tunes ResNet-50 with the paper's settings and writes the report with the paper's numbers beside ours, both BN branches", () => {
    const run = advbn(...full(out));
    expect(run.status, run.stderr).toBe(0);
    for (const f of ['results.json', 'report.md', 'curves.svg', 'curves.png', 'run.json', 'training.json', 'advbn.safetensors', 'checkpoint.safetensors']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    results = readJson<ImageNetResults>(join(out, 'results.json'));
    expect(readJson(join(import.meta.dirname, '..', 'docs', 'imagenet-results.schema.json'))).toEqual(IMAGENET_RESULTS_SCHEMA);
    expect(validateImageNetResults(results)).toEqual([]);
    expect(results.command).toBe(['advbn', ...full(out)].join(' '));
    // The paper's recipe, through fineTune's options; the overrides are named.
    expect(results.config).toMatchObject({
      model: { arch: 'resnet50' },
      method: 'advbn',
      cut: 1,
      optimizer: { type: 'sgd', lr: 1e-3, momentum: 0.9, weightDecay: 1e-4 },
      schedule: { type: 'step', gamma: 0.1 },
      advbn: { steps: 6, stepSize: 0.2, epsilon: 1.1 },
      epochs: 2,
      batchSize: 6,
      size: 32,
      paperRecipe: false,
    });
    expect(results.config.differences).toEqual(['2 epochs (the paper: 20)', 'batch 6 (the paper: 256)', '32 px crops (the paper: 224)']);
    expect(IMAGENET_PRESET).toMatchObject({ epochs: 20, batchSize: 256, size: 224, cut: 1 });
    // Two epochs of two steps; the rate x0.1 from epoch floor(epochs / 2), as 10 of 20.
    expect(results.training).toMatchObject({ epochs: [0, 1], samples: 12, stepsPerEpoch: 2, lr: [1e-3, expect.closeTo(1e-4, 12)] });
    expect(results.training.advLoss).toHaveLength(2);
    // The adversarial branch's training accuracy per epoch, as fineTune's history (training.json) has it.
    const trained = readJson<{ history: { history: { advAccuracy: number[] } } }>(join(out, 'training.json'));
    expect(results.training.advAccuracy).toHaveLength(2);
    expect(results.training.advAccuracy).toEqual(trained.history.history.advAccuracy);

    expect(results.table.map((r) => r.set)).toEqual(['val', 'imagenet-c', 'sketch', 'stylized', 'paintings']);
    for (const row of results.table) {
      const standard = evaluation('standard', row.set);
      const tuned = evaluation('advbn', row.set);
      for (const file of [standard, tuned]) expect(validateEvaluation(file)).toEqual([]);
      expect(standard.report.branches).toEqual(['clean']);
      expect(tuned.report.branches).toEqual(['clean', 'adv']);
      expect(tuned.model).toMatchObject({ arch: 'resnet50', weights: join(out, 'advbn.safetensors'), hasAdvBn: true, numClasses: 3 });
      expect(tuned.classes).toEqual(CLASSES);
      // Both branches measured for everything; the row holds the evaluation files' figures.
      const figure = (file: EvaluationFile, bn: 'clean' | 'adv') =>
        row.set === 'val' ? file.report.clean[bn] : row.set === 'imagenet-c' ? file.report.corruption![bn]!.mCE : file.report.domains[row.set]![bn];
      expect(row.standard).toBe(figure(standard, 'clean'));
      expect(row.advbn).toEqual({ clean: figure(tuned, 'clean'), adv: figure(tuned, 'adv') });
      for (const v of [row.standard, row.advbn.clean, row.advbn.adv]) expect(typeof v).toBe('number');
    }
    // The paper's numbers (method doc) beside ours; the paper's branch per set.
    const bySet = Object.fromEntries(results.table.map((r) => [r.set, r]));
    expect(bySet.val).toMatchObject({ metric: 'top-1', paperBn: 'clean', paper: { standard: 0.761, advbn: 0.77 } });
    expect(bySet['imagenet-c']).toMatchObject({ metric: 'mCE', paperBn: 'clean', paper: { standard: 0.767, advbn: 0.727 } });
    expect(bySet.sketch).toMatchObject({ label: 'ImageNet-Sketch', paperBn: 'adv', paper: { standard: 0.241, advbn: 0.279 } });
    expect(bySet.stylized).toMatchObject({ label: 'Stylized-ImageNet', paperBn: 'adv', paper: { standard: 0.074, advbn: 0.119 } });
    expect(bySet.paintings).toMatchObject({ label: 'paintings', paper: null });
    expect(IMAGENET_PAPER.instagram).toMatchObject({ bn: 'clean', standard: 0.672, advbn: 0.695 });

    // ImageNet-C: AlexNet-normalised mCE over the 15 benchmark corruptions; the extra one is evaluated, not counted.
    const c = evaluation('advbn', 'imagenet-c');
    expect(c.baseline).toEqual({ kind: 'alexnet' });
    expect(c.data).toEqual({ clean: val, domains: {}, corruptions: imagenetC });
    for (const bn of ['clean', 'adv'] as const) {
      const figures = c.report.corruption![bn]!;
      expect(Object.keys(figures.errors)).toEqual([...BENCHMARK, 'speckle_noise']);
      expect(figures.normalization).toBe('alexnet');
      expect(Object.keys(figures.CE!)).toEqual(BENCHMARK);
      const ce = BENCHMARK.map((name) => sum(figures.errors[name]!) / (5 * ALEXNET[name]!));
      expect(figures.mCE).toBeCloseTo(sum(ce) / 15, 5);
    }

    const md = readFileSync(join(out, 'report.md'), 'utf8');
    expect(md).toContain(['advbn', ...full(out)].join(' '));
    expect(md).toContain("**Not the paper's recipe**: 2 epochs (the paper: 20); batch 6 (the paper: 256); 32 px crops (the paper: 224)");
    expect(md).toContain("| Test set | Metric | Paper's BN | Paper: standard | Paper: AdvBN | Ours: standard (clean BN) | Ours: AdvBN, clean BNs | Ours: AdvBN, adv BNs |");
    const pct = (v: number | null) => (100 * v!).toFixed(1);
    expect(md).toContain(
      `| ImageNet val (\`val\`) | top-1 | clean | 76.1 | **77.0** | ${pct(bySet.val!.standard)} | **${pct(bySet.val!.advbn.clean)}** | ${pct(bySet.val!.advbn.adv)} |`,
    );
    expect(md).toContain(
      `| ImageNet-Sketch (\`sketch\`) | top-1 | adv | 24.1 | **27.9** | ${pct(bySet.sketch!.standard)} | ${pct(bySet.sketch!.advbn.clean)} | **${pct(bySet.sketch!.advbn.adv)}** |`,
    );
    expect(md).toContain('| paintings | top-1 | adv (convention) | not in the doc | not in the doc |');
    expect(md).toContain('[advbn](evaluations/advbn/imagenet-c/evaluation.md)');
    expect(md).toContain('| Epoch | lr | loss | clean loss | adv loss | accuracy | adv accuracy | time | skipped |');
    expect(md).toContain(`| 1 | 0.001 | ${results.training.loss[0]!.toFixed(4)} |`);
    expect(md).toMatch(new RegExp(`\\| ${pct(results.training.accuracy[0]!)} \\| ${pct(results.training.advAccuracy![0]!)} \\|`));
    expect(run.stdout).toMatch(/^ImageNet-C mCE: standard [\d.]+%, AdvBN clean BNs [\d.]+%, adv BNs [\d.]+%; paper 76\.7% -> 72\.7% \(clean BNs\)$/m);
    expect(run.stdout).toMatch(/^paintings top-1: .*; not in the doc$/m);
    expect(run.stderr).toMatch(/Epoch 2\/2 2\/2/);
  }, 180_000);

  it('a rerun of the same command skips training and every evaluation; other settings in the same folder are refused', () => {
    const files = results.table.flatMap((r) => ['standard', 'advbn'].map((m) => join(out, 'evaluations', m, r.set, 'evaluation.json')));
    const before = files.map((f) => readFileSync(f, 'utf8'));
    const weightsBefore = readFileSync(join(out, 'advbn.safetensors'));
    const again = advbn(...full(out));
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toContain('training finished earlier');
    expect(again.stderr.match(/already evaluated/g)).toHaveLength(files.length);
    expect(again.stderr).not.toMatch(/Epoch \d/);
    expect(files.map((f) => readFileSync(f, 'utf8'))).toEqual(before);
    expect(readFileSync(join(out, 'advbn.safetensors')).equals(weightsBefore)).toBe(true);
    expect(readJson<ImageNetResults>(join(out, 'results.json')).table).toEqual(results.table);

    const other = advbn(...full(out).map((a, i, all) => (all[i - 1] === '--epochs' ? '3' : a)));
    expect(other.status).toBe(2);
    expect(other.stderr.trim().split('\n')).toHaveLength(1);
    expect(other.stderr).toMatch(/holds a run with other settings \(epochs: 2 there, 3 here\)/);
    expect(files.map((f) => readFileSync(f, 'utf8'))).toEqual(before);
  }, 120_000);

  it('SIGTERM in the middle checkpoints and exits 130; the same command resumes to the same weights and figures', async () => {
    const resumed = path('resumed');
    const args = ['reproduce', '--preset', 'imagenet', '--weights', weights, '--train', train, '--val', val, '--domain', `sketch=${inverted}`, '--out', resumed, ...small];
    const child: ChildProcess = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    // The first checkpoint is written after the first epoch: stop the run in the second.
    while (child.exitCode === null && !existsSync(join(resumed, 'checkpoint.safetensors'))) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(130);
    expect(stderr).toContain('SIGTERM: checkpointing training');
    expect(stderr).toMatch(/interrupted; .* rerun the same command to continue/);

    const rest = advbn(...args);
    expect(rest.status, rest.stderr).toBe(0);
    expect(rest.stderr).not.toMatch(/Epoch 1\/2/);
    // Bit-identical to the uninterrupted run (CPU): the weights, and so every figure.
    expect(readFileSync(join(resumed, 'advbn.safetensors')).equals(readFileSync(join(out, 'advbn.safetensors')))).toBe(true);
    const table = readJson<ImageNetResults>(join(resumed, 'results.json')).table;
    expect(table).toEqual(results.table.filter((r) => r.set === 'val' || r.set === 'sketch'));
    expect(readJson<ImageNetResults>(join(resumed, 'results.json')).training.loss).toEqual(results.training.loss);
  }, 180_000);

  it('user errors: one line on stderr, exit 2, nothing written', () => {
    const never = path('never');
    const base = ['reproduce', '--preset', 'imagenet', '--weights', weights, '--train', train, '--val', val, '--out', never, '--device', 'cpu'];
    const without = (flag: string) => base.filter((a, i) => a !== flag && base[i - 1] !== flag);
    const file = path('a-file');
    writeFileSync(file, 'not a folder');
    const cases: [string[], RegExp][] = [
      [without('--weights'), /--weights is required \(torchvision ResNet-50 weights/],
      [without('--train'), /--train is required/],
      [without('--val'), /--val is required/],
      [without('--out'), /--out is required/],
      [[...base, '--bogus'], /Unknown option '--bogus'/],
      [[...base, '--quick'], /--quick is an option of the digits and PACS presets, not of --preset imagenet/],
      [[...base, '--methods', 'erm'], /--methods is an option of the digits and PACS presets/],
      [[...base, '--epochs', '0'], /--epochs must be a whole number >= 1, got "0"/],
      [[...base, '--batch-size', 'many'], /--batch-size must be a whole number >= 1, got "many"/],
      [[...base, '--size', '3.5'], /--size must be a whole number >= 1, got "3.5"/],
      [[...base, '--checkpoint-every', '1.5'], /--checkpoint-every must be a whole number >= 1/],
      [[...base, '--device', 'gpu'], /--device must be cpu, cuda, cuda:N or auto, got "gpu"/],
      [[...base, '--domain', 'sketch'], /--domain must be NAME=DIR/],
      [[...base, '--domain', `val=${inverted}`], /--domain may not be named val/],
      [[...base, '--domain', `a=${inverted}`, '--domain', `a=${shifted}`], /--domain names a twice/],
      [[...base, '--domain', `sketch=${path('nowhere')}`], /--domain sketch: names no such folder/],
      [[...without('--weights'), '--weights', path('none.pth')], /--weights names no such file/],
      [[...without('--train'), '--train', path('nowhere')], /--train names no such folder/],
      [[...base, '--imagenet-c', val], /--imagenet-c must hold the 15 ImageNet-C benchmark corruptions .*; it lacks gaussian_noise, shot_noise/],
      [[...without('--out'), '--out', file], /--out must be a folder/],
      // After the flags: the data and the weights do not fit.
      [[...without('--weights'), '--weights', fourClasses, '--size', '32'], /the classifier in .* has 4 classes but val has 3 class folders/],
      [[...without('--train'), '--train', twoClassTrain, '--size', '32'], /the class folders of train \(2: .*\) and val \(3: .*\) differ/],
    ];
    for (const [args, message] of cases) {
      const run = advbn(...args);
      expect(run.status, `${args.join(' ')}\n${run.stderr}`).toBe(2);
      expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(never), args.join(' ')).toBe(false);
    }
  }, 120_000);

  it('--help documents the preset; reproduce --help includes it', () => {
    const help = advbn('reproduce', '--preset', 'imagenet', '--help');
    expect(help.status).toBe(0);
    for (const flag of ['--weights', '--train', '--val', '--out', '--imagenet-c', '--domain', '--epochs', '--batch-size', '--size', '--checkpoint-every', '--device']) {
      expect(help.stdout).toContain(flag);
    }
    expect(help.stdout).toContain('cut after layer1, dual BatchNorms, AdvBN fine-tune of the tail for 20 epochs with SGD');
    expect(help.stdout).toContain('(lr 0.001, momentum 0.9, weight decay 0.0001), lr x0.1 after epoch 10, batch 256');
    expect(help.stdout).toMatch(/stylized \(Stylized-ImageNet, adv BNs\)/);
    expect(advbn('reproduce', '--help').stdout).toContain('usage: advbn reproduce --preset imagenet --weights FILE --train DIR --val DIR --out DIR');
  });

  it('reproduceImageNet checks its options before reading anything', async () => {
    const ok = { weights, train, val, out: path('lib-never') };
    await expect(reproduceImageNet({ ...ok, bogus: 1 } as never)).rejects.toThrow(/unknown option "bogus"/);
    await expect(reproduceImageNet({ ...ok, domains: { 'imagenet-c': inverted } })).rejects.toThrow(InvalidOptionError);
    await expect(reproduceImageNet({ ...ok, imagenetC: train })).rejects.toThrow(
      /option "imagenetC" must be an ImageNet-C folder with the 15 benchmark corruptions \(it lacks gaussian_noise/,
    );
    await expect(reproduceImageNet({ ...ok, epochs: 0 })).rejects.toThrow(/option "epochs"/);
    await expect(reproduceImageNet({ ...ok, train: path('nowhere') })).rejects.toThrow(/option "train" must be an existing folder/);
    expect(existsSync(path('lib-never'))).toBe(false);
  });
});
