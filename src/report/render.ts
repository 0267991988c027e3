// SVG to PNG with resvg, and text measured the way resvg draws it. Charts and pictures are laid
// out with these measurements, so a label that fits in the layout fits in the PNG. The font is
// DejaVu Sans from the dejavu-fonts-ttf package (resvg reads TrueType, not WOFF); system fonts
// are never loaded, so every machine renders the same pixels and nothing is downloaded.
import { createRequire } from 'node:module';
import type { Resvg as ResvgClass, ResvgRenderOptions } from '@resvg/resvg-js';

/** The family the SVGs name first; a viewer without it falls back to a sans-serif font. */
export const FONT_FAMILY = 'DejaVu Sans';
/** The `font-family` attribute of every SVG. */
export const FONT_STACK = "'DejaVu Sans', Verdana, sans-serif";

const require = createRequire(import.meta.url);
let fontFiles: string[] | undefined;
let resvg: typeof ResvgClass | undefined;

function fonts(): string[] {
  fontFiles ??= ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf'].map((f) => require.resolve(`dejavu-fonts-ttf/ttf/${f}`));
  return fontFiles;
}

/** resvg's native addon, loaded on first use (importing advbn does not load it). */
function newResvg(svg: string, opts: ResvgRenderOptions): ResvgClass {
  resvg ??= (require('@resvg/resvg-js') as { Resvg: typeof ResvgClass }).Resvg;
  return new resvg(svg, opts);
}

function options(nearest: boolean): ResvgRenderOptions {
  return {
    font: { loadSystemFonts: false, fontFiles: fonts(), defaultFontFamily: FONT_FAMILY, sansSerifFamily: FONT_FAMILY },
    // Embedded raster images are scaled nearest-neighbour when asked (the features picture).
    imageRendering: nearest ? 1 : 0,
    logLevel: 'off',
  };
}

/** Rasterises a standalone SVG document at its own size; `nearest` scales embedded images nearest-neighbour. */
export function svgToPng(svg: string, { nearest = false }: { nearest?: boolean } = {}): Buffer {
  return newResvg(svg, options(nearest)).render().asPng();
}

/** An axis-aligned box in pixels. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The bounding box resvg computes for everything an SVG draws (transforms applied), or `undefined` when it draws nothing. */
export function svgBBox(svg: string): Box | undefined {
  const b = newResvg(svg, options(false)).getBBox();
  if (!b || !(b.width > 0 || b.height > 0)) return undefined;
  return { x: b.x, y: b.y, width: b.width, height: b.height };
}

/** Distance from a text's vertical centre down to its baseline, in ems (the font's "central" baseline). */
export const CENTRAL_BASELINE = 0.35;

const measured = new Map<string, Box>();

/**
 * The ink box of `text` in DejaVu Sans at `size` px, relative to its start point on the
 * baseline (y negative above it); empty text (or only spaces) has width 0.
 */
export function measureText(text: string, size: number, bold = false): Box {
  const key = `${size}|${bold ? 1 : 0}|${text}`;
  let box = measured.get(key);
  if (!box) {
    const svg =
      `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text x="0" y="0" font-family="${FONT_FAMILY}" font-size="${size}"` +
      `${bold ? ' font-weight="bold"' : ''} xml:space="preserve">${escapeXml(text)}</text></svg>`;
    box = svgBBox(svg) ?? { x: 0, y: 0, width: 0, height: 0 };
    measured.set(key, box);
  }
  return box;
}

/** Width of `text` from its start point to the right end of its ink. */
export function textWidth(text: string, size: number, bold = false): number {
  const b = measureText(text, size, bold);
  return b.width === 0 ? 0 : b.x + b.width;
}

/** Greedy word wrap of `text` into lines no wider than `maxWidth` (a single word wider than that gets a line of its own). */
export function wrapText(text: string, maxWidth: number, size: number, bold = false): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    const next = line === '' ? word : `${line} ${word}`;
    if (line !== '' && textWidth(next, size, bold) > maxWidth) {
      lines.push(line);
      line = word;
    } else {
      line = next;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** Escapes text for SVG content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);
}
