// A minimal RGB raster canvas and PNG encoder (node:zlib only): enough to draw bar and line
// charts with bitmap text, so reports need no image dependency.
import { deflateSync } from 'node:zlib';
import { CELL_WIDTH, GLYPH_HEIGHT, glyphPixel, textWidth } from './font.js';

/** An RGB colour, each channel 0-255. */
export type Rgb = readonly [number, number, number];

/** Parses `#rrggbb`. */
export function parseHex(hex: string): Rgb {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) throw new Error(`not a #rrggbb colour: ${hex}`);
  return [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)];
}

/** Horizontal placement of text relative to its anchor point. */
export type TextAnchor = 'start' | 'middle' | 'end';

/** An 8-bit RGB image with the drawing operations charts need; coordinates are pixels, y down. */
export class Canvas {
  /** Row-major RGB bytes, `width * height * 3`. */
  readonly pixels: Uint8Array;

  /**
   * @param width - Width in pixels.
   * @param height - Height in pixels.
   * @param background - Initial colour of every pixel.
   */
  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = [255, 255, 255],
  ) {
    this.pixels = new Uint8Array(width * height * 3);
    this.fillRect(0, 0, width, height, background);
  }

  /** Sets one pixel; points outside the canvas are ignored. */
  setPixel(x: number, y: number, color: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    this.pixels[i] = color[0];
    this.pixels[i + 1] = color[1];
    this.pixels[i + 2] = color[2];
  }

  /** The colour at one pixel. */
  getPixel(x: number, y: number): Rgb {
    const i = (y * this.width + x) * 3;
    return [this.pixels[i]!, this.pixels[i + 1]!, this.pixels[i + 2]!];
  }

  /** Fills the pixels whose centres lie in the rectangle (clipped to the canvas). */
  fillRect(x: number, y: number, w: number, h: number, color: Rgb): void {
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let py = y0; py < y1; py++) for (let px = x0; px < x1; px++) this.setPixel(px, py, color);
  }

  /** Fills a disc of radius `r` centred on (`cx`, `cy`). */
  fillCircle(cx: number, cy: number, r: number, color: Rgb): void {
    for (let py = Math.floor(cy - r); py <= Math.ceil(cy + r); py++) {
      for (let px = Math.floor(cx - r); px <= Math.ceil(cx + r); px++) {
        const dx = px + 0.5 - cx;
        const dy = py + 0.5 - cy;
        if (dx * dx + dy * dy <= r * r) this.setPixel(px, py, color);
      }
    }
  }

  /** A segment `thickness` pixels wide (axis-aligned segments are exact rectangles). */
  line(x1: number, y1: number, x2: number, y2: number, thickness: number, color: Rgb): void {
    const t = Math.max(1, Math.round(thickness));
    if (x1 === x2 || y1 === y2) {
      const left = Math.min(x1, x2);
      const top = Math.min(y1, y2);
      if (x1 === x2) this.fillRect(x1 - t / 2, top, t, Math.abs(y2 - y1) + (y1 === y2 ? t : 0), color);
      else this.fillRect(left, y1 - t / 2, Math.abs(x2 - x1), t, color);
      return;
    }
    const steps = Math.ceil(Math.hypot(x2 - x1, y2 - y1) * 2);
    for (let i = 0; i <= steps; i++) {
      const x = x1 + ((x2 - x1) * i) / steps;
      const y = y1 + ((y2 - y1) * i) / steps;
      this.fillCircle(x, y, t / 2, color);
    }
  }

  /**
   * Draws `text` with the 5x7 bitmap font at integer `scale`, vertically centred on `y`, placed
   * by `anchor` on `x`, rotated by `rotate` degrees about the anchor (negative = counter-clockwise,
   * as in SVG). `bold` overdraws one pixel to the right.
   */
  text(text: string, x: number, y: number, options: { scale: number; color: Rgb; anchor?: TextAnchor; rotate?: number; bold?: boolean }): void {
    const { scale, color, anchor = 'start', rotate = 0, bold = false } = options;
    const w = textWidth(text, scale) + (bold ? 1 : 0);
    const h = GLYPH_HEIGHT * scale;
    if (w === 0) return;
    const mask = new Uint8Array(w * h);
    for (let i = 0; i < text.length; i++) {
      for (let col = 0; col < 5; col++) {
        for (let row = 0; row < GLYPH_HEIGHT; row++) {
          if (!glyphPixel(text[i]!, col, row)) continue;
          for (let sy = 0; sy < scale; sy++) {
            for (let sx = 0; sx < scale + (bold ? 1 : 0); sx++) {
              mask[(row * scale + sy) * w + (i * CELL_WIDTH + col) * scale + sx] = 1;
            }
          }
        }
      }
    }
    const ax = anchor === 'start' ? 0 : anchor === 'middle' ? w / 2 : w;
    const ay = h / 2;
    if (rotate === 0) {
      const left = Math.round(x - ax);
      const top = Math.round(y - ay);
      for (let v = 0; v < h; v++) for (let u = 0; u < w; u++) if (mask[v * w + u]) this.setPixel(left + u, top + v, color);
      return;
    }
    // Inverse mapping: each destination pixel samples the mask at its un-rotated position.
    const a = (rotate * Math.PI) / 180;
    const cos = Math.cos(a);
    const sin = Math.sin(a);
    const reach = Math.hypot(w, h);
    for (let py = Math.floor(y - reach); py <= Math.ceil(y + reach); py++) {
      for (let px = Math.floor(x - reach); px <= Math.ceil(x + reach); px++) {
        const dx = px + 0.5 - x;
        const dy = py + 0.5 - y;
        const u = Math.floor(ax + cos * dx + sin * dy);
        const v = Math.floor(ay - sin * dx + cos * dy);
        if (u >= 0 && v >= 0 && u < w && v < h && mask[v * w + u]) this.setPixel(px, py, color);
      }
    }
  }

  /** Encodes the canvas as a PNG (8-bit RGB, adaptive scanline filters). */
  toPng(): Buffer {
    return encodePng(this.width, this.height, this.pixels);
  }
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO-HDLC, as PNG chunks use) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Filters each scanline with the PNG filter (None, Sub, Up, Average, Paeth) whose output has the
 * smallest sum of absolute values (the usual heuristic), prefixing the filter type byte.
 */
function filterScanlines(width: number, height: number, rgb: Uint8Array): Uint8Array {
  const stride = width * 3;
  const out = new Uint8Array(height * (stride + 1));
  const candidate = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const row = rgb.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? rgb.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    let bestCost = Infinity;
    for (let type = 0; type < 5; type++) {
      let cost = 0;
      for (let i = 0; i < stride; i++) {
        const a = i >= 3 ? row[i - 3]! : 0;
        const b = prev[i]!;
        const c = i >= 3 ? prev[i - 3]! : 0;
        const predictor = type === 0 ? 0 : type === 1 ? a : type === 2 ? b : type === 3 ? (a + b) >> 1 : paeth(a, b, c);
        const v = (row[i]! - predictor) & 0xff;
        candidate[i] = v;
        cost += v < 128 ? v : 256 - v;
      }
      if (cost < bestCost) {
        bestCost = cost;
        out[y * (stride + 1)] = type;
        out.set(candidate, y * (stride + 1) + 1);
      }
    }
  }
  return out;
}

/** Encodes row-major 8-bit RGB pixels as a PNG file: signature, IHDR, one IDAT, IEND. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (rgb.length !== width * height * 3) throw new Error(`expected ${width * height * 3} RGB bytes, got ${rgb.length}`);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: truecolour
  header[10] = 0; // deflate
  header[11] = 0; // adaptive filtering
  header[12] = 0; // no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(filterScanlines(width, height, rgb), { level: 9 })),
    chunk('IEND', new Uint8Array(0)),
  ]);
}
