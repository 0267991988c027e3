// The library side of `advbn evaluate` / `advbn predict`: evaluate's top-5, per-class accuracy
// and confusion matrix against the logits of predict; evaluateRobustness on folders (layout
// checks before anything is evaluated, the BN branches asked for, AlexNet's normalisation);
// CE per corruption and mCE's reasons; weights that set the class count; imageFiles; the
// evaluation.json schema and validator.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  compareToBaseline,
  EVALUATION_SCHEMA,
  evaluate,
  evaluateRobustness,
  fineTune,
  fromArrays,
  imageFiles,
  InvalidDataError,
  InvalidOptionError,
  resize,
  saveWeights,
  smallResnet,
  validateEvaluation,
  type RobustnessReport,
} from '../src/index.js';
import { rejection, separableData, tinyModel } from './helpers.js';
import { pattern, tempDir, writeImage } from './image-files.js';

const tmp = tempDir('evaluation');
afterAll(() => tmp.cleanup());

describe('evaluate', () => {
  it('top-5, per-class accuracy and the confusion matrix agree with the logits of predict', async () => {
    // 8 classes, so top-5 is not trivially 1; the data's labels are 0..3, classes 4..7 have no samples.
    using model = await smallResnet({ numClasses: 8, depth: 8, width: 8, device: 'cpu', seed: 4 });
    const data = separableData(40, 3);
    const result = await evaluate(model, data, { batchSize: 7 });
    const { logits } = await model.predict(data.images, { batchSize: 9 });
    const confusion = Array.from({ length: 8 }, () => new Array<number>(8).fill(0));
    let top5 = 0;
    data.labels.forEach((label, i) => {
      const row = Array.from(logits.subarray(i * 8, (i + 1) * 8));
      const order = row.map((_, c) => c).sort((a, b) => row[b]! - row[a]! || a - b);
      confusion[label]![order[0]!]! += 1;
      if (order.slice(0, 5).includes(label)) top5 += 1;
    });
    expect(result.confusion).toEqual(confusion);
    expect(result.top5).toBeCloseTo(top5 / 40, 12);
    expect(result.top5).toBeLessThan(1);
    expect(result.accuracy).toBeCloseTo(confusion.reduce((s, row, i) => s + row[i]!, 0) / 40, 12);
    expect(result.perClass.slice(4)).toEqual([null, null, null, null]);
    expect(result.perClass.slice(0, 4)).toEqual(confusion.slice(0, 4).map((row, i) => row[i]! / 10));
  });
});

describe('model weights set the class count', () => {
  it('without numClasses a model takes the classifier of its weights file; without weights numClasses is required', async () => {
    const file = join(tmp.path, 'five.safetensors');
    {
      using five = await smallResnet({ numClasses: 5, depth: 8, width: 8, device: 'cpu', seed: 1 });
      await saveWeights(five, file);
    }
    using loaded = await smallResnet({ depth: 8, width: 8, device: 'cpu', weights: file });
    expect(loaded.numClasses).toBe(5);
    expect(loaded.weightsReport?.reinitialized).toEqual([]);
    const err = await rejection(() => smallResnet({ depth: 8, width: 8, device: 'cpu' } as never));
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.message).toMatch(/numClasses/);
  });
});

describe('imageFiles', () => {
  it('lists files in the order given and folders sorted, and predicts on them', async () => {
    const root = join(tmp.path, 'files');
    for (const name of ['b/2.png', 'b/sub/1.png', 'a.png']) writeImage(join(root, name), pattern(20, 16, name.length), 20, 16, 'png');
    using files = await imageFiles([join(root, 'a.png'), join(root, 'b')], { transforms: [resize(16)] });
    expect(files.files).toEqual([join(root, 'a.png'), join(root, 'b', '2.png'), join(root, 'b', 'sub', '1.png')]);
    expect(files.length).toBe(3);
    expect(files.numClasses).toBe(1);
    using model = await smallResnet({ numClasses: 3, depth: 8, width: 8, device: 'cpu' });
    expect((await model.predict(files)).classes).toHaveLength(3);
    const missing = await rejection(() => imageFiles([join(root, 'nope.png')]));
    expect(missing).toBeInstanceOf(InvalidDataError);
    expect(missing.message).toContain('nope.png');
    expect(await rejection(() => imageFiles([]))).toBeInstanceOf(InvalidOptionError);
  });
});

describe('evaluateRobustness', () => {
  const clean = join(tmp.path, 'clean');
  for (const [label, name] of ['a', 'b'].entries()) {
    for (let i = 0; i < 3; i += 1) writeImage(join(clean, name, `${i}.png`), pattern(20, 20, i, label), 20, 20, 'png');
  }
  const folders = { transforms: [resize(16)] };

  it('reads folders: the clean set, domains by path, with full results per branch and the class names', async () => {
    using model = await smallResnet({ numClasses: 2, depth: 8, width: 8, device: 'cpu' });
    const report = await evaluateRobustness(model, { clean, domains: { again: clean }, folders });
    expect(report.classNames).toEqual(['a', 'b']);
    expect(report.branches).toEqual(['clean']);
    expect(report.details!.clean.clean!.count).toBe(6);
    expect(report.details!.domains.again!.clean!.confusion).toEqual(report.details!.clean.clean!.confusion);
    expect(report.domains.again!.clean).toBe(report.clean.clean);
    // The adversarial branch needs an AdvBN model.
    const adv = await rejection(() => evaluateRobustness(model, { clean, folders, bn: 'adv' }));
    expect(adv).toBeInstanceOf(InvalidOptionError);
    expect(adv.message).toMatch(/option "bn" must be "clean" or "both"/);
  });

  it('checks an ImageNet-C folder before evaluating anything, and AlexNet only for the 15 benchmark corruptions', async () => {
    using model = await smallResnet({ numClasses: 2, depth: 8, width: 8, device: 'cpu' });
    const tree = join(tmp.path, 'tree');
    for (const severity of [1, 2, 3, 4]) mkdirSync(join(tree, 'fog', String(severity), 'a'), { recursive: true });
    let progressed = 0;
    const onProgress = () => void (progressed += 1);
    const lacking = await rejection(() => evaluateRobustness(model, { clean, corruptions: tree, folders, onProgress }));
    expect(lacking).toBeInstanceOf(InvalidDataError);
    expect(lacking.message).toMatch(/fog lacks severity 5/);
    mkdirSync(join(tree, 'fog', '5', 'a'), { recursive: true });
    expect((await rejection(() => evaluateRobustness(model, { clean, corruptions: tree, folders, onProgress }))).message).toMatch(/fog\/1 lacks the class folder b/);
    mkdirSync(join(tree, 'smoke'));
    expect((await rejection(() => evaluateRobustness(model, { clean, corruptions: tree, folders, onProgress }))).message).toMatch(/"smoke" is not a corruption name/);
    const provider = { names: ['fog'], dataset: () => Promise.reject(new Error('must not be called')) };
    const alexnet = await rejection(() => evaluateRobustness(model, { clean, corruptions: provider, folders, baseline: 'alexnet', onProgress }));
    expect(alexnet).toBeInstanceOf(InvalidOptionError);
    expect(alexnet.message).toMatch(/missing gaussian_noise, shot_noise, impulse_noise/);
    expect(progressed).toBe(0);
  });
});

describe('evaluateRobustness on an AdvBN model', () => {
  it('measures the corruptions with the branches of corruptionBn only, and rejects one it does not measure', async () => {
    const data = separableData(16, 3);
    using model = await tinyModel();
    await fineTune(model, { data, method: 'advbn', epochs: 1, batchSize: 8, seed: 1, lr: 0.02 });
    const asked: string[] = [];
    const provider = {
      names: ['fog', 'contrast'],
      keepsDatasets: true,
      dataset: async (name: string, severity: number) => {
        asked.push(`${name}/${severity}`);
        return fromArrays(data.images, data.labels);
      },
    };
    const clean = fromArrays(data.images, data.labels);
    const both = await evaluateRobustness(model, { clean, corruptions: provider });
    expect(Object.keys(both.corruption!).sort()).toEqual(['adv', 'clean']);
    const one = await evaluateRobustness(model, { clean, corruptions: provider, corruptionBn: 'clean', baseline: both });
    expect(one.branches).toEqual(['clean', 'adv']);
    expect(Object.keys(one.corruption!)).toEqual(['clean']);
    expect(one.convention).toEqual({ clean: 'clean', corruption: 'clean', domains: 'adv' });
    // The same figures as the clean branch of the run that measured both, and every set asked for in each run.
    expect(one.corruption!.clean!.errors).toEqual(both.corruption!.clean!.errors);
    expect(one.corruption!.clean!.relativeCE).toBeDefined();
    expect(one.clean).toEqual(both.clean);
    expect(asked).toHaveLength(2 * 2 * 5);
    const advOnly = await evaluateRobustness(model, { clean, corruptions: provider, corruptionBn: 'adv' });
    expect(Object.keys(advOnly.corruption!)).toEqual(['adv']);
    expect(advOnly.convention.corruption).toBe('adv');
    const unmeasured = await rejection(() => evaluateRobustness(model, { clean, corruptions: provider, bn: 'clean', corruptionBn: 'adv' }));
    expect(unmeasured).toBeInstanceOf(InvalidOptionError);
    expect(unmeasured.message).toMatch(/option "corruptionBn" must be a branch among those measured \(clean; see option "bn"\)/);
  });
});

describe('CE per corruption and the reasons of an absent mCE', () => {
  const report = (errors: Record<string, number[]>, cleanError: number): RobustnessReport => ({
    branches: ['clean'],
    convention: { clean: 'clean', corruption: 'clean', domains: 'clean' },
    clean: { clean: 1 - cleanError },
    domains: {},
    corruption: { clean: { errors, cleanError } },
  });

  it('gives CE and relative CE for any corruptions, mCE only over all 15, undefined ones as null', () => {
    const model = report({ fog: [0.2, 0.3, 0.4, 0.5, 0.6], contrast: [0.1, 0.1, 0.1, 0.1, 0.1] }, 0.1);
    const base = report({ fog: [0.4, 0.4, 0.4, 0.4, 0.4], contrast: [0, 0, 0, 0, 0] }, 0.2);
    const figures = compareToBaseline(model, base).corruption!.clean!;
    expect(figures.CE!.fog).toBeCloseTo(2 / 2, 12);
    expect(figures.relativeCE!.fog).toBeCloseTo((2 - 0.5) / (2 - 1), 12);
    // The baseline made no mistake under contrast: its CE has no denominator.
    expect(figures.CE!.contrast).toBeNull();
    expect(figures.relativeCE!.contrast).toBeNull();
    expect(figures.mCE).toBeUndefined();
    expect(figures.mCEReason).toMatch(/mean over the 15 benchmark corruptions; these were not evaluated: gaussian_noise/);
    expect(figures.normalization).toBe('baseline');
    // A baseline without one of the model's corruptions is refused by name.
    const err = (() => {
      try {
        compareToBaseline(model, report({ fog: [0.4, 0.4, 0.4, 0.4, 0.4] }, 0.2));
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err?.message).toMatch(/lacks corruptions contrast/);
  });
});

describe('evaluation.json', () => {
  it('validateEvaluation names what is wrong', () => {
    expect(validateEvaluation({})[0]).toBe('$.kind: required field is missing');
    const file = {
      kind: 'advbn-evaluation',
      command: 'advbn evaluate',
      createdAt: '2026-12-01T00:00:00.000Z',
      package: { name: 'advbn', version: '0.1.0' },
      model: { arch: 'resnet18', weights: 'w.safetensors', numClasses: 2, hasAdvBn: false, device: 'cpu' },
      settings: { size: 32, batchSize: 8, bn: 'both' },
      data: { clean: 'data', domains: {} },
      classes: ['a', 'b'],
      report: {
        branches: ['clean'],
        convention: { clean: 'clean', corruption: 'clean', domains: 'clean' },
        clean: { clean: 0.5 },
        domains: {},
        details: {
          clean: {
            clean: {
              loss: 0.7,
              accuracy: 0.5,
              top5: 1,
              perClass: [1, 0],
              confusion: [
                [2, 0],
                [2, 0],
              ],
              count: 4,
              skipped: 0,
              bn: 'clean',
            },
          },
          domains: {},
        },
        classNames: ['a', 'b'],
      },
      seconds: 1,
    };
    expect(validateEvaluation(file)).toEqual([]);
    const wrongCount = structuredClone(file);
    wrongCount.report.details.clean.clean.count = 5;
    expect(validateEvaluation(wrongCount)).toEqual(['$.report.details.clean.clean.confusion: must sum to count (5)']);
    const extraBranch = structuredClone(file) as unknown as { report: { clean: Record<string, number> } };
    extraBranch.report.clean.adv = 0.5;
    expect(validateEvaluation(extraBranch)).toEqual(['$.report.clean: must have the branches measured (clean), got adv, clean']);
    expect(validateEvaluation({ ...file, extra: 1 })).toEqual(['$.extra: unknown field']);
    expect(EVALUATION_SCHEMA.$id).toMatch(/evaluation\.schema\.json$/);
  });
});
