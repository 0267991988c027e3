import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  colorJitter,
  randomRotation,
  CORRUPTION_NAMES,
  InvalidDataError,
  InvalidOptionError,
  centerCrop,
  cifar10,
  corrupt,
  evaluate,
  fineTune,
  horizontalFlip,
  imageFolder,
  listCorruptions,
  mnist,
  normalize,
  resize,
  type BatchLogs,
  type Dataset,
} from '../src/index.js';
import { rejection, tinyModel } from './helpers.js';
import { batchArrays, pattern, tempDir, writeImage } from './image-files.js';

const tmp = tempDir('sources');
afterAll(() => tmp.cleanup());
const RAW = normalize([0, 0, 0], [1, 1, 1]);

/** Every batch of one pass, copied to host memory. */
async function collect(dataset: Dataset, options = {}) {
  const out: { images: Float32Array; shape: number[]; labels: Int32Array; skipped: readonly string[] }[] = [];
  for await (const batch of dataset.batches(options)) out.push({ ...(await batchArrays(batch)), skipped: batch.skipped ?? [] });
  return out;
}

/** `root/<class>/img<i>.png` (16x16; the class decides the bright quadrant), 4 classes x `perClass`. */
function separableFolder(name: string, perClass = 4): string {
  const root = join(tmp.path, name);
  ['a', 'b', 'c', 'd'].forEach((cls, label) => {
    for (let i = 0; i < perClass; i += 1) writeImage(join(root, cls, `img${i}.png`), pattern(16, 16, i, label), 16, 16, 'png');
  });
  return root;
}

describe('colorJitter and randomRotation', () => {
  it('change the pixels, draw per sample from the seed, and give the same pixels whatever the thread count', async () => {
    const root = separableFolder('jitter', 2);
    using plain = await imageFolder(root, { transforms: [RAW] });
    const transforms = [colorJitter({ brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }), randomRotation(30), RAW];
    using one = await imageFolder(root, { transforms, threads: 1 });
    using two = await imageFolder(root, { transforms, threads: 2 });
    const [base] = await collect(plain, { batchSize: 8, seed: 3 });
    const [a] = await collect(one, { batchSize: 8, seed: 3 });
    const [b] = await collect(two, { batchSize: 8, seed: 3 });
    const [c] = await collect(one, { batchSize: 8, seed: 4 });
    expect(Array.from(a!.images)).toEqual(Array.from(b!.images));
    expect(Array.from(a!.images)).not.toEqual(Array.from(base!.images));
    expect(Array.from(a!.images)).not.toEqual(Array.from(c!.images));
    expect(a!.images.every((v) => v >= 0 && v <= 1)).toBe(true);
  });
});

describe('imageFolder', () => {
  it('sorts the class folders, labels each file by its folder, and reads the pixels exactly (PNG)', async () => {
    const root = join(tmp.path, 'sorted');
    for (const [i, cls] of ['zebra', 'ant', 'moose'].entries()) {
      writeImage(join(root, cls, 'x1.png'), pattern(16, 16, i), 16, 16, 'png');
      writeImage(join(root, cls, 'nested', 'x2.png'), pattern(16, 16, i + 10), 16, 16, 'png');
    }
    writeFileSync(join(root, 'ant', 'notes.txt'), 'not an image');
    using data = await imageFolder(root, { transforms: [RAW] });
    expect(data.classNames).toEqual(['ant', 'moose', 'zebra']);
    expect([data.length, data.numClasses]).toEqual([6, 3]);
    expect(data.imageShape).toEqual([3, 16, 16]);
    const [batch] = await collect(data, { batchSize: 6 });
    expect(Array.from(batch!.labels)).toEqual([0, 0, 1, 1, 2, 2]);
    expect(batch!.shape).toEqual([6, 3, 16, 16]);
    // Sample 0 is ant/nested/x2.png (paths sorted): planar copy of pattern(16, 16, 1 + 10).
    const expected = pattern(16, 16, 11);
    for (const [x, y, c] of [
      [0, 0, 0],
      [5, 3, 1],
      [15, 15, 2],
    ] as const) {
      expect(batch!.images[(c * 16 + y) * 16 + x]).toBeCloseTo(expected[(y * 16 + x) * 3 + c]! / 255, 6);
    }

    using picked = await imageFolder(root, { classes: ['zebra', 'ant'], transforms: [RAW] });
    expect(picked.classNames).toEqual(['zebra', 'ant']);
    const [first] = await collect(picked, { batchSize: 8 });
    expect(Array.from(first!.labels)).toEqual([0, 0, 1, 1]);
  });

  it('fine-tunes a small ResNet on an image folder, and evaluates it', async () => {
    using data = await imageFolder(separableFolder('train'), { transforms: [horizontalFlip(0.5)] });
    expect(data.imageShape).toEqual([3, 16, 16]);
    using model = await tinyModel();
    const history = await fineTune(model, { data, epochs: 2, batchSize: 8, lr: 0.05 });
    expect(history.epochs).toEqual([0, 1]);
    expect(history.history.skipped).toEqual([0, 0]);
    expect(history.history.loss.every(Number.isFinite)).toBe(true);
    const result = await evaluate(model, data);
    expect([result.count, result.skipped]).toEqual([16, 0]);
  });

  it('a truncated JPEG ends the pass with an error naming it, or is skipped and counted with onBadSample: "skip"', async () => {
    const root = separableFolder('truncated');
    const good = writeImage(join(root, 'b', 'zz_truncated.jpg'), pattern(16, 16, 3, 1), 16, 16, 'jpeg');
    writeFileSync(join(root, 'b', 'zz_truncated.jpg'), good.subarray(0, Math.floor(good.length / 2)));
    using model = await tinyModel();

    using strict = await imageFolder(root);
    const err = await rejection(() => fineTune(model, { data: strict, epochs: 1, batchSize: 8 }));
    expect(err).toBeInstanceOf(InvalidDataError);
    expect(err.message).toContain(join(root, 'b', 'zz_truncated.jpg'));
    expect(err.message).toMatch(/truncated JPEG/);

    using lenient = await imageFolder(root, { onBadSample: 'skip' });
    expect(lenient.length).toBe(17);
    const batchLogs: BatchLogs[] = [];
    const history = await fineTune(model, {
      data: lenient,
      epochs: 2,
      batchSize: 8,
      validationData: lenient,
      callbacks: { onBatchEnd: (_, logs) => void batchLogs.push(logs) },
    });
    expect(history.history.skipped).toEqual([1, 1]);
    expect(history.history.valSkipped).toEqual([1, 1]);
    const named = batchLogs.flatMap((l) => l.skippedSamples ?? []);
    expect(named).toHaveLength(2);
    expect(named[0]).toContain('zz_truncated.jpg');
    const result = await evaluate(model, lenient);
    expect([result.count, result.skipped]).toEqual([16, 1]);
  });

  it('a JPEG cut mid-scan with an end marker appended is a bad sample naming the file and the missing MCUs', async () => {
    const root = separableFolder('cut-scan');
    const path = join(root, 'c', 'zz_cut.jpg');
    const good = writeImage(path, pattern(16, 16, 5, 2), 16, 16, 'jpeg');
    const sos = good.indexOf(Buffer.from([0xff, 0xda]));
    const dataStart = sos + 2 + good.readUInt16BE(sos + 2);
    let end = dataStart + Math.floor((good.length - 2 - dataStart) / 2);
    while (good[end - 1] === 0xff) end -= 1;
    writeFileSync(path, Buffer.concat([good.subarray(0, end), Buffer.from([0xff, 0xd9])]));

    using strict = await imageFolder(root, { transforms: [RAW] });
    const err = await rejection(() => collect(strict, { batchSize: 8 }));
    expect(err).toBeInstanceOf(InvalidDataError);
    expect(err.message).toContain(path);
    expect(err.message).toMatch(/truncated JPEG: scan data ends after \d+ of \d+ MCUs/);

    using lenient = await imageFolder(root, { transforms: [RAW], onBadSample: 'skip' });
    const batches = await collect(lenient, { batchSize: 8 });
    expect(batches.flatMap((b) => b.skipped)).toEqual([expect.stringContaining('zz_cut.jpg')]);
    expect(batches.reduce((n, b) => n + b.labels.length, 0)).toBe(16);
  });

  it('images of different sizes without a resize end the pass with a clear error; a resize fixes it', async () => {
    const root = join(tmp.path, 'mixed');
    writeImage(join(root, 'a', '1.png'), pattern(16, 16, 1), 16, 16, 'png');
    writeImage(join(root, 'b', '2.png'), pattern(20, 18, 2), 20, 18, 'png');
    using mixed = await imageFolder(root);
    expect(mixed.imageShape).toEqual([3, 16, 16]); // the first image's size
    const err = await rejection(() => collect(mixed, { batchSize: 1 }));
    expect(err).toBeInstanceOf(InvalidDataError);
    expect(err.message).toContain(join(root, 'b', '2.png'));
    expect(err.message).toMatch(/20x18x3 .* 16x16x3; add a resize or crop/);

    using resized = await imageFolder(root, { transforms: [resize(12), RAW] });
    expect(resized.imageShape).toEqual([3, 12, 12]);
    expect((await collect(resized, { batchSize: 2 }))[0]!.shape).toEqual([2, 3, 12, 12]);
  });

  it('stops its worker threads when a loop breaks early', async () => {
    using data = await imageFolder(separableFolder('abandon', 8), { threads: 2, prefetch: 4 });
    const threads = () => readdirSync('/proc/self/task').length;
    await collect(data, { batchSize: 2 }); // warm up libuv's pool
    const before = threads();
    for await (const batch of data.batches({ batchSize: 2 })) {
      expect(batch.size).toBe(2);
      break;
    }
    for (let i = 0; i < 50 && threads() > before; i += 1) await new Promise((r) => setTimeout(r, 20));
    expect(threads()).toBeLessThanOrEqual(before);
    expect((await collect(data, { batchSize: 32 }))[0]!.labels).toHaveLength(32);
  });

  it('rejects bad options with typed errors naming the option and value', async () => {
    const root = separableFolder('options', 1);
    const invalid = async (options: object, option: string, text: RegExp) => {
      const err = await rejection(() => imageFolder(root, options as never));
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect((err as InvalidOptionError).option).toBe(option);
      expect(err.message).toMatch(text);
    };
    await invalid({ transforms: [centerCrop(0)] }, 'transforms[0].size', /got 0/);
    await invalid({ transforms: [horizontalFlip(), { type: 'blur' }] }, 'transforms[1].type', /got "blur"/);
    await invalid({ transforms: [corrupt({ name: 'rain' as never, severity: 2 })] }, 'transforms[0].name', /got "rain"/);
    await invalid({ transforms: [corrupt({ name: 'fog', severity: 6 })] }, 'transforms[0].severity', /got 6/);
    await invalid({ transforms: [RAW, centerCrop(8)] }, 'transforms[1].type', /normalize must be the last/);
    await invalid({ transforms: [normalize([0.5], [0.5])] }, 'transforms[0].mean', /3 numbers/);
    await invalid({ onBadSample: 'ignore' }, 'onBadSample', /got "ignore"/);
    await invalid({ threads: -1 }, 'threads', /got -1/);
    await invalid({ transform: [] }, 'transform', /unknown option/);
    const missing = await rejection(() => imageFolder(join(root, 'nope')));
    expect(missing).toBeInstanceOf(InvalidDataError);
    expect(missing.message).toContain(join(root, 'nope'));
  });
});

describe('mnist and cifar10', () => {
  it('loads MNIST IDX files written by the test', async () => {
    const n = 12;
    const images = Buffer.alloc(16 + n * 28 * 28);
    images.writeUInt32BE(2051, 0);
    images.writeUInt32BE(n, 4);
    images.writeUInt32BE(28, 8);
    images.writeUInt32BE(28, 12);
    for (let i = 0; i < n; i += 1) images.fill(i * 20, 16 + i * 784, 16 + (i + 1) * 784);
    const labels = Buffer.alloc(8 + n);
    labels.writeUInt32BE(2049, 0);
    labels.writeUInt32BE(n, 4);
    for (let i = 0; i < n; i += 1) labels[8 + i] = i % 10;
    const [imagesPath, labelsPath] = [join(tmp.path, 'images-idx3-ubyte'), join(tmp.path, 'labels-idx1-ubyte')];
    writeFileSync(imagesPath, images);
    writeFileSync(labelsPath, labels);

    using data = await mnist({ images: imagesPath, labels: labelsPath });
    expect([data.length, data.numClasses]).toEqual([n, 10]);
    expect(data.imageShape).toEqual([1, 28, 28]);
    expect(data.classNames[3]).toBe('3');
    const batches = await collect(data, { batchSize: 5 });
    expect(batches.map((b) => b.labels.length)).toEqual([5, 5, 2]);
    expect(batches.flatMap((b) => Array.from(b.labels))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    expect(batches[0]!.images[784 * 2 + 100]).toBeCloseTo(40 / 255, 6);

    writeFileSync(labelsPath, labels.subarray(0, 10));
    const err = await rejection(() => mnist({ images: imagesPath, labels: labelsPath }));
    expect(err).toBeInstanceOf(InvalidDataError);
    expect(err.message).toContain(labelsPath);
  });

  it('loads CIFAR-10 batch files; corrupted passes are the same for the same seed', async () => {
    const records = Buffer.alloc(4 * 3073);
    for (let r = 0; r < 4; r += 1) {
      records[r * 3073] = r;
      for (let p = 0; p < 3072; p += 1) records[r * 3073 + 1 + p] = (p * 7 + r * 31) % 256;
    }
    const file = join(tmp.path, 'data_batch_1.bin');
    writeFileSync(file, records);
    const transforms = [corrupt({ name: 'gaussian_noise', severity: 3 })];
    using data = await cifar10({ files: [file], transforms });
    expect(data.classNames.slice(0, 2)).toEqual(['airplane', 'automobile']);
    expect(data.imageShape).toEqual([3, 32, 32]);
    const a = await collect(data, { batchSize: 4, seed: 1 });
    const b = await collect(data, { batchSize: 4, seed: 1 });
    const c = await collect(data, { batchSize: 4, seed: 2 });
    expect(Array.from(a[0]!.labels)).toEqual([0, 1, 2, 3]);
    expect(a[0]!.images).toEqual(b[0]!.images);
    expect(a[0]!.images).not.toEqual(c[0]!.images);
    using clean = await cifar10({ files: [file] });
    const original = (await collect(clean, { batchSize: 4 }))[0]!.images;
    expect(original[5]).toBeCloseTo(35 / 255, 6);
    expect(a[0]!.images).not.toEqual(original);
  });

  it('lists the 19 corruptions, the same in TypeScript and native code', () => {
    expect(listCorruptions()).toEqual([...CORRUPTION_NAMES]);
    expect(CORRUPTION_NAMES).toHaveLength(19);
  });
});
