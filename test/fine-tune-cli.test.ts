// `advbn fine-tune` end to end on a tiny image folder: it trains, checkpoints, writes weights
// and a JSON summary; --resume continues from the checkpoint; bad arguments exit 2.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resnet18, saveWeights } from '../src/index.js';
import { pattern, tempDir, writeImage } from './image-files.js';

const cli = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const dir = tempDir('fine-tune-cli');
afterAll(() => dir.cleanup());

function advbn(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
}

describe('advbn fine-tune', () => {
  it('fine-tunes an image folder, checkpoints, resumes and summarises', async () => {
    const data = join(dir.path, 'train');
    for (const [label, name] of ['cat', 'dog'].entries()) {
      mkdirSync(join(data, name), { recursive: true });
      for (let i = 0; i < 6; i += 1) writeImage(join(data, name, `${i}.png`), pattern(40, 40, i, label), 40, 40, 'png');
    }
    const out = join(dir.path, 'out');
    // Pretrained-style weights of another class count: the classifier is re-initialised.
    const weights = join(dir.path, 'start.safetensors');
    const start = await resnet18({ numClasses: 5, device: 'cpu', seed: 3 });
    await saveWeights(start, weights);
    start.dispose();
    const args = [
      'fine-tune',
      '--data',
      data,
      '--out',
      out,
      '--weights',
      weights,
      '--model',
      'resnet18',
      '--size',
      '32',
      '--epochs',
      '2',
      '--batch-size',
      '6',
      '--device',
      'cpu',
      '--lr',
      '0.01',
      '--val',
      data,
    ];
    const first = advbn(...args);
    expect(first.status, first.stderr).toBe(0);
    const summary = JSON.parse(first.stdout);
    expect(summary).toMatchObject({ model: 'resnet18', method: 'advbn', classes: ['cat', 'dog'], samples: 12, epochs: 2 });
    expect(Number.isFinite(summary.finalLoss)).toBe(true);
    expect(existsSync(join(out, 'checkpoint.safetensors')) && existsSync(join(out, 'weights.safetensors'))).toBe(true);
    // Both BN branches of the validation, history.csv and summary.json in --out.
    expect(summary.validation.clean.accuracy).toBeGreaterThanOrEqual(0);
    expect(summary.validation.adv.accuracy).toBeGreaterThanOrEqual(0);
    expect(readFileSync(join(out, 'history.csv'), 'utf8').trim().split('\n')).toHaveLength(3);
    expect(readFileSync(join(out, 'curves.png')).subarray(1, 4).toString()).toBe('PNG');
    expect(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'))).toEqual(summary);
    // Everything is done: a resumed run says so plainly and reports the same history.
    const resumed = advbn(...args, '--resume');
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout).finalLoss).toBe(summary.finalLoss);
    expect(resumed.stderr).toContain('nothing left to train');
    // A larger --epochs extends the finished run (2 -> 3: the default milestone stays at epoch 1).
    const extended = advbn(...args.map((a, i) => (args[i - 1] === '--epochs' ? '3' : a)), '--resume');
    expect(extended.status, extended.stderr).toBe(0);
    expect(JSON.parse(extended.stdout).epochs).toBe(3);
    expect(extended.stderr).not.toContain('nothing left to train');
    // A shorter one is refused in one line, naming the setting, no stack trace.
    const shorter = advbn(...args.map((a, i) => (args[i - 1] === '--epochs' ? '1' : a)), '--resume');
    expect(shorter.status).toBe(2);
    expect(shorter.stderr).toMatch(/epochs=3, this run has epochs=1 \(a run can be extended/);
    expect(shorter.stderr).not.toMatch(/\n\s+at /);
  }, 120_000);

  it('names a bad argument and exits 2', () => {
    const run = advbn('fine-tune', '--data', dir.path, '--out', dir.path, '--epochs', 'many');
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('--epochs');
    expect(advbn('fine-tune', '--out', dir.path).stderr).toContain('--data is required');
    // No weights: refused before any data is read, unless --from-scratch (then ERM on every stage).
    const noWeights = advbn('fine-tune', '--data', join(dir.path, 'nowhere'), '--out', join(dir.path, 'o2'));
    expect(noWeights.status).toBe(2);
    expect(noWeights.stderr).toMatch(/--weights is required.*--from-scratch/);
    expect(noWeights.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(dir.path, 'o2'))).toBe(false);
    expect(advbn('fine-tune', '--data', dir.path, '--out', dir.path, '--from-scratch', '--method', 'advbn').stderr).toContain('must be erm with --from-scratch');
    expect(advbn('fine-tune', '--data', dir.path, '--out', dir.path, '--weights', 'w.pth', '--cut', '9').stderr).toContain('--cut must be a whole number 1..4');
    expect(advbn('fine-tune', '--data', dir.path, '--out', dir.path, '--weights', 'w.pth', '--device', 'gpu').stderr).toContain('--device must be');
    expect(advbn('fine-tune', '--help').stdout).toMatch(/--epochs N\s+default 20/);
  });

  it('Ctrl-C checkpoints the position reached and exits 130; --resume finishes the run', async () => {
    const data = join(dir.path, 'many');
    for (const [label, name] of ['cat', 'dog'].entries()) {
      mkdirSync(join(data, name), { recursive: true });
      for (let i = 0; i < 24; i += 1) writeImage(join(data, name, `${i}.png`), pattern(40, 40, i, label), 40, 40, 'png');
    }
    const out = join(dir.path, 'interrupted');
    const args = ['fine-tune', '--data', data, '--out', out, '--from-scratch', '--model', 'resnet18', '--size', '32', '--epochs', '2', '--batch-size', '4', '--device', 'cpu'];
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        // Interrupt in the middle of the first epoch (12 batches).
        if (/batch 3\/12/.test(stderr)) resolve();
      });
      void exit.then(() => resolve());
    });
    child.kill('SIGINT');
    expect(await exit, stderr).toBe(130);
    expect(stderr).toContain('rerun with --resume');
    expect(existsSync(join(out, 'checkpoint.safetensors'))).toBe(true);
    const resumed = advbn(...args, '--resume');
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout).epochs).toBe(2);
  }, 120_000);
});
