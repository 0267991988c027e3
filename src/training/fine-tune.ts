// The training loop: per epoch, per batch, one awaited native step. The native step runs off the
// JS thread, so timers, I/O and callbacks keep running while a model trains.
import type { NativeTrainer, StepLogs } from '../../index.js';
import { assertFitsModel, resolveDataset, type Dataset, type ResolvedDataset } from '../data/dataset.js';
import { AbortError } from '../errors.js';
import { evaluateIn } from '../evaluation/evaluate.js';
import { Model, beginTraining } from '../models.js';
import { callNative, callNativeSync } from '../native.js';
import { invalidOption } from '../validation.js';
import { runHook, type BatchLogs, type EpochLogs } from './callbacks.js';
import { type EpochTotalsState, prepareCheckpointDir, restoreCheckpoint, saveCheckpoint } from './checkpoint.js';
import { resolveFineTuneOptions, type FineTuneOptions, type ResolvedFineTune } from './options.js';

/** Per-epoch series of a training run (tfjs-style). */
export interface HistoryRecord {
  /** Mean loss optimised per epoch. */
  loss: number[];
  /** Mean clean cross-entropy per epoch. */
  cleanLoss: number[];
  /** Mean adversarial cross-entropy per epoch (AdvBN only). */
  advLoss?: number[];
  /** Mean attack loss per epoch (AdvBN only). */
  attackLoss?: number[];
  /** Clean training accuracy per epoch. */
  accuracy: number[];
  /**
   * Training accuracy of the adversarial branch per epoch, on the attack's worst-case features
   * (methods with the adversarial branch only). `NaN` for an epoch resumed from a checkpoint
   * written before advbn counted it.
   */
  advAccuracy?: number[];
  /** Learning rate at each epoch's start. */
  lr: number[];
  /** Wall-clock milliseconds per epoch. */
  timeMs: number[];
  /** Validation loss per epoch (with `validationData`). */
  valLoss?: number[];
  /** Validation accuracy per epoch (with `validationData`). */
  valAccuracy?: number[];
  /** Training samples skipped as bad per epoch (file sources with `onBadSample: 'skip'`). */
  skipped: number[];
  /** Validation samples skipped as bad per epoch (with `validationData`). */
  valSkipped?: number[];
}

/** Settings the run actually used (after defaults). */
export interface HistoryParams {
  /** The method's name (see {@link FineTuneMethod}). */
  method: string;
  /** Stage after which the network was split. */
  cut: number;
  /** Epochs run. */
  epochs: number;
  /** Samples per step. */
  batchSize: number;
  /** Steps per epoch. */
  stepsPerEpoch: number;
  /** Training samples. */
  samples: number;
  /** Optimiser kind. */
  optimizer: string;
  /** Base learning rate. */
  lr: number;
  /** Schedule kind. */
  schedule: string;
  /** Seed. */
  seed: number;
}

/** What {@link fineTune} resolves to. */
export interface History {
  /** 0-based epoch numbers, one per entry of each series. */
  epochs: number[];
  /** Per-epoch series. */
  history: HistoryRecord;
  /** Settings used. */
  params: HistoryParams;
}

const CONTEXT = 'fineTune';

/**
 * Fine-tunes `model` in place with AdvBN (default) or plain ERM and resolves with the per-epoch
 * history. The encoder up to `cut` is frozen; with AdvBN the tail's BatchNorms get an adversarial
 * twin trained on worst-case feature-statistics perturbations.
 *
 * @example
 * ```ts
 * import { fineTune, imageFolder, randomResizedCrop, horizontalFlip, resnet18 } from 'advbn';
 *
 * const data = await imageFolder('imagenette/train', { transforms: [randomResizedCrop(224), horizontalFlip()] });
 * const model = await resnet18({ numClasses: data.numClasses, weights: 'resnet18-f37072fd.pth' });
 * const history = await fineTune(model, { data, epochs: 20, checkpoint: { dir: 'ckpt' } });
 * console.log(history.history.loss);
 * ```
 */
export async function fineTune(model: Model, options: FineTuneOptions): Promise<History> {
  if (!(model instanceof Model)) throw invalidOption(CONTEXT, 'model', model, 'a Model (from resnet18(), smallResnet(), loadModel() ...)');
  const nativeModel = model.nativeHandle(CONTEXT);
  const resolved = resolveFineTuneOptions(options, model);
  // A checkpoint folder that cannot be written fails now, not after the first epoch.
  if (resolved.checkpoint) prepareCheckpointDir(resolved.checkpoint);
  const endTraining = beginTraining(model, CONTEXT);
  const owned: ResolvedDataset[] = [];
  try {
    const train = resolveDataset(CONTEXT, 'data', options.data, model.numClasses);
    owned.push(train);
    assertFitsModel(CONTEXT, 'data', train.dataset, model);
    const validation = options.validationData === undefined ? undefined : resolveDataset(CONTEXT, 'validationData', options.validationData, model.numClasses);
    if (validation) {
      owned.push(validation);
      assertFitsModel(CONTEXT, 'validationData', validation.dataset, model);
    }
    const stepsPerEpoch = Math.ceil(train.dataset.length / resolved.batchSize);
    const trainer = callNativeSync((n) => new n.NativeTrainer(nativeModel, { ...resolved.trainer, stepsPerEpoch }));
    return await trainLoop(model, trainer, train.dataset, validation?.dataset, resolved, stepsPerEpoch);
  } finally {
    for (const { dataset, owned: mine } of owned) if (mine) dataset.dispose();
    endTraining();
  }
}

async function trainLoop(
  model: Model,
  trainer: NativeTrainer,
  data: Dataset,
  validation: Dataset | undefined,
  resolved: ResolvedFineTune,
  stepsPerEpoch: number,
): Promise<History> {
  const { trainer: config, callbacks, signal } = resolved;
  const history: History = {
    epochs: [],
    history: { loss: [], cleanLoss: [], accuracy: [], lr: [], timeMs: [], skipped: [] },
    params: {
      method: config.method,
      cut: config.cut,
      epochs: config.epochs,
      batchSize: resolved.batchSize,
      stepsPerEpoch,
      samples: data.length,
      optimizer: config.optimizer.type,
      lr: config.lr,
      schedule: config.schedule.type,
      seed: config.seed,
    },
  };
  let last: EpochLogs | undefined;
  throwIfAborted(signal);
  // What a resumed run must share with the run that wrote the checkpoint besides the trainer's
  // settings (which the core records and compares itself).
  const runSettings = { batchSize: resolved.batchSize, samples: data.length, shuffle: resolved.shuffle, augmix: resolved.augmix };
  const checkpoint = resolved.checkpoint;
  const resumed = checkpoint && (await restoreCheckpoint(trainer, checkpoint, runSettings));
  if (resumed) {
    history.epochs = resumed.epochs;
    history.history = resumed.history as unknown as HistoryRecord;
  }
  const save = (epoch: number, nextBatch: number, totals: EpochTotals) =>
    checkpoint
      ? saveCheckpoint(trainer, checkpoint, { epoch, nextBatch }, runSettings, {
          totals: totals.state(),
          epochs: history.epochs,
          history: { ...history.history } as Record<string, number[]>,
        })
      : Promise.resolve();
  let stepsDone = 0;
  for (const callback of callbacks) await callback.setModel?.(model);
  await runHook(callbacks, 'onTrainBegin', { epochs: config.epochs, stepsPerEpoch, samples: data.length });
  for (let epoch = resumed?.epoch ?? 0; epoch < config.epochs; epoch += 1) {
    const started = performance.now();
    const lr = callNativeSync(() => trainer.learningRate(epoch, 0));
    await runHook(callbacks, 'onEpochBegin', epoch, { lr });
    const resumeHere = resumed !== undefined && epoch === resumed.epoch;
    const firstBatch = resumeHere ? resumed.nextBatch : 0;
    const totals = resumeHere ? EpochTotals.from(resumed.totals) : new EpochTotals();
    const batches = data.batches({
      batchSize: resolved.batchSize,
      shuffle: resolved.shuffle,
      seed: config.seed,
      epoch,
      device: model.device,
      ...(resolved.augmix && { augment: 'augmix' as const }),
    });
    for await (const batch of batches) {
      // The order is a function of (seed, epoch): skipping the trained batches restores the data position.
      if (batch.index < firstBatch) continue;
      // Aborted: the position reached is checkpointed first, so a resume loses nothing.
      if (signal?.aborted && checkpoint && stepsDone > 0) await save(epoch, batch.index, totals);
      throwIfAborted(signal);
      await runHook(callbacks, 'onBatchBegin', batch.index, { batch: batch.index, size: batch.size });
      const step = await callNative(() => trainer.step(batch.handle, epoch, batch.index));
      totals.add(step, batch.skipped?.length ?? 0);
      stepsDone += 1;
      if (checkpoint?.everySteps !== undefined && stepsDone % checkpoint.everySteps === 0) await save(epoch, batch.index + 1, totals);
      await runHook(callbacks, 'onBatchEnd', batch.index, batchLogs(batch.index, step, batch.skipped));
    }
    last = totals.epochLogs(lr);
    if (validation) {
      // Aborted during the epoch's last step: its batches are done, so the checkpoint says so (a
      // resume runs only the validation and the epoch's end).
      if (signal?.aborted && checkpoint && stepsDone > 0) await save(epoch, stepsPerEpoch, totals);
      throwIfAborted(signal);
      const result = await evaluateIn(CONTEXT, model, validation, { bn: 'clean' });
      last.valLoss = result.loss;
      last.valAccuracy = result.accuracy;
      last.valSkipped = result.skipped;
    }
    last.timeMs = performance.now() - started;
    record(history, epoch, last);
    await save(epoch + 1, 0, new EpochTotals());
    await runHook(callbacks, 'onEpochEnd', epoch, last);
    if (callbacks.some((c) => c.shouldStop?.() === true)) break;
  }
  await runHook(callbacks, 'onTrainEnd', last);
  return history;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError('fineTune was aborted', { cause: signal.reason });
}

function batchLogs(batch: number, step: StepLogs, skipped: readonly string[] = []): BatchLogs {
  const { correct, advCorrect, count, attackCleanLoss: _unused, ...losses } = step;
  return {
    batch,
    size: count,
    ...losses,
    accuracy: correct / count,
    ...(advCorrect !== undefined && { advAccuracy: advCorrect / count }),
    ...(skipped.length > 0 && { skippedSamples: skipped }),
  };
}

/** Sample-weighted sums of one epoch's step logs. */
class EpochTotals {
  private count = 0;
  private correct = 0;
  private advCorrect: number | undefined;
  /**
   * Restored from a checkpoint written before advbn counted the adversarial branch's hits (it
   * summed `advLoss` but has no `advCorrect`): this epoch's `advAccuracy` is unknown.
   */
  private advUncounted = false;
  private loss = 0;
  private cleanLoss = 0;
  private advLoss: number | undefined;
  private attackLoss: number | undefined;
  private skipped = 0;

  static from(state: EpochTotalsState): EpochTotals {
    const totals = new EpochTotals();
    Object.assign(totals, state);
    totals.advUncounted = state.advLoss !== undefined && state.advCorrect === undefined;
    return totals;
  }

  state(): EpochTotalsState {
    // An uncounted epoch saves advLoss without advCorrect again, so a further resume knows.
    const { count, correct, advCorrect, loss, cleanLoss, advLoss, attackLoss, skipped } = this;
    return {
      count,
      correct,
      loss,
      cleanLoss,
      skipped,
      ...(advCorrect !== undefined && { advCorrect }),
      ...(advLoss !== undefined && { advLoss }),
      ...(attackLoss !== undefined && { attackLoss }),
    };
  }

  add(step: StepLogs, skipped: number): void {
    this.skipped += skipped;
    this.count += step.count;
    this.correct += step.correct;
    if (step.advCorrect !== undefined && !this.advUncounted) this.advCorrect = (this.advCorrect ?? 0) + step.advCorrect;
    this.loss += step.loss * step.count;
    this.cleanLoss += step.cleanLoss * step.count;
    if (step.advLoss !== undefined) this.advLoss = (this.advLoss ?? 0) + step.advLoss * step.count;
    if (step.attackLoss !== undefined) this.attackLoss = (this.attackLoss ?? 0) + step.attackLoss * step.count;
  }

  epochLogs(lr: number): EpochLogs {
    const n = this.count;
    return {
      loss: this.loss / n,
      cleanLoss: this.cleanLoss / n,
      ...(this.advLoss !== undefined && { advLoss: this.advLoss / n }),
      ...(this.attackLoss !== undefined && { attackLoss: this.attackLoss / n }),
      accuracy: this.correct / n,
      ...(this.advCorrect !== undefined && { advAccuracy: this.advCorrect / n }),
      lr,
      timeMs: 0,
      skipped: this.skipped,
    };
  }
}

function record(history: History, epoch: number, logs: EpochLogs): void {
  history.epochs.push(epoch);
  const series = history.history as unknown as Record<string, number[] | undefined>;
  for (const [key, value] of Object.entries(logs)) {
    if (typeof value !== 'number') continue;
    // A figure earlier epochs lack (advAccuracy after resuming an older checkpoint) is NaN there,
    // so that entry i stays epoch i's.
    const list = (series[key] ??= []);
    while (list.length < history.epochs.length - 1) list.push(Number.NaN);
    list.push(value);
  }
}
