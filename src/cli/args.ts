// What every command shares in reading its flags: strict parsing, --help, whole-number flags, and
// "advbn <command>: <problem>" plus the usage with exit code 2 for anything wrong on the command line.
import { DeviceError, InvalidDataError, InvalidOptionError, TrainingDivergedError } from '../errors.js';
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
    throw new UsageError(err instanceof Error ? err.message : String(err));
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

/**
 * Runs a command: a {@link UsageError} from `body` prints `advbn <command>: <message>` and the
 * usage to stderr (with `brief`, only that line and a pointer to `--help`) and resolves to 2;
 * any other error propagates.
 */
export async function runCommand(command: string, usage: string, body: () => Promise<number>, options: { brief?: boolean } = {}): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(options.brief ? `advbn ${command}: ${err.message} (advbn ${command} --help lists the options)` : `advbn ${command}: ${err.message}\n\n${usage}`);
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
