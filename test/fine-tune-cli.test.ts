// `advbn fine-tune` end to end on a tiny image folder: it trains, checkpoints, writes weights
// and a JSON summary; --resume continues from the checkpoint; bad arguments exit 2.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pattern, tempDir, writeImage } from './image-files.js';

const cli = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const dir = tempDir('fine-tune-cli');
afterAll(() => dir.cleanup());

function advbn(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
}

describe('advbn fine-tune', () => {
  it('fine-tunes an image folder, checkpoints, resumes and summarises', () => {
    const data = join(dir.path, 'train');
    for (const [label, name] of ['cat', 'dog'].entries()) {
      mkdirSync(join(data, name), { recursive: true });
      for (let i = 0; i < 6; i += 1) writeImage(join(data, name, `${i}.png`), pattern(40, 40, i, label), 40, 40, 'png');
    }
    const out = join(dir.path, 'out');
    const args = ['fine-tune', '--data', data, '--out', out, '--model', 'resnet18', '--size', '32', '--epochs', '1', '--batch-size', '6', '--device', 'cpu', '--lr', '0.01'];
    const first = advbn(...args);
    expect(first.status, first.stderr).toBe(0);
    const summary = JSON.parse(first.stdout);
    expect(summary).toMatchObject({ model: 'resnet18', method: 'advbn', classes: ['cat', 'dog'], samples: 12, epochs: 1 });
    expect(Number.isFinite(summary.finalLoss)).toBe(true);
    expect(existsSync(join(out, 'checkpoint.safetensors')) && existsSync(join(out, 'weights.safetensors'))).toBe(true);
    // Everything is done: a resumed run has nothing left to train and reports the same history.
    const resumed = advbn(...args, '--resume');
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout).finalLoss).toBe(summary.finalLoss);
  }, 120_000);

  it('names a bad argument and exits 2', () => {
    const run = advbn('fine-tune', '--data', dir.path, '--out', dir.path, '--epochs', 'many');
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('--epochs');
    expect(advbn('fine-tune', '--out', dir.path).stderr).toContain('--data is required');
  });
});
