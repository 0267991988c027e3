// The digits experiment, leave-one-domain-out: for each held-out domain and seed, a baseline is
// trained on the other domains' own training digits, then each method fine-tunes its tail from
// that same baseline. Every model is tested on the held-out domain's test digits (the domain
// shift), on the source domains' test digits (in-domain) and on the same source test digits under
// the 15 corruptions x 5 severities (mCE relative to the pair's baseline).
import { join } from 'node:path';
import type { Dataset } from '../data/dataset.js';
import { DIGIT_DOMAINS, loadDigits, type DigitDomain, type DigitsBenchmark } from '../data/digits.js';
import { compareToBaseline, evaluateRobustness, type RobustnessReport } from '../evaluation/robustness.js';
import { smallResnet, type Model } from '../models.js';
import { fineTune } from '../training/fine-tune.js';
import type { PairOutcome } from './aggregate.js';
import { runPairs, saveInto, type PairRun } from './lodo.js';
import type { DigitsConfig } from './presets.js';

/** The test sample is the same for every seed and method: seed 0 picks and renders it. */
const TEST_SEED = 0;

export async function runDigits(run: PairRun<DigitsConfig>): Promise<PairOutcome[]> {
  const digits = await loadDigits(run.dataDir === undefined ? {} : { dir: run.dataDir });
  const config = run.config;
  const pairs = config.heldOut.flatMap((heldOut) => run.seeds.map((seed) => ({ heldOut, seed })));
  // On the CPU, pairs run side by side (each native call of a model runs on its own libuv
  // thread); on a GPU one after another on the device's single stream.
  return runPairs(run, pairs, (pair) => runPair(run, digits, pair.heldOut as DigitDomain, pair.seed));
}

async function runPair(run: PairRun<DigitsConfig>, digits: DigitsBenchmark, heldOut: DigitDomain, seed: number): Promise<PairOutcome> {
  const { config, progress } = run;
  const sources = DIGIT_DOMAINS.filter((d) => d !== heldOut);
  const label = `held out ${heldOut} · seed ${seed}`;
  const reports: Record<string, RobustnessReport> = {};
  const seconds: Record<string, number> = {};
  const histories: NonNullable<PairOutcome['histories']> = {};
  const datasets: Dataset[] = [];
  let targetCount = 0;
  const keep = (d: Dataset) => {
    datasets.push(d);
    return d;
  };
  try {
    const train = keep(await digits.train(sources, { limit: config.trainPerDomain, seed }));
    const target = keep(await digits.domain(heldOut, { split: 'test', limit: config.targetLimit, seed: TEST_SEED }));
    targetCount = target.length;
    const sample = { limit: config.sourceTestLimit, seed: TEST_SEED };
    const clean = keep(await digits.mixture(sources, sample));
    // Rendered and corrupted once per pair, shared by its models (75 small sets).
    const cache = new Map<string, Promise<Dataset>>();
    const corrupted = (name: string, severity: number) => {
      const key = `${name}/${severity}`;
      if (!cache.has(key)) cache.set(key, digits.mixture(sources, { ...sample, corruption: { name, severity } }).then(keep));
      return cache.get(key)!;
    };
    const corruptions = config.corruptions ? { dataset: corrupted, keepsDatasets: true } : undefined;
    const newModel = (weights?: string) =>
      smallResnet({ numClasses: 10, depth: config.model.depth, width: config.model.width, seed, device: run.device, ...(weights && { weights }) });
    const evaluate = (name: string, model: Model, baseline?: RobustnessReport) =>
      evaluateRobustness(model, {
        clean,
        domains: { [heldOut]: target },
        // Corruptions with the paper's branch only (clean BNs): an AdvBN model's other branch
        // would double the longest part of its evaluation for a figure no table leads with.
        ...(corruptions && { corruptions, corruptionBn: 'clean' as const }),
        ...(baseline && { baseline }),
        onProgress: (done, total, what) => progress.detail(`${label} · ${name} · eval ${what} (${done}/${total})`),
      });

    progress.step(`${label} · baseline`);
    const baseline = await newModel();
    let started = performance.now();
    const baseHistory = await fineTune(baseline, {
      data: train,
      method: 'erm',
      cut: 0,
      epochs: config.baseline.epochs,
      batchSize: config.batchSize,
      seed,
      optimizer: { type: 'adamw', lr: config.baseline.lr, weightDecay: config.baseline.weightDecay },
      schedule: { type: 'cosine' },
      callbacks: { onBatchEnd: (b) => progress.detail(`${label} · baseline · train batch ${b + 1}`) },
    });
    seconds.baseline = (performance.now() - started) / 1000;
    histories.baseline = { history: baseHistory.history, after: 0 };
    const weights = join(run.modelDir, `baseline-heldout_${heldOut}-seed${seed}.safetensors`);
    await saveInto(baseline, weights);
    const own = await evaluate('baseline', baseline);
    // The baseline is the reference of mCE, so against itself it scores exactly 1.
    reports.baseline = corruptions ? compareToBaseline(own, own) : own;
    baseline.dispose();
    for (const spec of run.methods) {
      progress.step(`${label} · ${spec.name}`);
      const model = await newModel(weights);
      started = performance.now();
      const history = await fineTune(model, {
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
        callbacks: { onBatchEnd: (b) => progress.detail(`${label} · ${spec.name} · train batch ${b + 1}`) },
      });
      seconds[spec.name] = (performance.now() - started) / 1000;
      histories[spec.name] = { history: history.history, after: baseHistory.epochs.length };
      if (run.saveModels) await saveInto(model, join(run.saveModels, `${spec.name}-heldout_${heldOut}-seed${seed}.safetensors`));
      reports[spec.name] = await evaluate(spec.name, model, own);
      model.dispose();
    }
  } finally {
    for (const d of datasets) d.dispose();
  }
  return { heldOut, seed, reports, seconds, histories, targetCount };
}
