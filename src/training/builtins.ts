// Built-in callbacks in Keras' shape: early stopping, keeping the best weights, CSV / JSON logs,
// a one-line-per-epoch progress report and a chart of the training curves. Each is a plain
// Callback; pass them in `callbacks`.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, extname } from 'node:path';
import { InvalidOptionError } from '../errors.js';
import { type Model, saveWeights } from '../models.js';
import { PALETTE, trainingCurvesChart } from '../report/charts.js';
import type { BatchLogs, Callback, EpochLogs } from './callbacks.js';

/**
 * A figure of {@link EpochLogs} to watch, e.g. `'valLoss'` or `'valAccuracy'` (`'advLoss'` and
 * `'advAccuracy'` need a method with the adversarial branch).
 */
export type Monitor = 'loss' | 'cleanLoss' | 'advLoss' | 'accuracy' | 'advAccuracy' | 'valLoss' | 'valAccuracy';

const MONITORS: readonly Monitor[] = ['loss', 'cleanLoss', 'advLoss', 'accuracy', 'advAccuracy', 'valLoss', 'valAccuracy'];

/** Whether larger is better: `'auto'` picks max for accuracies, min for losses. */
export type MonitorMode = 'min' | 'max' | 'auto';

function checkMonitor(context: string, monitor: unknown, mode: unknown): { monitor: Monitor; better: (a: number, b: number, delta: number) => boolean } {
  if (!MONITORS.includes(monitor as Monitor))
    throw new InvalidOptionError(`${context}: option "monitor" must be one of ${MONITORS.join(', ')}, got ${String(monitor)}`, 'monitor', monitor);
  if (mode !== 'min' && mode !== 'max' && mode !== 'auto')
    throw new InvalidOptionError(`${context}: option "mode" must be "min", "max" or "auto", got ${String(mode)}`, 'mode', mode);
  const max = mode === 'max' || (mode === 'auto' && /accuracy/i.test(monitor as string));
  return { monitor: monitor as Monitor, better: max ? (a, b, d) => a > b + d : (a, b, d) => a < b - d };
}

function watched(context: string, logs: EpochLogs, monitor: Monitor): number {
  const value = logs[monitor];
  if (typeof value !== 'number') {
    throw new InvalidOptionError(
      `${context}: monitor "${monitor}" is not in the epoch logs (validationData gives valLoss/valAccuracy; AdvBN methods give advLoss/advAccuracy)`,
      'monitor',
      monitor,
    );
  }
  return value;
}

/** Options of {@link earlyStopping}. */
export interface EarlyStoppingOptions {
  /** Figure watched; default `'valLoss'`. */
  monitor?: Monitor;
  /** Epochs without improvement before stopping; default 0 (stop at the first epoch that does not improve). */
  patience?: number;
  /** Smallest change that counts as an improvement; default 0. */
  minDelta?: number;
  /** Default `'auto'`. */
  mode?: MonitorMode;
}

/** An {@link earlyStopping} callback. */
export interface EarlyStopping extends Callback {
  /** The epoch after which training stopped, if it did. */
  readonly stoppedEpoch: number | undefined;
}

/**
 * Stops training when `monitor` has not improved by `minDelta` for `patience` epochs.
 *
 * @example
 * ```ts
 * await fineTune(model, { data, validationData: val, callbacks: [earlyStopping({ monitor: 'valLoss', patience: 3 })] });
 * ```
 */
export function earlyStopping(options: EarlyStoppingOptions = {}): EarlyStopping {
  const context = 'earlyStopping';
  const { monitor, better } = checkMonitor(context, options.monitor ?? 'valLoss', options.mode ?? 'auto');
  const patience = options.patience ?? 0;
  const minDelta = options.minDelta ?? 0;
  if (!Number.isInteger(patience) || patience < 0) throw new InvalidOptionError(`${context}: option "patience" must be an integer >= 0, got ${patience}`, 'patience', patience);
  if (!Number.isFinite(minDelta) || minDelta < 0) throw new InvalidOptionError(`${context}: option "minDelta" must be a finite number >= 0, got ${minDelta}`, 'minDelta', minDelta);
  let best: number | undefined;
  let wait = 0;
  let stop = false;
  let stoppedEpoch: number | undefined;
  return {
    get stoppedEpoch() {
      return stoppedEpoch;
    },
    onTrainBegin() {
      best = undefined;
      wait = 0;
      stop = false;
      stoppedEpoch = undefined;
    },
    onEpochEnd(epoch, logs) {
      const value = watched(context, logs, monitor);
      if (best === undefined || better(value, best, minDelta)) {
        best = value;
        wait = 0;
      } else if (++wait > patience) {
        stop = true;
        stoppedEpoch = epoch;
      }
    },
    shouldStop: () => stop,
  };
}

/** Options of {@link modelCheckpoint}. */
export interface ModelCheckpointOptions {
  /** Weights file written (safetensors, as {@link saveWeights}); `{epoch}` is replaced by the 0-based epoch. */
  path: string;
  /** Figure watched with `saveBestOnly`; default `'valLoss'`. */
  monitor?: Monitor;
  /** Default `'auto'`. */
  mode?: MonitorMode;
  /** Write only when `monitor` improves (default `true`); otherwise after every epoch. */
  saveBestOnly?: boolean;
}

/** A {@link modelCheckpoint} callback. */
export interface ModelCheckpoint extends Callback {
  /** The best value of `monitor` so far (with `saveBestOnly`). */
  readonly best: number | undefined;
}

/**
 * Saves the model's weights after an epoch: every epoch, or only when `monitor` improves (the
 * best model so far stays on disk). Unlike `checkpoint`, it keeps weights only, for later use.
 *
 * @example
 * ```ts
 * await fineTune(model, { data, validationData: val, callbacks: [modelCheckpoint({ path: 'best.safetensors', monitor: 'valAccuracy' })] });
 * ```
 */
export function modelCheckpoint(options: ModelCheckpointOptions): ModelCheckpoint {
  const context = 'modelCheckpoint';
  if (typeof options?.path !== 'string' || options.path === '')
    throw new InvalidOptionError(`${context}: option "path" must be a file path, got ${String(options?.path)}`, 'path', options?.path);
  const { monitor, better } = checkMonitor(context, options.monitor ?? 'valLoss', options.mode ?? 'auto');
  const saveBestOnly = options.saveBestOnly ?? true;
  let model: Model | undefined;
  let best: number | undefined;
  return {
    get best() {
      return best;
    },
    setModel(m) {
      model = m;
    },
    async onEpochEnd(epoch, logs) {
      if (!model) throw new InvalidOptionError(`${context}: not given a model (pass it in fineTune's callbacks)`, 'callbacks', undefined);
      if (saveBestOnly) {
        const value = watched(context, logs, monitor);
        if (best !== undefined && !better(value, best, 0)) return;
        best = value;
      }
      const path = options.path.replaceAll('{epoch}', String(epoch));
      mkdirSync(dirname(path), { recursive: true });
      await saveWeights(model, path);
    },
  };
}

const COLUMNS: readonly (keyof EpochLogs)[] = [
  'loss',
  'cleanLoss',
  'advLoss',
  'attackLoss',
  'accuracy',
  'advAccuracy',
  'lr',
  'valLoss',
  'valAccuracy',
  'skipped',
  'valSkipped',
  'timeMs',
];

/** Options of {@link csvLogger}. */
export interface CsvLoggerOptions {
  /**
   * Keep the rows already in the file (Keras' `append`), for a run resumed from a checkpoint:
   * the rows of earlier epochs stay, those from the epoch the run resumes in on are replaced.
   * Default `false`: the file is created (or emptied) when training begins.
   */
  append?: boolean;
}

/**
 * Writes one CSV row per epoch to `path` (header `epoch,loss,cleanLoss,...`; a figure an epoch
 * lacks is empty). The file is created (or emptied) when training begins, unless `append`.
 *
 * @example
 * ```ts
 * await fineTune(model, { data, callbacks: [csvLogger('runs/history.csv')] });
 * // Resuming: the rows of the epochs trained before stay in the file.
 * await fineTune(model, { data, checkpoint: { dir: 'runs' }, resume: true, callbacks: [csvLogger('runs/history.csv', { append: true })] });
 * ```
 */
export function csvLogger(path: string, options: CsvLoggerOptions = {}): Callback {
  if (typeof path !== 'string' || path === '') throw new InvalidOptionError(`csvLogger: option "path" must be a file path, got ${String(path)}`, 'path', path);
  const append = options.append ?? false;
  if (typeof append !== 'boolean') throw new InvalidOptionError(`csvLogger: option "append" must be a boolean, got ${String(append)}`, 'append', append);
  const columns: readonly string[] = ['epoch', ...COLUMNS];
  const header = columns.join(',');
  // With append, the rows kept (by epoch) until the first epoch of this run is known.
  let kept: Map<number, string> | undefined;
  return {
    onTrainBegin() {
      mkdirSync(dirname(path), { recursive: true });
      kept = undefined;
      const lines = append && existsSync(path) ? readFileSync(path, 'utf8').split('\n') : [];
      const old = lines[0]?.split(',');
      // A file of an older version has fewer columns (advAccuracy came later): its rows are kept
      // in this header's columns, the new ones empty.
      if (old && old[0] === 'epoch' && old.every((c) => columns.includes(c))) {
        const cells = (line: string) => {
          const values = new Map(line.split(',').map((v, i) => [old[i], v]));
          return columns.map((c) => values.get(c) ?? '').join(',');
        };
        kept = new Map();
        for (const line of lines.slice(1)) {
          const epoch = /^\d+(?=,)/.exec(line)?.[0];
          if (epoch !== undefined) kept.set(Number(epoch), lines[0] === header ? line : cells(line));
        }
      } else writeFileSync(path, `${header}\n`);
    },
    onEpochBegin(epoch) {
      if (!kept) return;
      const rows = [...kept].filter(([e]) => e < epoch).sort(([a], [b]) => a - b);
      writeFileSync(path, `${[header, ...rows.map(([, line]) => line)].join('\n')}\n`);
      kept = undefined;
    },
    onEpochEnd(epoch, logs) {
      appendFileSync(path, `${[epoch, ...COLUMNS.map((c) => logs[c] ?? '')].join(',')}\n`);
    },
  };
}

/** Writes one JSON object per epoch to `path` (JSON lines: `{"epoch":0,"loss":...}`), created when training begins. */
export function jsonLogger(path: string): Callback {
  if (typeof path !== 'string' || path === '') throw new InvalidOptionError(`jsonLogger: option "path" must be a file path, got ${String(path)}`, 'path', path);
  return {
    onTrainBegin() {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, '');
    },
    onEpochEnd(epoch, logs) {
      appendFileSync(path, `${JSON.stringify({ epoch, ...logs })}\n`);
    },
  };
}

/** Where {@link progressLogger} writes: `process.stdout` by default. */
export interface ProgressStream {
  /** Writes `text`; a `\r` redraws the line on a terminal. */
  write(text: string): unknown;
  /** A terminal: the bar is redrawn per batch; otherwise one line per epoch. */
  isTTY?: boolean;
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4));

/** A duration for people: `42s`, `3m05s`, `2h07m` (progress lines and reports). @internal */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/**
 * Keras' `verbose: 1`: a progress line per epoch (a bar redrawn on a terminal, one line per
 * epoch otherwise) with images/s, the time left and the losses. On a terminal the bar shows the
 * epoch's ETA; the line at each epoch's end shows the time left of the whole run (`ETA`, from the
 * time per batch so far, validation included; absent after the last epoch).
 * `fineTune(model, { verbose: 1 })` adds it.
 */
export function progressLogger(stream: ProgressStream = process.stdout): Callback {
  let epochs = 0;
  let steps = 0;
  let samples = 0;
  let started = 0;
  let seen = 0;
  let epoch = 0;
  // Batches of this epoch trained in this run (a resumed epoch starts part-way) and of the whole run.
  let batchesThisEpoch = 0;
  let batchesTrained = 0;
  let trainStarted = 0;
  const tty = stream.isTTY === true;
  return {
    onTrainBegin(logs) {
      ({ epochs, stepsPerEpoch: steps } = logs);
      batchesTrained = 0;
      trainStarted = performance.now();
    },
    onEpochBegin(e) {
      epoch = e;
      started = performance.now();
      seen = 0;
      samples = 0;
      batchesThisEpoch = 0;
    },
    onBatchEnd(batch, logs: BatchLogs) {
      seen = batch + 1;
      samples += logs.size;
      batchesThisEpoch += 1;
      batchesTrained += 1;
      if (!tty) return;
      const elapsed = (performance.now() - started) / 1000;
      const eta = (elapsed / batchesThisEpoch) * (steps - seen);
      const width = 20;
      const done = Math.round((width * seen) / Math.max(steps, 1));
      stream.write(
        `\rEpoch ${epoch + 1}/${epochs} ${seen}/${steps} [${'='.repeat(done)}${' '.repeat(width - done)}] ${(samples / Math.max(elapsed, 1e-9)).toFixed(0)} img/s ETA ${duration(eta)} loss ${fmt(logs.loss)}`,
      );
    },
    onEpochEnd(e, logs) {
      const seconds = logs.timeMs / 1000;
      const parts = [`loss ${fmt(logs.loss)}`, `clean ${fmt(logs.cleanLoss)}`];
      if (logs.advLoss !== undefined) parts.push(`adv ${fmt(logs.advLoss)}`);
      parts.push(`acc ${(100 * logs.accuracy).toFixed(1)}%`);
      if (logs.advAccuracy !== undefined) parts.push(`adv acc ${(100 * logs.advAccuracy).toFixed(1)}%`);
      if (logs.valLoss !== undefined) parts.push(`val_loss ${fmt(logs.valLoss)}`);
      if (logs.valAccuracy !== undefined) parts.push(`val_acc ${(100 * logs.valAccuracy).toFixed(1)}%`);
      // The rate as given (0.001, 5e-4, 0), not padded to 4 digits.
      parts.push(`lr ${Number(logs.lr.toPrecision(4))}`);
      const left = (epochs - e - 1) * steps;
      const eta = left > 0 && batchesTrained > 0 ? ` - ETA ${duration((((performance.now() - trainStarted) / 1000) * left) / batchesTrained)}` : '';
      stream.write(
        `${tty ? '\r\x1b[2K' : ''}Epoch ${e + 1}/${epochs} ${seen}/${steps} - ${seconds.toFixed(1)}s ${(samples / Math.max(seconds, 1e-9)).toFixed(0)} img/s${eta} - ${parts.join(' - ')}\n`,
      );
    },
  };
}

/**
 * Draws the training curves when training ends: loss and training accuracy per epoch of the
 * clean BN branch, and of the adversarial branch (on the attack's worst-case features) for AdvBN
 * methods, validation loss and accuracy when `validationData` is given, and the chance accuracy
 * 1 / `numClasses`. Writes
 * `path` as SVG or PNG by its extension (`.svg`, `.png`); the same chart `advbn reproduce`
 * writes as `curves.svg` / `curves.png`.
 *
 * @example
 * ```ts
 * await fineTune(model, { data, validationData: val, callbacks: [trainingCurves('runs/curves.png')] });
 * ```
 */
export function trainingCurves(path: string): Callback {
  const context = 'trainingCurves';
  if (typeof path !== 'string' || path === '') throw new InvalidOptionError(`${context}: option "path" must be a file path, got ${String(path)}`, 'path', path);
  const format = extname(path).toLowerCase();
  if (format !== '.svg' && format !== '.png') throw new InvalidOptionError(`${context}: option "path" must end in .svg or .png, got ${path}`, 'path', path);
  let model: Model | undefined;
  let samples = 0;
  let rows: { epoch: number; logs: EpochLogs }[] = [];
  return {
    setModel(m) {
      model = m;
    },
    onTrainBegin(logs) {
      samples = logs.samples;
      rows = [];
    },
    onEpochEnd(epoch, logs) {
      rows.push({ epoch: epoch + 1, logs });
    },
    onTrainEnd() {
      if (!model) throw new InvalidOptionError(`${context}: not given a model (pass it in fineTune's callbacks)`, 'callbacks', undefined);
      if (rows.length === 0) return;
      // An epoch without a figure the others have (advAccuracy of an epoch resumed from an older checkpoint) is a gap.
      const value = (r: (typeof rows)[number], key: keyof EpochLogs) => (typeof r.logs[key] === 'number' ? r.logs[key] : Number.NaN);
      const series = (key: keyof EpochLogs) => (rows.some((r) => typeof r.logs[key] === 'number') ? rows.map((r) => value(r, key)) : undefined);
      const [advLoss, advAccuracy, valLoss, valAccuracy] = [series('advLoss'), series('advAccuracy'), series('valLoss'), series('valAccuracy')];
      const chart = trainingCurvesChart({
        title: `Training curves (${rows.length} epoch${rows.length === 1 ? '' : 's'}, ${samples} training samples)`,
        numClasses: model.numClasses,
        runs: [
          {
            name: '',
            color: PALETTE[0]!,
            epochs: rows.map((r) => r.epoch),
            cleanLoss: series('cleanLoss')!,
            accuracy: series('accuracy')!,
            ...(advLoss && { advLoss }),
            ...(advAccuracy && { advAccuracy }),
            ...(valLoss && { valLoss }),
            ...(valAccuracy && { valAccuracy }),
          },
        ],
      });
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, format === '.svg' ? chart.svg : chart.png);
    },
  };
}
