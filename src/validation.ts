// The one place where user-supplied options are checked. Every rejection is an
// InvalidOptionError whose message reads `<context>: option "<name>" must be <rule>, got <value>`.
import type { OptionRule } from '../index.js';
import type { DeviceName } from './devices.js';
import { InvalidOptionError } from './errors.js';
import { loadNative } from './native.js';

/** Renders a rejected value for an error message: short, unambiguous, never throws. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === undefined || value === null) return String(value);
  if (typeof value === 'function') return 'a function';
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as unknown as ArrayLike<unknown>).length ?? value.byteLength})`;
  if (Array.isArray(value)) {
    const shown = value.slice(0, 8).map(describeValue).join(', ');
    return `[${shown}${value.length > 8 ? ', ...' : ''}]`;
  }
  const name = (value as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

export function invalidOption(context: string, option: string, value: unknown, rule: string): InvalidOptionError {
  return new InvalidOptionError(`${context}: option "${option}" must be ${rule}, got ${describeValue(value)}`, option, value);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

export interface NumberRule {
  /** Reject non-integers. */
  integer?: boolean;
  /** Strictly greater than zero. */
  positive?: boolean;
  /** Inclusive bounds. */
  min?: number;
  max?: number;
}

function describeNumberRule(rule: NumberRule): string {
  const kind = rule.integer ? 'an integer' : 'a finite number';
  if (rule.positive) return rule.integer ? 'a positive integer' : 'a positive finite number';
  if (rule.min !== undefined && rule.max !== undefined) return `${kind} between ${rule.min} and ${rule.max}`;
  if (rule.min !== undefined) return `${kind} >= ${rule.min}`;
  if (rule.max !== undefined) return `${kind} <= ${rule.max}`;
  return kind;
}

function satisfies(value: number, rule: NumberRule): boolean {
  if (!Number.isFinite(value)) return false;
  if (rule.integer && !Number.isInteger(value)) return false;
  if (rule.positive && !(value > 0)) return false;
  if (rule.min !== undefined && value < rule.min) return false;
  if (rule.max !== undefined && value > rule.max) return false;
  return true;
}

/**
 * Reads and checks the fields of one options object. Nested objects get a reader whose option
 * names are prefixed (`advbn.steps`), so every message names the exact path the user wrote.
 */
export class OptionReader {
  readonly values: Readonly<Record<string, unknown>>;

  constructor(
    readonly context: string,
    values: unknown,
    private readonly prefix = '',
  ) {
    if (values === undefined) values = {};
    if (!isPlainObject(values)) {
      throw invalidOption(context, prefix.replace(/\.$/, '') || 'options', values, 'an object');
    }
    this.values = values;
  }

  /** Full dotted name of a field of this object. */
  path(name: string): string {
    return this.prefix + name;
  }

  has(name: string): boolean {
    return this.values[name] !== undefined;
  }

  fail(name: string, rule: string): InvalidOptionError {
    return invalidOption(this.context, this.path(name), this.values[name], rule);
  }

  /** Rejects fields that are not in `known`: a typo must not silently fall back to a default. */
  rejectUnknown(known: readonly string[]): this {
    for (const key of Object.keys(this.values)) {
      if (!known.includes(key) && this.values[key] !== undefined) {
        throw new InvalidOptionError(
          `${this.context}: unknown option "${this.path(key)}" (known: ${known.join(', ')}), got ${describeValue(this.values[key])}`,
          this.path(key),
          this.values[key],
        );
      }
    }
    return this;
  }

  number(name: string, fallback: number, rule?: NumberRule): number;
  number(name: string, fallback: undefined, rule?: NumberRule): number | undefined;
  number(name: string, fallback: number | undefined, rule: NumberRule = {}): number | undefined {
    const value = this.values[name];
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !satisfies(value, rule)) throw this.fail(name, describeNumberRule(rule));
    return value;
  }

  /**
   * A number whose default and range the core owns (`crates/advbn-core/src/options.rs`): `key`
   * names the rule, e.g. `fineTune.advbn.steps`. Absent gives the rule's default (an error when
   * it has none); the value is checked by the core's own test, the message uses its wording.
   */
  ruled(name: string, key: string): number {
    const rule = optionRule(key);
    const value = this.values[name];
    if (value === undefined) {
      if (rule.default === undefined || rule.default === null) throw this.fail(name, rule.requirement);
      return rule.default;
    }
    if (typeof value !== 'number' || !loadNative().optionAccepts(key, value)) throw this.fail(name, rule.requirement);
    return value;
  }

  /** An array of numbers each satisfying the core's rule `key` (see {@link OptionReader.ruled}); absent gives `fallback`. */
  ruledArray(name: string, key: string, fallback: number[]): number[] {
    const rule = optionRule(key);
    const value = this.values[name];
    if (value === undefined) return fallback;
    const native = loadNative();
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'number' && native.optionAccepts(key, v))) {
      throw this.fail(name, `an array whose every element is ${rule.requirement}`);
    }
    return [...(value as number[])];
  }

  /** A required number: absent is an error. */
  requiredNumber(name: string, rule: NumberRule = {}): number {
    const value = this.number(name, undefined, rule);
    if (value === undefined) throw this.fail(name, describeNumberRule(rule));
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.values[name];
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') throw this.fail(name, 'a boolean');
    return value;
  }

  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const value = this.values[name];
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
      throw this.fail(name, `one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`);
    }
    return value as T;
  }

  /** A string matched by `pattern`; `rule` describes it for the error message. */
  string(name: string, fallback: string, pattern: RegExp, rule: string): string {
    const value = this.values[name];
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || !pattern.test(value)) throw this.fail(name, rule);
    return value;
  }

  /** A non-empty string, or `undefined` when absent. */
  optionalString(name: string): string | undefined {
    const value = this.values[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value.length === 0) throw this.fail(name, 'a non-empty string');
    return value;
  }

  numberArray(name: string, fallback: number[], rule: NumberRule = {}): number[] {
    const value = this.values[name];
    if (value === undefined) return fallback;
    const ruleText = `an array of ${describeNumberRule(rule).replace(/^an? /, '')}s`;
    if (!Array.isArray(value)) throw this.fail(name, ruleText);
    for (const item of value) {
      if (typeof item !== 'number' || !satisfies(item, rule)) throw this.fail(name, ruleText);
    }
    return [...(value as number[])];
  }

  /** Reader over a nested options object (absent = empty). */
  nested(name: string): OptionReader {
    const value = this.values[name];
    if (value !== undefined && !isPlainObject(value)) throw this.fail(name, 'an object');
    return new OptionReader(this.context, value, `${this.path(name)}.`);
  }
}

/** A device option, checked against {@link DEVICE_PATTERN}. */
export function readDevice(o: OptionReader, name: string, fallback: DeviceName): DeviceName {
  return o.string(name, fallback, DEVICE_PATTERN, DEVICE_RULE) as DeviceName;
}

/** Device strings accepted everywhere a device is chosen. */
export const DEVICE_PATTERN = /^(cpu|cuda|cuda:\d+|auto)$/;
export const DEVICE_RULE = `"cpu", "cuda", "cuda:N" or "auto"`;

let rules: Map<string, OptionRule> | undefined;

/** The core's rule `key` (defaults and ranges of the numeric options, read once from the addon). */
export function optionRule(key: string): OptionRule {
  rules ??= new Map(
    loadNative()
      .optionRules()
      .map((r) => [r.key, r]),
  );
  const rule = rules.get(key);
  if (!rule) throw new Error(`advbn internal error: no option rule "${key}"`);
  return rule;
}
