// The adversarial-feature picture: the decoder learns (its loss falls), the grid has one row per
// input and one column per figure, and the picture shows that grid enlarged nearest-neighbour
// (every grid pixel a solid block), with a label per column and a caption that fit.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fineTune, visualizeAdversarialFeatures } from '../src/index.js';
import { separableData, tinyModel } from './helpers.js';
import { decodePng } from './png.js';
import { labels, textProblems } from './text-fit.js';

describe('visualizeAdversarialFeatures', () => {
  it('trains a decoder and renders rows x (input, reconstruction, strengths), enlarged and labelled', async () => {
    const data = separableData(32);
    const model = await tinyModel(1);
    await fineTune(model, { data, epochs: 2, batchSize: 16, lr: 0.05 });
    const dir = mkdtempSync(join(tmpdir(), 'advbn-visualize-'));
    const out = join(dir, 'features.svg');
    const { png, svg, grid, losses } = await visualizeAdversarialFeatures(model, data, { steps: 40, rows: 3, strengths: [0.5, 1.1], images: 32, out });
    expect(losses).toHaveLength(40);
    expect(losses[39]!).toBeLessThan(losses[0]!);
    expect(readFileSync(out, 'utf8')).toBe(svg);
    // The bare grid: 16 px images, 2 px gaps: width 4 columns x 18 + 2, height 3 rows x 18 + 2.
    const cells = decodePng(grid);
    expect([cells.width, cells.height]).toEqual([4 * 18 + 2, 3 * 18 + 2]);

    // The picture: labelled columns and a caption, every text clear of the image and each other.
    expect(textProblems(svg)).toEqual([]);
    const text = labels(svg);
    const columnLabels = text.filter((l) => l.role === 'label').map((l) => l.text);
    expect(columnLabels).toEqual(['input', 'reconstruction', 'ε = 0.5', 'ε = 1.1']);
    const caption = text
      .filter((l) => l.role === 'caption')
      .map((l) => l.text)
      .join(' ');
    expect(caption).toContain('ε = 0.5, 1.1');
    const scale = Number(/Pixels enlarged (\d+)x, nearest neighbour/.exec(caption)![1]);
    expect(scale * 16).toBeGreaterThanOrEqual(96);
    // Each label sits above the centre of its column.
    const image = /<image x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"/.exec(svg)!.slice(1).map(Number) as [number, number, number, number];
    expect(image.slice(2)).toEqual([cells.width * scale, cells.height * scale]);
    text
      .filter((l) => l.role === 'label')
      .forEach((l, i) => {
        if (!l.corners) throw new Error(`${l.text} draws nothing`);
        const xs = l.corners.map(([x]) => x);
        const centre = image[0] + (2 + i * 18 + 8) * scale;
        expect(Math.abs((Math.min(...xs) + Math.max(...xs)) / 2 - centre)).toBeLessThan(2);
        expect(Math.max(...l.corners.map(([, y]) => y))).toBeLessThan(image[1]);
      });

    // Nearest-neighbour: every grid pixel is a solid scale x scale block of the same colour.
    const picture = decodePng(png);
    let mismatches = 0;
    for (let y = 0; y < cells.height; y++) {
      for (let x = 0; x < cells.width; x++) {
        for (const [dx, dy] of [
          [0, 0],
          [scale - 1, 0],
          [0, scale - 1],
          [scale - 1, scale - 1],
          [scale >> 1, scale >> 1],
        ] as const) {
          const p = ((image[1] + y * scale + dy) * picture.width + image[0] + x * scale + dx) * 3;
          const g = (y * cells.width + x) * 3;
          for (let c = 0; c < 3; c++) if (Math.abs(picture.rgb[p + c]! - cells.rgb[g + c]!) > 1) mismatches++;
        }
      }
    }
    expect(mismatches).toBe(0);
    await expect(visualizeAdversarialFeatures(model, data, { cut: 9 })).rejects.toThrow(/cut/);
    model.dispose();
  }, 60_000);
});
