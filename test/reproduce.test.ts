// The main job end to end on tiny sizes: leave-one-domain-out pairs, every method fine-tuned
// from its pair's baseline, paired comparisons, the results follow the schema, the report and
// the saved models are written.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError, reproduce, validateResults } from '../src/index.js';

describe('reproduce', () => {
  it('runs leave-one-domain-out pairs and writes schema-valid results, comparisons, a report and charts', async () => {
    const out = mkdtempSync(join(tmpdir(), 'advbn-reproduce-'));
    const models = mkdtempSync(join(tmpdir(), 'advbn-reproduce-models-'));
    const { results, files } = await reproduce({
      out,
      seeds: 2,
      methods: ['erm', 'advbn_mixstyle'],
      device: 'cpu',
      saveModels: models,
      digits: {
        heldOut: ['sketch', 'low_light'],
        trainPerDomain: 16,
        targetLimit: 20,
        sourceTestLimit: 10,
        baseline: { epochs: 1, lr: 1e-2, weightDecay: 1e-4 },
        fineTune: { epochs: 1, lr: 0.02, cut: 1, batchSize: 32, advbn: { steps: 2, stepSize: 0.2, epsilon: 1.1 } },
      },
    });
    expect(validateResults(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')))).toEqual([]);
    expect(Object.keys(results.methods).sort()).toEqual(['advbn_mixstyle', 'baseline', 'erm']);
    expect(results.protocol).toMatchObject({ kind: 'leave-one-domain-out', heldOut: ['sketch', 'low_light'], seeds: [0, 1], pairs: 4 });
    expect(results.protocol!.domains).toHaveLength(6);
    // Every pair's baseline is the reference of mCE, so against itself it scores exactly 1.
    expect(results.methods.baseline!.corruption!.mCE.mean).toBeCloseTo(1, 10);
    const combo = results.methods.advbn_mixstyle!;
    expect(combo.bn).toEqual({ clean: 'clean', corruption: 'clean', domains: 'adv' });
    expect(combo.alternate?.bn.domains).toBe('clean');
    // Corruptions with the clean BNs only: the other branch says why it has no mCE.
    expect(combo.alternate?.corruption).toBeUndefined();
    expect(combo.alternate?.corruptionOmitted).toBe('not measured: the corruption sets were evaluated with the clean BNs only');
    expect(results.methods.erm!.alternate).toBeUndefined();
    expect(Object.keys(combo.targets!).sort()).toEqual(['low_light', 'sketch']);
    expect(combo.targets!.sketch).toMatchObject({ n: 2, bn: 'adv' });
    expect(results.methods.erm!.targets!.sketch!.bn).toBe('clean');
    expect(Object.keys(combo.corruption!.perCorruption)).toHaveLength(15);
    // erm vs the baseline, advbn_mixstyle vs erm: per held-out domain and overall, 2 or 4 pairs each.
    const scopes = (method: string) => results.comparisons!.filter((c) => c.method === method).map((c) => [c.versus, c.scope, c.pairs]);
    expect(scopes('erm')).toEqual([
      ['baseline', 'sketch', 2],
      ['baseline', 'low_light', 2],
      ['baseline', 'overall', 4],
    ]);
    expect(scopes('advbn_mixstyle')).toEqual([
      ['erm', 'sketch', 2],
      ['erm', 'low_light', 2],
      ['erm', 'overall', 4],
    ]);
    const overall = results.comparisons!.find((c) => c.method === 'advbn_mixstyle' && c.scope === 'overall')!;
    expect(overall.ci95![0]).toBeLessThanOrEqual(overall.meanDiff);
    expect(overall.ci95![1]).toBeGreaterThanOrEqual(overall.meanDiff);
    expect(overall.meanDiff).toBeCloseTo(combo.domainMean.mean - results.methods.erm!.domainMean.mean, 10);
    // Training curves: the baseline's epochs, then each fine-tune's after them; AdvBN's adversarial branch too.
    expect(results.numClasses).toBe(10);
    expect(results.methods.baseline!.training!.epochs).toEqual([1]);
    expect(results.methods.erm!.training!.epochs).toEqual([2]);
    expect(results.methods.erm!.training!.advLoss).toBeUndefined();
    expect(combo.training!.advLoss).toHaveLength(1);
    // The adversarial branch's training accuracy: only where there is that branch, a fraction.
    expect(results.methods.erm!.training!.advAccuracy).toBeUndefined();
    expect(combo.training!.advAccuracy).toHaveLength(1);
    expect(combo.training!.advAccuracy![0]!.mean).toBeGreaterThanOrEqual(0);
    expect(combo.training!.advAccuracy![0]!.mean).toBeLessThanOrEqual(1);
    expect(combo.training!.cleanLoss[0]!.mean).toBeGreaterThan(0);
    for (const f of ['results.json', 'report.md', 'domains.png', 'domains.svg', 'corruptions.png', 'severity.svg', 'curves.svg', 'curves.png']) {
      expect(files.some((p) => p.endsWith(f)) && existsSync(join(out, f))).toBe(true);
    }
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    expect(report).toContain('held out sketch (clean/adv BN');
    expect(report).toContain('95% CI');
    expect(report).toContain('mCE and relative mCE are n/a: not measured: the corruption sets were evaluated with the clean BNs only.');
    expect(report).toContain('](curves.png)');
    // --save-models: the baselines and every fine-tuned model, by method, held-out domain and seed.
    expect(readdirSync(models).sort()).toEqual(
      ['advbn_mixstyle', 'baseline', 'erm'].flatMap((m) => ['low_light', 'sketch'].flatMap((d) => [0, 1].map((s) => `${m}-heldout_${d}-seed${s}.safetensors`))).sort(),
    );
  }, 300_000);

  it('rejects unknown methods and held-out domains, quick with full, and a PACS run without data', async () => {
    await expect(reproduce({ out: tmpdir(), methods: ['nope'] })).rejects.toThrow(InvalidOptionError);
    await expect(reproduce({ out: tmpdir(), methods: ['erm', 'erm'] })).rejects.toThrow(/repeats/);
    await expect(reproduce({ out: tmpdir(), digits: { heldOut: ['svhn' as never] } })).rejects.toThrow(/heldOut/);
    await expect(reproduce({ out: tmpdir(), quick: true, full: true })).rejects.toThrow(/full/);
    const used = mkdtempSync(join(tmpdir(), 'advbn-used-'));
    writeFileSync(join(used, 'erm-heldout_sketch-seed0.safetensors'), 'an earlier run');
    await expect(reproduce({ out: tmpdir(), saveModels: used })).rejects.toThrow(/saveModels.*holds files/);
    expect(readFileSync(join(used, 'erm-heldout_sketch-seed0.safetensors'), 'utf8')).toBe('an earlier run');
    await expect(reproduce({ out: tmpdir(), preset: 'pacs' })).rejects.toThrow(/data/);
  });
});
