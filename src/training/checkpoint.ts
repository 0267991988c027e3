// Checkpoints of a fineTune run: one file, `<dir>/checkpoint.safetensors`, replaced atomically
// (temp file, fsync, rename) so a crash at any moment leaves the previous checkpoint intact. The
// core owns the format (crates/advbn-core/src/train/checkpoint.rs): the weights (both BatchNorm
// branches and their running statistics), the optimiser state, the position in the run, every
// setting a resume must match, a checksum; fineTune adds its record (the partial epoch sums and
// the history so far). The sample order and the attack are functions of (seed, epoch), so the
// position is all the RNG state a resumed run needs.
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { NativeTrainer } from '../../index.js';
import { InvalidDataError, InvalidOptionError } from '../errors.js';
import { callNative } from '../native.js';
import type { OptionReader } from '../validation.js';

/** The `checkpoint` option of {@link fineTune}. */
export interface CheckpointOptions {
  /** Folder of `checkpoint.safetensors` (created if missing). */
  dir: string;
  /** `'epoch'` (default): after every epoch; a number N: also after every N steps. */
  every?: 'epoch' | number;
}

/** @internal Validated checkpoint settings. */
export interface ResolvedCheckpoint {
  file: string;
  everySteps: number | undefined;
  resume: boolean;
}

/** @internal Serialisable sums of a partly trained epoch (checkpoints carry them). */
export interface EpochTotalsState {
  count: number;
  correct: number;
  /** Adversarial-branch hits (adversarial methods; absent in checkpoints written before advbn counted them). */
  advCorrect?: number;
  loss: number;
  cleanLoss: number;
  advLoss?: number;
  attackLoss?: number;
  skipped?: number;
}

/**
 * @internal What fineTune keeps in a checkpoint besides what the core owns (tensors, position,
 * settings): the partial sums of the epoch in progress and the history so far.
 */
export interface FineTuneRecord {
  totals: EpochTotalsState;
  /** Completed epochs' numbers. */
  epochs: number[];
  /** Per-epoch series, one entry per completed epoch. */
  history: Record<string, number[]>;
}

/** @internal A checkpoint restored: where to continue, and the record. */
export interface Restored extends FineTuneRecord {
  /** Epoch to continue in. */
  epoch: number;
  /** First batch of `epoch` not yet trained on. */
  nextBatch: number;
}

export function readCheckpointOptions(o: OptionReader): ResolvedCheckpoint | undefined {
  const resume = o.boolean('resume', false);
  if (!o.has('checkpoint')) {
    if (resume) throw o.fail('resume', 'false unless `checkpoint: { dir }` says where the checkpoint is');
    return undefined;
  }
  const c = o.nested('checkpoint').rejectUnknown(['dir', 'every']);
  const dir = c.optionalString('dir');
  if (dir === undefined) throw c.fail('dir', 'a folder path');
  const every = c.values.every;
  if (every !== undefined && every !== 'epoch' && !(Number.isInteger(every) && (every as number) >= 1)) {
    throw c.fail('every', '"epoch" or a whole number of steps >= 1');
  }
  return { file: join(dir, 'checkpoint.safetensors'), everySteps: typeof every === 'number' ? every : undefined, resume };
}

/**
 * Creates the checkpoint folder and checks that it can be written, before any training: an
 * InvalidOptionError of `checkpoint.dir` naming the folder and the reason (below a regular file,
 * not writable, ...).
 */
export function prepareCheckpointDir(checkpoint: ResolvedCheckpoint): void {
  const dir = dirname(checkpoint.file);
  const fail = (why: string, cause?: unknown) =>
    new InvalidOptionError(`fineTune: option "checkpoint.dir" must be a folder this process can write, got ${JSON.stringify(dir)}: ${why}`, 'checkpoint.dir', dir, {
      cause,
    });
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOTDIR' || code === 'EEXIST' ? 'a part of the path is a file, not a folder' : (err as Error).message, err);
  }
  if (!statSync(dir).isDirectory()) throw fail('it is a file, not a folder');
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw fail('not writable', err);
  }
}

/**
 * Saves the run (the core writes and owns the format; the folder was prepared by
 * {@link prepareCheckpointDir} before training). `settings` are the run's own settings a resume
 * must match besides the trainer's, which the core adds and compares itself.
 */
export async function saveCheckpoint(
  trainer: NativeTrainer,
  checkpoint: ResolvedCheckpoint,
  position: { epoch: number; nextBatch: number },
  settings: Record<string, unknown>,
  record: FineTuneRecord,
): Promise<void> {
  await callNative(() => trainer.saveCheckpoint(checkpoint.file, position.epoch, position.nextBatch, JSON.stringify(settings), JSON.stringify(record)));
}

/**
 * Restores the run from the checkpoint when there is one (a first run with `resume: true` just
 * starts). The core refuses a damaged file or one made with other settings (naming the first
 * difference); the record is read field by field, each failure naming the file and the field.
 */
export async function restoreCheckpoint(trainer: NativeTrainer, checkpoint: ResolvedCheckpoint, settings: Record<string, unknown>): Promise<Restored | undefined> {
  if (!checkpoint.resume || !existsSync(checkpoint.file)) return undefined;
  const loaded = await callNative(() => trainer.loadCheckpoint(checkpoint.file, JSON.stringify(settings)));
  return { epoch: loaded.epoch, nextBatch: loaded.nextBatch, ...readRecord(loaded.record, checkpoint.file) };
}

const TOTALS = ['count', 'correct', 'loss', 'cleanLoss'] as const;
const OPTIONAL_TOTALS = ['advCorrect', 'advLoss', 'attackLoss', 'skipped'] as const;
const SERIES_NAME = /^[a-zA-Z]+$/;

/** Parses a checkpoint's record; anything else than what fineTune writes is an InvalidDataError naming the field. */
export function readRecord(text: string, file: string): FineTuneRecord {
  const fail = (field: string, rule: string) => new InvalidDataError(`checkpoint ${file}: record${field} must be ${rule}`);
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidDataError(`checkpoint ${file}: the record is not JSON (${(err as Error).message})`, { cause: err });
  }
  if (!isObject(value)) throw fail('', 'an object');
  const { totals, epochs, history } = value;
  if (!Array.isArray(epochs) || !epochs.every((e) => Number.isInteger(e) && e >= 0)) throw fail('.epochs', 'an array of epoch numbers');
  if (!isObject(totals)) throw fail('.totals', 'an object');
  const state = {} as EpochTotalsState;
  for (const key of [...TOTALS, ...OPTIONAL_TOTALS]) {
    const v = totals[key];
    if (v === undefined && (OPTIONAL_TOTALS as readonly string[]).includes(key)) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw fail(`.totals.${key}`, 'a finite number >= 0');
    state[key] = v;
  }
  if (!isObject(history)) throw fail('.history', 'an object');
  // Built without a prototype's setters: a "__proto__" key is just refused.
  const series: Record<string, number[]> = {};
  for (const [key, v] of Object.entries(history)) {
    if (!SERIES_NAME.test(key)) throw fail(`.history[${JSON.stringify(key)}]`, 'a series named in letters');
    if (!Array.isArray(v) || v.length > epochs.length || !v.every((x) => typeof x === 'number' || x === null)) {
      throw fail(`.history.${key}`, `an array of at most ${epochs.length} numbers (one per completed epoch)`);
    }
    // NaN (a figure an epoch lacks) is null in JSON: back to NaN, so every entry is a number.
    series[key] = v.map((x) => (x === null ? Number.NaN : x)) as number[];
  }
  return { totals: state, epochs: epochs as number[], history: series };
}
