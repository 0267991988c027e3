// Crash safety: a fine-tune SIGKILLed mid-epoch and resumed from its checkpoint ends
// bit-identical to an uninterrupted run; bad checkpoint settings reject by name.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { AbortError, fineTune, InvalidDataError, InvalidOptionError, TrainingDivergedError, type EpochLogs } from '../src/index.js';
import { loadNative } from '../src/native.js';
import { readRecord, type FineTuneRecord } from '../src/training/checkpoint.js';
import { separableData, tinyModel } from './helpers.js';

const child = join(import.meta.dirname, 'fixtures', 'checkpoint-child.mjs');

/** Runs the child to the end; returns how many steps it trained. */
function runToEnd(dir: string, resume: boolean, out: string): number {
  const run = spawnSync(process.execPath, [child, dir, resume ? '1' : '0', out], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`child failed: ${run.stderr}`);
  return (run.stdout.match(/step \d+/g) ?? []).length;
}

/** Starts a checkpointing run and SIGKILLs it right after step `killAt`. */
function killAfter(dir: string, killAt: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, dir, '0', join(dir, 'unused.json')]);
    let seen = 0;
    proc.stdout.on('data', (chunk: Buffer) => {
      seen += (chunk.toString().match(/step \d+/g) ?? []).length;
      if (seen >= killAt) proc.kill('SIGKILL');
    });
    proc.on('exit', (_code, signal) => (signal === 'SIGKILL' ? resolve(seen) : reject(new Error(`child was not killed (${signal})`))));
  });
}

describe('checkpoints', () => {
  it('a SIGKILLed and resumed fine-tune ends bit-identical to an uninterrupted one', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'advbn-ckpt-'));
    const straight = join(tmp, 'straight.json');
    expect(runToEnd('-', false, straight)).toBe(9);
    const dir = join(tmp, 'run');
    const killedAt = await killAfter(dir, 5); // 3 steps per epoch: killed inside epoch 1
    expect(killedAt).toBeGreaterThanOrEqual(5);
    const resumed = join(tmp, 'resumed.json');
    // It really continued: only the steps after the last checkpoint ran again.
    const rerun = runToEnd(dir, true, resumed);
    expect(rerun).toBeGreaterThan(0);
    expect(rerun).toBeLessThanOrEqual(9 - killedAt);
    expect(JSON.parse(readFileSync(resumed, 'utf8'))).toEqual(JSON.parse(readFileSync(straight, 'utf8')));
  }, 60_000);

  it('rejects a resume with other settings, a missing dir, and a damaged checkpoint', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'advbn-ckpt-'));
    const data = separableData(16);
    const model = await tinyModel(0);
    await fineTune(model, { data, epochs: 1, batchSize: 8, checkpoint: { dir: tmp } });
    await expect(fineTune(model, { data, epochs: 1, batchSize: 4, checkpoint: { dir: tmp }, resume: true })).rejects.toThrow(/resume.*batchSize=8.*batchSize=4/);
    // Settings the old comparison missed are compared by the core now.
    await expect(fineTune(model, { data, epochs: 1, batchSize: 8, optimizer: { type: 'sgd', momentum: 0.5 }, checkpoint: { dir: tmp }, resume: true })).rejects.toThrow(
      /optimizer\.momentum=0\.9.*optimizer\.momentum=0\.5/,
    );
    await expect(fineTune(model, { data, epochs: 1, batchSize: 8, advbn: { reluClamp: false }, checkpoint: { dir: tmp }, resume: true })).rejects.toThrow(
      /advbn\.reluClamp=true.*advbn\.reluClamp=false/,
    );
    await expect(fineTune(model, { data, resume: true })).rejects.toThrow(InvalidOptionError);
    await expect(fineTune(model, { data, checkpoint: { dir: tmp, every: 0 } })).rejects.toThrow(/checkpoint\.every/);
    const file = join(tmp, 'checkpoint.safetensors');
    writeFileSync(file, readFileSync(file).subarray(0, 200));
    await expect(fineTune(model, { data, epochs: 1, batchSize: 8, checkpoint: { dir: tmp }, resume: true })).rejects.toThrow(InvalidDataError);
    model.dispose();
  });
});

describe('early refusals', () => {
  it('a non-model and a checkpoint folder below a file are typed errors before any training', async () => {
    await expect(fineTune(null as never, { data: separableData(4) })).rejects.toMatchObject({ code: 'ADVBN_INVALID_OPTION', option: 'model' });
    await expect(fineTune({} as never, { data: separableData(4) })).rejects.toBeInstanceOf(InvalidOptionError);
    const tmp = mkdtempSync(join(tmpdir(), 'advbn-ckdir-'));
    const file = join(tmp, 'plain-file');
    writeFileSync(file, 'x');
    const model = await tinyModel(0);
    let began = false;
    const err = await fineTune(model, {
      data: separableData(8),
      epochs: 1,
      batchSize: 4,
      checkpoint: { dir: join(file, 'ckpt') },
      callbacks: {
        onTrainBegin: () => {
          began = true;
        },
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err).toMatchObject({ option: 'checkpoint.dir' });
    expect((err as Error).message).toMatch(/plain-file.*a part of the path is a file/);
    expect(began).toBe(false);
    model.dispose();
  });
});

describe('abort', () => {
  it('checkpoints the position reached before rejecting; a resume trains the rest and matches an uninterrupted run', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'advbn-abort-'));
    const options = { data: separableData(32), epochs: 2, batchSize: 8, method: 'erm' as const, lr: 0.05 };
    const straightModel = await tinyModel(0);
    const straight = await fineTune(straightModel, options);
    const model = await tinyModel(0);
    const controller = new AbortController();
    const aborted = await fineTune(model, {
      ...options,
      checkpoint: { dir: tmp },
      signal: controller.signal,
      callbacks: { onBatchEnd: (batch) => batch === 1 && controller.abort() },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(aborted).toBeInstanceOf(AbortError);
    const fresh = await tinyModel(5);
    const resumed = await fineTune(fresh, { ...options, checkpoint: { dir: tmp }, resume: true });
    expect(resumed.history.loss).toEqual(straight.history.loss);
    for (const m of [straightModel, model, fresh]) m.dispose();
  });

  it('an abort during the last batch of an epoch keeps the epoch: checkpointed before the validation', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'advbn-abort-'));
    const options = { data: separableData(32), validationData: separableData(8, 2), epochs: 2, batchSize: 8, method: 'erm' as const, lr: 0.05 };
    using straightModel = await tinyModel(0);
    const straight = await fineTune(straightModel, options);
    using model = await tinyModel(0);
    const controller = new AbortController();
    // The abort arrives while the epoch's last step runs (batch 3 of 4): no batch check follows it.
    const aborted = await fineTune(model, {
      ...options,
      checkpoint: { dir: tmp },
      signal: controller.signal,
      callbacks: { onBatchBegin: (batch) => batch === 3 && controller.abort() },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(aborted).toBeInstanceOf(AbortError);
    using fresh = await tinyModel(5);
    let trained = 0;
    const resumed = await fineTune(fresh, { ...options, checkpoint: { dir: tmp }, resume: true, callbacks: { onBatchEnd: () => void (trained += 1) } });
    // Only epoch 1's 4 steps are trained again; the figures are those of the uninterrupted run.
    expect(trained).toBe(4);
    expect(resumed.history.loss).toEqual(straight.history.loss);
    expect(resumed.history.valLoss).toEqual(straight.history.valLoss);
  });
});

describe("the adversarial branch's accuracy across a resume", () => {
  const options = { data: separableData(32), epochs: 3, batchSize: 8, lr: 0.05, schedule: { type: 'constant' as const } };

  /** Trains with a checkpoint, aborting after batch 1 of epoch 1, with `edit` applied to every record written; returns the records. */
  async function abortedRun(dir: string, edit: (record: FineTuneRecord) => FineTuneRecord = (r) => r): Promise<FineTuneRecord[]> {
    const records: FineTuneRecord[] = [];
    const proto = loadNative().NativeTrainer.prototype;
    const original = proto.saveCheckpoint;
    const spy = vi.spyOn(proto, 'saveCheckpoint').mockImplementation(function (this: typeof proto, path, epoch, nextBatch, settings, record) {
      const edited = edit(JSON.parse(record) as FineTuneRecord);
      records.push(edited);
      return original.call(this, path, epoch, nextBatch, settings, JSON.stringify(edited));
    });
    try {
      using model = await tinyModel(0);
      const controller = new AbortController();
      let epoch = 0;
      const aborted = await fineTune(model, {
        ...options,
        checkpoint: { dir },
        signal: controller.signal,
        callbacks: { onEpochBegin: (e) => void (epoch = e), onBatchEnd: (batch) => epoch === 1 && batch === 1 && controller.abort() },
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(aborted).toBeInstanceOf(AbortError);
    } finally {
      spy.mockRestore();
    }
    return records;
  }

  it("the running count is checkpointed mid-epoch: a resumed run reports the uninterrupted run's advAccuracy", async () => {
    using straightModel = await tinyModel(0);
    const straight = await fineTune(straightModel, options);
    expect(straight.history.advAccuracy).toHaveLength(3);
    const dir = mkdtempSync(join(tmpdir(), 'advbn-advacc-'));
    const records = await abortedRun(dir);
    // The mid-epoch checkpoint (written by the abort after 2 of epoch 1's 4 batches) carries the hits so far.
    const mid = records.at(-1)!;
    expect(mid.totals.count).toBe(16);
    expect(Number.isInteger(mid.totals.advCorrect)).toBe(true);
    expect(mid.history.advAccuracy).toEqual(straight.history.advAccuracy!.slice(0, 1));
    using fresh = await tinyModel(5);
    const resumed = await fineTune(fresh, { ...options, checkpoint: { dir }, resume: true });
    expect(resumed.history.advAccuracy).toEqual(straight.history.advAccuracy);
    expect(resumed.history.accuracy).toEqual(straight.history.accuracy);
  });

  it('a checkpoint written before advbn counted it still loads: the epochs it lacks are NaN in the history and absent from their epoch logs', async () => {
    using straightModel = await tinyModel(0);
    const straight = await fineTune(straightModel, options);
    const dir = mkdtempSync(join(tmpdir(), 'advbn-advacc-'));
    // What an older version wrote: no advCorrect in the totals, no advAccuracy series.
    await abortedRun(dir, ({ totals: { advCorrect: _c, ...totals }, history: { advAccuracy: _a, ...history }, epochs }) => ({ totals, epochs, history }));
    using fresh = await tinyModel(5);
    const logs: EpochLogs[] = [];
    const resumed = await fineTune(fresh, { ...options, checkpoint: { dir }, resume: true, callbacks: { onEpochEnd: (_e, l) => void logs.push(l) } });
    // Epoch 0 was trained before (no figure), epoch 1 only half counted (no figure), epoch 2 counted in full.
    expect(resumed.history.advAccuracy).toEqual([Number.NaN, Number.NaN, straight.history.advAccuracy![2]]);
    expect(logs.map((l) => l.advAccuracy)).toEqual([undefined, straight.history.advAccuracy![2]]);
    expect(resumed.history.accuracy).toEqual(straight.history.accuracy);
    expect(resumed.history.loss).toEqual(straight.history.loss);
  });
});

describe('checkpoint record', () => {
  it('is read field by field: every malformed record is an InvalidDataError naming the file and the field', () => {
    const good = { totals: { count: 4, correct: 3, loss: 2.5, cleanLoss: 2.5, skipped: 0 }, epochs: [0], history: { loss: [0.6], accuracy: [0.75] } };
    expect(readRecord(JSON.stringify(good), 'c.safetensors')).toEqual(good);
    // The adversarial branch's hits are optional (older checkpoints lack them); a NaN saved as null is NaN again.
    const adv = { totals: { ...good.totals, advCorrect: 2, advLoss: 3 }, epochs: [0, 1], history: { ...good.history, advAccuracy: [Number.NaN, 0.5] } };
    expect(readRecord(JSON.stringify(adv), 'c.safetensors')).toEqual(adv);
    const bad: [string, RegExp][] = [
      ['{oops', /c\.safetensors: the record is not JSON/],
      ['42', /record must be an object/],
      ['{}', /record\.epochs must be/],
      [JSON.stringify({ ...good, history: 'x' }), /record\.history must be an object/],
      [JSON.stringify({ ...good, history: { loss: [1, 2] } }), /record\.history\.loss must be an array of at most 1 numbers/],
      [JSON.stringify({ ...good, totals: { ...good.totals, loss: 'NaN' } }), /record\.totals\.loss must be a finite number/],
      [JSON.stringify({ ...good, totals: { ...good.totals, advCorrect: -1 } }), /record\.totals\.advCorrect must be a finite number/],
      [JSON.stringify({ ...good, epochs: [-1] }), /record\.epochs/],
      ['{"totals":{"count":1,"correct":1,"loss":1,"cleanLoss":1},"epochs":[],"history":{"__proto__":[]}}', /record\.history\["__proto__"\] must be a series named in letters/],
    ];
    for (const [text, message] of bad) {
      let caught: unknown;
      try {
        readRecord(text, 'c.safetensors');
      } catch (err) {
        caught = err;
      }
      expect(caught, text).toBeInstanceOf(InvalidDataError);
      expect((caught as Error).message, text).toMatch(message);
      expect((caught as Error).message, text).toContain('c.safetensors');
    }
  });
});

describe('divergence', () => {
  it('stops with an error naming the step and leaves the last checkpoint loadable', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'advbn-diverge-'));
    const data = separableData(32);
    const model = await tinyModel(0);
    const options = { data, epochs: 3, batchSize: 8, lr: 1e12, method: 'erm' as const, checkpoint: { dir: tmp, every: 1 } };
    const first = await fineTune(model, options).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(first).toBeInstanceOf(TrainingDivergedError);
    expect((first as Error).message).toMatch(/diverged: the loss is (NaN|inf|-inf) at epoch \d+, step \d+/);
    // The checkpoint written before the bad step loads, and the run diverges at the same step again.
    const again = await fineTune(model, { ...options, resume: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(again).toBeInstanceOf(TrainingDivergedError);
    expect((again as Error).message).toBe((first as Error).message);
    model.dispose();
  });
});
