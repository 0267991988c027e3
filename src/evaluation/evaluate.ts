// Evaluation without perturbation, on either BatchNorm branch (the paper picks the branch per test set).
import type { DeviceName } from '../devices.js';
import { assertFitsModel, resolveDataset, type DatasetInput } from '../data/dataset.js';
import type { BnBranch, Model } from '../models.js';
import { readBnBranch } from '../models.js';
import { callNative } from '../native.js';
import { OptionReader, readDevice } from '../validation.js';

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** BatchNorm branch; default `'clean'`. `'adv'` needs a model fine-tuned with AdvBN. */
  bn?: BnBranch;
  /** Samples per forward pass; default 256. */
  batchSize?: number;
  /** Device the batches are gathered on; default the model's device. */
  device?: DeviceName;
}

/** Result of {@link evaluate}. */
export interface EvaluationResult {
  /** Mean cross-entropy. */
  loss: number;
  /** Top-1 accuracy in [0, 1]. */
  accuracy: number;
  /** Number of samples evaluated. */
  count: number;
  /** Samples skipped as bad (file sources with `onBadSample: 'skip'`); not in `count`. */
  skipped: number;
  /** BatchNorm branch used. */
  bn: BnBranch;
}

/**
 * Mean loss and top-1 accuracy of `model` on `data`, in inference mode.
 *
 * @example
 * ```ts
 * import { evaluate } from 'advbn';
 *
 * const { accuracy } = await evaluate(model, val, { bn: 'adv' }); // the adversarial BatchNorms AdvBN trained
 * ```
 */
export async function evaluate(model: Model, data: DatasetInput, options: EvaluateOptions = {}): Promise<EvaluationResult> {
  return evaluateIn('evaluate', model, data, options);
}

/** @internal `evaluate` with the caller's name in error messages (fineTune's validation uses it). */
export async function evaluateIn(context: string, model: Model, data: DatasetInput, options: EvaluateOptions): Promise<EvaluationResult> {
  const native = model.nativeHandle(context);
  const o = new OptionReader(context, options).rejectUnknown(['bn', 'batchSize', 'device']);
  const bn = readBnBranch(o, model);
  const batchSize = o.ruled('batchSize', 'evaluate.batchSize');
  const device = readDevice(o, 'device', model.device);
  const { dataset, owned } = resolveDataset(context, 'data', data, model.numClasses);
  try {
    assertFitsModel(context, 'data', dataset, model);
    let lossSum = 0;
    let correct = 0;
    let count = 0;
    let skipped = 0;
    for await (const batch of dataset.batches({ batchSize, device })) {
      const stats = await callNative(() => native.evaluate(batch.handle, bn));
      lossSum += stats.lossSum;
      correct += stats.correct;
      count += stats.count;
      skipped += batch.skipped?.length ?? 0;
    }
    return { loss: lossSum / count, accuracy: correct / count, count, skipped, bn };
  } finally {
    if (owned) dataset.dispose();
  }
}
