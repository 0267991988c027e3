// The chain a user runs from the shell (issue #13, item 5), end to end on a tiny ImageNet-layout
// tree the test writes: `advbn corrupt` makes an ImageNet-C tree of it; `advbn fine-tune` of
// ResNet-50 weights written by saveWeights is interrupted with SIGINT (it checkpoints and exits
// 130), `--resume` finishes it (the same result as an uninterrupted run); `advbn evaluate` measures
// the result on the tree and its corruptions; `advbn predict` on a few of its images agrees with
// evaluate. Each step checks the files it writes.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resnet50, saveWeights, validateEvaluation, type EvaluationFile } from '../src/index.js';
import { pattern, tempDir, writeImage } from './image-files.js';
import { interruptCli, runCli } from './cli-run.js';

const dir = tempDir('cli-chain');
afterAll(() => dir.cleanup());

const advbn = (...args: string[]) => runCli(args, 12_0000);

// ImageNet's layout: one folder per WordNet id, JPEG files named as in the validation set.
const CLASSES = ['n01440764', 'n02102040', 'n02979186'];
const PER_CLASS = 4;
const CORRUPTIONS = ['gaussian_noise', 'fog'];
const data = join(dir.path, 'imagenet', 'val');
const corrupted = join(dir.path, 'imagenet-c');
const start = join(dir.path, 'resnet50.safetensors');
const run = join(dir.path, 'run');
const files = (index: number) => `ILSVRC2012_val_${String(index + 1).padStart(8, '0')}.JPEG`;

// ResNet-50 at 32 px (its stages see 8, 4, 2 and 1 pixels): each step well under a second on two
// CPU cores; one attack step keeps the AdvBN path whole at a sixth of the default's cost.
const training = [
  ...['--data', data, '--weights', start, '--model', 'resnet50', '--size', '32', '--epochs', '3', '--batch-size', '4'],
  ...['--lr', '0.01', '--advbn-steps', '1', '--val', data, '--checkpoint-every', '1', '--device', 'cpu', '--threads', '2'],
];
const model = ['--weights', join(run, 'weights.safetensors'), '--arch', 'resnet50', '--size', '32', '--device', 'cpu'];

const csvRows = (out: string) =>
  readFileSync(join(out, 'history.csv'), 'utf8')
    .trim()
    .split('\n')
    .map((r) => r.split(','));

beforeAll(async () => {
  let index = 0;
  for (const [label, name] of CLASSES.entries()) {
    for (let i = 0; i < PER_CLASS; i += 1) writeImage(join(data, name, files(index++)), pattern(40, 40, i, label), 40, 40, 'jpeg');
  }
  // Stand-in for torchvision's ResNet-50 weights (same tensor names), for the tree's 3 classes.
  using model = await resnet50({ numClasses: CLASSES.length, device: 'cpu', seed: 1 });
  await saveWeights(model, start);
});

describe('the command-line chain on an ImageNet-layout tree', () => {
  it('corrupt -> fine-tune ResNet-50, Ctrl-C, --resume -> evaluate -> predict', async () => {
    // 1. advbn corrupt: DIR/<corruption>/<severity>/<class>/<image>, every image of the tree.
    const made = advbn('corrupt', '--input', data, '--output', corrupted, '--corruption', CORRUPTIONS.join(','), '--severity', 'all', '--seed', '3');
    expect(made.status, made.stderr).toBe(0);
    expect(made.stdout).toContain(`wrote ${CORRUPTIONS.length * 5 * CLASSES.length * PER_CLASS} images`);
    expect(readdirSync(corrupted).sort()).toEqual([...CORRUPTIONS].sort());
    for (const c of CORRUPTIONS) {
      expect(readdirSync(join(corrupted, c)).sort()).toEqual(['1', '2', '3', '4', '5']);
      for (const s of ['1', '5']) expect(readdirSync(join(corrupted, c, s, CLASSES[2]!)).sort()).toEqual([8, 9, 10, 11].map(files));
    }

    // 2. advbn fine-tune, interrupted by SIGINT once the first epoch's line is out (in epoch 2).
    const { code, stdout, stderr } = await interruptCli(['fine-tune', ...training, '--out', run], /^Epoch 1\/3 3\/3 /m);
    expect(code, `${stdout}\n${stderr}`).toBe(130);
    expect(stderr).toContain('SIGINT: checkpointing and stopping');
    expect(stderr).toContain(`the checkpoint in ${run} holds the position reached: rerun with --resume to continue`);
    expect(stderr).not.toMatch(/\n\s+at /);
    // The epoch line: images/s, the time left of the run, both BN branches' losses, validation.
    expect(stdout).toMatch(
      /^Epoch 1\/3 3\/3 - \d+\.\ds \d+ img\/s - ETA \d+s - loss \S+ - clean \S+ - adv \S+ - acc \d+\.\d% - adv acc \d+\.\d% - val_loss \S+ - val_acc \d+\.\d% - lr 0\.01$/m,
    );
    expect(stdout).not.toContain('fine-tune done');
    // What the interrupted run leaves: the checkpoint and the finished epochs' rows; no weights or summary yet.
    expect(existsSync(join(run, 'checkpoint.safetensors'))).toBe(true);
    expect(existsSync(join(run, 'weights.safetensors')) || existsSync(join(run, 'summary.json'))).toBe(false);
    const interruptedRows = csvRows(run).length - 1;
    expect(interruptedRows === 1 || interruptedRows === 2).toBe(true);

    // 3. --resume: trains only what is left, and ends where an uninterrupted run ends.
    const resumed = advbn('fine-tune', ...training, '--out', run, '--resume');
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).not.toMatch(/^Epoch 1\/3/m);
    expect(resumed.stdout).toMatch(/^Epoch 3\/3 3\/3 - .* - lr 0\.001$/m);
    expect(resumed.stdout).toMatch(/^fine-tune done: 3 epochs, .*; validation accuracy: clean BN \d+\.\d%, adversarial BN \d+\.\d%$/m);
    const summary = JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ model: 'resnet50', method: 'advbn', classes: CLASSES, samples: CLASSES.length * PER_CLASS, epochs: 3 });
    expect(summary.settings).toMatchObject({ epochs: 3, batchSize: 4, lr: 0.01, advbn: { steps: 1 }, schedule: { type: 'step', milestones: [1] } });
    expect(readFileSync(join(run, 'curves.png')).subarray(1, 4).toString()).toBe('PNG');
    const rows = csvRows(run);
    expect(rows.map((r) => r[0])).toEqual(['epoch', '0', '1', '2']);
    const whole = join(dir.path, 'uninterrupted');
    const uninterrupted = advbn('fine-tune', ...training, '--out', whole);
    expect(uninterrupted.status, uninterrupted.stderr).toBe(0);
    // Every figure but the time per epoch, and the weights, bit for bit (CPU).
    const timeless = (table: string[][]) => table.map((r) => r.slice(0, -1));
    expect(timeless(rows)).toEqual(timeless(csvRows(whole)));
    expect(readFileSync(join(run, 'weights.safetensors')).equals(readFileSync(join(whole, 'weights.safetensors')))).toBe(true);

    // 4. advbn evaluate on the tree and its ImageNet-C copy, both BN branches.
    const evaluation = join(dir.path, 'evaluation');
    const evaluated = advbn('evaluate', ...model, '--data', data, '--corruptions', corrupted, '--bn', 'both', '--out', evaluation);
    expect(evaluated.status, evaluated.stderr).toBe(0);
    expect(evaluated.stdout).toMatch(/^clean: BN clean: top-1 \d+\.\d% top-5 100\.0% \| BN adv: top-1 \d+\.\d% top-5 100\.0%$/m);
    expect(evaluated.stdout).toMatch(/^corruptions, BN clean: mean top-1 error \d+\.\d% over 2 corruptions x 5 severities$/m);
    const file = JSON.parse(readFileSync(join(evaluation, 'evaluation.json'), 'utf8')) as EvaluationFile;
    expect(validateEvaluation(file)).toEqual([]);
    expect(file.model).toMatchObject({ arch: 'resnet50', numClasses: CLASSES.length, hasAdvBn: true });
    expect(file.classes).toEqual(CLASSES);
    const clean = file.report.details.clean;
    for (const bn of ['clean', 'adv'] as const) {
      // The same images and transforms as fine-tune's --val: the same figures as its summary.
      expect(clean[bn]!.confusion).toEqual(summary.validation[bn].confusion);
      expect(clean[bn]!.accuracy).toBe(summary.validation[bn].accuracy);
      const errors = file.report.corruption![bn]!.errors;
      expect(Object.keys(errors).sort()).toEqual([...CORRUPTIONS].sort());
      for (const c of CORRUPTIONS) expect(errors[c]).toHaveLength(5);
    }
    expect(readFileSync(join(evaluation, 'evaluation.md'), 'utf8')).toContain('gaussian_noise');

    // 5. advbn predict on a few images (files and a class folder), names from the summary.
    const picked = [join(data, CLASSES[1]!, files(5)), join(data, CLASSES[0]!, files(0)), join(data, CLASSES[2]!)];
    const expected = [join(data, CLASSES[1]!, files(5)), join(data, CLASSES[0]!, files(0)), ...[8, 9, 10, 11].map((i) => join(data, CLASSES[2]!, files(i)))];
    for (const bn of ['clean', 'adv'] as const) {
      const predicted = advbn('predict', ...model, '--bn', bn, '--classes', join(run, 'summary.json'), '--top-k', '2', ...picked);
      expect(predicted.status, predicted.stderr).toBe(0);
      const lines = predicted.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { file: string; bn: string; top: { index: number; class: string; probability: number }[] });
      expect(lines.map((l) => l.file)).toEqual(expected);
      // Top-1 as evaluate counted it: each predicted image is one count in its row of the confusion matrix.
      const counts = CLASSES.map(() => CLASSES.map(() => 0));
      for (const line of lines) {
        expect(line.bn).toBe(bn);
        expect(line.top).toHaveLength(2);
        expect(line.top[0]!.probability).toBeGreaterThanOrEqual(line.top[1]!.probability);
        for (const t of line.top) expect(t.class).toBe(CLASSES[t.index]);
        counts[CLASSES.indexOf(basename(dirname(line.file)))]![line.top[0]!.index]! += 1;
      }
      // The whole class folder was predicted: its row is evaluate's row.
      expect(counts[2]).toEqual(clean[bn]!.confusion[2]);
      // Each file alone is predicted as in the whole folder's pass.
      const all = advbn('predict', ...model, '--bn', bn, data);
      expect(all.status, all.stderr).toBe(0);
      const top1 = new Map(
        all.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { file: string; top: { index: number }[] })
          .map((l) => [l.file, l.top[0]!.index]),
      );
      for (const line of lines) expect(line.top[0]!.index).toBe(top1.get(line.file));
      const full = CLASSES.map(() => CLASSES.map(() => 0));
      for (const [f, index] of top1) full[CLASSES.indexOf(basename(dirname(f)))]![index]! += 1;
      expect(full).toEqual(clean[bn]!.confusion);
    }
  }, 300_000);
});
