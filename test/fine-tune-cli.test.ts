// `advbn fine-tune` end to end on a tiny image folder: it trains, checkpoints, writes weights
// and a JSON summary; --resume continues from the checkpoint; every flag maps onto its fineTune
// option, --help shows the library's defaults; bad arguments are one line, exit 2.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resnet18, saveWeights } from '../src/index.js';
import { optionRule } from '../src/validation.js';
import { pattern, tempDir, writeImage } from './image-files.js';
import { interruptCli, runCli } from './cli-run.js';

const dir = tempDir('fine-tune-cli');
afterAll(() => dir.cleanup());

const advbn = (...args: string[]) => runCli(args, 600_000);

/** The `lr` column of a history.csv, found by its header. */
function lrColumn(file: string): number[] {
  const [header, ...rows] = readFileSync(file, 'utf8').trim().split('\n');
  const column = header!.split(',').indexOf('lr');
  return rows.map((r) => Number(r.split(',')[column]));
}

describe('advbn fine-tune', () => {
  const data = join(dir.path, 'train');
  // Pretrained-style weights of another class count: the classifier is re-initialised.
  const weights = join(dir.path, 'start.safetensors');
  beforeAll(async () => {
    for (const [label, name] of ['cat', 'dog'].entries()) {
      mkdirSync(join(data, name), { recursive: true });
      for (let i = 0; i < 6; i += 1) writeImage(join(data, name, `${i}.png`), pattern(40, 40, i, label), 40, 40, 'png');
    }
    using start = await resnet18({ numClasses: 5, device: 'cpu', seed: 3 });
    await saveWeights(start, weights);
  });

  it('fine-tunes an image folder, checkpoints, resumes and summarises', async () => {
    const out = join(dir.path, 'out');
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
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    // stdout: one progress line per epoch (not a terminal), then the summary and the files written.
    const lines = first.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^Epoch 1\/2 2\/2 - \d+\.\ds \d+ img\/s - ETA \d+s - loss .* - val_acc \d+\.\d% - lr 0\.01$/);
    expect(lines[1]).toMatch(/^Epoch 2\/2 2\/2 - .* - lr 0\.001$/);
    expect(lines[2]).toMatch(
      /^fine-tune done: 2 epochs, final loss \S+, training accuracy \d+\.\d% \(clean BN\), \d+\.\d% \(adversarial BN\); validation accuracy: clean BN \d+\.\d%, adversarial BN \d+\.\d%$/,
    );
    expect(lines[3]).toBe(`wrote ${['weights.safetensors', 'checkpoint.safetensors', 'history.csv', 'curves.png', 'summary.json'].map((f) => join(out, f)).join(', ')}`);
    expect(summary).toMatchObject({ model: 'resnet18', method: 'advbn', classes: ['cat', 'dog'], samples: 12, epochs: 2 });
    expect(Number.isFinite(summary.finalLoss)).toBe(true);
    expect(summary.finalAdvAccuracy).toBeGreaterThanOrEqual(0);
    expect(summary.finalAdvAccuracy).toBeLessThanOrEqual(1);
    expect(existsSync(join(out, 'checkpoint.safetensors')) && existsSync(join(out, 'weights.safetensors'))).toBe(true);
    // Both BN branches of the validation, history.csv and summary.json in --out.
    expect(summary.validation.clean.accuracy).toBeGreaterThanOrEqual(0);
    expect(summary.validation.adv.accuracy).toBeGreaterThanOrEqual(0);
    expect(readFileSync(join(out, 'history.csv'), 'utf8').trim().split('\n')).toHaveLength(3);
    expect(readFileSync(join(out, 'curves.png')).subarray(1, 4).toString()).toBe('PNG');
    // The defaults the library filled in.
    expect(summary.settings).toEqual({
      cut: 1,
      epochs: 2,
      batchSize: 6,
      seed: 0,
      lr: 0.01,
      optimizer: { type: 'sgd', momentum: 0.9, weightDecay: 1e-4, nesterov: false },
      schedule: { type: 'step', milestones: [1], gamma: 0.1 },
      advbn: { steps: 6, stepSize: 0.2, epsilon: 1.1 },
      augmix: false,
      size: 32,
      threads: 0,
      prefetch: 2,
    });
    const summaryFile = () => JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    // Everything is done: a resumed run says so plainly and reports the same history.
    const resumed = advbn(...args, '--resume');
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(summaryFile().finalLoss).toBe(summary.finalLoss);
    expect(resumed.stderr).toContain('nothing left to train');
    expect(readFileSync(join(out, 'history.csv'), 'utf8').trim().split('\n')).toHaveLength(3);
    // A larger --epochs extends the finished run (2 -> 3: the default milestone stays at epoch 1);
    // history.csv keeps the rows of the first run.
    const extended = advbn(...args.map((a, i) => (args[i - 1] === '--epochs' ? '3' : a)), '--resume');
    expect(extended.status, extended.stderr).toBe(0);
    expect(summaryFile().epochs).toBe(3);
    expect(extended.stderr).not.toContain('nothing left to train');
    expect(
      readFileSync(join(out, 'history.csv'), 'utf8')
        .trim()
        .split('\n')
        .map((r) => r.split(',')[0]),
    ).toEqual(['epoch', '0', '1', '2']);
    // A shorter one is refused in one line, naming the setting, no stack trace.
    const shorter = advbn(...args.map((a, i) => (args[i - 1] === '--epochs' ? '1' : a)), '--resume');
    expect(shorter.status).toBe(2);
    expect(shorter.stderr).toMatch(/epochs=3, this run has epochs=1 \(a run can be extended/);
    expect(shorter.stderr).not.toMatch(/\n\s+at /);
  }, 120_000);

  it('every flag sets the fineTune option of the same meaning', () => {
    const common = ['fine-tune', '--data', data, '--weights', weights, '--size', '32', '--epochs', '2', '--batch-size', '6', '--device', 'cpu'];
    const out = join(dir.path, 'adamw');
    const run = advbn(
      ...common,
      ...['--out', out, '--method', 'advbn_dsu', '--cut', '2', '--seed', '5', '--augmix', '--threads', '1', '--prefetch', '3'],
      ...['--optimizer', 'adamw', '--lr', '0.002', '--weight-decay', '0.05', '--beta1', '0.8', '--beta2', '0.99', '--eps', '1e-6'],
      ...['--schedule', 'cosine', '--min-lr', '1e-5', '--warmup-epochs', '1', '--advbn-steps', '2', '--advbn-step-size', '0.1', '--advbn-epsilon', '0.5'],
    );
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.method).toBe('advbn_dsu');
    expect(summary.settings).toEqual({
      cut: 2,
      epochs: 2,
      batchSize: 6,
      seed: 5,
      lr: 0.002,
      optimizer: { type: 'adamw', beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.05 },
      schedule: { type: 'cosine', minLr: 1e-5, warmupEpochs: 1 },
      advbn: { steps: 2, stepSize: 0.1, epsilon: 0.5 },
      augmix: true,
      size: 32,
      threads: 1,
      prefetch: 3,
    });
    // Warm-up: the first epoch starts at rate 0, the second at the base rate.
    expect(lrColumn(join(out, 'history.csv'))).toEqual([0, 0.002]);
    const sgd = join(dir.path, 'sgd');
    const second = advbn(...common, '--out', sgd, '--method', 'erm', '--cut', '0', '--momentum', '0.5', '--nesterov', '--milestones', '1', '--gamma', '0.5', '--lr', '0.04');
    expect(second.status, second.stderr).toBe(0);
    const settings = JSON.parse(readFileSync(join(sgd, 'summary.json'), 'utf8')).settings;
    expect(settings).toMatchObject({
      cut: 0,
      lr: 0.04,
      optimizer: { type: 'sgd', momentum: 0.5, weightDecay: 1e-4, nesterov: true },
      schedule: { type: 'step', milestones: [1], gamma: 0.5 },
    });
    expect(settings.advbn).toBeUndefined();
    expect(lrColumn(join(sgd, 'history.csv'))).toEqual([0.04, 0.02]);
  }, 120_000);

  it('a bad flag is one line on stderr, exit 2, before any data is read and with nothing written', () => {
    const out = join(dir.path, 'never');
    // --data names no folder: each flag is refused before the data would be found missing.
    const ok = ['--data', join(dir.path, 'nowhere'), '--out', out, '--weights', 'w.pth'];
    const cases: [string[], RegExp][] = [
      [[...ok, '--epochs', 'many'], /--epochs must be an integer in 1\.\.=100000, got "many"/],
      [['--out', out], /--data is required/],
      [['--data', dir.path, '--out', out], /--weights is required.*--from-scratch/],
      [['--data', dir.path, '--out', out, '--from-scratch', '--method', 'advbn'], /must be erm with --from-scratch/],
      [[...ok, '--cut', '9'], /--cut must be a whole number 1\.\.4/],
      [[...ok, '--device', 'gpu'], /--device must be/],
      [[...ok, '--method', 'adv'], /--method must be advbn, erm, mixstyle, dsu, advbn_mixstyle or advbn_dsu, got "adv"/],
      [[...ok, '--batch-size', '0'], /--batch-size must be an integer in 1\.\.=65536, got "0"/],
      [[...ok, '--seed', '-1'], /--seed/],
      [[...ok, '--seed', '1.5'], /--seed must be an integer in 0\.\.=4294967295, got "1\.5"/],
      [[...ok, '--size', '0'], /--size must be an integer in 1\.\.=16384/],
      [[...ok, '--threads', '2000'], /--threads must be an integer in 0\.\.=1024/],
      [[...ok, '--prefetch', '0'], /--prefetch must be an integer in 1\.\.=1024/],
      [[...ok, '--optimizer', 'adam'], /--optimizer must be sgd or adamw, got "adam"/],
      [[...ok, '--lr', '0'], /--lr must be a positive finite number, got "0"/],
      [[...ok, '--lr', '0x10'], /--lr must be a positive finite number, got "0x10"/],
      [[...ok, '--weight-decay=-1'], /--weight-decay must be a finite number >= 0/],
      [[...ok, '--momentum', '1'], /--momentum must be a finite number in \[0, 1\), got "1"/],
      [[...ok, '--optimizer', 'adamw', '--momentum', '0.5'], /--momentum applies to --optimizer sgd only/],
      [[...ok, '--nesterov', '--optimizer', 'adamw'], /--nesterov applies to --optimizer sgd only/],
      [[...ok, '--beta1', '0.9'], /--beta1 applies to --optimizer adamw only/],
      [[...ok, '--optimizer', 'adamw', '--beta2', '1'], /--beta2 must be a finite number in \[0, 1\)/],
      [[...ok, '--optimizer', 'adamw', '--eps', '0'], /--eps must be a positive finite number/],
      [[...ok, '--schedule', 'linear'], /--schedule must be step, cosine or constant/],
      [[...ok, '--schedule', 'cosine', '--gamma', '0.5'], /--gamma applies to --schedule step only/],
      [[...ok, '--min-lr', '0'], /--min-lr applies to --schedule cosine only/],
      [[...ok, '--schedule', 'constant', '--warmup-epochs', '1'], /--warmup-epochs applies to --schedule cosine only/],
      [[...ok, '--schedule', 'cosine', '--warmup-epochs', '3', '--epochs', '2'], /--warmup-epochs must be at most the 2 epochs, got "3"/],
      [[...ok, '--schedule', 'cosine', '--min-lr=-1'], /--min-lr must be a finite number >= 0/],
      [[...ok, '--milestones', '4,2'], /--milestones must be strictly increasing, got "4,2"/],
      [[...ok, '--milestones', '2,x'], /--milestones must be an integer in 1\.\.=100000, got "x"/],
      [[...ok, '--gamma', '0'], /--gamma must be a positive finite number/],
      [[...ok, '--advbn-steps', '1.5'], /--advbn-steps must be an integer in 0\.\.=1000, got "1\.5"/],
      [[...ok, '--advbn-step-size=-0.1'], /--advbn-step-size must be a finite number >= 0/],
      [[...ok, '--advbn-epsilon', '0'], /--advbn-epsilon must be a positive finite number/],
      [[...ok, '--method', 'erm', '--advbn-steps', '2'], /--advbn-steps applies to the AdvBN methods \(--method advbn, advbn_mixstyle, advbn_dsu\) only/],
      [[...ok, '--method', 'mixstyle', '--advbn-epsilon', '2'], /--advbn-epsilon applies to the AdvBN methods/],
      [[...ok, '--checkpoint-every', '0'], /--checkpoint-every must be a whole number >= 1/],
      [[...ok, '--bogus'], /Unknown option '--bogus'/],
      // The paths, once every flag is fine: named, nothing read.
      [ok, /--data names no such folder/],
      [['--data', data, '--out', out, '--weights', join(dir.path, 'none.pth')], /--weights names no such file/],
      [['--data', data, '--out', out, '--from-scratch', '--val', join(dir.path, 'nowhere')], /--val names no such folder/],
      [['--data', data, '--out', weights, '--from-scratch'], /--out must be a folder \(it exists and is not one\)/],
    ];
    for (const [args, message] of cases) {
      const run = advbn('fine-tune', ...args);
      expect(run.status, `${args.join(' ')}\n${run.stderr}`).toBe(2);
      expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).toContain('(advbn fine-tune --help lists the options)');
      expect(run.stdout).toBe('');
      expect(existsSync(out), args.join(' ')).toBe(false);
    }
  }, 60_000);

  it('--help lists every flag with the library default', () => {
    const help = advbn('fine-tune', '--help');
    expect(help.status).toBe(0);
    const shows = (flag: string, key: string) => {
      const rule = optionRule(key);
      expect(help.stdout, flag).toMatch(new RegExp(`${flag} [^\n]*(\n {20,}[^\n]*)*default ${String(rule.default).replace('.', '\\.')}\\b`));
    };
    shows('--epochs N', 'fineTune.epochs');
    shows('--batch-size N', 'fineTune.batchSize');
    shows('--seed N', 'seed');
    shows('--lr X', 'fineTune.lr');
    shows('--momentum X', 'fineTune.sgd.momentum');
    shows('--beta1 X', 'fineTune.adamw.beta1');
    shows('--beta2 X', 'fineTune.adamw.beta2');
    shows('--eps X', 'fineTune.adamw.eps');
    shows('--gamma X', 'fineTune.schedule.gamma');
    shows('--min-lr X', 'fineTune.schedule.minLr');
    shows('--warmup-epochs N', 'fineTune.schedule.warmupEpochs');
    shows('--advbn-steps K', 'fineTune.advbn.steps');
    shows('--advbn-step-size X', 'fineTune.advbn.stepSize');
    shows('--advbn-epsilon X', 'fineTune.advbn.epsilon');
    shows('--threads N', 'source.threads');
    shows('--prefetch N', 'source.prefetch');
    expect(help.stdout).toMatch(
      new RegExp(
        `--weight-decay X\\s+sgd: L2 weight decay \\(default ${optionRule('fineTune.sgd.weightDecay').default}\\); adamw: decoupled weight\\s+decay \\(default ${optionRule('fineTune.adamw.weightDecay').default}\\)`,
      ),
    );
    for (const flag of ['--optimizer NAME', '--nesterov', '--schedule NAME', '--milestones', '--augmix', '--method NAME', '--cut K', '--checkpoint-every N', '--resume'])
      expect(help.stdout).toContain(flag);
  });

  it('Ctrl-C checkpoints the position reached and exits 130; --resume finishes the run', async () => {
    const data = join(dir.path, 'many');
    for (const [label, name] of ['cat', 'dog'].entries()) {
      mkdirSync(join(data, name), { recursive: true });
      for (let i = 0; i < 24; i += 1) writeImage(join(data, name, `${i}.png`), pattern(40, 40, i, label), 40, 40, 'png');
    }
    const out = join(dir.path, 'interrupted');
    const args = ['fine-tune', '--data', data, '--out', out, '--from-scratch', '--model', 'resnet18', '--size', '32', '--epochs', '2', '--batch-size', '4', '--device', 'cpu'];
    // Interrupt after the first epoch's progress line, in the second epoch (12 batches each).
    const { code, stderr } = await interruptCli(args, /^Epoch 1\/2 12\/12 /m);
    expect(code, stderr).toBe(130);
    expect(stderr).toContain('rerun with --resume');
    expect(existsSync(join(out, 'checkpoint.safetensors'))).toBe(true);
    const resumed = advbn(...args, '--resume');
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).epochs).toBe(2);
    // The resumed run trains epoch 2 only; history.csv holds both.
    expect(resumed.stdout).toMatch(/^Epoch 2\/2 12\/12 /m);
    expect(resumed.stdout).not.toMatch(/^Epoch 1\/2/m);
    expect(readFileSync(join(out, 'history.csv'), 'utf8').trim().split('\n')).toHaveLength(3);
  }, 120_000);
});
