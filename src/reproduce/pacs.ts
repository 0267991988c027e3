// The PACS experiment (leave-one-domain-out): for each held-out domain, a ResNet-18 baseline is
// trained on the other three domains, then each method fine-tunes its tail from that baseline;
// the figure of a method is its accuracy on the held-out domain. Meant for a GPU.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imageFolder } from '../data/sources.js';
import { horizontalFlip, randomResizedCrop, resize } from '../data/transforms.js';
import { InvalidOptionError } from '../errors.js';
import { evaluateRobustness, type RobustnessReport } from '../evaluation/robustness.js';
import { resnet18, saveWeights } from '../models.js';
import type { MethodResult } from '../report/index.js';
import { fineTune } from '../training/fine-tune.js';
import { aggregateMethod } from './aggregate.js';
import { PACS, type MethodSpec } from './presets.js';
import type { Progress } from './progress.js';

export interface PacsRun {
  root: string;
  methods: readonly MethodSpec[];
  seeds: readonly number[];
  device: string;
  epochs?: number;
  progress: Progress;
}

/** A folder whose class folders gather `domains` of the PACS root (symlinks, nothing copied). */
function sourceFolder(root: string, domains: readonly string[], into: string): string {
  const dir = join(into, 'train');
  for (const domain of domains) {
    for (const cls of readdirSync(join(root, domain))) {
      mkdirSync(join(dir, cls), { recursive: true });
      symlinkSync(join(root, domain, cls), join(dir, cls, domain));
    }
  }
  return dir;
}

export async function runPacs(run: PacsRun): Promise<Record<string, MethodResult>> {
  const missing = PACS.domains.filter((d) => !existsSync(join(run.root, d)));
  if (missing.length > 0) {
    throw new InvalidOptionError(`reproduce: option "--data" ${run.root} lacks the PACS domain folders ${missing.join(', ')}`, 'data', run.root);
  }
  const perSeed: Record<string, RobustnessReport[]> = {};
  const seconds: Record<string, number[]> = {};
  const { fineTune: ft, baseline: base } = PACS;
  for (const seed of run.seeds) {
    const merged: Record<string, RobustnessReport> = {};
    for (const held of PACS.domains) {
      const tmp = mkdtempSync(join(tmpdir(), 'advbn-pacs-'));
      try {
        const train = await imageFolder(sourceFolder(run.root, PACS.domains.filter((d) => d !== held), tmp), {
          transforms: [randomResizedCrop(PACS.size, { scale: [0.6, 1] }), horizontalFlip()],
        });
        const sourceEval = await imageFolder(join(tmp, 'train'), { transforms: [resize(PACS.size)] });
        const target = await imageFolder(join(run.root, held), { transforms: [resize(PACS.size)] });
        const time = async (name: string, work: () => Promise<unknown>) => {
          const started = performance.now();
          await work();
          (seconds[name] ??= []).push((performance.now() - started) / 1000);
        };
        run.progress.step(`seed ${seed} · held out ${held} · baseline`);
        const baseline = await resnet18({ numClasses: 7, seed, device: run.device });
        await time('baseline', () =>
          fineTune(baseline, {
            data: train, method: 'erm', cut: 0, epochs: base.epochs, batchSize: PACS.batchSize, seed,
            optimizer: { type: 'sgd', lr: base.lr, momentum: 0.9, weightDecay: base.weightDecay }, schedule: { type: 'cosine' },
          }),
        );
        const weights = join(tmp, 'baseline.safetensors');
        await saveWeights(baseline, weights);
        const evaluate = (model: Parameters<typeof evaluateRobustness>[0]) => evaluateRobustness(model, { clean: sourceEval, domains: { [held]: target } });
        merge(merged, 'baseline', await evaluate(baseline));
        baseline.dispose();
        for (const spec of run.methods) {
          run.progress.step(`seed ${seed} · held out ${held} · ${spec.name}`);
          const model = await resnet18({ numClasses: 7, seed, device: run.device, weights });
          await time(spec.name, () =>
            fineTune(model, {
              data: train, method: spec.method, augmix: spec.augmix, cut: ft.cut, epochs: run.epochs ?? ft.epochs, batchSize: PACS.batchSize, seed,
              optimizer: { type: 'sgd', lr: ft.lr, momentum: 0.9, weightDecay: 1e-4 }, schedule: { type: 'cosine' }, advbn: ft.advbn,
            }),
          );
          merge(merged, spec.name, await evaluate(model));
          model.dispose();
        }
        for (const d of [train, sourceEval, target]) d.dispose();
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }
    for (const [name, report] of Object.entries(merged)) (perSeed[name] ??= []).push(report);
  }
  // Training time per held-out split, summed per seed.
  const perSeedSeconds = (list: number[]) => run.seeds.map((_, i) => list.slice(i * 4, i * 4 + 4).reduce((a, b) => a + b, 0));
  return Object.fromEntries(Object.entries(perSeed).map(([name, list]) => [name, aggregateMethod(list, perSeedSeconds(seconds[name]!))]));
}

/** Folds one held-out split's report into the seed's report: domains add up, clean averages. */
function merge(into: Record<string, RobustnessReport>, name: string, report: RobustnessReport): void {
  const prev = into[name];
  if (!prev) {
    into[name] = { ...report, clean: { ...report.clean }, domains: { ...report.domains } };
    return;
  }
  const splits = Object.keys(prev.domains).length;
  for (const bn of report.branches) prev.clean[bn] = (prev.clean[bn]! * splits + report.clean[bn]!) / (splits + 1);
  Object.assign(prev.domains, report.domains);
}
