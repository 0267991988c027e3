// The digits experiment: a baseline trained on MNIST, then each method fine-tunes its tail from
// that same baseline; everything is evaluated on the clean test digits, the restyled domains
// and the 15 corruptions (mCE relative to the baseline), for every seed.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dataset } from '../data/dataset.js';
import { DIGIT_DOMAINS, loadDigits, type DigitsBenchmark } from '../data/digits.js';
import { compareToBaseline, evaluateRobustness, type RobustnessReport } from '../evaluation/robustness.js';
import { saveWeights, smallResnet, type Model } from '../models.js';
import { fineTune } from '../training/fine-tune.js';
import { aggregateMethod } from './aggregate.js';
import type { DigitsConfig, MethodSpec } from './presets.js';
import type { Progress } from './progress.js';
import type { MethodResult } from '../report/index.js';

export interface DigitsRun {
  config: DigitsConfig;
  methods: readonly MethodSpec[];
  seeds: readonly number[];
  device: string;
  dataDir?: string;
  progress: Progress;
}

export async function runDigits(run: DigitsRun): Promise<Record<string, MethodResult>> {
  const digits = await loadDigits(run.dataDir === undefined ? {} : { dir: run.dataDir });
  const tmp = mkdtempSync(join(tmpdir(), 'advbn-reproduce-'));
  try {
    // On the CPU, seeds run side by side (each native call of a model runs on its own libuv
    // thread); on a GPU they run one after another on the device's single stream.
    const parallel = run.device === 'cpu' ? Math.max(1, Math.min(run.seeds.length, cpus().length)) : 1;
    const outcomes = await mapLimited(run.seeds, parallel, (seed) => runSeed(run, digits, seed, tmp));
    const names = Object.keys(outcomes[0]!.reports);
    return Object.fromEntries(
      names.map((name) => [name, aggregateMethod(outcomes.map((o) => o.reports[name]!), outcomes.map((o) => o.seconds[name]!))]),
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** `work` over `items` with at most `limit` in flight; results in input order. */
async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}

async function runSeed(run: DigitsRun, digits: DigitsBenchmark, seed: number, tmp: string) {
  const { config, progress } = run;
  const reports: Record<string, RobustnessReport> = {};
  const seconds: Record<string, number> = {};
  // Test sets are the same for every seed (seed 0 picks them); training data and models vary.
  const train = await digits.source('train', { limit: config.trainLimit, seed });
  const clean = await digits.source('test', { limit: config.testLimit });
  const domains: Record<string, Dataset> = {};
  for (const d of DIGIT_DOMAINS) domains[d] = await digits.domain(d, { limit: config.domainLimit });
  const corruptions = { dataset: (name: string, severity: number) => digits.corruption(name, severity, { limit: config.corruptionLimit }) };
  const newModel = (weights?: string) =>
    smallResnet({ numClasses: 10, depth: config.model.depth, width: config.model.width, seed, device: run.device, ...(weights && { weights }) });
  const evaluateModel = (name: string, model: Model, baseline?: RobustnessReport) =>
    evaluateRobustness(model, {
      clean,
      domains,
      corruptions,
      ...(baseline && { baseline }),
      onProgress: (done, total, label) => progress.detail(`seed ${seed} · ${name} · eval ${label} (${done}/${total})`),
    });
  try {
    progress.step(`seed ${seed} · baseline · train`);
    const baseline = await newModel();
    let started = performance.now();
    await fineTune(baseline, {
      data: train,
      method: 'erm',
      cut: 0,
      epochs: config.baseline.epochs,
      batchSize: config.batchSize,
      seed,
      optimizer: { type: 'adamw', lr: config.baseline.lr, weightDecay: config.baseline.weightDecay },
      schedule: { type: 'cosine' },
      callbacks: { onBatchEnd: (b) => progress.detail(`seed ${seed} · baseline · train batch ${b + 1}`) },
    });
    seconds.baseline = (performance.now() - started) / 1000;
    const weights = join(tmp, `baseline-${seed}.safetensors`);
    await saveWeights(baseline, weights);
    progress.step(`seed ${seed} · baseline · evaluate`);
    // The baseline is the reference of mCE, so against itself it scores exactly 1.
    const own = await evaluateModel('baseline', baseline);
    reports.baseline = compareToBaseline(own, own);
    baseline.dispose();
    for (const spec of run.methods) {
      progress.step(`seed ${seed} · ${spec.name} · train`);
      const model = await newModel(weights);
      started = performance.now();
      await fineTune(model, {
        data: train,
        method: spec.method,
        augmix: spec.augmix,
        cut: config.fineTune.cut,
        epochs: config.fineTune.epochs,
        batchSize: config.fineTune.batchSize,
        seed,
        optimizer: { type: 'sgd', lr: config.fineTune.lr, momentum: 0.9, weightDecay: 1e-4 },
        schedule: { type: 'cosine' },
        advbn: config.fineTune.advbn,
        callbacks: { onBatchEnd: (b) => progress.detail(`seed ${seed} · ${spec.name} · train batch ${b + 1}`) },
      });
      seconds[spec.name] = (performance.now() - started) / 1000;
      progress.step(`seed ${seed} · ${spec.name} · evaluate`);
      reports[spec.name] = await evaluateModel(spec.name, model, own);
      model.dispose();
    }
  } finally {
    for (const d of [train, clean, ...Object.values(domains)]) d.dispose();
  }
  return { reports, seconds };
}
