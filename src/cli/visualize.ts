// `advbn visualize`: the picture of AdvBN-perturbed features on the embedded digits.
import { parseFlags, runCommand, wholeFlag } from './args.js';
import { loadDigits } from '../data/digits.js';
import { smallResnet } from '../models.js';
import { fineTune } from '../training/fine-tune.js';
import { visualizeAdversarialFeatures } from '../visualize.js';

const USAGE = `usage: advbn visualize [--out FILE.png|FILE.svg] [--weights FILE] [--steps N] [--seed N]

Trains a small ResNet on the embedded MNIST digits (or loads --weights of a small_resnet depth 8
width 8, 10 classes), trains a decoder that inverts its encoder after stage 1, and writes a
picture: per row the input, its reconstruction, and the decoded AdvBN-perturbed features at attack
strengths 0.3, 0.6 and 1.1, enlarged nearest-neighbour, with labelled columns and a caption. PNG,
or SVG when FILE ends in .svg. Default FILE: advbn-features.png.`;

export async function runVisualize(args: readonly string[]): Promise<number> {
  return runCommand('visualize', async () => {
    const v = parseFlags(args, { out: 'string', weights: 'string', steps: 'string', seed: 'string' });
    if (v.help) {
      console.log(USAGE);
      return 0;
    }
    const steps = wholeFlag('steps', v.steps, 1) ?? 300;
    const seed = wholeFlag('seed', v.seed, 0) ?? 0;
    return draw(v.out, v.weights, steps, seed);
  });
}

async function draw(outFile: string | undefined, weights: string | undefined, steps: number, seed: number): Promise<number> {
  const digits = await loadDigits();
  const train = await digits.domain('mnist', { split: 'train', limit: 2000, seed });
  const model = await smallResnet({ numClasses: 10, depth: 8, width: 8, seed, device: 'auto', ...(weights && { weights }) });
  try {
    if (!weights) {
      console.error('advbn visualize: training the encoder on MNIST (2 epochs)');
      await fineTune(model, {
        data: train,
        method: 'erm',
        cut: 0,
        epochs: 2,
        batchSize: 16,
        seed,
        optimizer: { type: 'adamw', lr: 1e-2, weightDecay: 1e-4 },
        schedule: { type: 'cosine' },
      });
    }
    const out = outFile ?? 'advbn-features.png';
    console.error(`advbn visualize: training the decoder (${steps} steps)`);
    const { losses } = await visualizeAdversarialFeatures(model, train, { steps, seed, out });
    console.log(`wrote ${out} (decoder loss ${losses[0]!.toFixed(4)} -> ${losses[losses.length - 1]!.toFixed(4)})`);
    return 0;
  } finally {
    model.dispose();
    train.dispose();
  }
}
