import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError, InvalidOptionError, evaluate, fineTune, fromArrays, type Model } from '../src/index.js';
import { NUM_CLASSES, rejection, separableData, tinyModel, toNhwc } from './helpers.js';

const data = separableData(24, 5);

describe('Model', () => {
  let model: Model;
  beforeAll(async () => {
    model = await tinyModel(2);
  });
  afterAll(() => model.dispose());

  it('describes itself', () => {
    expect(model.arch).toBe('small_resnet');
    expect(model.numClasses).toBe(NUM_CLASSES);
    expect(model.numStages).toBe(3);
    expect(model.inChannels).toBe(3);
    expect(model.device).toBe('cpu');
    expect(model.parameterCount).toBeGreaterThan(1000);
    expect(model.hasAdvBn).toBe(false);
  });

  it('predicts logits and classes with the right shapes', async () => {
    const prediction = await model.predict(data.images, { batchSize: 10 });
    expect(prediction.numClasses).toBe(NUM_CLASSES);
    expect(prediction.logits).toBeInstanceOf(Float32Array);
    expect(prediction.logits).toHaveLength(24 * NUM_CLASSES);
    expect(prediction.classes).toBeInstanceOf(Int32Array);
    expect(prediction.classes).toHaveLength(24);
    for (const c of prediction.classes) expect(c >= 0 && c < NUM_CLASSES).toBe(true);
    expect(prediction.logits.every(Number.isFinite)).toBe(true);
  });

  it('gives identical predictions for NCHW and NHWC input, and for a Dataset', async () => {
    const nchw = await model.predict(data.images);
    const nhwc = await model.predict(toNhwc(data.images));
    expect(Array.from(nhwc.logits)).toEqual(Array.from(nchw.logits));
    using dataset = fromArrays(data.images, data.labels);
    const fromDataset = await model.predict(dataset);
    expect(Array.from(fromDataset.logits)).toEqual(Array.from(nchw.logits));
  });

  it('evaluates on the clean branch, and the adv branch only after an AdvBN fine-tune', async () => {
    const clean = await evaluate(model, data);
    expect(clean).toMatchObject({ count: 24, bn: 'clean' });
    expect(Number.isFinite(clean.loss)).toBe(true);
    expect(clean.accuracy).toBeGreaterThanOrEqual(0);
    expect(clean.accuracy).toBeLessThanOrEqual(1);

    const err = await rejection(() => evaluate(model, data, { bn: 'adv' }));
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as InvalidOptionError).option).toBe('bn');
    expect(err.message).toContain('"adv"');
    await expect(model.predict(data.images, { bn: 'adv' })).rejects.toThrow(InvalidOptionError);

    await fineTune(model, { data, epochs: 1, batchSize: 12 });
    const adv = await evaluate(model, data, { bn: 'adv', batchSize: 7 });
    expect(adv).toMatchObject({ count: 24, bn: 'adv' });
    expect(Number.isFinite(adv.loss)).toBe(true);
    const advPrediction = await model.predict(data.images, { bn: 'adv' });
    expect(advPrediction.logits).toHaveLength(24 * NUM_CLASSES);
  });
});

describe('dispose', () => {
  it('rejects every use after dispose with DisposedError, and is idempotent', async () => {
    const model = await tinyModel();
    model.dispose();
    model.dispose();
    expect(model.isDisposed).toBe(true);
    await expect(model.predict(data.images)).rejects.toThrow(DisposedError);
    await expect(evaluate(model, data)).rejects.toThrow(DisposedError);
    await expect(fineTune(model, { data, epochs: 1 })).rejects.toThrow(DisposedError);
  });

  it('supports Symbol.dispose and `using`', async () => {
    const model = await tinyModel();
    model[Symbol.dispose]();
    expect(model.isDisposed).toBe(true);
    let escaped: Model | undefined;
    {
      using scoped = await tinyModel();
      escaped = scoped;
      expect(scoped.isDisposed).toBe(false);
    }
    expect(escaped.isDisposed).toBe(true);
  });

  it('disposing a dataset makes its batches unavailable', async () => {
    const dataset = fromArrays(data.images, data.labels);
    dataset.dispose();
    const iterate = async () => {
      for await (const _ of dataset.batches()) {
        // unreachable
      }
    };
    await expect(iterate()).rejects.toThrow(DisposedError);
  });
});
