// A drawing as a list of primitives, written once as SVG; the PNG is that SVG rasterised by
// resvg (render.ts), so the two files show the same content.
import { CENTRAL_BASELINE, escapeXml, FONT_STACK, svgToPng } from './render.js';

/** Horizontal placement of text relative to its anchor point. */
export type TextAnchor = 'start' | 'middle' | 'end';

/** One drawing primitive of a {@link Scene}; coordinates in pixels, y down. `role` becomes the SVG class. */
export type Shape =
  | { kind: 'rect'; x: number; y: number; w: number; h: number; fill: string; stroke?: string; role?: string }
  | { kind: 'line'; x1: number; y1: number; x2: number; y2: number; stroke: string; width: number; dash?: string; role?: string }
  | { kind: 'polyline'; points: [number, number][]; stroke: string; width: number; dash?: string }
  | { kind: 'circle'; cx: number; cy: number; r: number; fill: string }
  | { kind: 'image'; x: number; y: number; w: number; h: number; href: string; pixelated: boolean }
  | {
      kind: 'text';
      x: number;
      /** Vertical centre of the text. */
      y: number;
      text: string;
      /** Font size in pixels. */
      size: number;
      fill: string;
      anchor?: TextAnchor;
      /** Degrees about (x, y); negative = counter-clockwise. */
      rotate?: number;
      bold?: boolean;
      role?: string;
    };

/** A drawing: size, background and primitives in paint order. */
export interface Scene {
  width: number;
  height: number;
  background: string;
  shapes: Shape[];
}

/** A drawing in two encodings with the same content. */
export interface Chart {
  /** Standalone SVG document. */
  svg: string;
  /** PNG file bytes (the SVG rasterised by resvg). */
  png: Buffer;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

const n = (v: number): string => String(Math.round(v * 100) / 100);

/** Renders a scene as a standalone SVG document. */
export function sceneToSvg(scene: Scene, title: string): string {
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${scene.width}" height="${scene.height}" viewBox="0 0 ${scene.width} ${scene.height}" font-family="${escapeXml(FONT_STACK)}">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect class="background" x="0" y="0" width="${scene.width}" height="${scene.height}" fill="${scene.background}"/>`,
  ];
  const cls = (role: string | undefined) => (role ? ` class="${role}"` : '');
  const dash = (d: string | undefined) => (d ? ` stroke-dasharray="${d}"` : '');
  for (const s of scene.shapes) {
    switch (s.kind) {
      case 'rect':
        out.push(`<rect${cls(s.role ?? 'shape')} x="${n(s.x)}" y="${n(s.y)}" width="${n(s.w)}" height="${n(s.h)}" fill="${s.fill}"${s.stroke ? ` stroke="${s.stroke}"` : ''}/>`);
        break;
      case 'line':
        out.push(`<line${cls(s.role)} x1="${n(s.x1)}" y1="${n(s.y1)}" x2="${n(s.x2)}" y2="${n(s.y2)}" stroke="${s.stroke}" stroke-width="${s.width}"${dash(s.dash)}/>`);
        break;
      case 'polyline':
        out.push(
          `<polyline points="${s.points.map(([x, y]) => `${n(x)},${n(y)}`).join(' ')}" fill="none" stroke="${s.stroke}" stroke-width="${s.width}" stroke-linejoin="round"${dash(s.dash)}/>`,
        );
        break;
      case 'circle':
        out.push(`<circle cx="${n(s.cx)}" cy="${n(s.cy)}" r="${n(s.r)}" fill="${s.fill}"/>`);
        break;
      case 'image':
        // optimizeSpeed is resvg's (and the SVG 1.1) nearest-neighbour; browsers read `pixelated`.
        out.push(
          `<image x="${n(s.x)}" y="${n(s.y)}" width="${n(s.w)}" height="${n(s.h)}" preserveAspectRatio="none"` +
            `${s.pixelated ? ' image-rendering="optimizeSpeed" style="image-rendering:pixelated"' : ''} href="${s.href}"/>`,
        );
        break;
      case 'text': {
        const rotate = s.rotate ? ` transform="rotate(${s.rotate} ${n(s.x)} ${n(s.y)})"` : '';
        const weight = s.bold ? ' font-weight="bold"' : '';
        // The baseline sits below the centre by the font's central-baseline offset (no
        // dominant-baseline, which viewers implement differently).
        out.push(
          `<text${cls(s.role)} x="${n(s.x)}" y="${n(s.y + CENTRAL_BASELINE * s.size)}" font-size="${s.size}" fill="${s.fill}" text-anchor="${s.anchor ?? 'start'}"` +
            `${weight}${rotate}>${escapeXml(s.text)}</text>`,
        );
        break;
      }
    }
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** The scene as SVG and as the PNG resvg rasterises from that SVG. */
export function renderScene(scene: Scene, title: string, { nearest = false }: { nearest?: boolean } = {}): Chart {
  const svg = sceneToSvg(scene, title);
  return { svg, png: svgToPng(svg, { nearest }), width: scene.width, height: scene.height };
}
