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
import { resnet18 } from '../models.js';
import { fineTune, type History } from '../training/fine-tune.js';
import type { PairOutcome } from './aggregate.js';
import { runPairs, saveInto, type PairRun } from './lodo.js';
import type { PacsPreset } from './presets.js';

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

/** PACS run settings: the data root, the preset (with the caller's overrides) and an optional fine-tune epoch count. */
export interface PacsConfig {
  root: string;
  preset: PacsPreset;
  epochs?: number;
}

export async function runPacs(run: PairRun<PacsConfig>): Promise<PairOutcome[]> {
  const { root, preset } = run.config;
  const missing = preset.domains.filter((d) => !existsSync(join(root, d)));
  if (missing.length > 0) {
    throw new InvalidOptionError(`reproduce: option "--data" ${root} lacks the PACS domain folders ${missing.join(', ')}`, 'data', root);
  }
  const pairs = preset.heldOut.flatMap((heldOut) => run.seeds.map((seed) => ({ heldOut, seed })));
  return runPairs(run, pairs, ({ heldOut, seed }) => runPair(run, heldOut, seed));
}

async function runPair(run: PairRun<PacsConfig>, held: string, seed: number): Promise<PairOutcome> {
  const { root, epochs, preset: PACS } = run.config;
  const { fineTune: ft, baseline: base } = PACS;
  const reports: Record<string, RobustnessReport> = {};
  const seconds: Record<string, number> = {};
  const histories: NonNullable<PairOutcome['histories']> = {};
  let targetCount = 0;
  const tmp = mkdtempSync(join(tmpdir(), 'advbn-pacs-'));
  try {
    const train = await imageFolder(
      sourceFolder(
        root,
        PACS.domains.filter((d) => d !== held),
        tmp,
      ),
      {
        transforms: [randomResizedCrop(PACS.size, { scale: [0.6, 1] }), horizontalFlip()],
      },
    );
    const sourceEval = await imageFolder(join(tmp, 'train'), { transforms: [resize(PACS.size)] });
    // The held-out domain labelled by the sources' class folders (a class it lacks keeps its label).
    const target = await imageFolder(join(root, held), { transforms: [resize(PACS.size)], classes: train.classNames });
    targetCount = target.length;
    const time = async (name: string, work: () => Promise<History>, after = 0) => {
      const started = performance.now();
      const history = await work();
      seconds[name] = (performance.now() - started) / 1000;
      histories[name] = { history: history.history, after };
    };
    run.progress.step(`held out ${held} · seed ${seed} · baseline`);
    const baseline = await resnet18({ numClasses: PACS.numClasses, seed, device: run.device });
    await time('baseline', () =>
      fineTune(baseline, {
        data: train,
        method: 'erm',
        cut: 0,
        epochs: base.epochs,
        batchSize: PACS.batchSize,
        seed,
        optimizer: { type: 'sgd', lr: base.lr, momentum: 0.9, weightDecay: base.weightDecay },
        schedule: { type: 'cosine' },
      }),
    );
    const weights = join(run.modelDir, `baseline-heldout_${held}-seed${seed}.safetensors`);
    await saveInto(baseline, weights);
    const evaluate = (model: Parameters<typeof evaluateRobustness>[0]) => evaluateRobustness(model, { clean: sourceEval, domains: { [held]: target } });
    reports.baseline = await evaluate(baseline);
    baseline.dispose();
    for (const spec of run.methods) {
      run.progress.step(`held out ${held} · seed ${seed} · ${spec.name}`);
      const model = await resnet18({ numClasses: PACS.numClasses, seed, device: run.device, weights });
      await time(
        spec.name,
        () =>
          fineTune(model, {
            data: train,
            method: spec.method,
            augmix: spec.augmix,
            cut: ft.cut,
            epochs: epochs ?? ft.epochs,
            batchSize: PACS.batchSize,
            seed,
            optimizer: { type: 'sgd', lr: ft.lr, momentum: 0.9, weightDecay: 1e-4 },
            schedule: { type: 'cosine' },
            advbn: ft.advbn,
          }),
        histories.baseline?.history.loss.length ?? 0,
      );
      if (run.saveModels) await saveInto(model, join(run.saveModels, `${spec.name}-heldout_${held}-seed${seed}.safetensors`));
      reports[spec.name] = await evaluate(model);
      model.dispose();
    }
    for (const d of [train, sourceEval, target]) d.dispose();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return { heldOut: held, seed, reports, seconds, histories, targetCount };
}
