// What the leave-one-domain-out runs share: the (held-out domain, seed) pairs, run side by side
// on the CPU, where the models are written, and the aggregation into results.json's figures.
import { cpuThreads, setCpuLanes, type DeviceName } from '../devices.js';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { saveWeights, type Model } from '../models.js';
import type { ComparisonResult, MethodResult } from '../report/index.js';
import { aggregateMethod, compareMethods, type PairOutcome } from './aggregate.js';
import type { MethodSpec } from './presets.js';
import type { Progress } from './progress.js';

/** One leave-one-domain-out run's settings. */
export interface PairRun<Config> {
  config: Config;
  methods: readonly MethodSpec[];
  seeds: readonly number[];
  device: DeviceName;
  dataDir?: string;
  progress: Progress;
  /** Where each pair's baseline weights go (the fine-tunes start from them). */
  modelDir: string;
  /** `--save-models`: every fine-tuned model is written here too (`modelDir` is then this folder). */
  saveModels?: string;
}

/** Saves weights, creating the folder first. */
export async function saveInto(model: Model, path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await saveWeights(model, path);
}

/** `work` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  return results;
}

/**
 * Runs the pairs, side by side on the CPU (one per compute thread, each in a lane of its own
 * threads: small models' ops then never wait on the other pair's), one after another on a GPU.
 */
export async function runPairs<Config, P>(run: PairRun<Config>, pairs: readonly P[], work: (pair: P) => Promise<PairOutcome>): Promise<PairOutcome[]> {
  if (run.device !== 'cpu') return mapLimited(pairs, 1, work);
  const before = cpuThreads();
  const parallel = Math.min(pairs.length, before.threads);
  setCpuLanes(parallel);
  try {
    return await mapLimited(pairs, parallel, work);
  } finally {
    setCpuLanes(before.lanes);
  }
}

/** Per model name its figures, and every comparison, from the pairs' reports. */
export function summarize(pairs: readonly PairOutcome[]): { methods: Record<string, MethodResult>; comparisons: ComparisonResult[] } {
  const names = Object.keys(pairs[0]!.reports);
  return {
    methods: Object.fromEntries(names.map((name) => [name, aggregateMethod(pairs, name)])),
    comparisons: compareMethods(pairs, names),
  };
}
