// `advbn corrupt`: ImageNet-C style corrupted copies of an image or a folder of images, or
// `--list` of the corruption names. A bad argument is one line on stderr and exit 2.
import { existsSync } from 'node:fs';
import { CORRUPTION_NAMES, corruptFiles, listCorruptions, type CorruptionName } from '../data/corruptions.js';
import { InvalidDataError, InvalidOptionError } from '../errors.js';
import { optionRule } from '../validation.js';
import { badFlag, parseFlags, ruleDefault, ruledFlag, runCommand, UsageError } from './args.js';

export const CORRUPT_USAGE = () =>
  [
    'usage: advbn corrupt --input IMG_OR_DIR --output DIR --corruption NAME[,NAME...]|all',
    '                     --severity 1-5[,...]|all [--seed N] [--threads N]',
    '       advbn corrupt --list',
    '',
    'Writes a corrupted copy of every .jpg/.jpeg/.png image per corruption and severity to',
    'DIR/<corruption>/<severity>/<path relative to the input> (the ImageNet-C layout), in the',
    "input's format (JPEG at quality 95). The same input and seed give the same bytes.",
    '',
    'options:',
    '  --input       an image file, or a folder searched recursively',
    '  --output      output folder (created; not inside the input folder)',
    '  --corruption  corruption names, comma-separated, or "all" (see --list)',
    '  --severity    severities 1 to 5, comma-separated, or "all"',
    `  --seed        non-negative integer seed (default ${ruleDefault('seed')})`,
    `  --threads     worker threads (default ${ruleDefault('source.threads')}: one per core)`,
    '  --list        print the 19 corruption names, one per line',
  ].join('\n');

function list<T>(name: string, value: string | undefined, all: readonly T[], parse: (item: string) => T | undefined, rule: string): T[] {
  if (value === undefined) throw badFlag(name, `is required (${rule})`);
  if (value === 'all') return [...all];
  const items = value.split(',').map((item) => item.trim());
  const parsed = items.map(parse);
  const wrong = items.find((_, i) => parsed[i] === undefined);
  if (wrong !== undefined || items.length === 0) throw badFlag(name, `must be ${rule}`, wrong ?? value);
  return [...new Set(parsed as T[])];
}

export async function runCorrupt(args: readonly string[]): Promise<number> {
  return runCommand('corrupt', async () => {
    try {
      return await corrupt(args);
    } catch (err) {
      if (!(err instanceof CorruptFailed)) throw err;
      console.error(`advbn corrupt: ${err.message}`);
      return 1;
    }
  });
}

async function corrupt(args: readonly string[]): Promise<number> {
  const values: Record<string, string | boolean | undefined> = parseFlags(args, {
    input: 'string',
    output: 'string',
    corruption: 'string',
    severity: 'string',
    seed: 'string',
    threads: 'string',
    list: 'boolean',
  });
  const str = (name: string) => values[name] as string | undefined;
  if (values.help) {
    console.log(CORRUPT_USAGE());
    return 0;
  }
  if (values.list) {
    const others = Object.keys(values).filter((k) => k !== 'list' && values[k] !== undefined);
    if (others.length > 0) throw badFlag(others[0]!, 'cannot be combined with --list');
    console.log(listCorruptions().join('\n'));
    return 0;
  }
  const input = str('input');
  const output = str('output');
  if (!input) throw badFlag('input', 'is required (an image file or a folder of images)');
  if (!existsSync(input)) throw badFlag('input', 'must be an existing image file or folder', input);
  if (!output) throw badFlag('output', 'is required (the folder to write to)');
  const names: readonly string[] = CORRUPTION_NAMES;
  const corruptions = list<CorruptionName>(
    'corruption',
    str('corruption'),
    CORRUPTION_NAMES,
    (n) => (names.includes(n) ? (n as CorruptionName) : undefined),
    'corruption names separated by commas, or "all" (see advbn corrupt --list)',
  );
  // The severities are the core's rule (1 to 5).
  const rule = optionRule('transform.severity');
  const allSeverities = Array.from({ length: rule.max! - rule.min! + 1 }, (_, i) => rule.min! + i);
  const severities = list<number>(
    'severity',
    str('severity'),
    allSeverities,
    (s) => (/^\d+$/.test(s) && allSeverities.includes(Number(s)) ? Number(s) : undefined),
    `severities ${rule.min} to ${rule.max} separated by commas, or "all"`,
  );
  const seed = ruledFlag('seed', str('seed'), 'seed') ?? 0;
  const threads = ruledFlag('threads', str('threads'), 'source.threads') ?? 0;
  const started = performance.now();
  const summary = await corruptFiles({ input, output, corruptions, severities, seed, threads }).catch((err: unknown) => {
    // The native side names its option like the flag (output, severity, seed, corruption).
    if (err instanceof InvalidOptionError) throw new UsageError(`--${err.option}: ${err.message}`);
    if (err instanceof InvalidDataError) throw err;
    // Anything else (a file that cannot be written, ...): one line too, exit 1.
    throw new CorruptFailed(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const lines = [
    `wrote ${summary.written} images (${summary.images} input${summary.images === 1 ? '' : 's'} x ${corruptions.length} corruption${corruptions.length === 1 ? '' : 's'} x ${severities.length} severit${severities.length === 1 ? 'y' : 'ies'}) to ${output} in ${seconds} s`,
  ];
  const width = Math.max(...summary.perCorruption.map((c) => c.name.length));
  for (const c of summary.perCorruption) lines.push(`  ${c.name.padEnd(width)}  ${c.written}`);
  console.log(lines.join('\n'));
  return 0;
}

/** A failure of the work itself (not of the command line): one line on stderr, exit 1. */
class CorruptFailed extends Error {}
