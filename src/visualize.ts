// Pictures of adversarial features: a decoder learns to invert the model's frozen encoder at the
// cut, then renders the AdvBN-perturbed features of a few inputs at increasing attack strength.
import { writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { resolveDataset, assertFitsModel, type DatasetInput } from './data/dataset.js';
import type { Model } from './models.js';
import { callNative } from './native.js';
import { featuresPicture } from './report/features.js';
import { OptionReader } from './validation.js';

/** Options of {@link visualizeAdversarialFeatures}. */
export interface VisualizeOptions {
  /** Stage after which features are perturbed; default 1. */
  cut?: number;
  /** Images the decoder trains on (the first ones of `data`); default 256. */
  images?: number;
  /** Decoder training steps; default 300. */
  steps?: number;
  /** Decoder batch size; default 32. */
  batchSize?: number;
  /** Decoder learning rate (Adam); default 2e-3. */
  lr?: number;
  /** Weight of the total-variation term of the decoder loss; default 1e-3. */
  tvWeight?: number;
  /** Attack box half-widths epsilon, one column each; default [0.3, 0.6, 1.1]. */
  strengths?: number[];
  /** Rows (inputs) of the picture; default 6. */
  rows?: number;
  /** Seed of the decoder's initialisation; default 0. */
  seed?: number;
  /** Also write the picture to this path: SVG when it ends in `.svg`, PNG otherwise. */
  out?: string;
}

/** What {@link visualizeAdversarialFeatures} resolves to. */
export interface VisualizeResult {
  /**
   * The picture as PNG: per row the input, its reconstruction, then the decoded perturbed
   * features per strength, enlarged nearest-neighbour, with column labels and a caption.
   */
  png: Buffer;
  /** The same picture as SVG (the grid embedded as a PNG). */
  svg: string;
  /** The bare tile grid at the images' own resolution (PNG, 2 px white gaps), no labels. */
  grid: Buffer;
  /** Decoder training loss per step (pixel MSE + TV). */
  losses: number[];
}

/**
 * The paper's picture of adversarial features. `data` must hold images in [0, 1] (no mean/std
 * normalisation), since the decoder reconstructs pixels.
 */
export async function visualizeAdversarialFeatures(model: Model, data: DatasetInput, options: VisualizeOptions = {}): Promise<VisualizeResult> {
  const context = 'visualizeAdversarialFeatures';
  const o = new OptionReader(context, options).rejectUnknown(['cut', 'images', 'steps', 'batchSize', 'lr', 'tvWeight', 'strengths', 'rows', 'seed', 'out']);
  const config = {
    cut: o.number('cut', 1, { integer: true, min: 1, max: model.numStages }),
    steps: o.ruled('steps', 'visualize.steps'),
    batchSize: o.ruled('batchSize', 'visualize.batchSize'),
    lr: o.ruled('lr', 'visualize.lr'),
    tvWeight: o.ruled('tvWeight', 'visualize.tvWeight'),
    strengths: o.ruledArray('strengths', 'visualize.strengths', [0.3, 0.6, 1.1]),
    rows: o.ruled('rows', 'visualize.rows'),
    seed: o.ruled('seed', 'seed'),
  };
  if (config.strengths.length === 0) throw o.fail('strengths', 'a non-empty array of strengths');
  const count = o.ruled('images', 'visualize.images');
  const out = o.optionalString('out');
  const native = model.nativeHandle(context);
  const { dataset, owned } = resolveDataset(context, 'data', data, model.numClasses);
  try {
    assertFitsModel(context, 'data', dataset, model);
    for await (const batch of dataset.batches({ batchSize: Math.min(count, dataset.length), device: model.device })) {
      const { png: grid, losses } = await callNative((n) => n.visualizeFeatures(native, batch.handle, config));
      const picture = featuresPicture(grid, config);
      if (out !== undefined) await writeFile(out, extname(out).toLowerCase() === '.svg' ? picture.svg : picture.png);
      return { png: picture.png, svg: picture.svg, grid, losses };
    }
    throw o.fail('data', 'a non-empty dataset');
  } finally {
    if (owned) dataset.dispose();
  }
}
