// The PACS preset end to end on a tiny PACS-layout tree the test writes (ROOT/<domain>/<class>/<image>:
// the four domains, the seven classes, two 32 x 32 images each), with the preset's sizes
// overridden (one held-out domain, 32 px, a few epochs) so that it runs in seconds on a CPU.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionError, type ReproduceResults, reproduce, validateResults } from '../src/index.js';
import { pattern, tempDir, writeImage } from './image-files.js';
import { runCli } from './cli-run.js';

const dir = tempDir('reproduce-pacs');
afterAll(() => dir.cleanup());

const DOMAINS = ['photo', 'art_painting', 'cartoon', 'sketch'];
const CLASSES = ['dog', 'elephant', 'giraffe', 'guitar', 'horse', 'house', 'person'];
const root = join(dir.path, 'PACS');

beforeAll(() => {
  for (const [d, domain] of DOMAINS.entries()) {
    for (const [label, name] of CLASSES.entries()) {
      for (let i = 0; i < 2; i += 1) {
        // The class decides the bright quadrant and the pattern's phase; the domain shifts the colours.
        const pixels = pattern(32, 32, label * 3 + i, label % 4).map((v, k) => (d === 3 ? 255 - v : (v + 40 * d * (k % 3)) % 256));
        writeImage(join(root, domain, name, `${domain}_${i}.png`), pixels, 32, 32, 'png');
      }
    }
  }
});

describe('reproduce --preset pacs', () => {
  it('leave-one-domain-out on a tiny PACS tree: a baseline on the other three domains, each method fine-tuned from it, the held-out accuracy per BN branch', async () => {
    const out = join(dir.path, 'out');
    const models = mkdtempSync(join(dir.path, 'models-'));
    const { results, files } = await reproduce({
      preset: 'pacs',
      data: root,
      out,
      seeds: 1,
      methods: ['erm', 'advbn'],
      device: 'cpu',
      saveModels: models,
      pacs: { heldOut: ['sketch'], size: 32, batchSize: 42, baseline: { epochs: 2 }, fineTune: { epochs: 1 } },
    });
    const onDisk = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as ReproduceResults;
    expect(validateResults(onDisk)).toEqual([]);
    expect(onDisk).toEqual(JSON.parse(JSON.stringify(results)));
    expect(results.preset).toBe('pacs');
    expect(results.numClasses).toBe(7);
    expect(results.protocol).toMatchObject({ kind: 'leave-one-domain-out', domains: DOMAINS, heldOut: ['sketch'], seeds: [0], pairs: 1 });
    expect(results.config).toMatchObject({ size: 32, batchSize: 42, heldOut: ['sketch'], baseline: { epochs: 2, lr: 0.05 }, fineTune: { epochs: 1, cut: 1, lr: 0.005 } });
    expect(Object.keys(results.methods)).toEqual(['baseline', 'erm', 'advbn']);
    for (const [name, m] of Object.entries(results.methods)) {
      // Held out: all 14 sketch images; in domain: the 42 images of the three sources.
      expect(m.targets!.sketch).toMatchObject({ n: 1, bn: name === 'advbn' ? 'adv' : 'clean' });
      expect(m.domains.sketch!.mean * 14).toBeCloseTo(Math.round(m.domains.sketch!.mean * 14), 9);
      expect(m.clean.mean * 42).toBeCloseTo(Math.round(m.clean.mean * 42), 9);
      expect(m.corruption).toBeUndefined();
    }
    // AdvBN: both BN branches, the adversarial one in the main figures (the paper's convention for a style shift).
    expect(results.methods.advbn!.bn).toEqual({ clean: 'clean', corruption: 'clean', domains: 'adv' });
    expect(results.methods.advbn!.alternate!.bn.domains).toBe('clean');
    expect(results.methods.erm!.alternate).toBeUndefined();
    expect(results.methods.baseline!.training!.epochs).toEqual([1, 2]);
    expect(results.methods.advbn!.training!.epochs).toEqual([3]);
    expect(results.methods.advbn!.training!.advLoss).toHaveLength(1);
    expect(results.methods.advbn!.training!.advAccuracy).toHaveLength(1);
    expect(results.methods.baseline!.training!.advAccuracy).toBeUndefined();
    expect(results.comparisons!.map((c) => [c.method, c.versus, c.scope, c.verdict])).toEqual([
      ['erm', 'baseline', 'sketch', 'no interval'],
      ['erm', 'baseline', 'overall', 'no interval'],
      ['advbn', 'erm', 'sketch', 'no interval'],
      ['advbn', 'erm', 'overall', 'no interval'],
    ]);
    for (const f of ['results.json', 'report.md', 'domains.svg', 'domains.png', 'curves.svg', 'curves.png']) expect(files).toContain(join(out, f));
    expect(existsSync(join(out, 'corruptions.svg'))).toBe(false);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    expect(md).toContain('# AdvBN reproduction: pacs');
    expect(md).toContain('held out sketch (clean/adv BN');
    expect(readdirSync(models).sort()).toEqual(['advbn-heldout_sketch-seed0.safetensors', 'baseline-heldout_sketch-seed0.safetensors', 'erm-heldout_sketch-seed0.safetensors']);
  }, 120_000);

  it('refuses a PACS root without the four domains, unknown held-out domains and PACS overrides for digits', async () => {
    const partial = join(dir.path, 'partial');
    writeImage(join(partial, 'photo', 'dog', '0.png'), pattern(32, 32, 0), 32, 32, 'png');
    const out = join(dir.path, 'never');
    await expect(reproduce({ preset: 'pacs', data: partial, out, seeds: 1, methods: ['erm'], device: 'cpu' })).rejects.toThrow(
      /lacks the PACS domain folders art_painting, cartoon, sketch/,
    );
    await expect(reproduce({ preset: 'pacs', data: root, out, pacs: { heldOut: ['clipart'] } })).rejects.toThrow(/heldOut.*photo, art_painting, cartoon, sketch/);
    await expect(reproduce({ preset: 'pacs', data: root, out, pacs: { epochs: 1 } as never })).rejects.toThrow(/unknown option "pacs.epochs"/);
    await expect(reproduce({ out, pacs: { size: 32 } })).rejects.toThrow(InvalidOptionError);
    expect(existsSync(out)).toBe(false);
    // The command line: one line on stderr, exit 2.
    for (const [args, message] of [
      [['--preset', 'pacs', '--out', out], /option "data" must be the PACS root folder/],
      [['--preset', 'pacs', '--data', partial, '--out', out, '--device', 'cpu'], /lacks the PACS domain folders art_painting, cartoon, sketch/],
    ] as const) {
      const run = runCli(['reproduce', ...args], 60_000);
      expect(run.status, run.stderr).toBe(2);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(message);
    }
    expect(existsSync(out)).toBe(false);
    rmSync(partial, { recursive: true, force: true });
  });
});
