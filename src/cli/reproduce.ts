// `advbn reproduce`: the main job (see src/reproduce).
import { parseArgs } from 'node:util';
import { reproduce } from '../reproduce/index.js';

const USAGE = `usage: advbn reproduce [--quick] [--out DIR] [--preset digits|pacs] [--data DIR]
                       [--device cpu|cuda|auto] [--seeds N] [--methods a,b,...] [--epochs N]

Trains a baseline on the source domain, fine-tunes it with each method (erm, advbn, mixstyle,
dsu, advbn_augmix) for each seed, evaluates clean, style-domain and corruption robustness, and
writes OUT/results.json, OUT/report.md and charts (SVG and PNG). Default OUT: advbn-results.`;

export async function runReproduce(args: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        quick: { type: 'boolean' },
        out: { type: 'string' },
        preset: { type: 'string' },
        data: { type: 'string' },
        device: { type: 'string' },
        seeds: { type: 'string' },
        methods: { type: 'string' },
        epochs: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    console.error(`advbn reproduce: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const integer = (name: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a whole number >= 1, got ${JSON.stringify(text)}`);
    return n;
  };
  let seeds;
  let epochs;
  try {
    seeds = integer('seeds', v.seeds);
    epochs = integer('epochs', v.epochs);
  } catch (err) {
    console.error(`advbn reproduce: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const out = v.out ?? 'advbn-results';
  const { results, files } = await reproduce({
    out,
    quick: v.quick ?? false,
    ...(v.preset !== undefined && { preset: v.preset as 'digits' | 'pacs' }),
    ...(v.data !== undefined && { data: v.data }),
    ...(v.device !== undefined && { device: v.device }),
    ...(seeds !== undefined && { seeds }),
    ...(epochs !== undefined && { epochs }),
    ...(v.methods !== undefined && { methods: v.methods.split(',').map((m) => m.trim()) }),
    command: ['advbn reproduce', ...args].join(' '),
  });
  console.log(summaryTable(results));
  console.log(`\nwrote ${files.join(', ')}`);
  return 0;
}

function summaryTable(results: Awaited<ReturnType<typeof reproduce>>['results']): string {
  const pct = (s: { mean: number; std: number }) => `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
  const domains = Object.keys(Object.values(results.methods)[0]?.domains ?? {});
  const header = ['method', 'clean', ...domains, 'domain mean', 'mCE'];
  const rows = Object.entries(results.methods).map(([name, m]) => [
    name,
    pct(m.clean),
    ...domains.map((d) => `${pct(m.domains[d]!)} (${m.bn.domains})`),
    pct(m.domainMean),
    m.corruption ? `${(100 * m.corruption.mCE.mean).toFixed(1)} ± ${(100 * m.corruption.mCE.std).toFixed(1)}` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [`accuracy % (BN branch) and mCE % over ${results.seeds.length} seed(s):`, line(header), ...rows.map(line)].join('\n');
}
