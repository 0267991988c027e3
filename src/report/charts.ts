// The report's charts (accuracy per test set, error per corruption, error per severity), each
// laid out once as a Scene and rendered to both SVG and PNG.
import { InvalidDataError } from '../errors.js';
import { textWidth } from './font.js';
import { sceneToPng, sceneToSvg, type Scene, type Shape } from './scene.js';
import { hasCorruptionResults, type Results } from './schema.js';

/** Okabe-Ito colours (colour-blind safe), assigned to methods in the order of `results.methods`. */
export const PALETTE: readonly string[] = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000'];

/** A chart in two encodings with the same content. */
export interface Chart {
  /** Standalone SVG document. */
  svg: string;
  /** PNG file bytes. */
  png: Buffer;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/** The colour of each method in every chart (palette order, cycling past eight methods). */
export function methodColors(results: Results): Record<string, string> {
  return Object.fromEntries(Object.keys(results.methods).map((name, i) => [name, PALETTE[i % PALETTE.length]!]));
}

const WIDTH = 900;
const HEIGHT = 500;
const LEFT = 84;
const RIGHT = 24;
const INK = '#222222';
const GRID = '#dddddd';
const LABEL_SCALE = 2;
const MAX_LABEL = 16;

interface Series {
  name: string;
  color: string;
  /** One value per group/x position, fractions; `undefined` = not measured. */
  values: ({ mean: number; std: number } | undefined)[];
}

interface Layout {
  title: string;
  xTitle: string;
  yTitle: string;
  groups: string[];
  series: Series[];
  /** Upper end of the y axis, a fraction. */
  yMax: number;
  /** Distance between y ticks, a fraction. */
  yStep: number;
}

function abbreviate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}.`;
}

/** A y range from 0 over `max` plus headroom, in at most 6 ticks of 1, 2, 5, 10, 20 or 25%. */
function niceAxis(max: number): { yMax: number; yStep: number } {
  const top = Math.min(1, Math.max(0.01, max * 1.1));
  for (const yStep of [0.01, 0.02, 0.05, 0.1, 0.2, 0.25]) {
    const ticks = Math.ceil(top / yStep - 1e-9);
    if (ticks <= 6) return { yMax: Math.min(1, ticks * yStep), yStep };
  }
  return { yMax: 1, yStep: 0.2 };
}

/** Title, legend, axes, grid and x labels; returns the plot area and the shapes drawn so far. */
function frame(layout: Layout): { shapes: Shape[]; top: number; bottom: number; left: number; right: number; y: (v: number) => number } {
  const shapes: Shape[] = [{ kind: 'text', x: WIDTH / 2, y: 20, text: layout.title, scale: 2, fill: INK, anchor: 'middle', bold: true }];
  // Legend, wrapped onto as many rows as it needs.
  let lx = LEFT;
  let ly = 50;
  for (const s of layout.series) {
    const label = abbreviate(s.name, 28);
    const w = 14 + 6 + textWidth(label, LABEL_SCALE) + 24;
    if (lx + w > WIDTH - RIGHT && lx > LEFT) {
      lx = LEFT;
      ly += 22;
    }
    shapes.push({ kind: 'rect', role: 'legend', x: lx, y: ly - 7, w: 14, h: 14, fill: s.color });
    shapes.push({ kind: 'text', x: lx + 20, y: ly, text: label, scale: LABEL_SCALE, fill: INK });
    lx += w;
  }
  const top = ly + 24;
  const right = WIDTH - RIGHT;
  const labels = layout.groups.map((g) => abbreviate(g, MAX_LABEL));
  const widest = Math.max(...labels.map((l) => textWidth(l, LABEL_SCALE)));
  const rotate = widest + 8 > (right - LEFT) / layout.groups.length;
  // Rotated labels run down-left from their tick: widen the left margin so the first one fits.
  let left = LEFT;
  if (rotate) {
    const first = (textWidth(labels[0]!, LABEL_SCALE) + 7 * LABEL_SCALE) * Math.SQRT1_2;
    for (let i = 0; i < 3; i++) left = Math.max(LEFT, Math.ceil(first - (right - left) / layout.groups.length / 2 + 4));
  }
  const slot = (right - left) / layout.groups.length;
  const labelDepth = rotate ? Math.ceil((widest + 7 * LABEL_SCALE) * Math.SQRT1_2) + 8 : 7 * LABEL_SCALE + 8;
  const bottom = HEIGHT - labelDepth - 40;
  const y = (v: number): number => bottom - (Math.max(0, Math.min(v, layout.yMax)) / layout.yMax) * (bottom - top);

  const step = layout.yStep;
  for (let i = 0; i * step <= layout.yMax + 1e-9; i++) {
    const ty = Math.round(y(i * step));
    if (i > 0) shapes.push({ kind: 'line', x1: left, y1: ty, x2: right, y2: ty, stroke: GRID, width: 1 });
    shapes.push({ kind: 'line', x1: left - 5, y1: ty, x2: left, y2: ty, stroke: INK, width: 1 });
    shapes.push({ kind: 'text', x: left - 9, y: ty, text: `${Math.round(i * step * 100)}%`, scale: LABEL_SCALE, fill: INK, anchor: 'end' });
  }
  shapes.push({ kind: 'text', x: 18, y: (top + bottom) / 2, text: layout.yTitle, scale: LABEL_SCALE, fill: INK, anchor: 'middle', rotate: -90 });
  labels.forEach((label, i) => {
    const cx = Math.round(left + (i + 0.5) * slot);
    shapes.push(
      rotate
        ? { kind: 'text', x: cx + 4, y: bottom + 12, text: label, scale: LABEL_SCALE, fill: INK, anchor: 'end', rotate: -45 }
        : { kind: 'text', x: cx, y: bottom + 14, text: label, scale: LABEL_SCALE, fill: INK, anchor: 'middle' },
    );
  });
  shapes.push({ kind: 'text', x: (left + right) / 2, y: HEIGHT - 16, text: layout.xTitle, scale: LABEL_SCALE, fill: INK, anchor: 'middle' });
  return { shapes, top, bottom, left, right, y };
}

function axes(shapes: Shape[], f: { top: number; bottom: number; left: number; right: number }): void {
  shapes.push({ kind: 'line', x1: f.left, y1: f.top, x2: f.left, y2: f.bottom, stroke: INK, width: 1 });
  shapes.push({ kind: 'line', x1: f.left, y1: f.bottom, x2: f.right, y2: f.bottom, stroke: INK, width: 1 });
}

/** Grouped bars (one group per x label, one bar per series) with std whiskers. */
function barScene(layout: Layout): Scene {
  const f = frame(layout);
  const { shapes, y } = f;
  const slot = (f.right - f.left) / layout.groups.length;
  const barW = (slot * 0.8) / layout.series.length;
  layout.groups.forEach((_, g) => {
    layout.series.forEach((s, j) => {
      const v = s.values[g];
      if (!v) return;
      const x0 = Math.round(f.left + g * slot + slot * 0.1 + j * barW);
      const x1 = Math.round(f.left + g * slot + slot * 0.1 + (j + 1) * barW) - (barW >= 4 ? 1 : 0);
      const top = Math.round(y(v.mean));
      shapes.push({ kind: 'rect', role: 'bar', x: x0, y: top, w: Math.max(1, x1 - x0), h: Math.round(f.bottom) - top, fill: s.color });
      if (v.std > 0) {
        const cx = Math.round((x0 + x1) / 2);
        const hi = Math.round(y(v.mean + v.std));
        const lo = Math.round(y(v.mean - v.std));
        const cap = Math.max(2, Math.min(6, Math.round(barW * 0.3)));
        shapes.push({ kind: 'line', x1: cx, y1: hi, x2: cx, y2: lo, stroke: INK, width: 2 });
        shapes.push({ kind: 'line', x1: cx - cap, y1: hi, x2: cx + cap, y2: hi, stroke: INK, width: 2 });
        shapes.push({ kind: 'line', x1: cx - cap, y1: lo, x2: cx + cap, y2: lo, stroke: INK, width: 2 });
      }
    });
  });
  axes(shapes, f);
  return { width: WIDTH, height: HEIGHT, background: '#ffffff', shapes };
}

/** One polyline with markers per series, over evenly spaced x positions. */
function lineScene(layout: Layout): Scene {
  const f = frame(layout);
  const { shapes, y } = f;
  const slot = (f.right - f.left) / layout.groups.length;
  for (const s of layout.series) {
    const points: [number, number][] = [];
    s.values.forEach((v, i) => {
      if (v) points.push([Math.round(f.left + (i + 0.5) * slot), Math.round(y(v.mean))]);
    });
    shapes.push({ kind: 'polyline', points, stroke: s.color, width: 3 });
    for (const [cx, cy] of points) shapes.push({ kind: 'circle', cx, cy, r: 5, fill: s.color });
  }
  axes(shapes, f);
  return { width: WIDTH, height: HEIGHT, background: '#ffffff', shapes };
}

function render(scene: Scene, title: string): Chart {
  return { svg: sceneToSvg(scene, title), png: sceneToPng(scene), width: scene.width, height: scene.height };
}

const mean = (xs: readonly number[]): number => xs.reduce((s, v) => s + v, 0) / xs.length;
const seedsNote = (results: Results): string => `mean${results.seeds.length > 1 ? ' +/- std' : ''} over ${results.seeds.length} seed${results.seeds.length === 1 ? '' : 's'}`;

/** Every domain name, in first-seen order over the methods. */
export function domainNames(results: Results): string[] {
  return [...new Set(Object.values(results.methods).flatMap((m) => Object.keys(m.domains)))];
}

/** Every corruption name, in first-seen order over the methods. */
export function corruptionNames(results: Results): string[] {
  return [...new Set(Object.values(results.methods).flatMap((m) => Object.keys(m.corruption?.perCorruption ?? {})))];
}

/**
 * Grouped bars of top-1 accuracy: one group for the clean test set, one per domain and one for
 * the domain mean; one bar per method with a whisker of +/- one std over seeds; y axis 0-100%.
 * A legend entry notes a method whose domain bars use its adversarial BN branch.
 */
export function domainAccuracyChart(results: Results): Chart {
  const domains = domainNames(results);
  const colors = methodColors(results);
  const series = Object.entries(results.methods).map(([name, m]) => ({
    name: m.bn.domains === m.bn.clean ? name : `${name} (domains: ${m.bn.domains} BN)`,
    color: colors[name]!,
    values: [m.clean, ...domains.map((d) => m.domains[d]), m.domainMean],
  }));
  const title = `Top-1 accuracy by test set (${seedsNote(results)})`;
  const scene = barScene({ title, xTitle: 'Test set', yTitle: 'Accuracy', groups: ['clean', ...domains, 'domain mean'], series, yMax: 1, yStep: 0.2 });
  return render(scene, title);
}

function requireCorruption(results: Results, chart: string): { name: string; color: string; per: Record<string, number[]> }[] {
  if (!hasCorruptionResults(results)) throw new InvalidDataError(`${chart}: the results have no corruption figures`);
  const colors = methodColors(results);
  return Object.entries(results.methods).flatMap(([name, m]) => (m.corruption ? [{ name, color: colors[name]!, per: m.corruption.perCorruption }] : []));
}

/**
 * Grouped bars of the error on each corruption, averaged over severities 1-5, one bar per method
 * (no whiskers: per-corruption errors are already means over seeds). Throws an
 * {@link InvalidDataError} when no method has corruption results.
 */
export function corruptionErrorChart(results: Results): Chart {
  const methods = requireCorruption(results, 'corruptionErrorChart');
  const names = corruptionNames(results);
  const series = methods.map((m) => ({
    name: m.name,
    color: m.color,
    values: names.map((c) => (m.per[c] ? { mean: mean(m.per[c]), std: 0 } : undefined)),
  }));
  const max = Math.max(...series.flatMap((s) => s.values.map((v) => v?.mean ?? 0)));
  const title = `Error per corruption, mean over severities 1-5 (${results.seeds.length} seed${results.seeds.length === 1 ? '' : 's'})`;
  return render(barScene({ title, xTitle: 'Corruption', yTitle: 'Top-1 error', groups: names, series, ...niceAxis(max) }), title);
}

/**
 * One line per method: the error averaged over all corruptions at each severity 1-5. Throws an
 * {@link InvalidDataError} when no method has corruption results.
 */
export function severityChart(results: Results): Chart {
  const methods = requireCorruption(results, 'severityChart');
  const series = methods.map((m) => {
    const rows = Object.values(m.per);
    return { name: m.name, color: m.color, values: [0, 1, 2, 3, 4].map((k) => ({ mean: mean(rows.map((r) => r[k] ?? 0)), std: 0 })) };
  });
  const max = Math.max(...series.flatMap((s) => s.values.map((v) => v.mean)));
  const title = `Error vs corruption severity, mean over ${corruptionNames(results).length} corruptions`;
  return render(lineScene({ title, xTitle: 'Severity', yTitle: 'Top-1 error', groups: ['1', '2', '3', '4', '5'], series, ...niceAxis(max) }), title);
}
