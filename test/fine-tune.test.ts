import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbortError, csvLogger, evaluate, fineTune, fromArrays, jsonLogger, type BatchLogs, type EpochLogs, type History } from '../src/index.js';
import { rejection, separableData, tinyModel } from './helpers.js';

const train = separableData(64, 1);
const validation = separableData(32, 2);

/** History without wall-clock times, which legitimately differ between runs. */
function withoutTimes(history: History) {
  const { timeMs: _timeMs, ...series } = history.history;
  return { epochs: history.epochs, series, params: history.params };
}

describe('fineTune with AdvBN', () => {
  it('lowers the loss, reports finite clean and adversarial losses, and creates the adv BN branch', async () => {
    using model = await tinyModel();
    expect(model.hasAdvBn).toBe(false);
    const history = await fineTune(model, {
      data: train,
      epochs: 4,
      batchSize: 16,
      lr: 0.05,
      cut: 1,
      validationData: validation,
    });
    const { loss, cleanLoss, advLoss, attackLoss, accuracy, lr, timeMs, valLoss, valAccuracy } = history.history;
    expect(history.epochs).toEqual([0, 1, 2, 3]);
    for (const series of [loss, cleanLoss, advLoss!, attackLoss!, accuracy, lr, timeMs, valLoss!, valAccuracy!]) {
      expect(series).toHaveLength(4);
      for (const value of series) expect(Number.isFinite(value)).toBe(true);
    }
    expect(advLoss![0]).toBeGreaterThanOrEqual(cleanLoss[0]!);
    expect(loss[3]).toBeLessThan(loss[0]!);
    expect(cleanLoss[3]).toBeLessThan(cleanLoss[0]!);
    // Default step schedule: x0.1 from epoch floor(4 / 2) = 2.
    expect(lr[0]).toBeCloseTo(0.05);
    expect(lr[2]).toBeCloseTo(0.005);
    expect(history.params).toMatchObject({ method: 'advbn', cut: 1, epochs: 4, batchSize: 16, stepsPerEpoch: 4, samples: 64 });
    expect(model.hasAdvBn).toBe(true);
  });

  it('is deterministic: the same seeds give the same history', async () => {
    const run = async () => {
      using model = await tinyModel(7);
      return await fineTune(model, { data: train, epochs: 2, batchSize: 16, seed: 3, lr: 0.02 });
    };
    const [a, b] = [await run(), await run()];
    expect(withoutTimes(a)).toEqual(withoutTimes(b));
  });

  it('calls every callback hook in order with numeric logs', async () => {
    using model = await tinyModel();
    const calls: string[] = [];
    const batchLogs: BatchLogs[] = [];
    const epochLogs: EpochLogs[] = [];
    await fineTune(model, {
      data: train,
      epochs: 2,
      batchSize: 32,
      callbacks: [
        {
          onTrainBegin: (logs) => void calls.push(`trainBegin:${logs.epochs}x${logs.stepsPerEpoch}`),
          onEpochBegin: async (epoch) => {
            await new Promise((resolve) => setTimeout(resolve, 1)); // async hooks are awaited
            calls.push(`epochBegin:${epoch}`);
          },
          onBatchBegin: (batch) => void calls.push(`batchBegin:${batch}`),
          onBatchEnd: (batch, logs) => {
            calls.push(`batchEnd:${batch}`);
            batchLogs.push(logs);
          },
          onEpochEnd: (epoch, logs) => {
            calls.push(`epochEnd:${epoch}`);
            epochLogs.push(logs);
          },
          onTrainEnd: () => void calls.push('trainEnd'),
        },
        { onTrainEnd: () => void calls.push('secondCallback:trainEnd') },
      ],
    });
    const epoch = (e: number) => [`epochBegin:${e}`, 'batchBegin:0', 'batchEnd:0', 'batchBegin:1', 'batchEnd:1', `epochEnd:${e}`];
    expect(calls).toEqual(['trainBegin:2x2', ...epoch(0), ...epoch(1), 'trainEnd', 'secondCallback:trainEnd']);
    expect(batchLogs[0]).toMatchObject({ batch: 0, size: 32 });
    for (const logs of batchLogs) {
      for (const key of ['loss', 'cleanLoss', 'advLoss', 'attackLoss', 'accuracy', 'advAccuracy', 'lr'] as const) {
        expect(Number.isFinite(logs[key])).toBe(true);
      }
    }
    expect(Object.keys(epochLogs[0]!).sort()).toEqual(['accuracy', 'advAccuracy', 'advLoss', 'attackLoss', 'cleanLoss', 'loss', 'lr', 'skipped', 'timeMs']);
  });

  it('aborts with AbortError through an AbortSignal and leaves the model usable', async () => {
    using model = await tinyModel();
    const controller = new AbortController();
    let batches = 0;
    const err = await rejection(() =>
      fineTune(model, {
        data: train,
        epochs: 5,
        batchSize: 16,
        signal: controller.signal,
        callbacks: {
          onBatchEnd: () => {
            batches += 1;
            if (batches === 2) controller.abort(new Error('user pressed stop'));
          },
        },
      }),
    );
    expect(err).toBeInstanceOf(AbortError);
    expect(err.name).toBe('AbortError');
    expect(batches).toBe(2);
    // The model is not busy and not broken: it trains and evaluates again.
    await expect(fineTune(model, { data: train, epochs: 1, batchSize: 32 })).resolves.toBeTruthy();
    const result = await evaluate(model, validation);
    expect(Number.isFinite(result.loss)).toBe(true);
  });

  it('keeps the event loop running while training', async () => {
    using model = await tinyModel();
    let ticks = 0;
    const timer = setInterval(() => {
      ticks += 1;
    }, 5);
    const started = performance.now();
    try {
      // Whole-batch steps (64 images), so each step takes far longer than the 5 ms tick.
      await fineTune(model, { data: train, epochs: 6, batchSize: 64 });
    } finally {
      clearInterval(timer);
    }
    const elapsed = performance.now() - started;
    // Blocking steps would let the timer fire only between steps (6 steps here, ~1 tick each);
    // a free event loop ticks about every 5 ms. Allow a 4x slowdown for a loaded machine.
    const steps = 6;
    expect(ticks).toBeGreaterThan(3 * steps);
    expect(ticks).toBeGreaterThanOrEqual(Math.floor(elapsed / 20));
  });

  it('trains with ERM, AdamW and a cosine schedule, without adversarial logs', async () => {
    using model = await tinyModel();
    using data = fromArrays(train.images, train.labels);
    const history = await fineTune(model, {
      data,
      method: 'erm',
      cut: 0,
      epochs: 2,
      batchSize: 32,
      optimizer: { type: 'adamw', lr: 1e-3 },
      schedule: { type: 'cosine', minLr: 1e-5 },
    });
    expect(history.history.advLoss).toBeUndefined();
    expect(history.history.advAccuracy).toBeUndefined();
    expect(history.history.loss.every(Number.isFinite)).toBe(true);
    expect(history.history.lr[1]).toBeLessThan(history.history.lr[0]!);
    expect(model.hasAdvBn).toBe(false);
    expect(data.length).toBe(64); // a caller's Dataset is not disposed by fineTune
  });
});

/** Runs fineTune with a callback that keeps every batch's and epoch's logs, and the CSV / JSON loggers. */
async function logged(options: Omit<Parameters<typeof fineTune>[1], 'callbacks'>, seed = 0) {
  const dir = mkdtempSync(join(tmpdir(), 'advbn-advacc-'));
  const batches: BatchLogs[][] = [];
  const epochs: EpochLogs[] = [];
  using model = await tinyModel(seed);
  const history = await fineTune(model, {
    ...options,
    callbacks: [
      { onEpochBegin: () => void batches.push([]), onBatchEnd: (_b, logs) => void batches.at(-1)!.push(logs), onEpochEnd: (_e, logs) => void epochs.push(logs) },
      csvLogger(join(dir, 'h.csv')),
      jsonLogger(join(dir, 'h.jsonl')),
    ],
  });
  const [header, ...rows] = readFileSync(join(dir, 'h.csv'), 'utf8').trim().split('\n');
  const column = header!.split(',').indexOf('advAccuracy');
  const csv = rows.map((r) => r.split(',')[column]);
  const json = readFileSync(join(dir, 'h.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as EpochLogs);
  return { history, batches, epochs, csv, json };
}

describe("the adversarial branch's training accuracy", () => {
  it('advbn: every batch and epoch reports advAccuracy, correct / count of the adversarial pass, the same in history, CSV and JSON logs', async () => {
    const { history, batches, epochs, csv, json } = await logged({ data: train, epochs: 3, batchSize: 16, lr: 0.05, seed: 4 });
    const advAccuracy = history.history.advAccuracy!;
    expect(advAccuracy).toHaveLength(3);
    for (const [e, logs] of batches.entries()) {
      expect(logs).toHaveLength(4);
      let correct = 0;
      for (const b of logs) {
        expect(b.advAccuracy).toBeGreaterThanOrEqual(0);
        expect(b.advAccuracy).toBeLessThanOrEqual(1);
        // A count of hits over the batch: advAccuracy * size is a whole number.
        const hits = b.advAccuracy! * b.size;
        expect(Math.abs(hits - Math.round(hits))).toBeLessThan(1e-9);
        correct += Math.round(hits);
      }
      // The epoch's figure is the sum of the batches' hits over its samples.
      expect(epochs[e]!.advAccuracy).toBe(correct / 64);
      expect(advAccuracy[e]).toBe(correct / 64);
    }
    expect(epochs.map((l) => l.advAccuracy)).toEqual(advAccuracy);
    expect(json.map((l) => l.advAccuracy)).toEqual(advAccuracy);
    expect(csv).toEqual(advAccuracy.map(String));
    // Counted apart from the clean branch: on worst-case features it is not the clean accuracy at every batch.
    expect(batches.flat().some((b) => b.advAccuracy !== b.accuracy)).toBe(true);
  });

  it('with no attack step the adversarial pass sees the clean features through a copy of the clean BNs: the first batch agrees with the clean branch', async () => {
    const { batches } = await logged({ data: train, epochs: 1, batchSize: 16, lr: 0.05, advbn: { steps: 0 } }, 3);
    // advbn(x; 1, 1) = x and the adversarial BNs start as copies of the clean ones, so the
    // adversarial pass of the first step is the clean one.
    const first = batches[0]![0]!;
    expect(first.advAccuracy).toBe(first.accuracy);
    expect(first.advLoss).toBeCloseTo(first.cleanLoss, 5);
  });

  it('erm and the style-only methods have no adversarial branch: no advAccuracy anywhere, an empty CSV cell', async () => {
    for (const method of ['erm', 'mixstyle'] as const) {
      const { history, batches, epochs, csv, json } = await logged({ data: separableData(32), epochs: 2, batchSize: 16, method });
      expect(history.history.advAccuracy, method).toBeUndefined();
      expect(
        batches.flat().every((b) => !('advAccuracy' in b)),
        method,
      ).toBe(true);
      expect(
        epochs.every((l) => !('advAccuracy' in l)),
        method,
      ).toBe(true);
      expect(
        json.every((l) => !('advAccuracy' in l)),
        method,
      ).toBe(true);
      expect(csv).toEqual(['', '']);
    }
  });
});

describe('fineTune methods', () => {
  it('runs mixstyle, dsu, advbn with augmix and the AdvBN combinations, each lowering the loss deterministically', async () => {
    const data = separableData(32);
    const combinations = [{ method: 'advbn_mixstyle' as const }, { method: 'advbn_dsu' as const }];
    for (const options of [{ method: 'mixstyle' as const }, { method: 'dsu' as const }, { method: 'advbn' as const, augmix: true }, ...combinations]) {
      const runs = [];
      for (let i = 0; i < 2; i += 1) {
        const model = await tinyModel(2);
        runs.push(await fineTune(model, { data, epochs: 3, batchSize: 16, lr: 0.05, ...options }));
        model.dispose();
      }
      expect(runs[1]!.history.loss).toEqual(runs[0]!.history.loss);
      expect(runs[1]!.history.accuracy).toEqual(runs[0]!.history.accuracy);
      const loss = runs[0]!.history.cleanLoss;
      expect(loss[2]!).toBeLessThan(loss[0]!);
      // The combinations are adversarial: they log the attack and the adversarial branch's loss.
      const adversarial = options.method.startsWith('advbn');
      const advLoss = runs[0]!.history.advLoss;
      expect(advLoss !== undefined && advLoss.length === 3 && advLoss.every((v) => Number.isFinite(v))).toBe(adversarial);
      const advAccuracy = runs[0]!.history.advAccuracy;
      expect(advAccuracy !== undefined && advAccuracy.length === 3 && advAccuracy.every((v) => v >= 0 && v <= 1)).toBe(adversarial);
      expect(runs[1]!.history.advAccuracy).toEqual(advAccuracy);
    }
  });

  it('AugMix changes what the model sees', async () => {
    const data = separableData(32);
    const plain = await tinyModel(2);
    const mixed = await tinyModel(2);
    const a = await fineTune(plain, { data, epochs: 1, batchSize: 16, method: 'erm' });
    const b = await fineTune(mixed, { data, epochs: 1, batchSize: 16, method: 'erm', augmix: true });
    expect(b.history.loss).not.toEqual(a.history.loss);
  });
});
