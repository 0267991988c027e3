// `advbn digits export`: the digits benchmark as image folders for any framework.
import { exportDigits } from '../data/digits-export.js';
import { DIGIT_DOMAINS, type DigitDomain } from '../data/digits.js';
import { badFlag, parseFlags, runCommand, UsageError, wholeFlag } from './args.js';

const USAGE = `usage: advbn digits export --out DIR [--domains a,b,...] [--split train|test|both]
                           [--per-domain N] [--seed S]

Writes exactly the digits reproduce trains and tests on as DIR/<domain>/<split>/<class>/<index>.png
plus DIR/manifest.json (seeds, counts per class, the library call that gives each split).
Domains: ${DIGIT_DOMAINS.join(', ')} (default all). Default: both splits, 500 train and 500 test
digits per domain (the default reproduce run), seed 0. Reproduce's pair (held out h, seed s)
trains on the train splits of seed s and tests on the test split of seed 0.`;

export async function runDigits(args: readonly string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h') {
    console.log(USAGE);
    return 0;
  }
  return runCommand(sub === 'export' ? 'digits export' : 'digits', async () => {
    if (sub !== 'export') throw new UsageError(sub === undefined ? 'a subcommand is required: export' : `unknown subcommand "${sub}" (the one there is: export)`);
    const v = parseFlags(rest, { out: 'string', domains: 'string', split: 'string', 'per-domain': 'string', seed: 'string' });
    if (v.help) {
      console.log(USAGE);
      return 0;
    }
    if (v.out === undefined) throw badFlag('out', 'DIR is required');
    if (v.split !== undefined && !['train', 'test', 'both'].includes(v.split)) throw badFlag('split', 'must be train, test or both', v.split);
    const perDomain = wholeFlag('per-domain', v['per-domain'], 1);
    const seed = wholeFlag('seed', v.seed, 0);
    const manifest = await exportDigits({
      out: v.out,
      ...(v.domains !== undefined && { domains: v.domains.split(',').map((d) => d.trim()) as DigitDomain[] }),
      ...(v.split !== undefined && { split: v.split as 'train' | 'test' | 'both' }),
      ...(perDomain !== undefined && { perDomain }),
      ...(seed !== undefined && { seed }),
    });
    for (const [domain, splits] of Object.entries(manifest.domains)) {
      console.log(
        `${domain}: ${Object.entries(splits)
          .map(([part, s]) => `${part} ${s!.count}`)
          .join(', ')}`,
      );
    }
    console.log(`wrote ${v.out}/<domain>/<split>/<class>/<index>.png and ${v.out}/manifest.json`);
    return 0;
  });
}
