// The digits benchmark from TypeScript: per-domain splits, multi-domain training sets, mixtures
// (clean and corrupted on one sample), bad input, and the export to image folders read back.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DIGIT_DOMAINS, exportDigits, imageFolder, InvalidOptionError, loadDigits, normalize, type Dataset, type DigitsBenchmark } from '../src/index.js';
import { batchArrays } from './image-files.js';

async function arrays(dataset: Dataset): Promise<{ images: Float32Array; labels: number[] }> {
  const images: number[] = [];
  const labels: number[] = [];
  for await (const batch of dataset.batches({ batchSize: 1000 })) {
    const a = await batchArrays(batch);
    images.push(...a.images);
    labels.push(...a.labels);
  }
  return { images: Float32Array.from(images), labels };
}

let digits: DigitsBenchmark;
beforeAll(async () => {
  digits = await loadDigits();
});

describe('digits benchmark', () => {
  it('splits MNIST training digits into one disjoint share per domain and renders the test set in each style', async () => {
    expect(DIGIT_DOMAINS).toEqual(['mnist', 'mnist_m', 'inverted', 'colorized', 'sketch', 'low_light']);
    const shares = DIGIT_DOMAINS.map((d) => digits.domainTrainLength(d));
    expect(shares.reduce((a, b) => a + b, 0)).toBe(digits.trainLength);
    expect(Math.max(...shares) - Math.min(...shares)).toBeLessThanOrEqual(10);
    const train = await digits.domain('low_light', { split: 'train', limit: 30, seed: 3 });
    const test = await digits.domain('low_light', { limit: 30 });
    expect([train.length, test.length, train.numClasses]).toEqual([30, 30, 10]);
    expect(train.imageShape).toEqual([3, 28, 28]);
    // Dim: light pages (the lighter colour of a random pair) in low light, measured at 0.42 in
    // luma over 200 renders in the Rust tests.
    const pixels = (await arrays(test)).images;
    expect(pixels.reduce((a, b) => a + b, 0) / pixels.length).toBeLessThan(0.47);
    train.dispose();
    test.dispose();
  });

  it("train() is the domains' own training splits one after another; mixture() corrupts the same sample", async () => {
    const both = await arrays(await digits.train(['mnist', 'sketch'], { limit: 20, seed: 1 }));
    const mnist = await arrays(await digits.domain('mnist', { split: 'train', limit: 20, seed: 1 }));
    const sketch = await arrays(await digits.domain('sketch', { split: 'train', limit: 20, seed: 1 }));
    expect(both.labels).toEqual([...mnist.labels, ...sketch.labels]);
    expect(Array.from(both.images)).toEqual([...mnist.images, ...sketch.images]);
    const clean = await arrays(await digits.mixture(['inverted', 'colorized'], { limit: 40 }));
    const fog = await arrays(await digits.mixture(['inverted', 'colorized'], { limit: 40, corruption: { name: 'fog', severity: 3 } }));
    expect(fog.labels).toEqual(clean.labels);
    expect(Array.from(fog.images)).not.toEqual(Array.from(clean.images));
  });

  it('rejects unknown and repeated domains and bad corruptions by name', async () => {
    await expect(digits.domain('svhn' as never)).rejects.toThrow(/domain.*one of mnist, mnist_m/);
    await expect(digits.domain('mnist', { split: 'val' as never })).rejects.toThrow(InvalidOptionError);
    await expect(digits.train(['mnist', 'mnist'])).rejects.toThrow(/mnist is listed twice/);
    await expect(digits.train([])).rejects.toThrow(/non-empty/);
    await expect(digits.mixture(['mnist'], { corruption: { name: 'fog', severity: 0 } })).rejects.toThrow(/severity/);
    await expect(digits.mixture(['mnist'], { corruption: { name: 'rain', severity: 2 } })).rejects.toThrow(/rain/);
  });
});

describe('digits export', () => {
  it('writes DIR/<domain>/<split>/<class>/<index>.png that read back as the same digits', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'advbn-export-')), 'digits');
    const manifest = await exportDigits({ out, domains: ['mnist_m', 'low_light'], perDomain: 25, seed: 2 });
    expect(manifest.domains.low_light!.train!.count).toBe(25);
    expect(manifest.domains.mnist_m!.test!.perClass.reduce((a, b) => a + b, 0)).toBe(25);
    expect(manifest.domains.mnist_m!.test!.call).toBe("digits.domain('mnist_m', { split: 'test', limit: 25, seed: 2 })");
    expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'))).toEqual(manifest);
    expect(readdirSync(out).sort()).toEqual(['low_light', 'manifest.json', 'mnist_m']);
    expect(readdirSync(join(out, 'low_light')).sort()).toEqual(['test', 'train']);

    const original = await arrays(await digits.domain('low_light', { split: 'train', limit: 25, seed: 2 }));
    const folder = await imageFolder(join(out, 'low_light', 'train'), { transforms: [normalize([0, 0, 0], [1, 1, 1])] });
    const back = await arrays(folder);
    // The folder is ordered by class then file name; the file name is the digit's position.
    const files = folder.classNames.flatMap((c) =>
      readdirSync(join(out, 'low_light', 'train', c))
        .sort()
        .map((f) => [Number(c), Number(f.slice(0, -4))] as const),
    );
    expect(back.labels).toEqual(files.map(([c]) => c));
    const plane = 3 * 28 * 28;
    let worst = 0;
    files.forEach(([label, index], k) => {
      expect(original.labels[index]).toBe(label);
      for (let p = 0; p < plane; p += 1) worst = Math.max(worst, Math.abs(back.images[k * plane + p]! - original.images[index * plane + p]!));
    });
    expect(worst).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
  });

  it('refuses a folder that holds files, and bad options, before writing anything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'advbn-export-'));
    writeFileSync(join(dir, 'keep.txt'), 'mine');
    await expect(exportDigits({ out: dir, perDomain: 5 })).rejects.toThrow(/not empty/);
    expect(readdirSync(dir)).toEqual(['keep.txt']);
    const fresh = join(dir, 'new');
    await expect(exportDigits({ out: fresh, domains: ['svhn' as never] })).rejects.toThrow(/domains/);
    await expect(exportDigits({ out: fresh, split: 'val' as never })).rejects.toThrow(/split/);
    await expect(exportDigits({ out: fresh, perDomain: 0 })).rejects.toThrow(/perDomain/);
    expect(existsSync(fresh)).toBe(false);
  });
});
