// The file `advbn evaluate` writes, evaluation.json: its TypeScript type, the JSON Schema (draft
// 2020-12) that docs/evaluation.schema.json holds verbatim, and a validator (an earlier
// evaluation.json is what `--baseline` reads).
import { schemaErrors } from '../json-schema.js';
import type { RobustnessDetails, RobustnessReport } from './robustness.js';

/** The reference of CE and mCE in an {@link EvaluationFile}: an earlier evaluation.json. */
export interface BaselineFile {
  /** An evaluation.json. */
  kind: 'file';
  /** Its path, as given. */
  path: string;
}

/** The reference of CE and mCE in an {@link EvaluationFile}: ImageNet-C's published AlexNet errors. */
export interface BaselineAlexnet {
  /** AlexNet. */
  kind: 'alexnet';
}

/** The figures of an {@link EvaluationFile}: an `evaluateRobustness` report with its details and class names. */
export interface EvaluationReport extends RobustnessReport {
  /** Every figure of each test set per branch. */
  details: RobustnessDetails;
  /** Class names in label order. */
  classNames: string[];
}

/** What `advbn evaluate` measured: the content of `evaluation.json`. */
export interface EvaluationFile {
  /** Always `'advbn-evaluation'`. */
  kind: 'advbn-evaluation';
  /** The exact command line. */
  command: string;
  /** When the evaluation finished, ISO 8601. */
  createdAt: string;
  /** The advbn package that produced it. */
  package: {
    /** npm package name. */
    name: string;
    /** Package version. */
    version: string;
  };
  /** The model evaluated. */
  model: {
    /** Architecture, e.g. `'resnet50'`. */
    arch: string;
    /** The weights file it was built from. */
    weights: string;
    /** Classes of its classifier. */
    numClasses: number;
    /** Whether it has the adversarial BatchNorm branch (an AdvBN fine-tune). */
    hasAdvBn: boolean;
    /** Device it ran on, e.g. `'cpu'` or `'cuda:0'`. */
    device: string;
  };
  /** How the images were read and evaluated. */
  settings: {
    /** Side of the centre crop, after resizing the shorter side to `round(size / 0.875)`. */
    size: number;
    /** Images per forward pass. */
    batchSize: number;
    /** Branches asked for. */
    bn: 'clean' | 'adv' | 'both';
    /** Branches the corruptions were measured with, among `bn`'s (absent: all of them). */
    corruptionBn?: 'clean' | 'adv' | 'both';
  };
  /** The folders evaluated. */
  data: {
    /** The clean image folder. */
    clean: string;
    /** Style-shifted folders by name. */
    domains: Record<string, string>;
    /** The ImageNet-C style folder, when given. */
    corruptions?: string;
  };
  /** What CE and mCE are relative to: an earlier evaluation.json, or ImageNet-C's AlexNet. */
  baseline?: BaselineFile | BaselineAlexnet;
  /** Class names in label order (the clean folder's class folders). */
  classes: string[];
  /** The figures, every one per BatchNorm branch (see `evaluateRobustness`). */
  report: EvaluationReport;
  /** Wall-clock seconds. */
  seconds: number;
}

const unit = { type: 'number', minimum: 0, maximum: 1 };
const nonEmpty = { type: 'string', minLength: 1 };
const branchMap = (item: Record<string, unknown>) => ({
  type: 'object',
  minProperties: 1,
  additionalProperties: false,
  properties: { clean: item, adv: item },
});
const severities = { type: 'array', minItems: 5, maxItems: 5, items: unit };

/** JSON Schema (draft 2020-12) of {@link EvaluationFile}; `docs/evaluation.schema.json` is this object. */
export const EVALUATION_SCHEMA: Readonly<Record<string, unknown>> = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://github.com/advbn/advbn/docs/evaluation.schema.json',
  title: 'advbn evaluate results',
  description: 'evaluation.json written by `advbn evaluate`. Accuracies and errors are fractions in [0, 1]; every figure is given per BatchNorm branch (clean, adv) measured.',
  type: 'object',
  required: ['kind', 'command', 'createdAt', 'package', 'model', 'settings', 'data', 'classes', 'report', 'seconds'],
  additionalProperties: false,
  properties: {
    kind: { enum: ['advbn-evaluation'] },
    command: nonEmpty,
    createdAt: { type: 'string', format: 'date-time' },
    package: {
      type: 'object',
      required: ['name', 'version'],
      additionalProperties: false,
      properties: { name: nonEmpty, version: nonEmpty },
    },
    model: {
      type: 'object',
      required: ['arch', 'weights', 'numClasses', 'hasAdvBn', 'device'],
      additionalProperties: false,
      properties: { arch: nonEmpty, weights: nonEmpty, numClasses: { type: 'integer', minimum: 2 }, hasAdvBn: { type: 'boolean' }, device: nonEmpty },
    },
    settings: {
      type: 'object',
      required: ['size', 'batchSize', 'bn'],
      additionalProperties: false,
      properties: {
        size: { type: 'integer', minimum: 1 },
        batchSize: { type: 'integer', minimum: 1 },
        bn: { enum: ['clean', 'adv', 'both'] },
        corruptionBn: { enum: ['clean', 'adv', 'both'] },
      },
    },
    data: {
      type: 'object',
      required: ['clean', 'domains'],
      additionalProperties: false,
      properties: { clean: nonEmpty, domains: { type: 'object', additionalProperties: nonEmpty }, corruptions: nonEmpty },
    },
    baseline: {
      anyOf: [
        { type: 'object', required: ['kind', 'path'], additionalProperties: false, properties: { kind: { enum: ['file'] }, path: nonEmpty } },
        { type: 'object', required: ['kind'], additionalProperties: false, properties: { kind: { enum: ['alexnet'] } } },
      ],
    },
    classes: { type: 'array', minItems: 2, uniqueItems: true, items: nonEmpty },
    report: { $ref: '#/$defs/report' },
    seconds: { type: 'number', minimum: 0 },
  },
  $defs: {
    branch: { enum: ['clean', 'adv'] },
    report: {
      type: 'object',
      required: ['branches', 'convention', 'clean', 'domains', 'details', 'classNames'],
      additionalProperties: false,
      properties: {
        branches: { type: 'array', minItems: 1, maxItems: 2, uniqueItems: true, items: { $ref: '#/$defs/branch' } },
        convention: {
          type: 'object',
          required: ['clean', 'corruption', 'domains'],
          additionalProperties: false,
          properties: { clean: { $ref: '#/$defs/branch' }, corruption: { $ref: '#/$defs/branch' }, domains: { $ref: '#/$defs/branch' } },
        },
        clean: branchMap(unit),
        domains: { type: 'object', additionalProperties: branchMap(unit) },
        details: {
          type: 'object',
          required: ['clean', 'domains'],
          additionalProperties: false,
          properties: {
            clean: branchMap({ $ref: '#/$defs/result' }),
            domains: { type: 'object', additionalProperties: branchMap({ $ref: '#/$defs/result' }) },
          },
        },
        classNames: { type: 'array', minItems: 2, uniqueItems: true, items: nonEmpty },
        corruption: branchMap({ $ref: '#/$defs/corruption' }),
      },
    },
    result: {
      type: 'object',
      description: 'One test set on one branch.',
      required: ['loss', 'accuracy', 'top5', 'perClass', 'confusion', 'count', 'skipped', 'bn'],
      additionalProperties: false,
      properties: {
        loss: { type: 'number', minimum: 0 },
        accuracy: unit,
        top5: unit,
        perClass: { type: 'array', minItems: 2, items: { anyOf: [unit, { type: 'null' }] } },
        confusion: {
          type: 'array',
          description: 'confusion[label][predicted]: sample counts.',
          minItems: 2,
          items: { type: 'array', minItems: 2, items: { type: 'integer', minimum: 0 } },
        },
        count: { type: 'integer', minimum: 1 },
        skipped: { type: 'integer', minimum: 0 },
        bn: { $ref: '#/$defs/branch' },
      },
    },
    corruption: {
      type: 'object',
      required: ['errors', 'cleanError'],
      additionalProperties: false,
      properties: {
        errors: { type: 'object', minProperties: 1, additionalProperties: severities },
        top5Errors: { type: 'object', additionalProperties: severities },
        cleanError: unit,
        normalization: { enum: ['baseline', 'alexnet'] },
        CE: { type: 'object', additionalProperties: { anyOf: [{ type: 'number', minimum: 0 }, { type: 'null' }] } },
        relativeCE: { type: 'object', additionalProperties: { anyOf: [{ type: 'number' }, { type: 'null' }] } },
        mCE: { type: 'number', minimum: 0 },
        mCEReason: nonEmpty,
        relativeMCE: { type: 'number' },
        relativeMCEReason: nonEmpty,
      },
    },
  },
};

/**
 * Lists every way `value` violates {@link EVALUATION_SCHEMA}, each as `<JSON path>: <problem>`,
 * plus what the schema cannot say: the figures cover exactly the branches in `report.branches`,
 * every confusion matrix and per-class list has one entry per class of the model, and `classes`
 * has one name per class. An empty list means the object is valid.
 */
export function validateEvaluation(value: unknown): string[] {
  const errors = schemaErrors(EVALUATION_SCHEMA, value);
  if (errors.length > 0) return errors;
  const file = value as EvaluationFile;
  const classes = file.model.numClasses;
  if (file.classes.length !== classes) errors.push(`$.classes: must have one name per class of the model (${classes}), got ${file.classes.length}`);
  const { report } = file;
  const branches = [...report.branches].sort().join(', ');
  const sets: [string, Record<string, unknown>][] = [
    ['$.report.clean', report.clean],
    ['$.report.details.clean', report.details.clean],
    ...Object.entries(report.domains).map(([n, v]): [string, Record<string, unknown>] => [`$.report.domains[${JSON.stringify(n)}]`, v]),
    ...Object.entries(report.details.domains).map(([n, v]): [string, Record<string, unknown>] => [`$.report.details.domains[${JSON.stringify(n)}]`, v]),
  ];
  const check = (path: string, figures: Record<string, unknown>, wanted: string, what: string) => {
    const keys = Object.keys(figures).sort().join(', ');
    if (keys !== wanted) errors.push(`${path}: must have ${what} (${wanted}), got ${keys || 'none'}`);
  };
  for (const [path, figures] of sets) check(path, figures, branches, 'the branches measured');
  if (report.corruption) {
    const only = file.settings.corruptionBn;
    if (only === undefined || only === 'both') check('$.report.corruption', report.corruption, branches, 'the branches measured');
    else check('$.report.corruption', report.corruption, only, 'the branch of settings.corruptionBn');
  }
  const results = [
    ...Object.entries(report.details.clean).map(([bn, r]) => [`$.report.details.clean.${bn}`, r] as const),
    ...Object.entries(report.details.domains).flatMap(([n, per]) => Object.entries(per).map(([bn, r]) => [`$.report.details.domains[${JSON.stringify(n)}].${bn}`, r] as const)),
  ];
  for (const [path, r] of results) {
    if (!r) continue;
    if (r.perClass.length !== classes) errors.push(`${path}.perClass: must have ${classes} entries, got ${r.perClass.length}`);
    if (r.confusion.length !== classes || r.confusion.some((row) => row.length !== classes)) errors.push(`${path}.confusion: must be ${classes} x ${classes}`);
    else if (r.confusion.flat().reduce((a, b) => a + b, 0) !== r.count) errors.push(`${path}.confusion: must sum to count (${r.count})`);
  }
  return errors;
}
