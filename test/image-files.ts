// Image files for the data tests, written into fresh temp folders by the tests themselves
// (PNG/JPEG bytes come from the addon's encoder, so no image dependency is needed).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadNative } from '../src/native.js';
import type { Batch } from '../src/index.js';

/** A fresh temp folder; remove it with `cleanup()`. */
export function tempDir(name: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `advbn-${name}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Interleaved 8-bit RGB pixels: a smooth pattern that depends on `seed`, with a bright quadrant `quadrant` (0-3). */
export function pattern(width: number, height: number, seed: number, quadrant = -1): Uint8Array {
  const pixels = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const inQuadrant = quadrant >= 0 && Math.floor((2 * y) / height) === quadrant >> 1 && Math.floor((2 * x) / width) === (quadrant & 1);
      for (let c = 0; c < 3; c += 1) {
        const base = 60 + ((x * 5 + y * 3 + c * 40 + seed * 17) % 120);
        pixels[(y * width + x) * 3 + c] = inQuadrant ? 230 : base;
      }
    }
  }
  return pixels;
}

/** Writes `pixels` (RGB, `width` x `height`) as a PNG or JPEG file, creating its folder. */
export function writeImage(path: string, pixels: Uint8Array, width: number, height: number, format: 'png' | 'jpeg'): Buffer {
  const bytes = loadNative().encodeImage(pixels, width, height, 3, format);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
  return bytes;
}

/** A batch copied back to host memory. */
export function batchArrays(batch: Batch): Promise<{ images: Float32Array; shape: number[]; labels: Int32Array }> {
  return batch.handle.toArrays();
}
