// What every command shares in reading its flags: strict parsing, --help, whole-number flags,
// numbers checked by the core's option rules, and one line "advbn <command>: <problem>" on stderr
// with exit code 2 for anything wrong on the command line.
import { DeviceError, InvalidDataError, InvalidOptionError, TrainingDivergedError } from '../errors.js';
import { loadNative } from '../native.js';
import { optionRule } from '../validation.js';
import { parseArgs } from 'node:util';

/** A problem with the command line (not with the work the command then does). */
export class UsageError extends Error {}

/** `--name <rule>, got "value"` as a {@link UsageError}. */
export function badFlag(name: string, rule: string, value?: string): UsageError {
  return new UsageError(`--${name} ${rule}${value === undefined ? '' : `, got ${JSON.stringify(value)}`}`);
}

/** Each flag's kind: `'string'` takes a value, `'strings'` a value each time it is repeated, `'boolean'` is a switch. */
export type FlagSpec = Record<string, 'string' | 'strings' | 'boolean'>;

/** The flags given, typed by their spec (absent ones undefined), plus `help`. */
export type Flags<S extends FlagSpec> = { [K in keyof S]?: S[K] extends 'boolean' ? boolean : S[K] extends 'strings' ? string[] : string } & { help?: boolean };

function parse<S extends FlagSpec>(args: readonly string[], spec: S, allowPositionals: boolean): { values: Flags<S>; positionals: string[] } {
  const options = Object.fromEntries(
    Object.entries(spec).map(([name, kind]) => [name, kind === 'strings' ? { type: 'string' as const, multiple: true } : { type: kind as 'string' | 'boolean' }]),
  );
  try {
    const { values, positionals } = parseArgs({ args: [...args], options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals });
    return { values: values as Flags<S>, positionals };
  } catch (err) {
    // One line: node's messages for some mistakes run over two ("... is ambiguous.\nDid you forget ...").
    throw new UsageError((err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' '));
  }
}

/** Strict flags (no positionals) plus `--help`/`-h`; an unknown or malformed flag is a {@link UsageError}. */
export function parseFlags<const S extends FlagSpec>(args: readonly string[], spec: S): Flags<S> {
  return parse(args, spec, false).values;
}

/** {@link parseFlags} that also takes operands (e.g. file names) between and after the flags. */
export function parseFlagsAndOperands<const S extends FlagSpec>(args: readonly string[], spec: S): { flags: Flags<S>; operands: string[] } {
  const { values, positionals } = parse(args, spec, true);
  return { flags: values, operands: positionals };
}

/** `--name` as a whole number >= `min`; `undefined` when the flag is absent. */
export function wholeFlag(name: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min)) throw badFlag(name, `must be a whole number >= ${min}`, text);
  return n;
}

/** A decimal number as people type it: `3`, `-0.5`, `.25`, `1e-4` (no hex, no blanks, no `Infinity`). */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * `--name` as a number satisfying the core's option rule `key` (e.g. `fineTune.advbn.steps`), in
 * the rule's wording; `undefined` when the flag is absent (the library then applies the rule's
 * default, so the command line and the API cannot disagree).
 */
export function ruledFlag(name: string, text: string | undefined, key: string): number | undefined {
  if (text === undefined) return undefined;
  const n = DECIMAL.test(text) ? Number(text) : Number.NaN;
  if (!loadNative().optionAccepts(key, n)) throw badFlag(name, `must be ${optionRule(key).requirement}`, text);
  return n;
}

/** The default of the core's option rule `key`, as `--help` shows it. */
export function ruleDefault(key: string): string {
  const value = optionRule(key).default;
  if (value === undefined || value === null) throw new Error(`advbn internal error: option rule "${key}" has no default`);
  return String(value);
}

/**
 * Runs a command: a {@link UsageError} from `body` prints `advbn <command>: <message>` and a
 * pointer to `--help` on one line of stderr and resolves to 2; so do the user's settings or data
 * at fault (an invalid option, a folder that is not a dataset, no such device); a diverged
 * training resolves to 1; any other error propagates.
 */
export async function runCommand(command: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`advbn ${command}: ${err.message} (advbn ${command} --help lists the options)`);
      return 2;
    }
    // The user's settings or data at fault (a bad value, a folder that is not a dataset, no such
    // device, a checkpoint of another run): one line, no stack trace.
    if (err instanceof InvalidOptionError || err instanceof InvalidDataError || err instanceof DeviceError) {
      console.error(`advbn ${command}: ${err.message}`);
      return 2;
    }
    if (err instanceof TrainingDivergedError) {
      console.error(`advbn ${command}: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
