import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidDataError, InvalidOptionError, evaluate, fineTune, fromArrays, type Model } from '../src/index.js';
import { CHANNELS, NUM_CLASSES, SIZE, rejection, separableData, tinyModel } from './helpers.js';

describe('fromArrays', () => {
  it('exposes length, classes and the image shape, for both layouts and uint8 input', () => {
    const { images, labels } = separableData(8);
    using dataset = fromArrays(images, labels);
    expect(dataset.length).toBe(8);
    expect(dataset.numClasses).toBe(NUM_CLASSES);
    expect(dataset.imageShape).toEqual([CHANNELS, SIZE, SIZE]);

    const bytes = new Uint8Array(8 * SIZE * SIZE * CHANNELS).fill(128);
    const nhwc = fromArrays({ data: bytes, shape: [8, SIZE, SIZE, CHANNELS], layout: 'nhwc' }, labels, { numClasses: 6 });
    expect(nhwc.imageShape).toEqual([CHANNELS, SIZE, SIZE]);
    expect(nhwc.numClasses).toBe(6);
    nhwc.dispose();
    nhwc.dispose(); // idempotent
  });

  it('iterates batches in a seeded order and drops the remainder on request', async () => {
    const { images, labels } = separableData(10);
    using dataset = fromArrays(images, labels);
    const sizes: number[] = [];
    for await (const batch of dataset.batches({ batchSize: 4 })) sizes.push(batch.size);
    expect(sizes).toEqual([4, 4, 2]);
    sizes.length = 0;
    for await (const batch of dataset.batches({ batchSize: 4, dropLast: true, shuffle: true, seed: 3 })) sizes.push(batch.size);
    expect(sizes).toEqual([4, 4]);
  });

  it('rejects NaN and Infinity pixels', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const { images, labels } = separableData(4);
      images.data[17] = bad;
      expect(() => fromArrays(images, labels)).toThrow(InvalidDataError);
    }
  });

  it('rejects labels out of range', () => {
    const { images, labels } = separableData(4);
    labels[2] = -1;
    expect(() => fromArrays(images, labels)).toThrow(InvalidDataError);
    labels[2] = NUM_CLASSES;
    expect(() => fromArrays(images, labels, { numClasses: NUM_CLASSES })).toThrow(InvalidDataError);
  });

  it('rejects wrong shapes and lengths, naming what is wrong', () => {
    const { images, labels } = separableData(4);
    const threeDims = () => fromArrays({ ...images, shape: [4, CHANNELS, SIZE] as never }, labels);
    expect(threeDims).toThrow(InvalidDataError);
    expect(threeDims).toThrow(/4 dimensions/);
    const wrongLength = () => fromArrays({ ...images, shape: [4, CHANNELS, SIZE, SIZE + 1] }, labels);
    expect(wrongLength).toThrow(InvalidDataError);
    expect(wrongLength).toThrow(new RegExp(`has ${images.data.length} values`));
    expect(() => fromArrays(images, labels.subarray(0, 3))).toThrow(/labels has 3 entries/);
    expect(() => fromArrays(images, Array.from(labels) as never)).toThrow(InvalidOptionError);
    expect(() => fromArrays({ ...images, data: Array.from(images.data) as never }, labels)).toThrow(/images.data/);
  });
});

describe('data that does not fit the model', () => {
  let model: Model;
  beforeAll(async () => {
    model = await tinyModel();
  });
  afterAll(() => model.dispose());

  it('rejects a dataset with more classes than the model', async () => {
    const { images, labels } = separableData(8);
    labels[0] = 5;
    using dataset = fromArrays(images, labels);
    const err = await rejection(() => fineTune(model, { data: dataset, epochs: 1 }));
    expect(err).toBeInstanceOf(InvalidDataError);
    expect(err.message).toMatch(/numClasses 6 .* 4 classes/);
  });

  it('rejects plain arrays whose labels exceed the model classes', async () => {
    const { images, labels } = separableData(8);
    labels[0] = 7;
    await expect(fineTune(model, { data: { images, labels }, epochs: 1 })).rejects.toThrow(InvalidDataError);
  });

  it('rejects images with the wrong number of channels', async () => {
    const gray = { data: new Float32Array(8 * SIZE * SIZE), shape: [8, 1, SIZE, SIZE] as [number, number, number, number] };
    const err = await rejection(() => evaluate(model, { images: gray, labels: new Int32Array(8) }));
    expect(err).toBeInstanceOf(InvalidDataError);
    expect(err.message).toContain('1-channel');
  });

  it('rejects a data option that is neither a dataset nor arrays', async () => {
    const err = await rejection(() => fineTune(model, { data: [1, 2, 3] as never }));
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.message).toContain('"data"');
  });
});
