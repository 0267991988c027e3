// Training hooks in the shape tfjs-layers users know: every hook is optional and may be async;
// the loop awaits each one before going on, so a hook can throttle or inspect training.
import type { Model } from '../models.js';

/** Logs passed to `onBatchBegin`. */
export interface BatchBeginLogs {
  /** 0-based batch index within the epoch. */
  batch: number;
  /** Samples in the batch. */
  size: number;
}

/** Logs passed to `onBatchEnd`: the losses of one optimisation step. */
export interface BatchLogs extends BatchBeginLogs {
  /** Loss optimised: clean + adversarial for AdvBN, clean for ERM. */
  loss: number;
  /** Cross-entropy of the clean branch. */
  cleanLoss: number;
  /** Cross-entropy of the adversarial branch (AdvBN only). */
  advLoss?: number;
  /** Eval-mode loss on the worst-case features found by the attack (AdvBN only). */
  attackLoss?: number;
  /** Range of the mean scales alpha found by the attack (AdvBN only). */
  alphaMin?: number;
  /** See `alphaMin`. */
  alphaMax?: number;
  /** Range of the spread scales beta found by the attack (AdvBN only). */
  betaMin?: number;
  /** See `betaMin`. */
  betaMax?: number;
  /** Accuracy of the clean branch on this batch. */
  accuracy: number;
  /**
   * Accuracy of the adversarial branch on this batch: its predictions on the attack's worst-case
   * features, the pass `advLoss` is the loss of (methods with the adversarial branch only).
   */
  advAccuracy?: number;
  /** Learning rate used for this step. */
  lr: number;
  /** Samples left out of this batch as bad, `"<file or record>: <reason>"` (only when some were). */
  skippedSamples?: readonly string[];
}

/** Logs of one epoch: sample-weighted means over its batches. */
export interface EpochLogs {
  /** Mean loss optimised. */
  loss: number;
  /** Mean clean cross-entropy. */
  cleanLoss: number;
  /** Mean adversarial cross-entropy (AdvBN only). */
  advLoss?: number;
  /** Mean eval-mode loss on the attack's worst case (AdvBN only). */
  attackLoss?: number;
  /** Training accuracy of the clean branch. */
  accuracy: number;
  /**
   * Training accuracy of the adversarial branch on the attack's worst-case features (methods with
   * the adversarial branch only; absent for an epoch resumed from a checkpoint written before
   * advbn counted it).
   */
  advAccuracy?: number;
  /** Learning rate at the start of the epoch. */
  lr: number;
  /** Wall-clock time of the epoch, validation included. */
  timeMs: number;
  /** Validation loss (clean BatchNorms), when `validationData` is given. */
  valLoss?: number;
  /** Validation accuracy (clean BatchNorms), when `validationData` is given. */
  valAccuracy?: number;
  /** Training samples skipped as bad in this epoch (file sources with `onBadSample: 'skip'`). */
  skipped: number;
  /** Validation samples skipped as bad, when `validationData` is given. */
  valSkipped?: number;
}

/** Logs passed to `onEpochBegin`. */
export interface EpochBeginLogs {
  /** Learning rate at the start of the epoch. */
  lr: number;
}

/** Training hooks; each is optional. A returned promise is awaited; any other return value is ignored. */
export interface Callback {
  /** Called once before training with the model being trained (as Keras' `set_model`). */
  setModel?(model: Model): unknown;
  /** Asked after every epoch: `true` ends training there (the epoch's checkpoint is written first). */
  shouldStop?(): boolean;
  /** Before the first epoch. */
  onTrainBegin?(logs: { epochs: number; stepsPerEpoch: number; samples: number }): unknown;
  /** Before each epoch (0-based). */
  onEpochBegin?(epoch: number, logs: EpochBeginLogs): unknown;
  /** Before each batch (0-based within the epoch). */
  onBatchBegin?(batch: number, logs: BatchBeginLogs): unknown;
  /** After each optimisation step. */
  onBatchEnd?(batch: number, logs: BatchLogs): unknown;
  /** After each epoch, with its aggregated logs. */
  onEpochEnd?(epoch: number, logs: EpochLogs): unknown;
  /** After the last epoch, with the last epoch's logs. */
  onTrainEnd?(logs: EpochLogs | undefined): unknown;
}

type HookArgs<K extends keyof Callback> = Parameters<NonNullable<Callback[K]>>;

/** Calls one hook on every callback, in order, awaiting each. */
export async function runHook<K extends keyof Callback>(callbacks: readonly Callback[], hook: K, ...args: HookArgs<K>): Promise<void> {
  for (const callback of callbacks) {
    const fn = callback[hook] as ((...a: HookArgs<K>) => unknown) | undefined;
    if (fn) await fn.apply(callback, args);
  }
}
