// The Keras-style built-in callbacks: early stopping, best-weights checkpoints, CSV / JSON logs,
// the verbose progress line and the training-curves chart.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { csvLogger, earlyStopping, fineTune, InvalidOptionError, jsonLogger, modelCheckpoint, progressLogger, smallResnet, trainingCurves } from '../src/index.js';
import { labels, textProblems } from './text-fit.js';
import { separableData, tinyModel } from './helpers.js';

describe('built-in callbacks', () => {
  it('earlyStopping ends training when the monitored figure stops improving', async () => {
    using model = await tinyModel(0);
    // In 'max' mode a falling loss never improves: with patience 1 training stops after epoch 2.
    const stop = earlyStopping({ monitor: 'loss', mode: 'max', patience: 1 });
    const history = await fineTune(model, { data: separableData(16), epochs: 6, batchSize: 8, lr: 0.05, callbacks: [stop] });
    expect(history.epochs).toEqual([0, 1, 2]);
    expect(stop.stoppedEpoch).toBe(2);
    // Improving every epoch: no stop.
    // advAccuracy can be watched (AdvBN methods): by a change of 2, no accuracy improves, so training stops after epoch 1.
    const adv = earlyStopping({ monitor: 'advAccuracy', mode: 'min', minDelta: 2, patience: 0 });
    const advRun = await fineTune(model, { data: separableData(16), epochs: 4, batchSize: 8, lr: 0.05, callbacks: [adv] });
    expect(advRun.epochs).toEqual([0, 1]);
    const never = earlyStopping({ monitor: 'loss', patience: 0 });
    const all = await fineTune(model, { data: separableData(16), epochs: 3, batchSize: 8, lr: 1e-4, method: 'erm', callbacks: [never] });
    expect(all.epochs.length).toBe(3);
  });

  it('modelCheckpoint keeps the best weights, or every epoch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'advbn-cb-'));
    using model = await tinyModel(0);
    const best = modelCheckpoint({ path: join(dir, 'best.safetensors'), monitor: 'valAccuracy' });
    const every = modelCheckpoint({ path: join(dir, 'epoch-{epoch}.safetensors'), saveBestOnly: false });
    await fineTune(model, { data: separableData(16), validationData: separableData(8, 2), epochs: 2, batchSize: 8, callbacks: [best, every] });
    expect(existsSync(join(dir, 'best.safetensors'))).toBe(true);
    expect(best.best).toBeGreaterThanOrEqual(0);
    expect([0, 1].every((e) => existsSync(join(dir, `epoch-${e}.safetensors`)))).toBe(true);
    // The best file loads as weights of the same architecture.
    const reloaded = await smallResnet({ numClasses: model.numClasses, depth: 8, width: 8, device: 'cpu', weights: join(dir, 'best.safetensors') });
    expect(reloaded.weightsReport?.loaded).toBeGreaterThan(0);
    reloaded.dispose();
  });

  it('csvLogger and jsonLogger write one record per epoch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'advbn-cb-'));
    using model = await tinyModel(0);
    await fineTune(model, { data: separableData(16), epochs: 2, batchSize: 8, callbacks: [csvLogger(join(dir, 'h.csv')), jsonLogger(join(dir, 'h.jsonl'))] });
    const rows = readFileSync(join(dir, 'h.csv'), 'utf8').trim().split('\n');
    expect(rows[0]).toBe('epoch,loss,cleanLoss,advLoss,attackLoss,accuracy,advAccuracy,lr,valLoss,valAccuracy,skipped,valSkipped,timeMs');
    expect(rows.slice(1).map((r) => r.split(',')[0])).toEqual(['0', '1']);
    const lines = readFileSync(join(dir, 'h.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { epoch: number; loss: number });
    expect(lines.map((l) => l.epoch)).toEqual([0, 1]);
    expect(lines.every((l) => Number.isFinite(l.loss))).toBe(true);
  });

  it('csvLogger with append keeps the rows of the epochs before a resumed run and replaces the later ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'advbn-cb-'));
    const csv = join(dir, 'history.csv');
    const epochsIn = () =>
      readFileSync(csv, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((r) => r.split(',')[0]);
    const run = async (epochs: number, resume: boolean, append: boolean) => {
      using model = await tinyModel(0);
      return await fineTune(model, {
        data: separableData(16),
        epochs,
        batchSize: 8,
        schedule: { type: 'constant' },
        checkpoint: { dir },
        resume,
        callbacks: [csvLogger(csv, { append })],
      });
    };
    await run(1, false, true);
    const afterOne = readFileSync(join(dir, 'checkpoint.safetensors'));
    // Extended to 3 epochs: epoch 0's row stays, 1 and 2 follow.
    await run(3, true, true);
    expect(epochsIn()).toEqual(['0', '1', '2']);
    const rows = readFileSync(csv, 'utf8').split('\n');
    // Back to the checkpoint after epoch 0: the rows of epochs 1 and 2 are trained again and replaced, not repeated.
    writeFileSync(join(dir, 'checkpoint.safetensors'), afterOne);
    await run(3, true, true);
    expect(epochsIn()).toEqual(['0', '1', '2']);
    expect(readFileSync(csv, 'utf8').split('\n')[1]).toBe(rows[1]);
    // Without append the file starts afresh.
    writeFileSync(join(dir, 'checkpoint.safetensors'), afterOne);
    await run(3, true, false);
    expect(epochsIn()).toEqual(['1', '2']);
    expect(() => csvLogger(csv, { append: 'yes' as never })).toThrow(/"append" must be a boolean/);
  });

  it('csvLogger with append keeps the rows of a file written before the advAccuracy column, in the new columns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'advbn-cb-'));
    const csv = join(dir, 'history.csv');
    const old = 'epoch,loss,cleanLoss,advLoss,attackLoss,accuracy,lr,valLoss,valAccuracy,skipped,valSkipped,timeMs';
    writeFileSync(csv, `${old}\n0,1.5,0.7,0.8,0.9,0.5,0.001,,,0,,12.5\n1,1.4,0.6,0.8,0.9,0.5,0.001,,,0,,12.5\n`);
    // The run resumes in epoch 1 (the checkpoint's position): only epoch 0's row is kept.
    const logger = csvLogger(csv, { append: true });
    logger.onTrainBegin?.({ epochs: 2, stepsPerEpoch: 1, samples: 8 });
    logger.onEpochBegin?.(1, { lr: 0.001 });
    logger.onEpochEnd?.(1, { loss: 1.25, cleanLoss: 0.5, advLoss: 0.75, attackLoss: 0.8, accuracy: 0.625, advAccuracy: 0.375, lr: 0.001, timeMs: 10, skipped: 0 });
    const rows = readFileSync(csv, 'utf8').trim().split('\n');
    expect(rows).toEqual([
      'epoch,loss,cleanLoss,advLoss,attackLoss,accuracy,advAccuracy,lr,valLoss,valAccuracy,skipped,valSkipped,timeMs',
      '0,1.5,0.7,0.8,0.9,0.5,,0.001,,,0,,12.5',
      '1,1.25,0.5,0.75,0.8,0.625,0.375,0.001,,,0,,10',
    ]);
  });

  it('progressLogger prints a line per epoch with images/s, the time left and the losses; verbose: 1 adds it', async () => {
    using model = await tinyModel(0);
    const out: string[] = [];
    await fineTune(model, { data: separableData(16), epochs: 2, batchSize: 8, callbacks: [progressLogger({ write: (t: string) => out.push(t) })] });
    const lines = out.join('').trim().split('\n');
    // Not a terminal: one line per epoch, nothing per batch.
    expect(out).toHaveLength(2);
    // The time left of the run after every epoch but the last.
    expect(lines[0]).toMatch(/^Epoch 1\/2 2\/2 - \d+\.\ds \d+ img\/s - ETA \d+s - loss \S+ - clean \S+ - adv \S+ - acc \d+\.\d% - adv acc \d+\.\d% - lr 0\.001$/);
    expect(lines[1]).toMatch(/^Epoch 2\/2 2\/2 - \d+\.\ds \d+ img\/s - loss /);
    // A terminal: the bar is redrawn per batch (images/s, the epoch's ETA), then the epoch's line.
    const tty: string[] = [];
    await fineTune(model, { data: separableData(16), epochs: 1, batchSize: 4, callbacks: [progressLogger({ write: (t: string) => tty.push(t), isTTY: true })] });
    expect(tty).toHaveLength(5);
    expect(tty[1]).toMatch(/^\rEpoch 1\/1 2\/4 \[=+ +\] \d+ img\/s ETA \d+s loss \S+$/);
    expect(tty[4]!.startsWith('\r\u001b[2KEpoch 1/1 4/4 - ')).toBe(true);
    expect(tty[4]).toMatch(/ - lr 0\.001\n$/);
    await expect(fineTune(model, { data: separableData(8), epochs: 1, batchSize: 8, verbose: 2 as never })).rejects.toThrow(/verbose.*0 or 1/);
  });

  it('trainingCurves draws loss (both BN branches), accuracy, validation and chance when training ends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'advbn-cb-'));
    using model = await tinyModel(0);
    const svgPath = join(dir, 'charts', 'curves.svg');
    const curves = trainingCurves(svgPath);
    await fineTune(model, {
      data: separableData(16),
      validationData: separableData(8, 2),
      epochs: 3,
      batchSize: 8,
      lr: 0.05,
      callbacks: [curves, trainingCurves(join(dir, 'curves.png'))],
    });
    const svg = readFileSync(svgPath, 'utf8');
    expect(textProblems(svg)).toEqual([]);
    const text = labels(svg).map((l) => l.text);
    expect(text).toEqual(expect.arrayContaining(['training, clean BN', 'training, adversarial BN', 'validation, clean BN', 'chance 25%', 'Epoch']));
    expect(text).not.toContain('training, adversarial BN (loss only)');
    expect(text).toContain('Training curves (3 epochs, 16 training samples)');
    // Loss: clean, adversarial, validation; accuracy: clean, adversarial, validation.
    expect(svg.match(/<polyline/g)).toHaveLength(6);
    // The adversarial curves are dashed: one in each panel, the legend's sample a third.
    expect(svg.match(/stroke-dasharray="7 4"/g)).toHaveLength(3);
    expect(readFileSync(join(dir, 'curves.png')).subarray(1, 4).toString()).toBe('PNG');
    // ERM: one loss branch, no validation.
    await fineTune(model, { data: separableData(16), method: 'erm', epochs: 2, batchSize: 8, callbacks: [curves] });
    const erm = readFileSync(svgPath, 'utf8');
    expect(erm.match(/<polyline/g)).toHaveLength(2);
    expect(labels(erm).map((l) => l.text)).not.toContain('training, adversarial BN');
    expect(() => trainingCurves(join(dir, 'curves.jpg'))).toThrow(/\.svg or \.png/);
  });

  it('bad options and missing figures are named errors', async () => {
    expect(() => earlyStopping({ monitor: 'bogus' as never })).toThrow(InvalidOptionError);
    expect(() => earlyStopping({ patience: -1 })).toThrow(/patience/);
    expect(() => modelCheckpoint({ path: '' })).toThrow(/path/);
    using model = await tinyModel(0);
    // valLoss needs validationData.
    await expect(fineTune(model, { data: separableData(8), epochs: 1, batchSize: 8, callbacks: [earlyStopping()] })).rejects.toThrow(/valLoss.*validationData/);
    // advAccuracy needs the adversarial branch.
    await expect(fineTune(model, { data: separableData(8), epochs: 1, batchSize: 8, method: 'erm', callbacks: [earlyStopping({ monitor: 'advAccuracy' })] })).rejects.toThrow(
      /"advAccuracy" is not in the epoch logs.*advLoss\/advAccuracy/,
    );
  });
});
