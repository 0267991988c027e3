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
  /**
   * Top-5 accuracy in [0, 1]: the label is among the 5 best classes (all classes when the model
   * has 5 or fewer, so then it is 1).
   */
  top5: number;
  /** Top-1 accuracy of each class (by label) on its own samples; `null` for a class without samples. */
  perClass: (number | null)[];
  /** Confusion matrix, `numClasses` x `numClasses`: `confusion[label][predicted]` counts samples. */
  confusion: number[][];
  /** Number of samples evaluated. */
  count: number;
  /** Samples skipped as bad (file sources with `onBadSample: 'skip'`); not in `count`. */
  skipped: number;
  /** BatchNorm branch used. */
  bn: BnBranch;
}

/**
 * Mean loss, top-1 and top-5 accuracy, per-class accuracy and the confusion matrix of `model`
 * on `data`, in inference mode.
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
    const classes = model.numClasses;
    const confusion = new Float64Array(classes * classes);
    let lossSum = 0;
    let correct = 0;
    let top5 = 0;
    let count = 0;
    let skipped = 0;
    for await (const batch of dataset.batches({ batchSize, device })) {
      const stats = await callNative(() => native.evaluate(batch.handle, bn));
      lossSum += stats.lossSum;
      correct += stats.correct;
      count += stats.count;
      skipped += batch.skipped?.length ?? 0;
      const { k, topK, labels } = stats;
      for (let i = 0; i < labels.length; i += 1) {
        const label = labels[i]!;
        confusion[label * classes + topK[i * k]!]! += 1;
        // Ranked within the 5 best (k = min(5, numClasses)).
        for (let j = 0; j < k; j += 1) {
          if (topK[i * k + j] === label) {
            top5 += 1;
            break;
          }
        }
      }
    }
    const rows = Array.from({ length: classes }, (_, r) => Array.from(confusion.subarray(r * classes, (r + 1) * classes)));
    const perClass = rows.map((row, r) => {
      const total = row.reduce((a, b) => a + b, 0);
      return total === 0 ? null : row[r]! / total;
    });
    return { loss: lossSum / count, accuracy: correct / count, top5: top5 / count, perClass, confusion: rows, count, skipped, bn };
  } finally {
    if (owned) dataset.dispose();
  }
}
