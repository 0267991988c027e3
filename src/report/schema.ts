// The results of `advbn reproduce`: TypeScript types, the JSON Schema (draft 2020-12) that
// docs/results.schema.json holds verbatim, and its validation (src/json-schema.ts plus the rules the schema cannot say).
import type { BnBranch } from '../models.js';
import { childPath, schemaErrors } from '../json-schema.js';

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
  /**
   * Relative mCE: degradation from clean error, relative to the baseline's degradation; `null`
   * when it is undefined for some run (the baseline lost no accuracy under a corruption, so the
   * ratio has no denominator), with the reason in `relativeMCEReason`.
   */
  relativeMCE: Stat | null;
  /** Why `relativeMCE` is `null`. */
  relativeMCEReason?: string;
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
  /** Why `corruption` is absent though the main figures have it (the corruptions were measured on one branch only). */
  corruptionOmitted?: string;
}

/** Accuracy on one held-out domain over the seeds that held it out. */
export interface TargetStat extends Stat {
  /** Number of (held-out domain, seed) pairs behind the figure. */
  n: number;
  /** The BN branch the accuracy was measured with (the paper's convention). */
  bn: BnBranch;
  /** In-domain accuracy of the same models: on the test digits/images of their source domains. */
  inDomain: Stat;
}

/**
 * Training figures per epoch, mean and std over the (held-out domain, seed) pairs; every list has
 * one entry per `epochs` entry.
 */
export interface TrainingCurves {
  /** 1-based epochs along the model's whole training: a fine-tune's epochs follow its baseline's. */
  epochs: number[];
  /** Loss optimised (clean + adversarial for AdvBN). */
  loss: Stat[];
  /** Cross-entropy of the clean BN branch. */
  cleanLoss: Stat[];
  /** Cross-entropy of the adversarial BN branch (AdvBN methods). */
  advLoss?: Stat[];
  /** Training accuracy of the clean BN branch. */
  accuracy: Stat[];
  /**
   * Training accuracy of the adversarial BN branch on the attack's worst-case features (AdvBN
   * methods; absent in results written before advbn counted it).
   */
  advAccuracy?: Stat[];
}

/** Results of one method, aggregated over the (held-out domain, seed) pairs. */
export interface MethodResult extends BranchFigures {
  /** Branch each figure used (paper convention: clean, clean, adv). */
  bn: BnChoice;
  /** Accuracy per held-out domain (leave-one-domain-out runs). */
  targets?: Record<string, TargetStat>;
  /** The same figures on the other branch, for models that have one. */
  alternate?: AlternateFigures;
  /** Wall-clock training time in seconds. */
  trainSeconds: Stat;
  /** Loss and accuracy per epoch of training. */
  training?: TrainingCurves;
}

/** How the runs were laid out. */
export interface Protocol {
  /** `leave-one-domain-out`: per held-out domain a baseline on the others, every method fine-tuned from it. */
  kind: 'leave-one-domain-out';
  /** Every domain of the benchmark. */
  domains: string[];
  /** The domains held out in this run (each with every seed). */
  heldOut: string[];
  /** Seeds per held-out domain. */
  seeds: number[];
  /** (held-out domain, seed) pairs: one baseline each, shared by every method. */
  pairs: number;
  /** What was trained and tested, in words. */
  description: string;
}

/** A paired comparison of one method with another over the pairs that share a baseline. */
export interface ComparisonResult {
  /** The method compared (a key of `methods`). */
  method: string;
  /** The method it is compared with. */
  versus: string;
  /** A held-out domain, or `overall` (every pair). */
  scope: string;
  /** Mean over the pairs of (method - versus) held-out accuracy (fraction). */
  meanDiff: number;
  /** 95% t confidence interval of `meanDiff`; `null` with fewer than 2 pairs. */
  ci95: [number, number] | null;
  /** Number of pairs. */
  pairs: number;
  /** From the interval: above 0 `better`, below `worse`, containing 0 `inconclusive`; `no interval` for < 2 pairs. */
  verdict: 'better' | 'worse' | 'inconclusive' | 'no interval';
}

/** Where a results file came from: the command, when, which package, on what machine. */
export interface RunProvenance {
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
  /** Hardware description (CPU count and model, device). */
  hardware: string;
  /** Device string the models ran on, e.g. `cuda:0`. */
  device: string;
}

/** Everything `advbn reproduce` measured: the content of `results.json`. */
export interface Results extends RunProvenance {
  /** Which experiment was run. */
  preset: 'digits' | 'pacs';
  /** The seeds every method was trained with. */
  seeds: number[];
  /** Training and evaluation settings (epochs, learning rate, batch size, model, cut, limits...). */
  config: Record<string, unknown>;
  /** Classes of the task (chance accuracy is 1 / numClasses); older results lack it (digits 10, PACS 7). */
  numClasses?: number;
  /** Name of the method mCE is relative to (a key of `methods`). */
  baseline: string;
  /** Results per method, the baseline model included. */
  methods: Record<string, MethodResult>;
  /** The leave-one-domain-out layout. */
  protocol?: Protocol;
  /** Every method against ERM (and ERM against the baseline), per held-out domain and overall. */
  comparisons?: ComparisonResult[];
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
    numClasses: { type: 'integer', minimum: 2 },
    baseline: { type: 'string', minLength: 1, description: 'A key of methods.' },
    methods: { type: 'object', minProperties: 1, additionalProperties: { $ref: '#/$defs/method' } },
    protocol: {
      type: 'object',
      required: ['kind', 'domains', 'heldOut', 'seeds', 'pairs', 'description'],
      additionalProperties: false,
      properties: {
        kind: { enum: ['leave-one-domain-out'] },
        domains: { type: 'array', minItems: 2, uniqueItems: true, items: { type: 'string', minLength: 1 } },
        heldOut: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 } },
        seeds: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'integer', minimum: 0 } },
        pairs: { type: 'integer', minimum: 1 },
        description: { type: 'string', minLength: 1 },
      },
    },
    comparisons: { type: 'array', items: { $ref: '#/$defs/comparison' } },
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
        relativeMCE: { anyOf: [stat, { type: 'null' }] },
        relativeMCEReason: { type: 'string', minLength: 1 },
        perCorruption: { type: 'object', additionalProperties: { type: 'array', minItems: 5, maxItems: 5, items: unit } },
      },
    },
    alternate: {
      type: 'object',
      required: ['clean', 'domains', 'domainMean', 'bn'],
      additionalProperties: false,
      properties: { ...figureProperties, corruptionOmitted: { type: 'string', minLength: 1 } },
    },
    method: {
      type: 'object',
      required: ['clean', 'domains', 'domainMean', 'bn', 'trainSeconds'],
      additionalProperties: false,
      properties: {
        ...figureProperties,
        alternate: { $ref: '#/$defs/alternate' },
        trainSeconds: stat,
        targets: { type: 'object', additionalProperties: { $ref: '#/$defs/target' } },
        training: { $ref: '#/$defs/training' },
      },
    },
    training: {
      type: 'object',
      description: 'Per-epoch training figures, mean and std over the pairs; every list has one entry per epochs entry.',
      required: ['epochs', 'loss', 'cleanLoss', 'accuracy'],
      additionalProperties: false,
      properties: {
        epochs: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'integer', minimum: 1 } },
        loss: { type: 'array', items: stat },
        cleanLoss: { type: 'array', items: stat },
        advLoss: { type: 'array', items: stat },
        accuracy: { type: 'array', items: { $ref: '#/$defs/unitStat' } },
        advAccuracy: {
          type: 'array',
          description: "Training accuracy of the adversarial BN branch on the attack's worst-case features (AdvBN methods).",
          items: { $ref: '#/$defs/unitStat' },
        },
      },
    },
    target: {
      type: 'object',
      required: ['mean', 'std', 'n', 'bn', 'inDomain'],
      additionalProperties: false,
      properties: { mean: unit, std: { type: 'number', minimum: 0 }, n: { type: 'integer', minimum: 1 }, bn: { $ref: '#/$defs/branch' }, inDomain: { $ref: '#/$defs/unitStat' } },
    },
    comparison: {
      type: 'object',
      required: ['method', 'versus', 'scope', 'meanDiff', 'ci95', 'pairs', 'verdict'],
      additionalProperties: false,
      properties: {
        method: { type: 'string', minLength: 1 },
        versus: { type: 'string', minLength: 1 },
        scope: { type: 'string', minLength: 1 },
        meanDiff: { type: 'number', minimum: -1, maximum: 1 },
        ci95: { anyOf: [{ type: 'array', minItems: 2, maxItems: 2, items: { type: 'number' } }, { type: 'null' }] },
        pairs: { type: 'integer', minimum: 1 },
        verdict: { enum: ['better', 'worse', 'inconclusive', 'no interval'] },
      },
    },
  },
};

/**
 * Lists every way `value` violates {@link RESULTS_SCHEMA}, each as `<JSON path>: <problem>`
 * (e.g. `$.methods.erm.clean: required field is missing`), plus rules the schema cannot say:
 * `baseline` and every comparison's `method` and `versus` must name methods, and each training
 * list has one entry per epoch. An empty list means the object is valid.
 */
export function validateResults(value: unknown): string[] {
  const errors = schemaErrors(RESULTS_SCHEMA, value);
  if (errors.length === 0) {
    const results = value as Results;
    if (!Object.hasOwn(results.methods, results.baseline)) {
      errors.push(`$.baseline: must name a method (one of ${Object.keys(results.methods).join(', ')}), got ${JSON.stringify(results.baseline)}`);
    }
    for (const [name, m] of Object.entries(results.methods)) {
      const t = m.training;
      if (!t) continue;
      for (const key of ['loss', 'cleanLoss', 'advLoss', 'accuracy', 'advAccuracy'] as const) {
        const list = t[key];
        if (list && list.length !== t.epochs.length) {
          errors.push(`${childPath(childPath('$.methods', name), 'training')}.${key}: must have one entry per epoch (${t.epochs.length}), got ${list.length}`);
        }
      }
    }
    (results.comparisons ?? []).forEach((c, i) => {
      for (const key of ['method', 'versus'] as const) {
        if (!Object.hasOwn(results.methods, c[key])) errors.push(`$.comparisons[${i}].${key}: must name a method, got ${JSON.stringify(c[key])}`);
      }
    });
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
