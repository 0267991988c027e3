// The picture of `advbn visualize`: the core's tile grid (PNG, encoded by the core's image
// crate) embedded in an SVG, enlarged nearest-neighbour, with a title, column labels and a
// caption, and rasterised by resvg like every chart.
import { textWidth, wrapText } from './render.js';
import { renderScene, type Chart, type Shape } from './scene.js';

/** What the grid shows, for the labels and caption. */
export interface FeaturesPictureInfo {
  /** Rows of the grid (one input each). */
  rows: number;
  /** Attack strengths (box half-widths), one column each after input and reconstruction. */
  strengths: readonly number[];
  /** Stage after which the features were perturbed. */
  cut: number;
  /** Decoder training steps. */
  steps: number;
}

/** Gap in grid pixels around each tile of the core's grid. */
const GAP = 2;
const PAD = 14;
const TITLE_SIZE = 16;
const LABEL_SIZE = 13;
const CAPTION_SIZE = 12;
const INK = '#222222';
const lineHeight = (size: number): number => Math.ceil(size * 1.35);

/** Width and height of a PNG from its IHDR chunk. */
function pngSize(png: Buffer): { width: number; height: number } {
  if (png.length < 24 || png.toString('latin1', 12, 16) !== 'IHDR') throw new Error('internal: the feature grid is not a PNG');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/**
 * Lays out the grid PNG (columns of `tile` px images with 2 px gaps: input, reconstruction,
 * then one per strength) at an integer scale that makes every tile at least 96 px and wider
 * than its column's label, labels each column, and writes a caption under it.
 */
export function featuresPicture(grid: Buffer, info: FeaturesPictureInfo): Chart & { scale: number } {
  const { width: gw, height: gh } = pngSize(grid);
  const columns = 2 + info.strengths.length;
  const tile = (gw - GAP) / columns - GAP;
  const tileH = (gh - GAP) / info.rows - GAP;
  if (!Number.isInteger(tile) || !Number.isInteger(tileH) || tile < 1) throw new Error(`internal: a ${gw}x${gh} grid is not ${columns} columns x ${info.rows} rows`);
  const labels = ['input', 'reconstruction', ...info.strengths.map((s) => `ε = ${s}`)];
  const widest = Math.max(...labels.map((l) => textWidth(l, LABEL_SIZE)));
  const scale = Math.max(1, Math.ceil(96 / tile), Math.ceil((widest + 8) / tile));
  const imageW = gw * scale;
  const imageH = gh * scale;
  const title = 'AdvBN-perturbed features, decoded to images';
  const width = Math.ceil(Math.max(imageW, textWidth(title, TITLE_SIZE, true), 360) + 2 * PAD);
  const x0 = Math.round((width - imageW) / 2);
  const shapes: Shape[] = [{ kind: 'text', role: 'title', x: width / 2, y: PAD + TITLE_SIZE / 2, text: title, size: TITLE_SIZE, fill: INK, anchor: 'middle', bold: true }];
  const labelY = PAD + lineHeight(TITLE_SIZE) + 8 + lineHeight(LABEL_SIZE) / 2;
  labels.forEach((label, i) => {
    const cx = x0 + (GAP + i * (tile + GAP) + tile / 2) * scale;
    shapes.push({ kind: 'text', role: 'label', x: cx, y: labelY, text: label, size: LABEL_SIZE, fill: INK, anchor: 'middle' });
  });
  const imageY = Math.round(labelY + lineHeight(LABEL_SIZE) / 2 + 6);
  shapes.push({ kind: 'image', x: x0, y: imageY, w: imageW, h: imageH, href: `data:image/png;base64,${grid.toString('base64')}`, pixelated: true });
  const strengths = info.strengths.join(', ');
  const caption =
    `Each row: an input image, its reconstruction by a decoder trained (${info.steps} steps) to invert the model's frozen encoder after stage ${info.cut}, ` +
    `and the decoded features after the AdvBN attack (6 sign-gradient steps on the per-channel mean and spread scales) ` +
    `at box half-widths ε = ${strengths}. Pixels enlarged ${scale}x, nearest neighbour.`;
  let y = imageY + imageH + 10 + lineHeight(CAPTION_SIZE) / 2;
  for (const line of wrapText(caption, width - 2 * PAD, CAPTION_SIZE)) {
    shapes.push({ kind: 'text', role: 'caption', x: PAD, y, text: line, size: CAPTION_SIZE, fill: INK });
    y += lineHeight(CAPTION_SIZE);
  }
  const height = Math.ceil(y - lineHeight(CAPTION_SIZE) / 2 + PAD);
  const chart = renderScene({ width, height, background: '#ffffff', shapes }, title, { nearest: true });
  return { ...chart, scale };
}
