// The adversarial-feature picture: the decoder learns (its loss falls), the PNG has one row per
// input and one column per figure, and stronger attacks change the decoded picture more.
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { fineTune, visualizeAdversarialFeatures } from '../src/index.js';
import { separableData, tinyModel } from './helpers.js';

describe('visualizeAdversarialFeatures', () => {
  it('trains a decoder and renders rows x (input, reconstruction, strengths)', async () => {
    const data = separableData(32);
    const model = await tinyModel(1);
    await fineTune(model, { data, epochs: 2, batchSize: 16, lr: 0.05 });
    const { png, losses } = await visualizeAdversarialFeatures(model, data, { steps: 40, rows: 3, strengths: [0.5, 1.1], images: 32 });
    expect(losses).toHaveLength(40);
    expect(losses[39]!).toBeLessThan(losses[0]!);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    // 16 px images, 2 px gaps: width 4 columns x 18 + 2, height 3 rows x 18 + 2.
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([4 * 18 + 2, 3 * 18 + 2]);
    expect(inflateSync(png.subarray(png.indexOf('IDAT') + 4)).length).toBeGreaterThan(0);
    await expect(visualizeAdversarialFeatures(model, data, { cut: 9 })).rejects.toThrow(/cut/);
    model.dispose();
  }, 60_000);
});
