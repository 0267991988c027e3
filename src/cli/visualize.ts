// `advbn visualize`: the picture of AdvBN-perturbed features on the embedded digits.
import { parseArgs } from 'node:util';
import { loadDigits } from '../data/digits.js';
import { smallResnet } from '../models.js';
import { fineTune } from '../training/fine-tune.js';
import { visualizeAdversarialFeatures } from '../visualize.js';

const USAGE = `usage: advbn visualize [--out FILE.png] [--weights FILE] [--steps N] [--seed N]

Trains a small ResNet on the embedded MNIST digits (or loads --weights of a small_resnet depth 8
width 8, 10 classes), trains a decoder that inverts its encoder after stage 1, and writes a PNG:
per row the input, its reconstruction, and the decoded AdvBN-perturbed features at attack
strengths 0.3, 0.6 and 1.1. Default FILE: advbn-features.png.`;

export async function runVisualize(args: readonly string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: [...args],
      options: { out: { type: 'string' }, weights: { type: 'string' }, steps: { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    console.error(`advbn visualize: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const steps = v.steps === undefined ? 300 : Number(v.steps);
  const seed = v.seed === undefined ? 0 : Number(v.seed);
  if (!Number.isInteger(steps) || steps < 1 || !Number.isInteger(seed) || seed < 0) {
    console.error(`advbn visualize: --steps must be a whole number >= 1 and --seed >= 0\n\n${USAGE}`);
    return 2;
  }
  const digits = await loadDigits();
  const train = await digits.domain('mnist', { split: 'train', limit: 2000, seed });
  const model = await smallResnet({ numClasses: 10, depth: 8, width: 8, seed, device: 'auto', ...(v.weights && { weights: v.weights }) });
  try {
    if (!v.weights) {
      console.error('advbn visualize: training the encoder on MNIST (2 epochs)');
      await fineTune(model, { data: train, method: 'erm', cut: 0, epochs: 2, batchSize: 16, seed, optimizer: { type: 'adamw', lr: 1e-2, weightDecay: 1e-4 }, schedule: { type: 'cosine' } });
    }
    const out = v.out ?? 'advbn-features.png';
    console.error(`advbn visualize: training the decoder (${steps} steps)`);
    const { losses } = await visualizeAdversarialFeatures(model, train, { steps, seed, out });
    console.log(`wrote ${out} (decoder loss ${losses[0]!.toFixed(4)} -> ${losses[losses.length - 1]!.toFixed(4)})`);
    return 0;
  } finally {
    model.dispose();
    train.dispose();
  }
}
