// `advbn evaluate` and `advbn predict` end to end on a tiny image folder the test writes: an
// AdvBN fine-tune's weights (both BN branches) evaluated on the folder, a style domain and an
// ImageNet-C tree made by `advbn corrupt` (CE / mCE against a baseline evaluation and against
// AlexNet); predict's JSON lines against evaluate's confusion matrices; every bad flag one line
// on stderr, exit 2, nothing written.
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { centerCrop, EVALUATION_SCHEMA, fineTune, imageFolder, resizeShorter, resnet18, saveWeights, validateEvaluation, type EvaluationFile } from '../src/index.js';
import { schemaErrors } from '../src/json-schema.js';
import { optionRule } from '../src/validation.js';
import { pattern, tempDir, writeImage } from './image-files.js';
import { runCli, IMAGENET_C_BENCHMARK } from './cli-run.js';

const dir = tempDir('evaluate-cli');
afterAll(() => dir.cleanup());

const advbn = (...args: string[]) => runCli(args, 12_0000);

const CLASSES = ['cat', 'dog', 'owl'];
const BENCHMARK = IMAGENET_C_BENCHMARK;
// ImageNet-C's AlexNet errors (the method doc's table), for an independent check of --alexnet.
const ALEXNET: Record<string, number> = { fog: 0.819324, contrast: 0.853204, gaussian_noise: 0.886428 };

const data = join(dir.path, 'data');
const inverted = join(dir.path, 'inverted');
const corrupted = join(dir.path, 'imagenet-c');
const twoCorruptions = join(dir.path, 'two-c');
const advWeights = join(dir.path, 'advbn.safetensors');
const baseWeights = join(dir.path, 'base.safetensors');
const fourClassWeights = join(dir.path, 'four.safetensors');
const common = ['--size', '32', '--batch-size', '6', '--device', 'cpu'];

const readEvaluation = (out: string) => JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8')) as EvaluationFile;
const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

beforeAll(async () => {
  for (const [label, name] of CLASSES.entries()) {
    for (let i = 0; i < 4; i += 1) {
      const pixels = pattern(40, 40, i, label);
      writeImage(join(data, name, `${i}.png`), pixels, 40, 40, 'png');
      writeImage(
        join(inverted, name, `${i}.png`),
        pixels.map((v) => 255 - v),
        40,
        40,
        'png',
      );
    }
  }
  // A model that has learnt something, with both BN branches, and an untrained baseline.
  using train = await imageFolder(data, { transforms: [resizeShorter(37), centerCrop(32)] });
  using model = await resnet18({ numClasses: 3, device: 'cpu', seed: 1 });
  await fineTune(model, { data: train, method: 'erm', cut: 0, epochs: 10, batchSize: 6, lr: 0.05, seed: 1 });
  await fineTune(model, { data: train, method: 'advbn', epochs: 2, batchSize: 6, lr: 0.01, seed: 1 });
  await saveWeights(model, advWeights);
  using base = await resnet18({ numClasses: 3, device: 'cpu', seed: 2 });
  await saveWeights(base, baseWeights);
  using four = await resnet18({ numClasses: 4, device: 'cpu', seed: 2 });
  await saveWeights(four, fourClassWeights);
  for (const [out, names] of [
    [corrupted, BENCHMARK.join(',')],
    [twoCorruptions, 'fog,contrast'],
  ] as const) {
    const made = advbn('corrupt', '--input', data, '--output', out, '--corruption', names, '--severity', 'all', '--seed', '3');
    expect(made.status, made.stderr).toBe(0);
  }
}, 180_000);

describe('advbn evaluate', () => {
  it('evaluates an image folder and a domain on both BN branches; evaluation.json validates against the schema, evaluation.md labels every figure', () => {
    const out = join(dir.path, 'plain');
    const run = advbn('evaluate', '--weights', advWeights, '--data', data, '--domain', `inverted=${inverted}`, '--out', out, ...common);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^clean: BN clean: top-1 [\d.]+% top-5 100\.0% \| BN adv: top-1/m);
    expect(run.stdout).toMatch(/^inverted: BN clean/m);
    const file = readEvaluation(out);
    const onDisk = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'docs', 'evaluation.schema.json'), 'utf8'));
    expect(onDisk).toEqual(EVALUATION_SCHEMA);
    expect(schemaErrors(onDisk, file)).toEqual([]);
    expect(validateEvaluation(file)).toEqual([]);
    expect(file.classes).toEqual(CLASSES);
    expect(file.model).toMatchObject({ arch: 'resnet18', numClasses: 3, hasAdvBn: true, device: 'cpu' });
    expect(file.report.branches).toEqual(['clean', 'adv']);
    expect(file.report.convention).toEqual({ clean: 'clean', corruption: 'clean', domains: 'adv' });
    for (const results of [file.report.details.clean, file.report.details.domains.inverted!]) {
      for (const bn of ['clean', 'adv'] as const) {
        const r = results[bn]!;
        expect(r.bn).toBe(bn);
        expect(r.count).toBe(12);
        // Top-1 is the confusion matrix's trace; per-class accuracy its diagonal over the row sums (4 images each).
        expect(r.accuracy).toBeCloseTo(sum(r.confusion.map((row, i) => row[i]!)) / 12, 12);
        expect(r.perClass).toEqual(r.confusion.map((row, i) => row[i]! / 4));
        expect(r.confusion.map(sum)).toEqual([4, 4, 4]);
        expect(r.top5).toBe(1); // 3 classes: the 5 best are all of them
      }
    }
    // The fine-tuned model does not answer one class for everything (so predict's comparison below means something).
    for (const bn of ['clean', 'adv'] as const) expect(file.report.details.clean[bn]!.confusion.filter((row, i) => row[i]! > 0).length).toBeGreaterThan(1);
    const md = readFileSync(join(out, 'evaluation.md'), 'utf8');
    expect(md).toContain(`| clean | \`${data}\` | clean | 12 |`);
    expect(md).toContain(`| clean | \`${data}\` | adv | 12 |`);
    expect(md).toContain(`| inverted | \`${inverted}\` | adv | 12 |`);
    expect(md).toContain('| class | clean, BN clean | clean, BN adv | inverted, BN clean | inverted, BN adv |');
    expect(md).toContain('BN: adv (adversarial BNs); rows: true class');
    expect(md).toContain('| true \\ predicted | cat | dog | owl |');
  });

  it('--corruptions on an ImageNet-C tree from advbn corrupt: CE and mCE against --baseline, and against --alexnet', () => {
    const baseOut = join(dir.path, 'base');
    const base = advbn('evaluate', '--weights', baseWeights, '--data', data, '--corruptions', corrupted, '--out', baseOut, ...common);
    expect(base.status, base.stderr).toBe(0);
    const baseline = readEvaluation(baseOut);
    expect(Object.keys(baseline.report.corruption!.clean!.errors)).toEqual(BENCHMARK);

    const out = join(dir.path, 'against-base');
    const run = advbn('evaluate', '--weights', advWeights, '--data', data, '--corruptions', corrupted, '--baseline', join(baseOut, 'evaluation.json'), '--out', out, ...common);
    expect(run.status, run.stderr).toBe(0);
    const file = readEvaluation(out);
    expect(validateEvaluation(file)).toEqual([]);
    expect(file.baseline).toEqual({ kind: 'file', path: join(baseOut, 'evaluation.json') });
    const reference = baseline.report.corruption!.clean!;
    for (const bn of ['clean', 'adv'] as const) {
      const figures = file.report.corruption![bn]!;
      expect(figures.normalization).toBe('baseline');
      expect(figures.cleanError).toBeCloseTo(1 - file.report.clean[bn]!, 12);
      // CE_c = sum_s E_model(c, s) / sum_s E_baseline(c, s), against the baseline's clean branch; mCE their mean.
      const ce = BENCHMARK.map((c) => sum(figures.errors[c]!) / sum(reference.errors[c]!));
      BENCHMARK.forEach((c, i) => void expect(figures.CE![c]).toBeCloseTo(ce[i]!, 12));
      expect(figures.mCE).toBeCloseTo(sum(ce) / 15, 12);
      for (const errors of [...Object.values(figures.errors), ...Object.values(figures.top5Errors!)]) expect(errors).toHaveLength(5);
    }
    const md = readFileSync(join(out, 'evaluation.md'), 'utf8');
    expect(md).toContain('### BN: clean (clean BNs)');
    expect(md).toContain('### BN: adv (adversarial BNs)');
    expect(md).toContain(`**mCE ${(100 * file.report.corruption!.clean!.mCE!).toFixed(1)}%**`);

    // The baseline against itself scores exactly 1.
    const self = join(dir.path, 'self');
    expect(
      advbn('evaluate', '--weights', baseWeights, '--data', data, '--corruptions', corrupted, '--baseline', join(baseOut, 'evaluation.json'), '--out', self, ...common).status,
    ).toBe(0);
    expect(readEvaluation(self).report.corruption!.clean!.mCE).toBeCloseTo(1, 12);

    // --corruption-bn clean: both branches on the clean data, the corruptions with the clean BNs only, the same figures.
    const cleanOnly = join(dir.path, 'corruption-clean');
    const one = advbn(
      'evaluate',
      '--weights',
      advWeights,
      '--data',
      data,
      '--corruptions',
      corrupted,
      '--corruption-bn',
      'clean',
      '--baseline',
      join(baseOut, 'evaluation.json'),
      '--out',
      cleanOnly,
      ...common,
    );
    expect(one.status, one.stderr).toBe(0);
    const oneReport = readEvaluation(cleanOnly).report;
    expect(oneReport.branches).toEqual(['clean', 'adv']);
    expect(Object.keys(oneReport.corruption!)).toEqual(['clean']);
    expect(oneReport.corruption!.clean).toEqual(file.report.corruption!.clean);

    // ImageNet-C's normalisation: each corruption's summed error over 5 x AlexNet's average.
    const alex = join(dir.path, 'alexnet');
    const byAlexnet = advbn('evaluate', '--weights', advWeights, '--data', data, '--corruptions', corrupted, '--alexnet', '--bn', 'clean', '--out', alex, ...common);
    expect(byAlexnet.status, byAlexnet.stderr).toBe(0);
    const figures = readEvaluation(alex).report.corruption!.clean!;
    expect(readEvaluation(alex).report.branches).toEqual(['clean']);
    expect(figures.normalization).toBe('alexnet');
    for (const [c, e] of Object.entries(ALEXNET)) expect(figures.CE![c]).toBeCloseTo(sum(figures.errors[c]!) / (5 * e), 5);
    expect(byAlexnet.stdout).toMatch(/mCE [\d.]+% against AlexNet/);
  }, 120_000);

  it('--alexnet refuses corruptions other than the 15 of ImageNet-C, and mCE needs all 15', () => {
    const out = join(dir.path, 'alexnet-two');
    const run = advbn('evaluate', '--weights', advWeights, '--data', data, '--corruptions', twoCorruptions, '--alexnet', '--out', out, ...common);
    expect(run.status).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/AlexNet.*missing gaussian_noise, shot_noise/);
    expect(existsSync(out)).toBe(false);
    // Against a baseline evaluation, the two corruptions get a CE each, mCE says why it is absent.
    const baseOut = join(dir.path, 'base-two');
    expect(advbn('evaluate', '--weights', baseWeights, '--data', data, '--corruptions', twoCorruptions, '--out', baseOut, ...common).status).toBe(0);
    const cmp = join(dir.path, 'cmp-two');
    expect(
      advbn('evaluate', '--weights', advWeights, '--data', data, '--corruptions', twoCorruptions, '--baseline', join(baseOut, 'evaluation.json'), '--out', cmp, ...common).status,
    ).toBe(0);
    const figures = readEvaluation(cmp).report.corruption!.clean!;
    expect(Object.keys(figures.CE!)).toEqual(['fog', 'contrast']);
    expect(figures.mCE).toBeUndefined();
    expect(figures.mCEReason).toMatch(/15 benchmark corruptions.*gaussian_noise/);
    expect(readFileSync(join(cmp, 'evaluation.md'), 'utf8')).toContain('**mCE n/a**: mCE is the mean over the 15 benchmark corruptions');
  }, 60_000);

  it('bad flags and inputs: one line on stderr, exit 2, nothing written to --out', () => {
    const out = join(dir.path, 'never');
    const ok = ['--weights', advWeights, '--data', data, '--out', out];
    const cases: [string[], RegExp][] = [
      [[...ok, '--bogus'], /Unknown option '--bogus'/],
      [['--data', data, '--out', out], /--weights is required/],
      [[...ok, '--bn', 'dirty'], /--bn must be clean, adv, both, got "dirty"/],
      [[...ok, '--corruptions', corrupted, '--corruption-bn', 'dirty'], /--corruption-bn must be clean, adv, both, got "dirty"/],
      [[...ok, '--corruption-bn', 'clean'], /--corruption-bn needs --corruptions/],
      [[...ok, '--corruptions', corrupted, '--bn', 'clean', '--corruption-bn', 'adv'], /--corruption-bn must be a branch --bn measures \(clean\), got "adv"/],
      [[...ok, '--domain', 'sketch'], /--domain must be NAME=DIR/],
      [[...ok, '--domain', `=${data}`], /--domain must be NAME=DIR/],
      [[...ok, '--domain', `a=${data}`, '--domain', `a=${data}`], /--domain names a twice/],
      [['--weights', advWeights, '--data', join(dir.path, 'nowhere'), '--out', out], /--data names no such folder/],
      [[...ok, '--corruptions', join(dir.path, 'nowhere')], /--corruptions names no such folder/],
      [[...ok, '--domain', `sketch=${join(dir.path, 'nowhere')}`], /--domain sketch: names no such folder/],
      [['--weights', join(dir.path, 'none.pth'), '--data', data, '--out', out], /--weights names no such file/],
      [[...ok, '--baseline', join(dir.path, 'base', 'evaluation.json')], /--baseline needs --corruptions/],
      [[...ok, '--corruptions', corrupted, '--alexnet', '--baseline', advWeights], /--baseline and --alexnet are exclusive/],
      [[...ok, '--corruptions', corrupted, '--baseline', advWeights], /--baseline must be an evaluation\.json/],
      [[...ok, '--arch', 'vgg16'], /--arch must be one of resnet18, resnet34, resnet50/],
      [[...ok, '--size', '0'], /--size must be a whole number >= 1/],
      [[...ok, '--device', 'gpu'], /--device must be cpu, cuda, cuda:N or auto/],
      [['--weights', advWeights, '--data', data], /--out is required/],
      // After the flags: the data and the weights do not fit, the corruptions folder is no ImageNet-C tree.
      [['--weights', fourClassWeights, '--data', data, '--out', out, ...common], /--data .* has 3 class folders \(cat, dog, owl\) but the classifier .* has 4 classes/],
      [['--weights', baseWeights, '--data', data, '--out', out, '--bn', 'adv', ...common], /option "bn" must be "clean" or "both" for a model without adversarial BatchNorms/],
      [[...ok, '--corruptions', data, ...common], /corruptions folder .*: "cat", "dog", "owl" are not corruption names/],
      [[...ok, '--corruptions', join(corrupted, 'fog'), ...common], /"1", "2", "3", "4", "5" are not corruption names/],
    ];
    for (const [args, message] of cases) {
      const run = advbn('evaluate', ...args);
      expect(run.status, `${args.join(' ')}\n${run.stderr}`).toBe(2);
      expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(out), args.join(' ')).toBe(false);
    }
  }, 60_000);

  it('--help lists every flag with the library defaults', () => {
    const help = advbn('evaluate', '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(new RegExp(`--batch-size N\\s+images per forward pass \\(default ${optionRule('evaluate.batchSize').default}\\)`));
    expect(help.stdout).toMatch(/--bn BRANCH\s+clean, adv or both \(default both/);
    for (const flag of ['--weights', '--arch', '--data', '--corruptions', '--corruption-bn', '--domain', '--baseline', '--alexnet', '--size', '--device', '--out'])
      expect(help.stdout).toContain(flag);
  });
});

describe('advbn predict', () => {
  it('prints a JSON line per image: probabilities best first summing to 1, top-1 as in evaluate', () => {
    const out = join(dir.path, 'for-predict');
    expect(advbn('evaluate', '--weights', advWeights, '--data', data, '--out', out, ...common).status).toBe(0);
    const evaluation = readEvaluation(out);
    for (const bn of ['clean', 'adv'] as const) {
      const run = advbn('predict', '--weights', advWeights, '--bn', bn, ...common, data);
      expect(run.status, run.stderr).toBe(0);
      const lines = run.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { file: string; bn: string; top: { index: number; class?: string; probability: number }[] });
      expect(lines.map((l) => l.file)).toEqual(CLASSES.flatMap((c) => [0, 1, 2, 3].map((i) => join(data, c, `${i}.png`))));
      const confusion = CLASSES.map(() => CLASSES.map(() => 0));
      for (const line of lines) {
        expect(line.bn).toBe(bn);
        // The default top-5 is capped at the 3 classes: all of them, so the probabilities sum to 1.
        expect(line.top).toHaveLength(3);
        expect(sum(line.top.map((t) => t.probability))).toBeCloseTo(1, 9);
        for (let i = 1; i < 3; i += 1) expect(line.top[i]!.probability).toBeLessThanOrEqual(line.top[i - 1]!.probability);
        expect(line.top[0]!.class).toBeUndefined();
        confusion[CLASSES.indexOf(basename(dirname(line.file)))]![line.top[0]!.index]! += 1;
      }
      expect(confusion).toEqual(evaluation.report.details.clean[bn]!.confusion);
    }
    // Names from --classes (an evaluation.json), files and folders in the order given, --top-k.
    const named = advbn('predict', '--weights', advWeights, '--classes', join(out, 'evaluation.json'), '--top-k', '2', ...common, join(data, 'owl', '1.png'), join(data, 'cat'));
    expect(named.status, named.stderr).toBe(0);
    const lines = named.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => basename(dirname(l.file)) + basename(l.file))).toEqual(['owl1.png', 'cat0.png', 'cat1.png', 'cat2.png', 'cat3.png']);
    for (const line of lines) {
      expect(line.top).toHaveLength(2);
      expect(line.top[0].probability).toBeGreaterThanOrEqual(line.top[1].probability);
      for (const t of line.top) expect(t.class).toBe(CLASSES[t.index]);
    }
    // Printed a batch at a time: batches of 2 (the last one smaller) give the same lines.
    const batched = advbn(
      'predict',
      '--weights',
      advWeights,
      '--classes',
      join(out, 'evaluation.json'),
      '--top-k',
      '2',
      ...common,
      '--batch-size',
      '2',
      join(data, 'owl', '1.png'),
      join(data, 'cat'),
    );
    expect(batched.status, batched.stderr).toBe(0);
    const again = batched.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    // The same files and classes; the probabilities agree to float precision (the kernels may
    // sum in another order for another batch shape).
    expect(again.map((l) => [l.file, l.top.map((t: { index: number }) => t.index)])).toEqual(lines.map((l) => [l.file, l.top.map((t: { index: number }) => t.index)]));
    again.forEach((l, i) => {
      l.top.forEach((t: { probability: number }, j: number) => {
        expect(t.probability).toBeCloseTo(lines[i].top[j].probability, 5);
      });
    });
  }, 60_000);

  it('bad flags and inputs: one line on stderr, exit 2', () => {
    const cases: [string[], RegExp][] = [
      [[data], /--weights is required/],
      [['--weights', advWeights], /no images given/],
      [['--weights', advWeights, join(dir.path, 'nope.png')], /no such image file or folder: ".*nope\.png"/],
      [['--weights', advWeights, '--top-k', '0', data], /--top-k must be a whole number >= 1/],
      [['--weights', advWeights, '--bn', 'both', data], /--bn must be clean or adv, got "both"/],
      [['--weights', advWeights, '--bogus', data], /Unknown option '--bogus'/],
      [['--weights', baseWeights, '--bn', 'adv', ...common, data], /option "bn" must be "clean" for a model without adversarial BatchNorms/],
      [['--weights', advWeights, '--classes', fourClassWeights, data], /--classes must be a JSON file with a "classes" list/],
    ];
    for (const [args, message] of cases) {
      const run = advbn('predict', ...args);
      expect(run.status, `${args.join(' ')}\n${run.stderr}`).toBe(2);
      expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1);
      expect(run.stderr).toMatch(message);
      expect(run.stdout).toBe('');
    }
    expect(advbn('predict', '--help').stdout).toMatch(/--top-k K\s+classes per image, best first \(default 5/);
  }, 60_000);
});
