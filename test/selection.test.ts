import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { concat, type Dataset, fromArrays, imageFolder, InvalidDataError, InvalidOptionError, normalize, resize, split, subset } from '../src/index.js';
import { rejection } from './helpers.js';
import { batchArrays, pattern, tempDir, writeImage } from './image-files.js';

const tmp = tempDir('selection');
afterAll(() => tmp.cleanup());

/** `n` 1x2x2 images whose pixels all equal their index, labelled `label(i)`. */
function indexed(n: number, label: (i: number) => number, numClasses?: number): Dataset {
  const images = new Float32Array(n * 4).map((_, k) => Math.floor(k / 4));
  const labels = Int32Array.from({ length: n }, (_, i) => label(i));
  return fromArrays({ data: images, shape: [n, 1, 2, 2] }, labels, numClasses === undefined ? {} : { numClasses });
}

/** (identity, label) of every sample in dataset order: identity = first pixel. */
async function samples(dataset: Dataset): Promise<{ ids: number[]; labels: number[] }> {
  const ids: number[] = [];
  const labels: number[] = [];
  for await (const batch of dataset.batches({ batchSize: 7 })) {
    const arrays = await batchArrays(batch);
    const size = arrays.images.length / batch.size;
    for (let i = 0; i < batch.size; i += 1) {
      ids.push(arrays.images[i * size] as number);
      labels.push(arrays.labels[i] as number);
    }
  }
  return { ids, labels };
}

const threeClasses = (i: number) => (i % 2 === 0 ? 0 : i % 5 < 3 ? 1 : 2);

describe('subset', () => {
  it('keeps the given indices in order, repeats included, with their labels', async () => {
    const data = indexed(20, threeClasses);
    const picked = subset(data, [5, 0, 19, 5]);
    expect(picked.length).toBe(4);
    expect(picked.numClasses).toBe(3);
    expect(await samples(picked)).toEqual({ ids: [5, 0, 19, 5], labels: [5, 0, 19, 5].map(threeClasses) });
  });

  it('draws a seeded random sample without replacement, in dataset order', async () => {
    const data = indexed(50, threeClasses);
    const a = (await samples(subset(data, { limit: 10, seed: 3 }))).ids;
    expect(a).toEqual((await samples(subset(data, { limit: 10, seed: 3 }))).ids);
    expect(a).not.toEqual((await samples(subset(data, { limit: 10, seed: 4 }))).ids);
    expect(new Set(a).size).toBe(10);
    expect([...a].sort((x, y) => x - y)).toEqual(a);
    expect(subset(data, { limit: 500 }).length).toBe(50);
  });

  it('outlives the dataset it views', async () => {
    const data = indexed(8, (i) => i % 2);
    const picked = subset(data, [7, 6]);
    data.dispose();
    expect((await samples(picked)).ids).toEqual([7, 6]);
  });

  it('refuses bad selections by name', async () => {
    const data = indexed(8, (i) => i % 2);
    expect(() => subset(data, [])).toThrow(/subset: .*selection.*non-empty/);
    expect(() => subset(data, [1, 8])).toThrow(InvalidOptionError);
    expect(() => subset(data, [1, 8])).toThrow(/selection\[1\].*0 to 7/);
    expect(() => subset(data, [1.5])).toThrow(/selection\[0\]/);
    expect(() => subset(data, { limit: 0 })).toThrow(/limit/);
    expect(() => subset(data, { limit: 2, seeds: 1 } as never)).toThrow(/seeds/);
    expect(() => subset({ length: 3 } as never, [0])).toThrow(/dataset made by this library/);
  });
});

describe('split', () => {
  it('is class-stratified, disjoint, complete and seeded', async () => {
    const data = indexed(100, threeClasses);
    const [train, val] = split(data, [0.8, 0.2], { seed: 7 });
    const a = await samples(train as Dataset);
    const b = await samples(val as Dataset);
    expect([...a.ids, ...b.ids].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    for (const part of [a, b]) expect([...part.ids].sort((x, y) => x - y)).toEqual(part.ids);
    for (const cls of [0, 1, 2]) {
      const total = Array.from({ length: 100 }, (_, i) => threeClasses(i)).filter((l) => l === cls).length;
      const inVal = b.labels.filter((l) => l === cls).length;
      expect(Math.abs(inVal - 0.2 * total)).toBeLessThanOrEqual(1);
    }
    const again = await samples(split(data, [0.8, 0.2], { seed: 7 })[1] as Dataset);
    expect(again.ids).toEqual(b.ids);
    const other = await samples(split(data, [0.8, 0.2], { seed: 8 })[1] as Dataset);
    expect(other.ids).not.toEqual(b.ids);
  });

  it('refuses fractions that do not make a split', async () => {
    const data = indexed(10, (i) => i % 2);
    expect(() => split(data, [1])).toThrow(/at least two/);
    expect(() => split(data, [0.5, 0.6])).toThrow(/sum to 1/);
    expect(() => split(data, [0.5, 0])).toThrow(/fractions\[1\]/);
    expect(() => split(data, [0.5, 0.5], { seed: -1 })).toThrow(/seed/);
    const empty = await rejection(() => split(data, [0.94, 0.02, 0.02, 0.02]));
    expect(empty).toBeInstanceOf(InvalidDataError);
    expect(empty.message).toMatch(/part 1 .*no samples out of 10/);
  });
});

describe('concat', () => {
  it('puts in-memory datasets one after another (shared or copied storage alike)', async () => {
    const a = indexed(5, (i) => i % 2);
    const b = indexed(3, () => 2);
    const both = concat([a, subset(b, [2, 1]), a]);
    expect(both.length).toBe(12);
    expect(both.numClasses).toBe(3);
    expect(await samples(both)).toEqual({
      ids: [0, 1, 2, 3, 4, 2, 1, 0, 1, 2, 3, 4],
      labels: [0, 1, 0, 1, 0, 2, 2, 0, 1, 0, 1, 0],
    });
    const views = concat([subset(a, [4]), subset(a, [0, 1])]);
    expect((await samples(views)).ids).toEqual([4, 0, 1]);
  });

  it('refuses parts that would not load alike', () => {
    const small = indexed(4, (i) => i % 2);
    const other = fromArrays({ data: new Float32Array(2 * 9), shape: [2, 1, 3, 3] }, Int32Array.from([0, 1]));
    expect(() => concat([small, other])).toThrow(/dataset 1 has images of shape \[1, 3, 3\]/);
    const normalised = fromArrays({ data: new Float32Array(2 * 4), shape: [2, 1, 2, 2] }, Int32Array.from([0, 1]), { mean: [0.5], std: [0.25] });
    expect(() => concat([small, normalised])).toThrow(/normalised with mean/);
    expect(() => concat([])).toThrow(/non-empty array/);
  });

  it('views image folders: concat, subset and split of files, and refuses mixing kinds or options', async () => {
    const root = (name: string, classes: string[], perClass: number) => {
      const dir = join(tmp.path, name);
      classes.forEach((cls, c) => {
        for (let i = 0; i < perClass; i += 1) writeImage(join(dir, cls, `img${i}.png`), pattern(8, 8, c * 10 + i), 8, 8, 'png');
      });
      return dir;
    };
    const transforms = [resize(8, 8), normalize([0, 0, 0], [1, 1, 1])];
    const a = await imageFolder(root('a', ['cat', 'dog'], 3), { transforms });
    const b = await imageFolder(root('b', ['cat', 'dog'], 2), { transforms });
    const both = concat([a, b]);
    expect(both.length).toBe(10);
    expect(both.classNames).toEqual(['cat', 'dog']);
    expect((await samples(both)).labels).toEqual([0, 0, 0, 1, 1, 1, 0, 0, 1, 1]);
    const [train, val] = split(both, [0.6, 0.4], { seed: 1 });
    expect((train as Dataset).length + (val as Dataset).length).toBe(10);
    expect((await samples(val as Dataset)).labels.sort()).toEqual([0, 0, 1, 1]);
    expect((await samples(subset(both, [9, 0]))).labels).toEqual([1, 0]);

    const birds = await imageFolder(root('c', ['bird', 'dog'], 1), { transforms });
    expect(() => concat([a, birds])).toThrow(/classes \["bird", "dog"\].*a label would mean different classes/);
    const bigger = await imageFolder(join(tmp.path, 'b'), { transforms: [resize(16, 16), normalize([0, 0, 0], [1, 1, 1])] });
    expect(() => concat([a, bigger])).toThrow(/datasets\[1\].*image shape \[3, 16, 16\].*transforms/);
    expect(() => concat([a, indexed(2, (i) => i)])).toThrow(/cannot be mixed/);
  });
});
