// The numeric options' defaults and ranges come from one place, the core's rule table
// (crates/advbn-core/src/options.rs): for every rule, TypeScript's fineTune and model option
// readers give the rule's default, take its boundary values and refuse the values just outside,
// naming the option with the rule's own wording. crates/advbn-core/tests/options.rs checks the
// Rust validators against the same table.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CORRUPTION_NAMES,
  DIGIT_DOMAINS,
  FINE_TUNE_METHODS,
  InvalidOptionError,
  evaluate,
  exportDigits,
  fromArrays,
  imageFolder,
  loadDigits,
  reproduce,
  smallResnet,
  visualizeAdversarialFeatures,
} from '../src/index.js';
import { loadNative } from '../src/native.js';
import { resolveFineTuneOptions } from '../src/training/options.js';
import { separableData, tinyModel } from './helpers.js';

type Resolved = ReturnType<typeof resolveFineTuneOptions>;
type Place = { set: (v: number) => Record<string, unknown>; get: (r: Resolved) => number; path: string };

/** Where each fineTune rule's option is written, and where its resolved value lands. */
const FINE_TUNE: Record<string, Place> = {
  seed: { path: 'seed', set: (v) => ({ seed: v }), get: (r) => r.trainer.seed },
  'fineTune.epochs': { path: 'epochs', set: (v) => ({ epochs: v }), get: (r) => r.trainer.epochs },
  'fineTune.batchSize': { path: 'batchSize', set: (v) => ({ batchSize: v }), get: (r) => r.batchSize },
  'fineTune.lr': { path: 'lr', set: (v) => ({ lr: v }), get: (r) => r.trainer.lr },
  'fineTune.sgd.momentum': {
    path: 'optimizer.momentum',
    set: (v) => ({ optimizer: { type: 'sgd', momentum: v } }),
    get: (r) => (r.trainer.optimizer as { momentum: number }).momentum,
  },
  'fineTune.sgd.weightDecay': {
    path: 'optimizer.weightDecay',
    set: (v) => ({ optimizer: { type: 'sgd', weightDecay: v } }),
    get: (r) => (r.trainer.optimizer as { weightDecay: number }).weightDecay,
  },
  'fineTune.adamw.beta1': { path: 'optimizer.beta1', set: (v) => ({ optimizer: { type: 'adamw', beta1: v } }), get: (r) => (r.trainer.optimizer as { beta1: number }).beta1 },
  'fineTune.adamw.beta2': { path: 'optimizer.beta2', set: (v) => ({ optimizer: { type: 'adamw', beta2: v } }), get: (r) => (r.trainer.optimizer as { beta2: number }).beta2 },
  'fineTune.adamw.eps': { path: 'optimizer.eps', set: (v) => ({ optimizer: { type: 'adamw', eps: v } }), get: (r) => (r.trainer.optimizer as { eps: number }).eps },
  'fineTune.adamw.weightDecay': {
    path: 'optimizer.weightDecay',
    set: (v) => ({ optimizer: { type: 'adamw', weightDecay: v } }),
    get: (r) => (r.trainer.optimizer as { weightDecay: number }).weightDecay,
  },
  'fineTune.schedule.milestones': {
    path: 'schedule.milestones',
    set: (v) => ({ schedule: { type: 'step', milestones: [v] } }),
    get: (r) => (r.trainer.schedule as { milestones: number[] }).milestones[0]!,
  },
  'fineTune.schedule.gamma': { path: 'schedule.gamma', set: (v) => ({ schedule: { type: 'step', gamma: v } }), get: (r) => (r.trainer.schedule as { gamma: number }).gamma },
  'fineTune.schedule.minLr': { path: 'schedule.minLr', set: (v) => ({ schedule: { type: 'cosine', minLr: v } }), get: (r) => (r.trainer.schedule as { minLr: number }).minLr },
  'fineTune.schedule.warmupEpochs': {
    path: 'schedule.warmupEpochs',
    set: (v) => ({ epochs: 100_000, schedule: { type: 'cosine', warmupEpochs: v } }),
    get: (r) => (r.trainer.schedule as { warmupEpochs: number }).warmupEpochs,
  },
  'fineTune.advbn.steps': { path: 'advbn.steps', set: (v) => ({ advbn: { steps: v } }), get: (r) => r.trainer.advbn.steps },
  'fineTune.advbn.stepSize': { path: 'advbn.stepSize', set: (v) => ({ advbn: { stepSize: v } }), get: (r) => r.trainer.advbn.stepSize },
  'fineTune.advbn.epsilon': { path: 'advbn.epsilon', set: (v) => ({ advbn: { epsilon: v } }), get: (r) => r.trainer.advbn.epsilon },
};

const MODEL = ['model.numClasses', 'model.inChannels', 'model.depth', 'model.width'];
const IMAGE_FOLDER = ['imageFolder.maxPixels', 'imageFolder.maxFileBytes', 'imageFolder.channels', 'source.threads', 'source.prefetch'];
const TRANSFORM = ['transform.side', 'transform.p', 'transform.jitter', 'transform.hue', 'transform.degrees', 'transform.severity', 'transform.channels'];
const EVALUATE = ['evaluate.batchSize'];
const VISUALIZE = ['visualize.steps', 'visualize.batchSize', 'visualize.lr', 'visualize.tvWeight', 'visualize.rows', 'visualize.images', 'visualize.strengths'];
const DATASETS = ['fromArrays.numClasses', 'batches.epoch', 'digits.limit', 'digits.perDomain'];
const REPRODUCE = ['reproduce.seeds', 'reproduce.epochs'];

interface Rule {
  key: string;
  name: string;
  default?: number | null;
  min?: number | null;
  minExclusive: boolean;
  max?: number | null;
  maxExclusive: boolean;
  integer: boolean;
  requirement: string;
}

/** Values a rule must take and values it must refuse (the same probes as the Rust test, negatives included). */
function probes(rule: Rule): { pass: number[]; fail: number[] } {
  const step = (at: number) => (rule.integer ? 1 : 1e-9 * Math.max(1, Math.abs(at)));
  const pass: number[] = rule.default === undefined || rule.default === null ? [] : [rule.default];
  const fail: number[] = [Number.NaN, Number.POSITIVE_INFINITY];
  const { min, max } = rule;
  if (min !== undefined && min !== null) {
    pass.push(rule.minExclusive ? min + step(min) : min);
    fail.push(rule.minExclusive ? min : min - step(min));
  }
  if (max !== undefined && max !== null) {
    pass.push(rule.maxExclusive ? max - step(max) : max);
    fail.push(rule.maxExclusive ? max : max + step(max));
  }
  if (rule.integer) fail.push((pass[0] ?? 1) + 0.5);
  return { pass, fail };
}

function refusal(run: () => unknown): InvalidOptionError {
  try {
    run();
  } catch (err) {
    if (err instanceof InvalidOptionError) return err;
    throw err;
  }
  throw new Error('accepted');
}

describe('option rules', () => {
  const rules = loadNative().optionRules() as Rule[];

  it('cover every numeric option TypeScript reads, and nothing else', () => {
    expect(rules.map((r) => r.key).sort()).toEqual(
      [...Object.keys(FINE_TUNE), ...MODEL, ...IMAGE_FOLDER, ...TRANSFORM, ...VISUALIZE, ...EVALUATE, ...DATASETS, ...REPRODUCE].sort(),
    );
  });

  it('give fineTune its defaults, boundaries and refusals, in the core wording', async () => {
    using model = await tinyModel(0);
    const data = separableData(4);
    const resolve = (extra: Record<string, unknown>) => resolveFineTuneOptions({ data, ...extra }, model);
    for (const rule of rules.filter((r) => r.key in FINE_TUNE)) {
      const place = FINE_TUNE[rule.key]!;
      expect(place.path, rule.key).toBe(rule.name);
      const { pass, fail } = probes(rule);
      // Absent: the rule's default (an AdamW or cosine rule needs its type chosen).
      const typed = place.set(Number.NaN);
      const bare = Object.fromEntries(Object.entries(typed).map(([k, v]) => [k, typeof v === 'object' ? { type: (v as { type: string }).type } : undefined]));
      if (rule.default !== undefined && rule.default !== null) expect(place.get(resolve(bare)), rule.key).toBe(rule.default);
      for (const v of pass) expect(place.get(resolve(place.set(v))), `${rule.key} = ${v}`).toBe(v);
      for (const v of fail) {
        const err = refusal(() => resolve(place.set(v)));
        expect(err.option, `${rule.key} = ${v}`).toBe(rule.name);
        expect(err.message, `${rule.key} = ${v}`).toContain(`${rule.requirement}, got`);
      }
    }
    // The drift: TypeScript took advbn.steps 5000 that Rust refused.
    expect(refusal(() => resolve({ advbn: { steps: 5000 } })).message).toBe('fineTune: option "advbn.steps" must be an integer in 0..=1000, got 5000');
  });

  it('give the model builders their refusals in the core wording', async () => {
    const base = { numClasses: 3, device: 'cpu' as const, depth: 8, width: 4 };
    for (const rule of rules.filter((r) => r.key.startsWith('model.'))) {
      for (const v of probes(rule).fail) {
        const err = await smallResnet({ ...base, [rule.name]: v }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, `${rule.key} = ${v}`).toBeInstanceOf(InvalidOptionError);
        expect((err as InvalidOptionError).option).toBe(rule.name);
        expect((err as Error).message).toContain(`must be ${rule.requirement}, got`);
      }
    }
    await expect(smallResnet({ ...base, inChannels: 65 })).rejects.toThrow(/inChannels.*an integer in 1\.\.=64/);
  });

  it('give imageFolder its limits and loader settings, and their refusals in the core wording', async () => {
    const root = mkdtempSync(join(tmpdir(), 'advbn-rules-'));
    mkdirSync(join(root, 'cls'));
    for (const rule of rules.filter((r) => IMAGE_FOLDER.includes(r.key))) {
      for (const v of probes(rule).fail) {
        const err = await imageFolder(root, { [rule.name]: v }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, `${rule.key} = ${v}`).toBeInstanceOf(InvalidOptionError);
        expect((err as InvalidOptionError).option).toBe(rule.name);
        expect((err as Error).message).toContain(`must be ${rule.requirement}, got`);
      }
    }
  });

  it('give visualizeAdversarialFeatures its refusals in the core wording', async () => {
    using model = await tinyModel(0);
    const data = separableData(4);
    for (const rule of rules.filter((r) => VISUALIZE.includes(r.key))) {
      for (const v of probes(rule).fail) {
        // strengths is a list: each element is checked against the rule.
        const value = rule.key === 'visualize.strengths' ? [v] : v;
        const err = await visualizeAdversarialFeatures(model, data, { [rule.name]: value }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, `${rule.key} = ${v}`).toBeInstanceOf(InvalidOptionError);
        expect((err as InvalidOptionError).option).toBe(rule.name);
        expect((err as Error).message).toContain(rule.key === 'visualize.strengths' ? `every element is ${rule.requirement}` : `must be ${rule.requirement}, got`);
      }
    }
  });

  it('give the datasets, digits and reproduce their defaults and refusals in the core wording', async () => {
    const images = { data: new Float32Array(2 * 4), shape: [2, 1, 2, 2] as const };
    const labels = Int32Array.from([0, 0]);
    const out = mkdtempSync(join(tmpdir(), 'advbn-rules-'));
    const digits = await loadDigits();
    const places: Record<string, (v: number) => Promise<unknown>> = {
      'fromArrays.numClasses': async (v) => fromArrays(images, labels, { numClasses: v }),
      'batches.epoch': (v) => fromArrays(images, labels).batches({ epoch: v })[Symbol.asyncIterator]().next(),
      'digits.limit': (v) => digits.domain('mnist', { split: 'test', limit: v }),
      'digits.perDomain': (v) => exportDigits({ out: join(out, 'export'), perDomain: v }),
      'reproduce.seeds': (v) => reproduce({ out: join(out, 'run'), seeds: v }),
      'reproduce.epochs': (v) => reproduce({ out: join(out, 'run'), epochs: v }),
    };
    for (const rule of rules.filter((r) => DATASETS.includes(r.key) || REPRODUCE.includes(r.key))) {
      for (const v of probes(rule).fail) {
        const err = await Promise.resolve()
          .then(() => places[rule.key]!(v))
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(err, `${rule.key} = ${v}`).toBeInstanceOf(InvalidOptionError);
        expect((err as InvalidOptionError).option, rule.key).toBe(rule.name);
        expect((err as Error).message, rule.key).toContain(`must be ${rule.requirement}, got`);
      }
    }
    // The epoch's default is the rule's: the same order as epoch 0.
    const order = async (options: object) => {
      const seen: number[] = [];
      for await (const b of fromArrays({ data: Float32Array.from({ length: 32 }, (_, i) => Math.floor(i / 4)), shape: [8, 1, 2, 2] }, new Int32Array(8)).batches({
        shuffle: true,
        seed: 3,
        batchSize: 8,
        ...options,
      })) {
        const { images: px } = await b.handle.toArrays();
        for (let i = 0; i < 8; i += 1) seen.push(px[i * 4]!);
      }
      return seen;
    };
    expect(await order({})).toEqual(await order({ epoch: 0 }));
    expect(await order({})).not.toEqual(await order({ epoch: 1 }));
  });

  it('name lists: the literal types TypeScript exports equal the core lists', () => {
    const native = loadNative();
    expect([...FINE_TUNE_METHODS].sort()).toEqual(native.methodNames().sort());
    expect([...DIGIT_DOMAINS]).toEqual(native.digitDomains());
    expect([...CORRUPTION_NAMES]).toEqual(native.listCorruptions());
  });

  it('give the transforms their refusals in the core wording, naming the transform', async () => {
    const root = mkdtempSync(join(tmpdir(), 'advbn-rules-'));
    mkdirSync(join(root, 'cls'));
    const transform = {
      'transform.side': (v: number) => ({ type: 'centerCrop', size: v }),
      'transform.p': (v: number) => ({ type: 'horizontalFlip', p: v }),
      'transform.jitter': (v: number) => ({ type: 'colorJitter', brightness: v }),
      'transform.hue': (v: number) => ({ type: 'colorJitter', hue: v }),
      'transform.degrees': (v: number) => ({ type: 'randomRotation', degrees: v }),
      'transform.severity': (v: number) => ({ type: 'corrupt', name: 'fog', severity: v }),
      'transform.channels': (v: number) => ({ type: 'grayscale', channels: v }),
    };
    for (const rule of rules.filter((r) => TRANSFORM.includes(r.key))) {
      for (const v of probes(rule).fail) {
        const err = await imageFolder(root, { transforms: [transform[rule.key as keyof typeof transform](v)] as never }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, `${rule.key} = ${v}`).toBeInstanceOf(InvalidOptionError);
        expect((err as InvalidOptionError).option).toBe(`transforms[0].${rule.name}`);
        expect((err as Error).message).toContain(`must be ${rule.requirement}, got`);
      }
    }
  });

  it('give evaluate and predict their batch size refusals in the core wording', async () => {
    using model = await tinyModel(0);
    const data = separableData(4);
    const rule = rules.find((r) => r.key === 'evaluate.batchSize')!;
    for (const v of probes(rule).fail) {
      const runs: (() => Promise<unknown>)[] = [() => evaluate(model, data, { batchSize: v }), () => model.predict(data.images, { batchSize: v })];
      for (const run of runs) {
        const err = await Promise.resolve()
          .then(run)
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(err, `batchSize = ${v}`).toBeInstanceOf(InvalidOptionError);
        expect((err as Error).message).toContain(`must be ${rule.requirement}, got`);
      }
    }
  });
});
