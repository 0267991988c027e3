// The results of `advbn reproduce`: TypeScript types, the JSON Schema (draft 2020-12) that
// docs/results.schema.json holds verbatim, and a validator of that schema.
import type { BnBranch } from '../models.js';

/** A figure over seeds: mean and population standard deviation (0 for one seed). */
export interface Stat {
  /** Mean over seeds. */
  mean: number;
  /** Population standard deviation over seeds; 0 for a single seed. */
  std: number;
}

/** The BatchNorm branch each figure of a {@link BranchFigures} was measured with. */
export interface BnChoice {
  /** Branch of the clean-test-set accuracy (paper convention: `'clean'`). */
  clean: BnBranch;
  /** Branch of the corruption figures (paper convention: `'clean'`). */
  corruption: BnBranch;
  /** Branch of the style-domain accuracies (paper convention: `'adv'` for AdvBN models). */
  domains: BnBranch;
}

/** Corruption robustness of one model (all figures are fractions, errors in [0, 1]). */
export interface CorruptionStats {
  /** Mean corruption error relative to the baseline model's errors (the baseline scores 1). */
  mCE: Stat;
  /** Relative mCE: degradation from clean error, relative to the baseline's degradation. */
  relativeMCE: Stat;
  /** Per corruption: the mean error over seeds at severities 1..5 (five numbers). */
  perCorruption: Record<string, number[]>;
}

/** The figures of one model on one choice of BatchNorm branches (accuracies in [0, 1]). */
export interface BranchFigures {
  /** Top-1 accuracy on the clean (source) test set. */
  clean: Stat;
  /** Top-1 accuracy per style domain (PACS: per held-out domain). */
  domains: Record<string, Stat>;
  /** Mean accuracy over the style domains: averaged per seed, then mean/std over seeds. */
  domainMean: Stat;
  /** Corruption figures; absent where no corruption set was evaluated (PACS). */
  corruption?: CorruptionStats;
}

/** Figures of a model on its other BatchNorm branch ({@link MethodResult.alternate}). */
export interface AlternateFigures extends BranchFigures {
  /** Branch each figure used. */
  bn: BnChoice;
}

/** Results of one method, aggregated over seeds. */
export interface MethodResult extends BranchFigures {
  /** Branch each figure used (paper convention: clean, clean, adv). */
  bn: BnChoice;
  /** The same figures on the other branch, for models that have one. */
  alternate?: AlternateFigures;
  /** Wall-clock training time in seconds. */
  trainSeconds: Stat;
}

/** Everything `advbn reproduce` measured: the content of `results.json`. */
export interface Results {
  /** Which experiment was run. */
  preset: 'digits' | 'pacs';
  /** Device string the models ran on, e.g. `cuda:0`. */
  device: string;
  /** The seeds every method was trained with. */
  seeds: number[];
  /** Training and evaluation settings (epochs, learning rate, batch size, model, cut, limits...). */
  config: Record<string, unknown>;
  /** The exact command line. */
  command: string;
  /** When the run finished, ISO 8601. */
  createdAt: string;
  /** The advbn package that produced the results. */
  package: {
    /** npm package name. */
    name: string;
    /** Package version. */
    version: string;
  };
  /** Hardware description (CPU, GPU). */
  hardware: string;
  /** Name of the method mCE is relative to (a key of `methods`). */
  baseline: string;
  /** Results per method, the baseline model included. */
  methods: Record<string, MethodResult>;
}

const stat = { $ref: '#/$defs/stat' };
const unit = { type: 'number', minimum: 0, maximum: 1 };
const figureProperties = {
  clean: { $ref: '#/$defs/unitStat' },
  domains: { type: 'object', additionalProperties: { $ref: '#/$defs/unitStat' } },
  domainMean: { $ref: '#/$defs/unitStat' },
  corruption: { $ref: '#/$defs/corruption' },
  bn: { $ref: '#/$defs/bnChoice' },
};

/**
 * JSON Schema (draft 2020-12) of {@link Results}; `docs/results.schema.json` is this object.
 * `corruption` is optional because PACS runs evaluate held-out domains only.
 */
export const RESULTS_SCHEMA: Readonly<Record<string, unknown>> = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://github.com/advbn/advbn/docs/results.schema.json',
  title: 'advbn reproduce results',
  description: 'results.json written by `advbn reproduce`. Accuracies and errors are fractions in [0, 1]; stds are population stds over seeds.',
  type: 'object',
  required: ['preset', 'device', 'seeds', 'config', 'command', 'createdAt', 'package', 'hardware', 'baseline', 'methods'],
  additionalProperties: false,
  properties: {
    preset: { enum: ['digits', 'pacs'] },
    device: { type: 'string', minLength: 1 },
    seeds: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'integer', minimum: 0 } },
    config: { type: 'object' },
    command: { type: 'string', minLength: 1 },
    createdAt: { type: 'string', format: 'date-time' },
    package: {
      type: 'object',
      required: ['name', 'version'],
      additionalProperties: false,
      properties: { name: { type: 'string', minLength: 1 }, version: { type: 'string', minLength: 1 } },
    },
    hardware: { type: 'string' },
    baseline: { type: 'string', minLength: 1, description: 'A key of methods.' },
    methods: { type: 'object', minProperties: 1, additionalProperties: { $ref: '#/$defs/method' } },
  },
  $defs: {
    stat: {
      type: 'object',
      required: ['mean', 'std'],
      additionalProperties: false,
      properties: { mean: { type: 'number' }, std: { type: 'number', minimum: 0 } },
    },
    unitStat: {
      type: 'object',
      required: ['mean', 'std'],
      additionalProperties: false,
      properties: { mean: unit, std: { type: 'number', minimum: 0 } },
    },
    branch: { enum: ['clean', 'adv'] },
    bnChoice: {
      type: 'object',
      required: ['clean', 'corruption', 'domains'],
      additionalProperties: false,
      properties: { clean: { $ref: '#/$defs/branch' }, corruption: { $ref: '#/$defs/branch' }, domains: { $ref: '#/$defs/branch' } },
    },
    corruption: {
      type: 'object',
      required: ['mCE', 'relativeMCE', 'perCorruption'],
      additionalProperties: false,
      properties: {
        mCE: stat,
        relativeMCE: stat,
        perCorruption: { type: 'object', additionalProperties: { type: 'array', minItems: 5, maxItems: 5, items: unit } },
      },
    },
    alternate: {
      type: 'object',
      required: ['clean', 'domains', 'domainMean', 'bn'],
      additionalProperties: false,
      properties: figureProperties,
    },
    method: {
      type: 'object',
      required: ['clean', 'domains', 'domainMean', 'bn', 'trainSeconds'],
      additionalProperties: false,
      properties: { ...figureProperties, alternate: { $ref: '#/$defs/alternate' }, trainSeconds: stat },
    },
  },
};

type Schema = Record<string, unknown>;

/** `$.a.b[2]["odd key"]`: the JSON path of a child. */
function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : Number.isFinite(value) ? 'number' : 'non-finite number';
  return typeof value;
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Checks `value` against the subset of JSON Schema that {@link RESULTS_SCHEMA} uses. */
function check(schema: Schema, value: unknown, path: string, errors: string[]): void {
  if (typeof schema.$ref === 'string') {
    const name = schema.$ref.replace('#/$defs/', '');
    check((RESULTS_SCHEMA.$defs as Record<string, Schema>)[name]!, value, path, errors);
    return;
  }
  const actual = typeOf(value);
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) {
    errors.push(`${path}: must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}, got ${JSON.stringify(value) ?? actual}`);
    return;
  }
  if (typeof schema.type === 'string') {
    const ok = actual === schema.type || (schema.type === 'number' && actual === 'integer');
    if (!ok) {
      errors.push(`${path}: must be ${schema.type === 'integer' || schema.type === 'array' || schema.type === 'object' ? 'an' : 'a'} ${schema.type}, got ${actual}`);
      return;
    }
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) errors.push(`${path}: must be >= ${schema.minimum}, got ${value}`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) errors.push(`${path}: must be <= ${schema.maximum}, got ${value}`);
  }
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) errors.push(`${path}: must not be empty`);
    if (schema.format === 'date-time' && !(DATE_TIME.test(value) && !Number.isNaN(Date.parse(value)))) {
      errors.push(`${path}: must be an ISO 8601 date-time, got ${JSON.stringify(value)}`);
    }
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) errors.push(`${path}: must have at least ${schema.minItems} items, got ${value.length}`);
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) errors.push(`${path}: must have at most ${schema.maxItems} items, got ${value.length}`);
    if (schema.uniqueItems === true && new Set(value.map((v) => JSON.stringify(v))).size !== value.length) errors.push(`${path}: items must be unique`);
    if (schema.items) value.forEach((item, i) => check(schema.items as Schema, item, childPath(path, i), errors));
  }
  if (actual === 'object') {
    const object = value as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    for (const key of (schema.required ?? []) as string[]) {
      if (object[key] === undefined) errors.push(`${childPath(path, key)}: required field is missing`);
    }
    const keys = Object.keys(object);
    if (typeof schema.minProperties === 'number' && keys.length < schema.minProperties) errors.push(`${path}: must have at least ${schema.minProperties} entries`);
    for (const key of keys) {
      const sub = properties[key] ?? schema.additionalProperties;
      if (sub === false) errors.push(`${childPath(path, key)}: unknown field`);
      else if (sub && sub !== true && object[key] !== undefined) check(sub as Schema, object[key], childPath(path, key), errors);
    }
  }
}

/**
 * Lists every way `value` violates {@link RESULTS_SCHEMA}, each as `<JSON path>: <problem>`
 * (e.g. `$.methods.erm.clean: required field is missing`), plus one rule the schema cannot say:
 * `baseline` must name a method. An empty list means the object is valid.
 */
export function validateResults(value: unknown): string[] {
  const errors: string[] = [];
  check(RESULTS_SCHEMA, value, '$', errors);
  if (errors.length === 0) {
    const results = value as Results;
    if (!Object.hasOwn(results.methods, results.baseline)) {
      errors.push(`$.baseline: must name a method (one of ${Object.keys(results.methods).join(', ')}), got ${JSON.stringify(results.baseline)}`);
    }
  }
  return errors;
}

/** Mean and population standard deviation of per-seed values (std 0 for one value). */
export function statOf(values: readonly number[]): Stat {
  if (values.length === 0) throw new RangeError('statOf: no values');
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}

/** Whether any method has per-corruption results (so corruption tables and charts apply). */
export function hasCorruptionResults(results: Results): boolean {
  return Object.values(results.methods).some((m) => m.corruption && Object.keys(m.corruption.perCorruption).length > 0);
}
