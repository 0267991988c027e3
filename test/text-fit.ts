// Does every label of an SVG the report writes fit? Each <text> element is measured by resvg, in
// the font the PNG is drawn with, in its own coordinates (rotation undone), then turned into the
// quadrilateral it covers on the canvas. A label fits when that quadrilateral lies inside the
// canvas, overlaps no other label, no plot area and no legend swatch, and resvg draws it at all
// (a missing font draws nothing).
import { svgBBox } from '../src/report/render.js';

type Point = [number, number];

interface Element {
  attrs: Map<string, string>;
  body: string;
}

function attributes(text: string): Map<string, string> {
  return new Map([...text.matchAll(/([\w:-]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
}

function elements(svg: string, tag: string): Element[] {
  const selfClosing = [...svg.matchAll(new RegExp(`<${tag}\\s([^>]*?)/>`, 'g'))].map((m) => ({ attrs: attributes(m[1]!), body: '' }));
  const open = [...svg.matchAll(new RegExp(`<${tag}\\s([^>]*?)>([^<]*)</${tag}>`, 'g'))].map((m) => ({ attrs: attributes(m[1]!), body: m[2]! }));
  return [...selfClosing, ...open];
}

const num = (e: Element, name: string): number => Number(e.attrs.get(name) ?? 0);

function rectCorners(x: number, y: number, w: number, h: number): Point[] {
  return [
    [x, y],
    [x + w, y],
    [x + w, y + h],
    [x, y + h],
  ];
}

/** Whether two convex polygons overlap by more than `tolerance` pixels (separating axis test). */
function overlap(a: Point[], b: Point[], tolerance = 0.5): boolean {
  for (const poly of [a, b]) {
    for (let i = 0; i < poly.length; i++) {
      const [x1, y1] = poly[i]!;
      const [x2, y2] = poly[(i + 1) % poly.length]!;
      const axis: Point = [y1 - y2, x2 - x1];
      const length = Math.hypot(axis[0], axis[1]);
      if (length === 0) continue;
      const project = (p: Point[]) => p.map(([x, y]) => (x * axis[0] + y * axis[1]) / length);
      const pa = project(a);
      const pb = project(b);
      if (Math.max(...pa) < Math.min(...pb) + tolerance || Math.max(...pb) < Math.min(...pa) + tolerance) return false;
    }
  }
  return true;
}

/** One label: its text and the canvas quadrilateral its ink covers. */
export interface Label {
  text: string;
  role: string;
  corners: Point[];
}

/** Every <text> of `svg` with the quadrilateral resvg draws it in (undefined corners: it draws nothing). */
export function labels(svg: string): (Label | { text: string; role: string; corners: undefined })[] {
  const root = attributes(/<svg\s([^>]*)>/.exec(svg)![1]!);
  const [width, height] = [root.get('width'), root.get('height')];
  const font = root.get('font-family') ?? '';
  return elements(svg, 'text').map((e) => {
    const transform = e.attrs.get('transform');
    const local = [...e.attrs].filter(([k]) => k !== 'transform').map(([k, v]) => `${k}="${v}"`);
    const alone = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="${font}"><text ${local.join(' ')}>${e.body}</text></svg>`;
    const box = svgBBox(alone);
    const text = e.body
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&amp;/g, '&');
    const role = e.attrs.get('class') ?? '';
    if (!box) return { text, role, corners: undefined };
    let corners = rectCorners(box.x, box.y, box.width, box.height);
    const rotate = transform && /rotate\(([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\)/.exec(transform);
    if (transform && !rotate) throw new Error(`text-fit: unsupported transform ${transform}`);
    if (rotate) {
      const [a, cx, cy] = rotate.slice(1).map(Number) as [number, number, number];
      const [cos, sin] = [Math.cos((a * Math.PI) / 180), Math.sin((a * Math.PI) / 180)];
      corners = corners.map(([x, y]): Point => [cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos]);
    }
    return { text, role, corners };
  });
}

/**
 * Every way a label of `svg` does not fit, in words: drawn with no glyphs, reaching past the
 * canvas edge, overlapping another label, a plot area, a legend swatch or an embedded image. Empty when all fit.
 */
export function textProblems(svg: string): string[] {
  const root = attributes(/<svg\s([^>]*)>/.exec(svg)![1]!);
  const [width, height] = [Number(root.get('width')), Number(root.get('height'))];
  const problems: string[] = [];
  const placed: Label[] = [];
  for (const l of labels(svg)) {
    if (l.text.trim() === '') continue;
    if (!l.corners) {
      problems.push(`"${l.text}" draws nothing (no font?)`);
      continue;
    }
    const outside = l.corners.some(([x, y]) => x < -0.5 || y < -0.5 || x > width + 0.5 || y > height + 0.5);
    if (outside) problems.push(`"${l.text}" reaches past the ${width}x${height} canvas`);
    placed.push(l as Label);
  }
  for (let i = 0; i < placed.length; i++) {
    for (let j = i + 1; j < placed.length; j++) {
      if (overlap(placed[i]!.corners, placed[j]!.corners)) problems.push(`"${placed[i]!.text}" overlaps "${placed[j]!.text}"`);
    }
  }
  const obstacles: { what: string; corners: Point[] }[] = [];
  for (const r of elements(svg, 'rect')) {
    const role = r.attrs.get('class');
    if (role === 'plot-area' || role === 'legend') obstacles.push({ what: role, corners: rectCorners(num(r, 'x'), num(r, 'y'), num(r, 'width'), num(r, 'height')) });
  }
  for (const r of elements(svg, 'image')) obstacles.push({ what: 'image', corners: rectCorners(num(r, 'x'), num(r, 'y'), num(r, 'width'), num(r, 'height')) });
  for (const l of elements(svg, 'line')) {
    if (l.attrs.get('class') !== 'legend') continue;
    const [x1, x2, y, w] = [num(l, 'x1'), num(l, 'x2'), num(l, 'y1'), num(l, 'stroke-width')];
    obstacles.push({ what: 'legend', corners: rectCorners(Math.min(x1, x2), y - w / 2, Math.abs(x2 - x1), w) });
  }
  for (const l of placed) {
    for (const o of obstacles) if (overlap(l.corners, o.corners)) problems.push(`"${l.text}" overlaps a ${o.what}`);
  }
  return problems;
}
