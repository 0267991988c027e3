// Checkpoints of a fineTune run: one file, `<dir>/checkpoint.safetensors`, replaced atomically
// (temp file, fsync, rename) so a crash at any moment leaves the previous checkpoint intact. It
// holds the weights (both BatchNorm branches and their running statistics), the optimiser state
// and, as JSON, the position in the run (epoch, next batch), the partial epoch sums and the
// history so far. The sample order and the attack are functions of (seed, epoch), so the
// position is all the RNG state a resumed run needs.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeTrainer } from '../../index.js';
import { InvalidOptionError } from '../errors.js';
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

/** @internal What a checkpoint records besides tensors. */
export interface RunPosition<Totals, Series> {
  /** Epoch to continue in. */
  epoch: number;
  /** First batch of `epoch` not yet trained on. */
  nextBatch: number;
  /** Partial sums of `epoch` so far. */
  totals: Totals;
  /** Completed epochs' numbers and series. */
  epochs: number[];
  history: Series;
  /** Settings of the run, which a resume must match. */
  params: Record<string, unknown>;
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

export async function saveCheckpoint<T, S>(trainer: NativeTrainer, checkpoint: ResolvedCheckpoint, position: RunPosition<T, S>): Promise<void> {
  mkdirSync(join(checkpoint.file, '..'), { recursive: true });
  await callNative(() => trainer.saveCheckpoint(checkpoint.file, JSON.stringify(position)));
}

/**
 * Restores the run from the checkpoint when there is one (a first run with `resume: true` just
 * starts). Rejects when the checkpoint was made with other settings, naming the first difference.
 */
export async function restoreCheckpoint<T, S>(trainer: NativeTrainer, checkpoint: ResolvedCheckpoint, params: Record<string, unknown>): Promise<RunPosition<T, S> | undefined> {
  if (!checkpoint.resume || !existsSync(checkpoint.file)) return undefined;
  const meta = await callNative(() => trainer.loadCheckpoint(checkpoint.file));
  const position = JSON.parse(meta) as RunPosition<T, S>;
  for (const [key, value] of Object.entries(params)) {
    if (JSON.stringify(position.params[key]) !== JSON.stringify(value)) {
      throw new InvalidOptionError(
        `fineTune: option "resume" cannot continue ${checkpoint.file}: it was made with ${key}=${JSON.stringify(position.params[key])}, this run has ${key}=${JSON.stringify(value)}`,
        'resume',
        true,
      );
    }
  }
  return position;
}
