// Report writers: results schema, PNG/SVG charts, report.md and its verdict, writeReport.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidDataError } from '../src/errors.js';
import {
  RESULTS_SCHEMA,
  corruptionErrorChart,
  domainAccuracyChart,
  methodColors,
  renderReportMarkdown,
  resultsCurvesChart,
  severityChart,
  trainingCurvesChart,
  statOf,
  validateResults,
  writeReport,
  type MethodResult,
  type Results,
  type Stat,
  type TrainingCurves,
} from '../src/report/index.js';
import { countColor, decodePng } from './png.js';
import { labels, textProblems } from './text-fit.js';

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

/** Per-epoch curves as reproduce records them: `epochs` entries, AdvBN with the adversarial branch's loss and accuracy. */
function training(epochs: number[], adv: boolean): TrainingCurves {
  const at = (f: (i: number) => number) => epochs.map((_, i) => s(f(i), 0.02));
  return {
    epochs,
    loss: at((i) => (adv ? 4 : 2) / (i + 1)),
    cleanLoss: at((i) => 2 / (i + 1)),
    ...(adv && { advLoss: at((i) => 2.2 / (i + 1)) }),
    accuracy: at((i) => Math.min(0.95, 0.3 + 0.1 * i)),
    ...(adv && { advAccuracy: at((i) => Math.min(0.9, 0.2 + 0.1 * i)) }),
  };
}

/** Results that stress the layout: long method and domain names, many groups and methods. */
function crowded(): Results {
  const results = fixture();
  const long = 'advbn_mixstyle_with_a_much_longer_name_than_any_preset_uses_so_that_the_legend_entry_is_wider_than_the_default_canvas';
  results.methods[long] = method(0.6, 0.2, 'adv');
  for (let i = 0; i < 6; i++) results.methods[`method_${i}`] = method(0.5 + i * 0.05, 0.2, i % 2 ? 'adv' : 'clean');
  for (const m of Object.values(results.methods)) {
    for (let d = 0; d < 12; d++) m.domains[`domain_number_${d}_with_a_long_name`] = s(0.4 + d * 0.02);
    for (const c of ['elastic_transform', 'jpeg_compression', 'impulse_noise', 'zoom_blur']) m.corruption!.perCorruption[c] = [0.1, 0.2, 0.3, 0.4, 0.5];
  }
  return results;
}

describe('charts', () => {
  it('PNG (rasterised by resvg) decodes and a 90% bar is taller than a 50% bar', () => {
    const results = fixture();
    const chart = domainAccuracyChart(results);
    const png = decodePng(chart.png);
    expect([png.width, png.height]).toEqual([chart.width, chart.height]);
    expect(png.width).toBeGreaterThanOrEqual(800);
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

  it('SVG has one bar rect per method and group, escapes labels and shortens none', () => {
    const results = fixture();
    for (const m of Object.values(results.methods)) m.domains['a<b&c'] = s(0.6);
    const { svg } = domainAccuracyChart(results);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(barCount(svg)).toBe(3 * 5); // clean, sketch, waves, a<b&c, domain mean
    expect(svg).toContain('a&lt;b&amp;c');
    expect(svg).not.toContain('a<b&c');
    expect(svg.match(/<text/g)?.length).toBe(svg.match(/<\/text>/g)?.length);
    const texts = labels(svg).map((l) => l.text);
    expect(texts).toContain('advbn (domains: adv BN)');
    const crowdedTexts = [domainAccuracyChart(crowded()), corruptionErrorChart(crowded())].flatMap((c) => labels(c.svg).map((l) => l.text));
    for (const name of Object.keys(crowded().methods)) expect(crowdedTexts.some((t) => t === name || t.startsWith(`${name} (`))).toBe(true);
    expect(crowdedTexts).toContain('elastic_transform');
    expect(crowdedTexts).toContain('domain_number_11_with_a_long_name');
  });

  it('every text element fits: inside the canvas, clear of other labels, plot areas and legend swatches', () => {
    const charts = { fixture: fixture(), crowded: crowded(), pacs: { ...fixture(), preset: 'pacs' as const } };
    for (const [name, results] of Object.entries(charts)) {
      results.methods.baseline!.training = training([1, 2, 3, 4, 5, 6], false);
      results.methods.advbn!.training = training([7, 8], true);
      const drawn = [domainAccuracyChart(results), corruptionErrorChart(results), severityChart(results), resultsCurvesChart(results)!];
      for (const chart of drawn) {
        expect(textProblems(chart.svg), `${name}: ${/<title>(.*)<\/title>/.exec(chart.svg)![1]}`).toEqual([]);
        expect(labels(chart.svg).length).toBeGreaterThan(10);
      }
    }
    const many = trainingCurvesChart({
      title: 'A long run',
      numClasses: 100,
      runs: [{ name: 'erm', color: '#0072B2', epochs: Array.from({ length: 300 }, (_, i) => i + 1), cleanLoss: Array(300).fill(1), accuracy: Array(300).fill(0.5) }],
    });
    expect(textProblems(many.svg)).toEqual([]);
    expect(labels(many.svg).map((l) => l.text)).toContain('chance 1%');
  });

  it("the committed reports' charts fit too", async () => {
    const results = new URL('../docs/results/', import.meta.url);
    const svgs = (await readdir(results, { recursive: true })).filter((f) => f.endsWith('.svg'));
    expect(svgs.length).toBeGreaterThanOrEqual(6);
    for (const f of svgs) expect(textProblems(await readFile(new URL(f, results), 'utf8')), f).toEqual([]);
  });

  it('the fit check fails on labels that would be cut or overlap', () => {
    const svg = (body: string) =>
      `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="100" font-family="'DejaVu Sans'"><rect class="plot-area" x="100" y="0" width="200" height="50" fill="#fff"/>${body}</svg>`;
    expect(textProblems(svg('<text x="10" y="80" font-size="13">fits</text>'))).toEqual([]);
    // What the old charts did: a legend entry running past the right edge.
    expect(textProblems(svg('<text x="150" y="80" font-size="13">advbn_augmix (domains: adv BN)</text>'))).toEqual([
      '"advbn_augmix (domains: adv BN)" reaches past the 300x100 canvas',
    ]);
    expect(textProblems(svg('<text x="10" y="80" font-size="13">elastic_transform</text><text x="60" y="85" font-size="13">fog</text>'))).toEqual([
      '"elastic_transform" overlaps "fog"',
    ]);
    expect(textProblems(svg('<text x="80" y="30" font-size="13">90%</text>'))).toEqual(['"90%" overlaps a plot-area']);
    // Rotated labels are checked as the quadrilateral they cover, not their bounding box.
    // (Their bounding boxes overlap at any spacing below the labels' length.)
    const rotated = (x: number) => `<text x="${x}" y="64" font-size="13" text-anchor="end" transform="rotate(-45 ${x} 60)">gaussian_noise</text>`;
    const tall = (body: string) => svg(body).replace('height="100"', 'height="200"');
    expect(textProblems(tall(rotated(200) + rotated(222)))).toEqual([]);
    expect(textProblems(tall(rotated(200) + rotated(208)))).toEqual(['"gaussian_noise" overlaps "gaussian_noise"']);
    expect(textProblems(tall(rotated(40)))).toEqual(['"gaussian_noise" reaches past the 300x200 canvas']);
  });

  it('a labelled chance line wherever accuracy or error is plotted', () => {
    const results = fixture();
    results.methods.baseline!.training = training([1, 2, 3], false);
    const text = (chart: { svg: string }) => labels(chart.svg).map((l) => l.text);
    expect(text(domainAccuracyChart(results))).toContain('chance 10%');
    expect(text(corruptionErrorChart(results))).toContain('chance 90%');
    expect(text(severityChart(results))).toContain('chance 90%');
    expect(text(resultsCurvesChart(results)!)).toContain('chance 10%');
    expect(text(domainAccuracyChart({ ...results, preset: 'pacs' }))).toContain('chance 14.3%');
    expect(text(domainAccuracyChart({ ...results, numClasses: 4 }))).toContain('chance 25%');
    for (const chart of [domainAccuracyChart(results), severityChart(results)]) expect(chart.svg.match(/<line class="chance"/g)).toHaveLength(1);
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

  it('training curves: clean and adversarial losses and accuracies, and a separator where fine-tuning starts', () => {
    const results = fixture();
    expect(resultsCurvesChart(results)).toBeUndefined();
    results.methods.baseline!.training = training([1, 2, 3, 4], false);
    results.methods.erm!.training = training([5, 6], false);
    results.methods.advbn!.training = training([5, 6], true);
    expect(validateResults(results)).toEqual([]);
    const chart = resultsCurvesChart(results)!;
    // Loss and accuracy: baseline, erm, advbn clean + advbn adversarial.
    expect(chart.svg.match(/<polyline/g)?.length).toBe(4 + 4);
    // Dashed: advbn's adversarial loss and accuracy, and the legend's key.
    expect(chart.svg.match(/stroke-dasharray="7 4"/g)?.length).toBe(3);
    expect(chart.svg).toContain('stroke-dasharray="2 3"'); // the separator
    expect(textProblems(chart.svg)).toEqual([]);
    const text = labels(chart.svg).map((l) => l.text);
    expect(text).toContain('Epoch (1-4: baseline; then each method fine-tunes from it)');
    expect(text).toContain('training, adversarial BN');
    expect(text).not.toContain('training, adversarial BN (loss only)');
    decodePng(chart.png);
    // Two dashed curves (advbn's adversarial loss and accuracy), each through its two epochs.
    const dashed = [...chart.svg.matchAll(/<polyline points="([^"]+)"[^>]*stroke-dasharray="7 4"/g)].map((m) => m[1]!.split(' ').length);
    expect(dashed).toEqual([2, 2]);
    results.methods.erm!.training!.accuracy.pop();
    expect(validateResults(results)).toEqual(['$.methods.erm.training.accuracy: must have one entry per epoch (2), got 1']);
    results.methods.erm!.training = training([5, 6], false);
    results.methods.advbn!.training!.advAccuracy!.pop();
    expect(validateResults(results)).toEqual(['$.methods.advbn.training.advAccuracy: must have one entry per epoch (2), got 1']);
    results.methods.advbn!.training!.advAccuracy = [s(0.5), s(1.5)];
    expect(validateResults(results)).toEqual([expect.stringMatching(/^\$\.methods\.advbn\.training\.advAccuracy\[1\]\.mean/)]);
    // Results written before advbn counted the adversarial accuracy: still valid, its loss only, and the legend says so.
    delete results.methods.advbn!.training!.advAccuracy;
    expect(validateResults(results)).toEqual([]);
    const older = resultsCurvesChart(results)!;
    expect(older.svg.match(/<polyline/g)?.length).toBe(4 + 3);
    expect(labels(older.svg).map((l) => l.text)).toContain('training, adversarial BN (loss only)');
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

  it('says once why the other branch has no mCE when the corruptions were measured on one branch', () => {
    const results = fixture();
    const { corruption: _c, trainSeconds: _t, ...figures } = method(0.55, 0.12);
    const reason = 'not measured: the corruption sets were evaluated with the clean BNs only';
    for (const name of ['erm', 'advbn']) {
      results.methods[name]!.alternate = { ...figures, bn: { clean: 'adv', corruption: 'adv', domains: 'clean' }, corruptionOmitted: reason };
    }
    expect(validateResults(results)).toEqual([]);
    const other = renderReportMarkdown(results).split('## Other BN branch')[1]!.split('## Error per corruption')[0]!;
    const note = other.match(/\| advbn \| [^|]+ \|.*\| n\/a \[(\d)\] \| n\/a \[\1\] \|/)![1];
    expect(other).toMatch(new RegExp(`\\| erm \\| .*\\| n/a \\[${note}\\] \\| n/a \\[${note}\\] \\|`));
    expect(other.split(`mCE and relative mCE are n/a: ${reason}.`)).toHaveLength(2);
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
