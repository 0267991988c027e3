// Report writers: results schema, PNG/SVG charts, report.md and its verdict, writeReport.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 as zlibCrc32, inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { InvalidDataError } from '../src/errors.js';
import {
  RESULTS_SCHEMA,
  corruptionErrorChart,
  domainAccuracyChart,
  methodColors,
  renderReportMarkdown,
  severityChart,
  statOf,
  validateResults,
  writeReport,
  type MethodResult,
  type Results,
  type Stat,
} from '../src/report/index.js';

const s = (mean: number, std = 0.01): Stat => ({ mean, std });
const CORRUPTIONS = ['gaussian_noise', 'fog'];

function method(acc: number, error: number, domainsBn: 'clean' | 'adv' = 'clean'): MethodResult {
  return {
    clean: s(0.95),
    domains: { sketch: s(acc), waves: s(acc) },
    domainMean: s(acc),
    corruption: {
      mCE: s(error * 3, 0.02),
      relativeMCE: s(1, 0.05),
      perCorruption: Object.fromEntries(CORRUPTIONS.map((c) => [c, [1, 2, 3, 4, 5].map((k) => error * k * 0.3)])),
    },
    bn: { clean: 'clean', corruption: 'clean', domains: domainsBn },
    trainSeconds: s(12, 1),
  };
}

function fixture(): Results {
  return {
    preset: 'digits',
    device: 'cpu',
    seeds: [0, 1, 2],
    config: { epochs: 2, lr: 0.01, model: 'smallResnet' },
    command: 'advbn reproduce --preset digits --seeds 0,1,2',
    createdAt: '2025-06-01T12:00:00.000Z',
    package: { name: 'advbn', version: '0.1.0' },
    hardware: 'test CPU',
    baseline: 'baseline',
    methods: { baseline: method(0.7, 0.3), erm: method(0.5, 0.25), advbn: method(0.9, 0.1, 'adv') },
  };
}

/** A PNG with its chunks checked (CRCs by node:zlib, not by the encoder under test), unfiltered to RGB. */
function decodePng(png: Buffer): { width: number; height: number; rgb: Uint8Array; inflated: number } {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let offset = 8;
  const types: string[] = [];
  const idat: Buffer[] = [];
  let width = 0;
  let height = 0;
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    expect(png.readUInt32BE(offset + 8 + length), `CRC of ${type}`).toBe(zlibCrc32(png.subarray(offset + 4, offset + 8 + length)));
    types.push(type);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect([...data.subarray(8)]).toEqual([8, 2, 0, 0, 0]);
    }
    if (type === 'IDAT') idat.push(data);
    offset += 12 + length;
  }
  expect(types[0]).toBe('IHDR');
  expect(types.at(-1)).toBe('IEND');
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 3;
  expect(raw.length).toBe(height * (stride + 1));
  const rgb = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    expect(filter, `filter type of row ${y}`).toBeLessThanOrEqual(4);
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i]!;
      const a = i >= 3 ? rgb[y * stride + i - 3]! : 0;
      const b = y > 0 ? rgb[(y - 1) * stride + i]! : 0;
      const c = i >= 3 && y > 0 ? rgb[(y - 1) * stride + i - 3]! : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const predictor = filter === 0 ? 0 : filter === 1 ? a : filter === 2 ? b : filter === 3 ? (a + b) >> 1 : paeth;
      rgb[y * stride + i] = (x + predictor) & 0xff;
    }
  }
  return { width, height, rgb, inflated: raw.length };
}

function countColor(rgb: Uint8Array, hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let count = 0;
  for (let i = 0; i < rgb.length; i += 3) if (rgb[i] === r && rgb[i + 1] === g && rgb[i + 2] === b) count++;
  return count;
}

const barCount = (svg: string): number => svg.match(/<rect class="bar"/g)?.length ?? 0;

describe('validateResults', () => {
  it('accepts a valid object, and PACS results without corruption figures', () => {
    expect(validateResults(fixture())).toEqual([]);
    const pacs = fixture();
    pacs.preset = 'pacs';
    for (const m of Object.values(pacs.methods)) delete m.corruption;
    expect(validateResults(pacs)).toEqual([]);
    expect(validateResults(JSON.parse(JSON.stringify(fixture())))).toEqual([]);
  });

  it('reports violations by JSON path', () => {
    const r = fixture() as unknown as { methods: Record<string, Record<string, unknown>>; seeds: unknown[] };
    delete r.methods.erm!.domainMean;
    (r.methods.advbn!.domains as Record<string, Stat>)['odd name'] = { mean: 1.5, std: 0 };
    r.seeds.push('3');
    expect(validateResults(r)).toEqual([
      '$.seeds[3]: must be an integer, got string',
      '$.methods.erm.domainMean: required field is missing',
      '$.methods.advbn.domains["odd name"].mean: must be <= 1, got 1.5',
    ]);
    expect(validateResults({ ...fixture(), baseline: 'nope' })).toEqual([expect.stringMatching(/^\$\.baseline: must name a method/)]);
    expect(validateResults({ ...fixture(), extra: 1 })).toEqual(['$.extra: unknown field']);
    expect(validateResults(null)).toEqual(['$: must be an object, got null']);
    const bad = fixture();
    bad.methods.erm!.corruption!.perCorruption.fog = [0.1, 0.2];
    bad.methods.erm!.bn.domains = 'both' as 'adv';
    expect(validateResults(bad)).toEqual([
      '$.methods.erm.corruption.perCorruption.fog: must have at least 5 items, got 2',
      '$.methods.erm.bn.domains: must be one of "clean", "adv", got "both"',
    ]);
  });

  it('docs/results.schema.json is RESULTS_SCHEMA', async () => {
    const onDisk: unknown = JSON.parse(await readFile(new URL('../docs/results.schema.json', import.meta.url), 'utf8'));
    expect(onDisk).toEqual(JSON.parse(JSON.stringify(RESULTS_SCHEMA)));
  });

  it('statOf uses the population std', () => {
    expect(statOf([0.5])).toEqual({ mean: 0.5, std: 0 });
    const st = statOf([1, 3]);
    expect(st.mean).toBe(2);
    expect(st.std).toBeCloseTo(1, 12);
  });
});

describe('charts', () => {
  it('PNG decodes structurally and a 90% bar is taller than a 50% bar', () => {
    const results = fixture();
    const chart = domainAccuracyChart(results);
    const png = decodePng(chart.png);
    expect([png.width, png.height]).toEqual([chart.width, chart.height]);
    expect(png.width).toBeGreaterThanOrEqual(800);
    expect(png.inflated).toBe(png.height * (png.width * 3 + 1));
    const colors = methodColors(results);
    const erm = countColor(png.rgb, colors.erm!);
    const advbn = countColor(png.rgb, colors.advbn!);
    const baseline = countColor(png.rgb, colors.baseline!);
    expect(erm).toBeGreaterThan(500);
    expect(advbn).toBeGreaterThan(erm);
    expect(baseline).toBeGreaterThan(erm);
    expect(advbn).toBeGreaterThan(baseline);
    // Four bars each; clean (95%) is shared, the other three scale with 90% vs 50%.
    expect(advbn / erm).toBeGreaterThan(1.3);
  });

  it('SVG has one bar rect per method and group, and escapes labels', () => {
    const results = fixture();
    for (const m of Object.values(results.methods)) m.domains['a<b&c'] = s(0.6);
    const { svg } = domainAccuracyChart(results);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(barCount(svg)).toBe(3 * 5); // clean, sketch, waves, a<b&c, domain mean
    expect(svg).toContain('a&lt;b&amp;c');
    expect(svg).not.toContain('a<b&c');
    expect(svg.match(/<text/g)?.length).toBe(svg.match(/<\/text>/g)?.length);
    expect(svg).toContain('advbn (domains: adv BN)');
  });

  it('corruption and severity charts', () => {
    const results = fixture();
    const corruption = corruptionErrorChart(results);
    expect(barCount(corruption.svg)).toBe(3 * CORRUPTIONS.length);
    decodePng(corruption.png);
    const severity = severityChart(results);
    expect(severity.svg.match(/<polyline/g)?.length).toBe(3);
    expect(severity.svg.match(/<circle/g)?.length).toBe(3 * 5);
    const png = decodePng(severity.png);
    const colors = methodColors(results);
    for (const name of ['baseline', 'erm', 'advbn']) expect(countColor(png.rgb, colors[name]!)).toBeGreaterThan(100);
    for (const m of Object.values(results.methods)) delete m.corruption;
    expect(() => corruptionErrorChart(results)).toThrow(InvalidDataError);
    expect(() => severityChart(results)).toThrow(InvalidDataError);
  });
});

describe('renderReportMarkdown', () => {
  it('lists methods, domains and BN branches', () => {
    const results = fixture();
    results.methods.advbn!.alternate = { ...method(0.55, 0.12), bn: { clean: 'adv', corruption: 'adv', domains: 'clean' } };
    const md = renderReportMarkdown(results);
    expect(md).toMatch(/^# /);
    expect(md).toContain(results.command);
    expect(md).toContain(results.createdAt);
    for (const name of ['baseline', 'erm', 'advbn', 'sketch', 'waves', 'gaussian_noise', 'fog']) expect(md).toContain(name);
    expect(md).toContain('clean (clean BN)');
    expect(md).toMatch(/sketch \(clean\/adv BN \[\d\]\)/);
    expect(md).toContain('adv BN for advbn');
    expect(md).toContain('mCE (clean BN)');
    expect(md).toContain('## Other BN branch');
    expect(md).toContain('sketch (clean BN)'); // alternate table: only advbn's clean branch
    expect(md).toContain('90.0 ± 1.0');
    expect(md).toContain('](domains.svg)');
    expect(md).toContain('](corruptions.png)');
    expect(md).toContain('## Error per corruption');
  });

  it('escapes markdown in free-form names and omits corruption parts when absent', () => {
    const results = fixture();
    for (const m of Object.values(results.methods)) {
      delete m.corruption;
      m.domains['x|<y>'] = s(0.5);
    }
    const md = renderReportMarkdown(results);
    expect(md).toContain('x\\|\\<y\\>');
    expect(md).not.toContain('corruptions.svg');
    expect(md).not.toContain('mCE (');
  });

  it('verdict: the paired comparisons with their intervals, better/worse only when the interval excludes 0', () => {
    const results = fixture();
    results.protocol = { kind: 'leave-one-domain-out', domains: ['sketch', 'waves', 'photo'], heldOut: ['sketch', 'waves'], seeds: [0, 1, 2], pairs: 6, description: 'Six pairs.' };
    results.comparisons = [
      { method: 'erm', versus: 'baseline', scope: 'overall', meanDiff: 0.01, ci95: [-0.02, 0.04], pairs: 6, verdict: 'inconclusive' },
      { method: 'advbn', versus: 'erm', scope: 'sketch', meanDiff: 0.1, ci95: [0.05, 0.15], pairs: 3, verdict: 'better' },
      { method: 'advbn', versus: 'erm', scope: 'waves', meanDiff: -0.05, ci95: [-0.08, -0.02], pairs: 3, verdict: 'worse' },
      { method: 'advbn', versus: 'erm', scope: 'overall', meanDiff: 0.025, ci95: [-0.01, 0.06], pairs: 6, verdict: 'inconclusive' },
    ];
    const md = renderReportMarkdown(results);
    const verdict = md.split('## Verdict')[1]!;
    expect(verdict).toContain('| advbn | erm | sketch | +10.0 | [+5.0, +15.0] | 3 | **better** |');
    expect(verdict).toContain('| advbn | erm | **overall** | +2.5 | [-1.0, +6.0] | 6 | inconclusive |');
    expect(verdict).toContain('not distinguishable from its reference overall: erm (vs baseline), advbn (vs erm)');
    expect(verdict).toContain('advbn better on sketch (+10.0), advbn worse on waves (-5.0)');
    expect(md).toContain('| Method | in-domain (clean BN) | held out sketch');
    results.comparisons = [{ method: 'advbn', versus: 'erm', scope: 'overall', meanDiff: 0.02, ci95: null, pairs: 1, verdict: 'no interval' }];
    expect(renderReportMarkdown(results)).toContain('no interval (one pair)');
    delete results.comparisons;
    expect(renderReportMarkdown(results)).toContain('No comparisons');
  });

  it('an undefined relative mCE shows as n/a with its reason', () => {
    const results = fixture();
    results.methods.erm!.corruption!.relativeMCE = null;
    results.methods.erm!.corruption!.relativeMCEReason = 'undefined in 1 of 3 runs: no denominator';
    expect(validateResults(results)).toEqual([]);
    const md = renderReportMarkdown(results);
    const note = /\| erm \|[^\n]*\| n\/a \[(\d)\] \|/.exec(md);
    expect(note).not.toBeNull();
    expect(md).toContain(`[${note![1]}] relative mCE of erm is n/a: undefined in 1 of 3 runs: no denominator.`);
  });
});

describe('writeReport', () => {
  it('writes results.json, report.md and charts; corruption charts only with corruption results', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'advbn-report-'));
    try {
      const paths = await writeReport(join(dir, 'full'), fixture());
      expect(paths.map((p) => p.slice(dir.length + 6)).sort()).toEqual(
        ['corruptions.png', 'corruptions.svg', 'domains.png', 'domains.svg', 'report.md', 'results.json', 'severity.png', 'severity.svg'].sort(),
      );
      expect(JSON.parse(await readFile(join(dir, 'full', 'results.json'), 'utf8'))).toEqual(fixture());
      decodePng(await readFile(join(dir, 'full', 'severity.png')));

      const pacs = fixture();
      for (const m of Object.values(pacs.methods)) delete m.corruption;
      await writeReport(join(dir, 'pacs'), pacs);
      expect((await readdir(join(dir, 'pacs'))).sort()).toEqual(['domains.png', 'domains.svg', 'report.md', 'results.json']);

      const bad = { ...fixture(), seeds: [] };
      await expect(writeReport(join(dir, 'bad'), bad)).rejects.toThrow(/\$\.seeds: must have at least 1 items/);
      await expect(readdir(join(dir, 'bad'))).rejects.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
