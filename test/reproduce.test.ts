// The main job end to end on tiny sizes: every method trains from the same baseline, the
// results follow the schema, and the report files are written.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError, reproduce, validateResults } from '../src/index.js';

describe('reproduce', () => {
  it('writes schema-valid results, a report and charts', async () => {
    const out = mkdtempSync(join(tmpdir(), 'advbn-reproduce-'));
    const { results, files } = await reproduce({
      out,
      seeds: 1,
      methods: ['erm', 'advbn'],
      device: 'cpu',
      digits: { trainLimit: 64, testLimit: 20, domainLimit: 20, corruptionLimit: 10, baseline: { epochs: 1, lr: 1e-2, weightDecay: 1e-4 } },
    });
    expect(validateResults(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')))).toEqual([]);
    expect(Object.keys(results.methods).sort()).toEqual(['advbn', 'baseline', 'erm']);
    expect(results.methods.baseline!.corruption!.mCE.mean).toBeCloseTo(1, 10);
    expect(results.methods.advbn!.bn).toEqual({ clean: 'clean', corruption: 'clean', domains: 'adv' });
    expect(results.methods.advbn!.alternate?.bn.domains).toBe('clean');
    expect(results.methods.erm!.alternate).toBeUndefined();
    expect(Object.keys(results.methods.erm!.domains).sort()).toEqual(['colorized', 'inverted', 'mnist_m', 'sketch']);
    expect(Object.keys(results.methods.erm!.corruption!.perCorruption)).toHaveLength(15);
    for (const f of ['results.json', 'report.md', 'domains.png', 'domains.svg', 'corruptions.png', 'severity.svg']) {
      expect(files.some((p) => p.endsWith(f)) && existsSync(join(out, f))).toBe(true);
    }
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain('advbn');
  }, 120_000);

  it('rejects unknown methods and a PACS run without data', async () => {
    await expect(reproduce({ out: tmpdir(), methods: ['nope'] })).rejects.toThrow(InvalidOptionError);
    await expect(reproduce({ out: tmpdir(), preset: 'pacs' })).rejects.toThrow(/data/);
  });
});
