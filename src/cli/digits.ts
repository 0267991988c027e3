// `advbn digits export`: the digits benchmark as image folders for any framework.
import { parseArgs } from 'node:util';
import { exportDigits } from '../data/digits-export.js';
import { DIGIT_DOMAINS, type DigitDomain } from '../data/digits.js';

const USAGE = `usage: advbn digits export --out DIR [--domains a,b,...] [--split train|test|both]
                           [--per-domain N] [--seed S]

Writes exactly the digits reproduce trains and tests on as DIR/<domain>/<split>/<class>/<index>.png
plus DIR/manifest.json (seeds, counts per class, the library call that gives each split).
Domains: ${DIGIT_DOMAINS.join(', ')} (default all). Default: both splits, 500 train and 500 test
digits per domain (the default reproduce run), seed 0. Reproduce's pair (held out h, seed s)
trains on the train splits of seed s and tests on the test split of seed 0.`;

export async function runDigits(args: readonly string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    console.log(USAGE);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'export') {
    console.error(`advbn digits: unknown subcommand "${sub}"\n\n${USAGE}`);
    return 2;
  }
  let v;
  try {
    v = parseArgs({
      args: [...rest],
      options: {
        out: { type: 'string' },
        domains: { type: 'string' },
        split: { type: 'string' },
        'per-domain': { type: 'string' },
        seed: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    console.error(`advbn digits export: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const whole = (name: string, text: string | undefined, min: number) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number >= ${min}, got ${JSON.stringify(text)}`);
    return n;
  };
  let perDomain;
  let seed;
  try {
    if (v.out === undefined) throw new Error('--out DIR is required');
    if (v.split !== undefined && !['train', 'test', 'both'].includes(v.split)) throw new Error(`--split must be train, test or both, got ${JSON.stringify(v.split)}`);
    perDomain = whole('per-domain', v['per-domain'], 1);
    seed = whole('seed', v.seed, 0);
  } catch (err) {
    console.error(`advbn digits export: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const manifest = await exportDigits({
    out: v.out,
    ...(v.domains !== undefined && { domains: v.domains.split(',').map((d) => d.trim()) as DigitDomain[] }),
    ...(v.split !== undefined && { split: v.split as 'train' | 'test' | 'both' }),
    ...(perDomain !== undefined && { perDomain }),
    ...(seed !== undefined && { seed }),
  });
  for (const [domain, splits] of Object.entries(manifest.domains)) {
    console.log(`${domain}: ${Object.entries(splits).map(([part, s]) => `${part} ${s!.count}`).join(', ')}`);
  }
  console.log(`wrote ${v.out}/<domain>/<split>/<class>/<index>.png and ${v.out}/manifest.json`);
  return 0;
}
