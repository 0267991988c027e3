// The report's charts (accuracy per test set, error per corruption, error per severity, training
// curves), each laid out once as a Scene with text measured in the font resvg draws it with, and
// written as SVG and as the PNG resvg rasterises from it. Nothing is abbreviated: margins, the
// legend's rows and the canvas grow until every label fits.
import { InvalidDataError } from '../errors.js';
import { textWidth } from './render.js';
import { renderScene, type Chart, type Scene, type Shape } from './scene.js';
import { hasCorruptionResults, type Results, type Stat, type TrainingCurves } from './schema.js';

export type { Chart } from './scene.js';

/** Okabe-Ito colours (colour-blind safe), assigned to methods in the order of `results.methods`. */
export const PALETTE: readonly string[] = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000'];

/** The colour of each method in every chart (palette order, cycling past eight methods). */
export function methodColors(results: Results): Record<string, string> {
  return Object.fromEntries(Object.keys(results.methods).map((name, i) => [name, PALETTE[i % PALETTE.length]!]));
}

const MIN_WIDTH = 900;
const PAD = 14;
const PLOT_HEIGHT = 300;
const INK = '#222222';
const MUTED = '#555555';
const GRID = '#dddddd';
const TITLE_SIZE = 16;
const LABEL_SIZE = 13;
const TICK_SIZE = 12;
const SWATCH = 14;
const lineHeight = (size: number): number => Math.ceil(size * 1.35);

/** A legend entry: a filled box (bars), or a solid / dashed line sample (curves). */
export interface LegendEntry {
  label: string;
  color: string;
  style: 'box' | LineStyle;
}

/** How a curve is stroked. */
type LineStyle = 'line' | 'dashed' | 'dotted';
const DASH: Record<LineStyle, string | undefined> = { line: undefined, dashed: '7 4', dotted: '2 3' };

/** A y axis from 0 to `max` in ticks of `step`. */
interface Axis {
  max: number;
  step: number;
  format: (v: number) => string;
}

/** One plot: its axes, x categories and an optional labelled chance line. */
interface PanelSpec {
  yTitle: string;
  xTitle: string;
  y: Axis;
  /** One per x slot; `''` leaves a slot unlabelled. */
  xLabels: string[];
  /** Never rotate the x labels (thin them instead, as for epochs). */
  horizontal?: boolean;
  chance?: { value: number; label: string };
  /** Slot boundary (1..slots-1) where a light vertical line separates two phases. */
  separator?: number;
}

/** Where a panel's plot area lies and how values map into it. */
interface Panel {
  left: number;
  right: number;
  top: number;
  bottom: number;
  slot: number;
  /** Centre of slot `i`. */
  x: (i: number) => number;
  y: (v: number) => number;
}

const percent = (v: number): string => `${Math.round(v * 100)}%`;

/** A y range from 0 over `max` plus headroom in at most 6 ticks of 1, 2, 5, 10, 20 or 25%. */
function fractionAxis(max: number): Axis {
  const top = Math.min(1, Math.max(0.01, max * 1.1));
  for (const step of [0.01, 0.02, 0.05, 0.1, 0.2, 0.25]) {
    const ticks = Math.ceil(top / step - 1e-9);
    if (ticks <= 6) return { max: Math.min(1, ticks * step), step, format: percent };
  }
  return { max: 1, step: 0.2, format: percent };
}

/** A y range from 0 over `max` plus headroom for unbounded values (losses). */
function valueAxis(max: number): Axis {
  const top = Math.max(1e-3, max * 1.1);
  const base = 10 ** Math.floor(Math.log10(top / 6));
  for (const m of [1, 2, 2.5, 5, 10]) {
    const step = base * m;
    const ticks = Math.ceil(top / step - 1e-9);
    if (ticks <= 6) {
      const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (m === 2.5 ? 1 : 0));
      return { max: ticks * step, step, format: (v) => v.toFixed(digits) };
    }
  }
  return { max: top, step: top / 5, format: (v) => v.toPrecision(2) };
}

const ACCURACY_AXIS: Axis = { max: 1, step: 0.2, format: percent };

/** The chance level of a classifier over `numClasses` classes, as accuracy or as error. */
function chance(numClasses: number | undefined, kind: 'accuracy' | 'error'): PanelSpec['chance'] {
  if (numClasses === undefined || numClasses < 2) return undefined;
  const value = kind === 'accuracy' ? 1 / numClasses : 1 - 1 / numClasses;
  return { value, label: `chance ${(value * 100).toFixed(value * 100 === Math.round(value * 100) ? 0 : 1)}%` };
}

/** Widest entry of the legend, swatch included. */
const entryWidth = (e: LegendEntry): number => SWATCH + (e.style === 'box' ? 0 : 4) + 6 + textWidth(e.label, LABEL_SIZE);

/** The legend wrapped onto rows within [x0, x1] from `top`; returns its shapes and bottom. */
function legend(entries: readonly LegendEntry[], x0: number, x1: number, top: number): { shapes: Shape[]; bottom: number } {
  const shapes: Shape[] = [];
  const row = lineHeight(LABEL_SIZE) + 6;
  let x = x0;
  let cy = top + row / 2;
  for (const e of entries) {
    const w = entryWidth(e);
    if (x > x0 && x + w > x1) {
      x = x0;
      cy += row;
    }
    if (e.style === 'box') {
      shapes.push({ kind: 'rect', role: 'legend', x, y: cy - SWATCH / 2, w: SWATCH, h: SWATCH, fill: e.color });
    } else {
      const dash = DASH[e.style];
      shapes.push({ kind: 'line', role: 'legend', x1: x, y1: cy, x2: x + SWATCH + 4, y2: cy, stroke: e.color, width: 2.5, ...(dash && { dash }) });
    }
    shapes.push({ kind: 'text', role: 'legend', x: x + SWATCH + (e.style === 'box' ? 0 : 4) + 6, y: cy, text: e.label, size: LABEL_SIZE, fill: INK });
    x += w + 22;
  }
  return { shapes, bottom: entries.length === 0 ? top : cy + row / 2 };
}

/** Extent of a -45 degree label below and to the left of its anchor (its right end). */
const rotatedExtent = (label: string): number => (textWidth(label, LABEL_SIZE) + LABEL_SIZE / 2) * Math.SQRT1_2;

/** Lays out the panel's plot area within [x0, x1] from `top` (tick labels, titles and chance label outside it). */
function layoutPanel(spec: PanelSpec, x0: number, x1: number, top: number): { panel: Panel; rotate: boolean; height: number } {
  const ticks: number[] = [];
  for (let i = 0; i * spec.y.step <= spec.y.max + 1e-9; i++) ticks.push(i * spec.y.step);
  const tickWidth = Math.max(...ticks.map((v) => textWidth(spec.y.format(v), TICK_SIZE)));
  let left = x0 + lineHeight(LABEL_SIZE) + 8 + tickWidth + 8;
  const right = x1 - (spec.chance ? textWidth(spec.chance.label, TICK_SIZE) + 12 : 8);
  const count = spec.xLabels.length;
  const widest = Math.max(0, ...spec.xLabels.map((l) => textWidth(l, LABEL_SIZE)));
  let slot = (right - left) / count;
  const rotate = !spec.horizontal && widest + 10 > slot;
  if (rotate) {
    // Each rotated label reaches down-left from its slot's centre: the first must stay inside x0.
    for (let k = 0; k < 4; k++) {
      const reach = Math.max(...spec.xLabels.map((l, i) => rotatedExtent(l) - (i + 0.5) * slot));
      left = Math.max(left, Math.ceil(x0 + 2 + reach));
      slot = (right - left) / count;
    }
  }
  const depth = rotate ? Math.ceil(Math.max(...spec.xLabels.map(rotatedExtent))) + 14 : lineHeight(LABEL_SIZE) + 8;
  const bottom = top + PLOT_HEIGHT;
  const y = (v: number): number => bottom - (Math.max(0, Math.min(v, spec.y.max)) / spec.y.max) * PLOT_HEIGHT;
  const panel: Panel = { left, right, top, bottom, slot, x: (i) => left + (i + 0.5) * slot, y };
  return { panel, rotate, height: PLOT_HEIGHT + depth + lineHeight(LABEL_SIZE) + 4 };
}

/** Grid, chance line and separator: drawn before the data. */
function panelBackground(spec: PanelSpec, p: Panel): Shape[] {
  const shapes: Shape[] = [{ kind: 'rect', role: 'plot-area', x: p.left, y: p.top, w: p.right - p.left, h: p.bottom - p.top, fill: '#ffffff' }];
  for (let i = 1; i * spec.y.step <= spec.y.max + 1e-9; i++) {
    const ty = Math.round(p.y(i * spec.y.step)) + 0.5;
    shapes.push({ kind: 'line', x1: p.left, y1: ty, x2: p.right, y2: ty, stroke: GRID, width: 1 });
  }
  if (spec.separator !== undefined) {
    const sx = p.left + spec.separator * p.slot;
    shapes.push({ kind: 'line', x1: sx, y1: p.top, x2: sx, y2: p.bottom, stroke: '#bbbbbb', width: 1, dash: '2 3' });
  }
  return shapes;
}

/** Axes, ticks, labels, titles and the chance line: drawn after the data. */
function panelForeground(spec: PanelSpec, p: Panel, rotate: boolean, height: number): Shape[] {
  const shapes: Shape[] = [];
  if (spec.chance) {
    const cy = p.y(spec.chance.value);
    shapes.push({ kind: 'line', role: 'chance', x1: p.left, y1: cy, x2: p.right, y2: cy, stroke: MUTED, width: 1.5, dash: '6 4' });
    shapes.push({ kind: 'text', role: 'chance', x: p.right + 6, y: cy, text: spec.chance.label, size: TICK_SIZE, fill: MUTED });
  }
  shapes.push({ kind: 'line', x1: p.left, y1: p.top, x2: p.left, y2: p.bottom, stroke: INK, width: 1 });
  shapes.push({ kind: 'line', x1: p.left, y1: p.bottom, x2: p.right, y2: p.bottom, stroke: INK, width: 1 });
  for (let i = 0; i * spec.y.step <= spec.y.max + 1e-9; i++) {
    const ty = p.y(i * spec.y.step);
    shapes.push({ kind: 'line', x1: p.left - 5, y1: ty, x2: p.left, y2: ty, stroke: INK, width: 1 });
    shapes.push({ kind: 'text', role: 'tick', x: p.left - 8, y: ty, text: spec.y.format(i * spec.y.step), size: TICK_SIZE, fill: INK, anchor: 'end' });
  }
  spec.xLabels.forEach((label, i) => {
    if (label === '') return;
    const cx = p.x(i);
    shapes.push({ kind: 'line', x1: cx, y1: p.bottom, x2: cx, y2: p.bottom + 4, stroke: INK, width: 1 });
    shapes.push(
      rotate
        ? { kind: 'text', role: 'label', x: cx + 3, y: p.bottom + 12, text: label, size: LABEL_SIZE, fill: INK, anchor: 'end', rotate: -45 }
        : { kind: 'text', role: 'label', x: cx, y: p.bottom + 6 + lineHeight(LABEL_SIZE) / 2, text: label, size: LABEL_SIZE, fill: INK, anchor: 'middle' },
    );
  });
  const axisTitleY = p.top + height - lineHeight(LABEL_SIZE) / 2;
  shapes.push({ kind: 'text', role: 'axis-title', x: (p.left + p.right) / 2, y: axisTitleY, text: spec.xTitle, size: LABEL_SIZE, fill: INK, anchor: 'middle' });
  return shapes;
}

/** The y title of a panel whose area starts at x0. */
function yTitle(spec: PanelSpec, x0: number, p: Panel): Shape {
  return {
    kind: 'text',
    role: 'axis-title',
    x: x0 + lineHeight(LABEL_SIZE) / 2,
    y: (p.top + p.bottom) / 2,
    text: spec.yTitle,
    size: LABEL_SIZE,
    fill: INK,
    anchor: 'middle',
    rotate: -90,
  };
}

/** A data layer drawn into a laid-out panel. */
type Draw = (p: Panel) => Shape[];

/** Title, legend and one or more panels side by side, each with its data layer; the canvas grows to fit. */
function compose(title: string, entries: readonly LegendEntry[], panels: { spec: PanelSpec; draw: Draw; minWidth?: number }[]): Scene {
  // Each panel at least as wide as its x title plus the y axis' margin.
  const minPanel = panels.map((p) => Math.max(p.minWidth ?? MIN_WIDTH / panels.length, textWidth(p.spec.xTitle, LABEL_SIZE) + 120));
  const width = Math.ceil(Math.max(minPanel.reduce((s, w) => s + w, 0) + 2 * PAD, textWidth(title, TITLE_SIZE, true) + 2 * PAD, ...entries.map((e) => entryWidth(e) + 2 * PAD)));
  const shapes: Shape[] = [{ kind: 'text', role: 'title', x: width / 2, y: PAD + TITLE_SIZE / 2, text: title, size: TITLE_SIZE, fill: INK, anchor: 'middle', bold: true }];
  const key = legend(entries, PAD, width - PAD, PAD + lineHeight(TITLE_SIZE) + 6);
  const top = key.bottom + 16;
  const span = (width - 2 * PAD) / panels.length;
  const laid = panels.map((p, i) => ({ ...p, x0: PAD + i * span, ...layoutPanel(p.spec, PAD + i * span, PAD + (i + 1) * span, top) }));
  const height = Math.ceil(top + Math.max(...laid.map((l) => l.height)) + PAD);
  for (const l of laid)
    shapes.push(...panelBackground(l.spec, l.panel), ...l.draw(l.panel), ...panelForeground(l.spec, l.panel, l.rotate, l.height), yTitle(l.spec, l.x0, l.panel));
  shapes.push(...key.shapes);
  return { width, height, background: '#ffffff', shapes };
}

interface Series {
  name: string;
  color: string;
  /** One value per x slot, fractions; `undefined` = not measured. */
  values: (Stat | undefined)[];
}

/** Grouped bars (one group per x slot, one bar per series) with std whiskers. */
function bars(series: readonly Series[]): Draw {
  return (p) => {
    const shapes: Shape[] = [];
    const barW = (p.slot * 0.8) / series.length;
    const groups = Math.max(...series.map((s) => s.values.length));
    for (let g = 0; g < groups; g++) {
      series.forEach((s, j) => {
        const v = s.values[g];
        if (!v) return;
        const x0 = p.left + g * p.slot + p.slot * 0.1 + j * barW;
        const x1 = x0 + barW - (barW >= 4 ? 1 : 0);
        const top = p.y(v.mean);
        shapes.push({ kind: 'rect', role: 'bar', x: x0, y: top, w: Math.max(1, x1 - x0), h: p.bottom - top, fill: s.color });
        if (v.std > 0) {
          const cx = (x0 + x1) / 2;
          const hi = p.y(v.mean + v.std);
          const lo = p.y(v.mean - v.std);
          const cap = Math.max(2, Math.min(6, barW * 0.3));
          shapes.push({ kind: 'line', x1: cx, y1: hi, x2: cx, y2: lo, stroke: INK, width: 1.5 });
          shapes.push({ kind: 'line', x1: cx - cap, y1: hi, x2: cx + cap, y2: hi, stroke: INK, width: 1.5 });
          shapes.push({ kind: 'line', x1: cx - cap, y1: lo, x2: cx + cap, y2: lo, stroke: INK, width: 1.5 });
        }
      });
    }
    return shapes;
  };
}

/** A line through a series' points (slot index, value) with a marker on each. */
interface Curve {
  color: string;
  style?: LineStyle;
  /** Curves of one group (one model) share their horizontal offset. */
  group?: number;
  points: { slot: number; value: number }[];
}

/**
 * Lines with markers. With `dodge`, where several groups have a point in one slot (fine-tunes of
 * one epoch each), the groups are spread across the slot, in group order, so no marker hides another.
 */
function curves(list: readonly Curve[], { dodge = false }: { dodge?: boolean } = {}): Draw {
  return (p) => {
    const shapes: Shape[] = [];
    const groupsAt = new Map<number, number[]>();
    list.forEach((c, i) => {
      for (const { slot } of c.points) {
        const groups = groupsAt.get(slot) ?? [];
        const g = c.group ?? i;
        if (!groups.includes(g)) groups.push(g);
        groupsAt.set(slot, groups);
      }
    });
    for (const groups of groupsAt.values()) groups.sort((a, b) => a - b);
    const offset = (slot: number, group: number): number => {
      if (!dodge) return 0;
      const groups = groupsAt.get(slot)!;
      const step = Math.min(14, (p.slot * 0.7) / groups.length);
      return (groups.indexOf(group) - (groups.length - 1) / 2) * step;
    };
    list.forEach((c, i) => {
      const points = c.points.map(({ slot, value }): [number, number] => [p.x(slot) + offset(slot, c.group ?? i), p.y(value)]);
      const dash = DASH[c.style ?? 'line'];
      if (points.length > 1) shapes.push({ kind: 'polyline', points, stroke: c.color, width: 2.5, ...(dash && { dash }) });
      for (const [cx, cy] of points) shapes.push({ kind: 'circle', cx, cy, r: dash ? 3 : 4, fill: c.color });
    });
    return shapes;
  };
}

const mean = (xs: readonly number[]): number => xs.reduce((s, v) => s + v, 0) / xs.length;
const seedsNote = (results: Results): string => `mean${results.seeds.length > 1 ? ' ± std' : ''} over ${results.seeds.length} seed${results.seeds.length === 1 ? '' : 's'}`;

/** Classes of the results' task: `numClasses`, else the preset's (digits 10, PACS 7). */
function classesOf(results: Results): number {
  return results.numClasses ?? (results.preset === 'pacs' ? 7 : 10);
}

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
 * the domain mean; one bar per method with a whisker of +/- one std over seeds; y axis 0-100%
 * and the chance level. A legend entry notes a method whose domain bars use its adversarial BN branch.
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
  const spec: PanelSpec = {
    yTitle: 'Accuracy',
    xTitle: 'Test set',
    y: ACCURACY_AXIS,
    xLabels: ['clean', ...domains, 'domain mean'],
    ...(chance(classesOf(results), 'accuracy') && { chance: chance(classesOf(results), 'accuracy') }),
  };
  const entries = series.map((s): LegendEntry => ({ label: s.name, color: s.color, style: 'box' }));
  return renderScene(compose(title, entries, [{ spec, draw: bars(series) }]), title);
}

function requireCorruption(results: Results, chart: string): { name: string; color: string; per: Record<string, number[]> }[] {
  if (!hasCorruptionResults(results)) throw new InvalidDataError(`${chart}: the results have no corruption figures`);
  const colors = methodColors(results);
  return Object.entries(results.methods).flatMap(([name, m]) => (m.corruption ? [{ name, color: colors[name]!, per: m.corruption.perCorruption }] : []));
}

/**
 * Grouped bars of the error on each corruption, averaged over severities 1-5, one bar per method
 * (no whiskers: per-corruption errors are already means over seeds), and the chance error. Throws
 * an {@link InvalidDataError} when no method has corruption results.
 */
export function corruptionErrorChart(results: Results): Chart {
  const methods = requireCorruption(results, 'corruptionErrorChart');
  const names = corruptionNames(results);
  const series = methods.map((m) => ({
    name: m.name,
    color: m.color,
    values: names.map((c) => (m.per[c] ? { mean: mean(m.per[c]), std: 0 } : undefined)),
  }));
  const level = chance(classesOf(results), 'error');
  const max = Math.max(level?.value ?? 0, ...series.flatMap((s) => s.values.map((v) => v?.mean ?? 0)));
  const title = `Error per corruption, mean over severities 1-5 (${results.seeds.length} seed${results.seeds.length === 1 ? '' : 's'})`;
  const spec: PanelSpec = { yTitle: 'Top-1 error', xTitle: 'Corruption', y: fractionAxis(max), xLabels: names, ...(level && { chance: level }) };
  const entries = series.map((s): LegendEntry => ({ label: s.name, color: s.color, style: 'box' }));
  return renderScene(compose(title, entries, [{ spec, draw: bars(series) }]), title);
}

/**
 * One line per method: the error averaged over all corruptions at each severity 1-5, and the
 * chance error. Throws an {@link InvalidDataError} when no method has corruption results.
 */
export function severityChart(results: Results): Chart {
  const methods = requireCorruption(results, 'severityChart');
  const lines = methods.map((m) => {
    const rows = Object.values(m.per);
    return { color: m.color, points: [0, 1, 2, 3, 4].map((k) => ({ slot: k, value: mean(rows.map((r) => r[k] ?? 0)) })) };
  });
  const level = chance(classesOf(results), 'error');
  const max = Math.max(level?.value ?? 0, ...lines.flatMap((l) => l.points.map((p) => p.value)));
  const title = `Error vs corruption severity, mean over ${corruptionNames(results).length} corruptions`;
  const spec: PanelSpec = { yTitle: 'Top-1 error', xTitle: 'Severity', y: fractionAxis(max), xLabels: ['1', '2', '3', '4', '5'], ...(level && { chance: level }) };
  const entries = methods.map((m): LegendEntry => ({ label: m.name, color: m.color, style: 'line' }));
  return renderScene(compose(title, entries, [{ spec, draw: curves(lines) }]), title);
}

/** One model's per-epoch figures for {@link trainingCurvesChart}. */
export interface CurveRun {
  /** Legend name of the model; `''` for a single run that needs no colour key. */
  name: string;
  color: string;
  /** 1-based epoch of each entry. */
  epochs: readonly number[];
  /** Training loss of the clean BN branch per epoch. */
  cleanLoss: readonly number[];
  /** Training loss of the adversarial BN branch per epoch (AdvBN models). */
  advLoss?: readonly number[];
  /** Training accuracy (clean branch) per epoch. */
  accuracy: readonly number[];
  /** Training accuracy of the adversarial branch, on the attack's worst-case features, per epoch (AdvBN models). */
  advAccuracy?: readonly number[];
  /** Validation loss per epoch (clean BN). */
  valLoss?: readonly number[];
  /** Validation accuracy per epoch (clean BN). */
  valAccuracy?: readonly number[];
}

/** Epoch labels thinned to multiples of 1, 2, 5, 10, ... so that they never touch. */
function epochLabels(first: number, last: number, slot: number): string[] {
  const widest = textWidth(String(last), LABEL_SIZE) + 10;
  let step = 1;
  for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]) {
    step = m;
    if (widest <= m * slot) break;
  }
  const labels: string[] = [];
  for (let e = first; e <= last; e++) labels.push(step === 1 || e % step === 0 ? String(e) : '');
  return labels;
}

/**
 * Loss (left) and accuracy (right) per epoch: per run a solid line for the clean BN branch, a
 * dashed one for the adversarial branch where the run has one (its loss and accuracy on the
 * attack's worst-case features; results written before advbn counted the adversarial accuracy
 * have its loss only, and the legend says so), validation figures dotted, and the chance accuracy
 * 1 / `numClasses`. Non-finite values are gaps. `separator` draws a line after that epoch (where fine-tuning starts).
 */
export function trainingCurvesChart(options: { title: string; runs: readonly CurveRun[]; numClasses: number; xTitle?: string; separator?: number }): Chart {
  const { runs, numClasses } = options;
  const first = Math.min(...runs.flatMap((r) => r.epochs));
  const last = Math.max(...runs.flatMap((r) => r.epochs));
  const slots = last - first + 1;
  const slotOf = (e: number) => e - first;
  const lossCurves: Curve[] = [];
  const accCurves: Curve[] = [];
  const along = (r: CurveRun, values: readonly number[] | undefined) =>
    (values ?? []).flatMap((value, i) => (Number.isFinite(value) && r.epochs[i] !== undefined ? [{ slot: slotOf(r.epochs[i]!), value }] : []));
  runs.forEach((r, group) => {
    lossCurves.push({ color: r.color, group, points: along(r, r.cleanLoss) });
    if (r.advLoss) lossCurves.push({ color: r.color, group, style: 'dashed', points: along(r, r.advLoss) });
    accCurves.push({ color: r.color, group, points: along(r, r.accuracy) });
    if (r.advAccuracy) accCurves.push({ color: r.color, group, style: 'dashed', points: along(r, r.advAccuracy) });
    if (r.valLoss) lossCurves.push({ color: r.color, group, style: 'dotted', points: along(r, r.valLoss) });
    if (r.valAccuracy) accCurves.push({ color: r.color, group, style: 'dotted', points: along(r, r.valAccuracy) });
  });
  const maxLoss = Math.max(0, ...lossCurves.flatMap((c) => c.points.map((p) => p.value)));
  // The slot width is only known after layout; thin the labels for the narrowest the panels can be.
  const labels = epochLabels(first, last, (MIN_WIDTH / 2 - 140) / slots);
  const xTitle = options.xTitle ?? 'Epoch';
  const separator = options.separator !== undefined && options.separator >= first && options.separator < last ? { separator: slotOf(options.separator) + 1 } : {};
  const lossSpec: PanelSpec = { yTitle: 'Loss (cross-entropy)', xTitle, y: valueAxis(maxLoss), xLabels: labels, horizontal: true, ...separator };
  const level = chance(numClasses, 'accuracy');
  const accSpec: PanelSpec = { yTitle: 'Accuracy', xTitle, y: ACCURACY_AXIS, xLabels: labels, horizontal: true, ...(level && { chance: level }), ...separator };
  // A run without a name (a single fineTune) needs no colour key.
  const entries: LegendEntry[] = runs.filter((r) => r.name !== '').map((r) => ({ label: r.name, color: r.color, style: 'box' }));
  const hasAdv = runs.some((r) => r.advLoss || r.advAccuracy);
  const hasAdvAccuracy = runs.some((r) => r.advAccuracy);
  const hasVal = runs.some((r) => r.valLoss || r.valAccuracy);
  const keyColor = runs.length === 1 ? runs[0]!.color : MUTED;
  entries.push({ label: 'training, clean BN', color: keyColor, style: 'line' });
  if (hasAdv) entries.push({ label: hasAdvAccuracy ? 'training, adversarial BN' : 'training, adversarial BN (loss only)', color: keyColor, style: 'dashed' });
  if (hasVal) entries.push({ label: 'validation, clean BN', color: keyColor, style: 'dotted' });
  const scene = compose(options.title, entries, [
    { spec: lossSpec, draw: curves(lossCurves, { dodge: true }) },
    { spec: accSpec, draw: curves(accCurves, { dodge: true }) },
  ]);
  return renderScene(scene, options.title);
}

/** The per-epoch curves of every model of `results` that has them, or `undefined` when none has. */
export function resultsCurvesChart(results: Results): Chart | undefined {
  const colors = methodColors(results);
  const withCurves = Object.entries(results.methods).filter((e): e is [string, (typeof e)[1] & { training: TrainingCurves }] => e[1].training !== undefined);
  if (withCurves.length === 0) return undefined;
  const means = (xs: readonly Stat[] | undefined) => xs?.map((s) => s.mean);
  const runs = withCurves.map(
    ([name, m]): CurveRun => ({
      name,
      color: colors[name]!,
      epochs: m.training.epochs,
      cleanLoss: means(m.training.cleanLoss)!,
      ...(m.training.advLoss && { advLoss: means(m.training.advLoss)! }),
      accuracy: means(m.training.accuracy)!,
      ...(m.training.advAccuracy && { advAccuracy: means(m.training.advAccuracy)! }),
    }),
  );
  const base = results.methods[results.baseline]?.training;
  const baseEnd = base ? Math.max(...base.epochs) : undefined;
  const fineTuned = runs.some((r) => baseEnd !== undefined && r.epochs.some((e) => e > baseEnd));
  const pairs = results.protocol?.pairs;
  const title = `Training curves (mean over ${pairs ?? results.seeds.length} ${pairs ? 'pairs' : 'seeds'})`;
  return trainingCurvesChart({
    title,
    runs,
    numClasses: classesOf(results),
    ...(fineTuned && baseEnd !== undefined && { separator: baseEnd, xTitle: `Epoch (1-${baseEnd}: ${results.baseline}; then each method fine-tunes from it)` }),
  });
}
