// `advbn reproduce`: the main job (see src/reproduce).
import type { DeviceName } from '../devices.js';
import { badFlag, parseFlags, runCommand, wholeFlag } from './args.js';
import { reproduce } from '../reproduce/index.js';
import { imagenetUsage, runReproduceImageNet } from './reproduce-imagenet.js';

const usage = () => `usage: advbn reproduce [--quick | --full] [--out DIR] [--preset digits|pacs|imagenet] [--data DIR]
                       [--device cpu|cuda|auto] [--seeds N] [--methods a,b,...] [--epochs N]
                       [--save-models DIR] [--no-corruptions]

Leave-one-domain-out: for each held-out domain and seed, trains a baseline on the other domains,
fine-tunes its tail with each method (erm, advbn, mixstyle, dsu, advbn_augmix, advbn_mixstyle,
advbn_dsu), and tests every model on the held-out domain, in domain, and under the 15
corruptions. Compares every method with ERM by paired differences with 95% intervals. Writes
OUT/results.json, OUT/report.md and charts (SVG and PNG). Default OUT: advbn-results.

  --quick        2 held-out domains x 1 seed, smaller splits (about 1 minute on 2 cores)
  --full         every held-out domain x 5 seeds
  --save-models  writes every trained model to DIR (new or empty) as
                 <method>-heldout_<domain>-seed<seed>.safetensors
  --no-corruptions  skips the 15 x 5 corruption sets (digits; faster)

--preset imagenet (its own flags; advbn reproduce --preset imagenet --help):

${imagenetUsage()}`;

/** Whether the arguments choose the imagenet preset (it has flags of its own). */
function choosesImageNet(args: readonly string[]): boolean {
  return args.some((a, i) => a === '--preset=imagenet' || (a === '--preset' && args[i + 1] === 'imagenet'));
}

export async function runReproduce(args: readonly string[]): Promise<number> {
  if (choosesImageNet(args)) return runReproduceImageNet(args);
  return runCommand('reproduce', async () => {
    const v = parseFlags(args, {
      quick: 'boolean',
      full: 'boolean',
      'save-models': 'string',
      'no-corruptions': 'boolean',
      out: 'string',
      preset: 'string',
      data: 'string',
      device: 'string',
      seeds: 'string',
      methods: 'string',
      epochs: 'string',
    });
    if (v.help) {
      console.log(usage());
      return 0;
    }
    if (v.preset !== undefined && v.preset !== 'digits' && v.preset !== 'pacs') throw badFlag('preset', 'must be digits, pacs or imagenet', v.preset);
    const seeds = wholeFlag('seeds', v.seeds, 1);
    const epochs = wholeFlag('epochs', v.epochs, 1);
    const out = v.out ?? 'advbn-results';
    const { results, files } = await reproduce({
      out,
      quick: v.quick ?? false,
      full: v.full ?? false,
      ...(v['save-models'] !== undefined && { saveModels: v['save-models'] }),
      ...(v['no-corruptions'] && { digits: { corruptions: false } }),
      ...(v.preset !== undefined && { preset: v.preset as 'digits' | 'pacs' }),
      ...(v.data !== undefined && { data: v.data }),
      // reproduce() checks it (an InvalidOptionError naming the device option).
      ...(v.device !== undefined && { device: v.device as DeviceName }),
      ...(seeds !== undefined && { seeds }),
      ...(epochs !== undefined && { epochs }),
      ...(v.methods !== undefined && { methods: v.methods.split(',').map((m) => m.trim()) }),
      command: ['advbn reproduce', ...args].join(' '),
    });
    console.log(summaryTable(results));
    console.log(`\nwrote ${files.join(', ')}`);
    return 0;
  });
}

function summaryTable(results: Awaited<ReturnType<typeof reproduce>>['results']): string {
  const pct = (s: { mean: number; std: number }) => `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
  const domains = Object.keys(Object.values(results.methods)[0]?.domains ?? {});
  const header = ['method', 'in-domain', ...domains.map((d) => `held out ${d}`), 'held-out mean', 'mCE'];
  const rows = Object.entries(results.methods).map(([name, m]) => [
    name,
    pct(m.clean),
    ...domains.map((d) => `${pct(m.domains[d]!)} (${m.bn.domains})`),
    pct(m.domainMean),
    m.corruption ? `${(100 * m.corruption.mCE.mean).toFixed(1)} ± ${(100 * m.corruption.mCE.std).toFixed(1)}` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  const signed = (v: number) => `${v >= 0 ? '+' : ''}${(100 * v).toFixed(1)}`;
  const verdicts = (results.comparisons ?? [])
    .filter((c) => c.scope === 'overall')
    .map(
      (c) =>
        `  ${c.method} vs ${c.versus}: ${signed(c.meanDiff)} points, 95% CI ${c.ci95 ? `[${signed(c.ci95[0])}, ${signed(c.ci95[1])}]` : 'n/a'} over ${c.pairs} pair(s): ${c.verdict}`,
    );
  return [
    `accuracy % (BN branch) and mCE % over ${results.protocol?.pairs ?? results.seeds.length} (held-out domain, seed) pair(s):`,
    line(header),
    ...rows.map(line),
    '',
    'held-out accuracy, paired differences:',
    ...verdicts,
  ].join('\n');
}
