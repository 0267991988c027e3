// Weights in and out: a save/load round trip reproduces predictions, a new class count
// re-initialises (and reports) the head, and hostile or mismatched files reject clearly.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fineTune, InvalidDataError, InvalidOptionError, saveWeights, smallResnet } from '../src/index.js';
import { separableData, tinyModel } from './helpers.js';

const fixtures = join(import.meta.dirname, '..', 'crates', 'advbn-core', 'tests', 'fixtures');
const tmp = mkdtempSync(join(tmpdir(), 'advbn-weights-'));

describe('weights', () => {
  it('round-trips through safetensors, adversarial BNs included', async () => {
    const data = separableData(32);
    const model = await tinyModel(1);
    await fineTune(model, { data, epochs: 1, batchSize: 16, lr: 0.05 });
    const path = join(tmp, 'tuned.safetensors');
    await saveWeights(model, path);
    const loaded = await smallResnet({ numClasses: 4, depth: 8, width: 8, seed: 99, device: 'cpu', weights: path });
    expect(loaded.weightsReport?.reinitialized).toEqual([]);
    expect(loaded.hasAdvBn).toBe(true);
    for (const bn of ['clean', 'adv'] as const) {
      const a = await model.predict(data.images, { bn });
      const b = await loaded.predict(data.images, { bn });
      expect(Array.from(b.logits)).toEqual(Array.from(a.logits));
    }
    model.dispose();
    loaded.dispose();
  });

  it('loads a PyTorch .pth and re-initialises a head of another size, reporting it', async () => {
    const model = await smallResnet({ numClasses: 5, depth: 8, width: 4, device: 'cpu', weights: join(fixtures, 'tiny_resnet.pth') });
    expect(model.weightsReport?.reinitialized).toEqual(['fc.weight', 'fc.bias']);
    expect(model.weightsReport?.loaded).toBeGreaterThan(20);
    model.dispose();
  });

  it('rejects malicious, mismatched and missing files with named errors', async () => {
    await expect(smallResnet({ numClasses: 3, depth: 8, width: 4, device: 'cpu', weights: join(fixtures, 'malicious.pth') })).rejects.toThrow(InvalidDataError);
    await expect(smallResnet({ numClasses: 3, depth: 14, width: 4, device: 'cpu', weights: join(fixtures, 'tiny_resnet.pth') })).rejects.toThrow(
      /missing \(\d+\): .*layer1\.1\.conv1\.weight/,
    );
    await expect(smallResnet({ numClasses: 3, device: 'cpu', weights: join(tmp, 'nope.safetensors') })).rejects.toThrow(/nope\.safetensors/);
    await expect(smallResnet({ numClasses: 3, device: 'cpu', weights: '' })).rejects.toThrow(InvalidOptionError);
  });
});
