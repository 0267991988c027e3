// `advbn predict`: the top-k classes of image files (or the images in folders) with their
// softmax probabilities, one JSON line per image on stdout.
import { readFileSync, statSync } from 'node:fs';
import { imageFiles } from '../data/sources.js';
import { InvalidDataError } from '../errors.js';
import type { BnBranch } from '../models.js';
import { UsageError, badFlag, parseFlagsAndOperands, runCommand, wholeFlag } from './args.js';
import { buildModel, evalTransforms, existingFile, modelFlagsHelp, readModelFlags } from './model-flags.js';

/** Default `--top-k`. */
const TOP_K = 5;

const usage = () => `usage: advbn predict --weights FILE [options] IMAGE_OR_DIR...

Prints one JSON line per image on stdout, in the order given (a folder stands for its
.jpg/.jpeg/.png files, searched recursively and sorted by path):
  {"file":"cat.jpg","bn":"clean","top":[{"index":3,"class":"cat","probability":0.91},...]}
"top" holds the k best classes, best first, with softmax probabilities. Class names: the weights
files advbn and torchvision write carry none, so "class" appears only with --classes; "index" is
the classifier's output (for advbn fine-tune, the position of the class folder in sorted order).

${modelFlagsHelp()}
  --top-k K           classes per image, best first (default ${TOP_K}; at most the class count)
  --bn BRANCH         clean (default) or adv (the adversarial BNs of an AdvBN fine-tune)
  --classes FILE      class names in label order: a JSON file with a "classes" list (advbn
                      fine-tune's summary.json, advbn evaluate's evaluation.json) or a text file
                      with one name per line`;

const BN_CHOICES = ['clean', 'adv'] as const;

function readFlags(args: readonly string[]) {
  const { flags: v, operands } = parseFlagsAndOperands(args, {
    weights: 'string',
    arch: 'string',
    size: 'string',
    'batch-size': 'string',
    device: 'string',
    'top-k': 'string',
    bn: 'string',
    classes: 'string',
  });
  if (v.help) return undefined;
  const model = readModelFlags(v);
  const topK = wholeFlag('top-k', v['top-k'], 1) ?? TOP_K;
  const bn = (v.bn ?? 'clean') as BnBranch;
  if (!BN_CHOICES.includes(bn)) throw badFlag('bn', `must be ${BN_CHOICES.join(' or ')}`, v.bn);
  if (operands.length === 0) throw new UsageError('no images given: name image files or folders after the flags');
  existingFile('weights', model.weights);
  for (const path of operands) {
    try {
      statSync(path);
    } catch {
      throw new UsageError(`no such image file or folder: ${JSON.stringify(path)}`);
    }
  }
  const classes = v.classes === undefined ? undefined : readClassNames(existingFile('classes', v.classes));
  return { model, topK, bn, classes, paths: operands };
}

/** Class names from a JSON file with a `classes` list, or from a text file with one per line. */
function readClassNames(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  let names: unknown;
  try {
    names = (JSON.parse(text) as { classes?: unknown }).classes;
  } catch {
    // Not JSON: a text file of names (a binary file, e.g. weights, is neither).
    names = text.includes('\0') || text.includes('\uFFFD') ? undefined : text.split(/\r?\n/).filter((line) => line.trim() !== '');
  }
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string' && n !== '')) {
    throw badFlag('classes', 'must be a JSON file with a "classes" list of names, or a text file with one name per line', path);
  }
  return names as string[];
}

export async function runPredict(args: readonly string[]): Promise<number> {
  return runCommand('predict', async () => {
    const flags = readFlags(args);
    if (!flags) {
      console.log(usage());
      return 0;
    }
    return predict(flags);
  });
}

async function predict(flags: NonNullable<ReturnType<typeof readFlags>>): Promise<number> {
  using model = await buildModel(flags.model);
  if (flags.classes && flags.classes.length !== model.numClasses) {
    throw new InvalidDataError(`--classes names ${flags.classes.length} classes but the classifier in ${flags.model.weights} has ${model.numClasses}`);
  }
  using images = await imageFiles(flags.paths, { transforms: evalTransforms(flags.model.size) });
  // One batch at a time, each printed as soon as it is classified (the loader prefetching the
  // next): memory stays one batch of logits however many images there are.
  const numClasses = model.numClasses;
  const k = Math.min(flags.topK, numClasses);
  let start = 0;
  for await (const logits of model.predictBatches(images, { bn: flags.bn, batchSize: flags.model.batchSize })) {
    const count = logits.length / numClasses;
    const lines = images.files.slice(start, start + count).map((file, i) => {
      const probabilities = softmax(logits.subarray(i * numClasses, (i + 1) * numClasses));
      // Best first; equal scores keep the lower index first (as the arg-max).
      const order = Array.from({ length: numClasses }, (_, c) => c).sort((a, b) => probabilities[b]! - probabilities[a]! || a - b);
      const top = order.slice(0, k).map((index) => ({ index, ...(flags.classes && { class: flags.classes[index] }), probability: probabilities[index]! }));
      return JSON.stringify({ file, bn: flags.bn, top });
    });
    process.stdout.write(`${lines.join('\n')}\n`);
    start += count;
  }
  return 0;
}

/** Softmax of one row of logits, in double precision. */
function softmax(row: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of row) max = Math.max(max, v);
  const out = Float64Array.from(row, (v) => Math.exp(v - max));
  const sum = out.reduce((a, b) => a + b, 0);
  for (let i = 0; i < out.length; i += 1) out[i]! /= sum;
  return out;
}
