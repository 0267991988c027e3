// A chart as a list of drawing primitives, rendered two ways (SVG text and a PNG raster) so the
// two files show the same content. Text sizes are font scales of the 5x7 bitmap font; the SVG
// uses a monospace font of matching height.
import { Canvas, parseHex, type TextAnchor } from './png.js';

/** One drawing primitive of a {@link Scene}; coordinates in pixels, y down. */
export type Shape =
  | { kind: 'rect'; x: number; y: number; w: number; h: number; fill: string; role?: string }
  | { kind: 'line'; x1: number; y1: number; x2: number; y2: number; stroke: string; width: number }
  | { kind: 'polyline'; points: [number, number][]; stroke: string; width: number }
  | { kind: 'circle'; cx: number; cy: number; r: number; fill: string }
  | {
      kind: 'text';
      x: number;
      /** Vertical centre of the text. */
      y: number;
      text: string;
      /** Bitmap-font scale (1 = 5x7 pixels per glyph). */
      scale: number;
      fill: string;
      anchor?: TextAnchor;
      /** Degrees about (x, y); negative = counter-clockwise. */
      rotate?: number;
      bold?: boolean;
    };

/** A drawing: size, background and primitives in paint order. */
export interface Scene {
  width: number;
  height: number;
  background: string;
  shapes: Shape[];
}

/** Escapes text for SVG content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const n = (v: number): string => String(Math.round(v * 100) / 100);

/** Renders a scene as a standalone SVG document. */
export function sceneToSvg(scene: Scene, title: string): string {
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${scene.width}" height="${scene.height}" viewBox="0 0 ${scene.width} ${scene.height}" ` +
      `font-family="DejaVu Sans Mono, Menlo, Consolas, monospace">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect class="background" x="0" y="0" width="${scene.width}" height="${scene.height}" fill="${scene.background}"/>`,
  ];
  for (const s of scene.shapes) {
    switch (s.kind) {
      case 'rect':
        out.push(`<rect class="${s.role ?? 'shape'}" x="${n(s.x)}" y="${n(s.y)}" width="${n(s.w)}" height="${n(s.h)}" fill="${s.fill}"/>`);
        break;
      case 'line':
        out.push(`<line x1="${n(s.x1)}" y1="${n(s.y1)}" x2="${n(s.x2)}" y2="${n(s.y2)}" stroke="${s.stroke}" stroke-width="${s.width}"/>`);
        break;
      case 'polyline':
        out.push(
          `<polyline points="${s.points.map(([x, y]) => `${n(x)},${n(y)}`).join(' ')}" fill="none" stroke="${s.stroke}" stroke-width="${s.width}" stroke-linejoin="round"/>`,
        );
        break;
      case 'circle':
        out.push(`<circle cx="${n(s.cx)}" cy="${n(s.cy)}" r="${n(s.r)}" fill="${s.fill}"/>`);
        break;
      case 'text': {
        const rotate = s.rotate ? ` transform="rotate(${s.rotate} ${n(s.x)} ${n(s.y)})"` : '';
        const weight = s.bold ? ' font-weight="bold"' : '';
        out.push(
          `<text x="${n(s.x)}" y="${n(s.y)}" font-size="${s.scale * 9}" fill="${s.fill}" text-anchor="${s.anchor ?? 'start'}" ` +
            `dominant-baseline="central"${weight}${rotate}>${escapeXml(s.text)}</text>`,
        );
        break;
      }
    }
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Rasterises a scene and encodes it as PNG. Text outside printable ASCII is drawn as `?`. */
export function sceneToPng(scene: Scene): Buffer {
  const canvas = new Canvas(scene.width, scene.height, parseHex(scene.background));
  for (const s of scene.shapes) {
    switch (s.kind) {
      case 'rect':
        canvas.fillRect(s.x, s.y, s.w, s.h, parseHex(s.fill));
        break;
      case 'line':
        canvas.line(s.x1, s.y1, s.x2, s.y2, s.width, parseHex(s.stroke));
        break;
      case 'polyline':
        for (let i = 1; i < s.points.length; i++) {
          const [x1, y1] = s.points[i - 1]!;
          const [x2, y2] = s.points[i]!;
          canvas.line(x1, y1, x2, y2, s.width, parseHex(s.stroke));
        }
        break;
      case 'circle':
        canvas.fillCircle(s.cx, s.cy, s.r, parseHex(s.fill));
        break;
      case 'text':
        canvas.text(s.text, s.x, s.y, { scale: s.scale, color: parseHex(s.fill), anchor: s.anchor ?? 'start', rotate: s.rotate ?? 0, bold: s.bold ?? false });
        break;
    }
  }
  return canvas.toPng();
}
