// Property tests (fast-check) of the JavaScript entry points that take untrusted input: the
// checkpoint record read on resume, CLI argument parsing and fromArrays. Whatever the input, each
// either succeeds or fails with the library's typed error naming the problem: never a TypeError,
// a hang, a polluted prototype or a crashed process. Runs are seeded, so a failure reproduces.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { badFlag, parseFlags, UsageError, wholeFlag } from '../src/cli/args.js';
import { AdvbnError, fromArrays, InvalidDataError } from '../src/index.js';
import { readRecord } from '../src/training/checkpoint.js';

const RUNS = { numRuns: 400, seed: 20261201 };

/** Any JSON value, with the keys an attacker would try. */
const hostileJson = fc.letrec((tie) => ({
  value: fc.oneof(
    { maxDepth: 4 },
    fc.constantFrom(null, true, false, 0, -1, 1e9, 1e308, 'x', ''),
    fc.double(),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'prototype', 'totals', 'epochs', 'history', 'loss', 'count', 'correct', 'cleanLoss'), tie('value'), { maxKeys: 6 }),
  ),
})).value;

describe('fuzz: checkpoint record (resume)', () => {
  it('any JSON text or bytes: a FineTuneRecord or an InvalidDataError naming the file, prototypes untouched', () => {
    const text = fc.oneof(
      hostileJson.map((v) => JSON.stringify(v) ?? 'null'),
      fc.string({ maxLength: 40 }),
      // Near-valid records with one field broken.
      fc.record({ totals: hostileJson, epochs: hostileJson, history: hostileJson }).map((v) => JSON.stringify(v)),
    );
    fc.assert(
      fc.property(text, (t) => {
        try {
          const record = readRecord(t, 'fuzz.safetensors');
          expect(Object.getPrototypeOf(record.history)).toBe(Object.prototype);
          expect(Object.keys(record.history).every((k) => /^[a-zA-Z]+$/.test(k))).toBe(true);
          expect(Array.isArray(record.epochs)).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidDataError);
          expect((err as Error).message).toContain('fuzz.safetensors');
        }
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      RUNS,
    );
  });
});

describe('fuzz: CLI arguments', () => {
  it('any argv: the flags or a UsageError, never another error', () => {
    const arg = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('--out', '--epochs', '--quick', '-h', '--', '--epochs=3', '--x', '-', '--out=', '--quick=1'));
    fc.assert(
      fc.property(fc.array(arg, { maxLength: 8 }), (argv) => {
        try {
          const flags = parseFlags(argv, { out: 'string', epochs: 'string', quick: 'boolean' });
          wholeFlag('epochs', flags.epochs, 1);
        } catch (err) {
          expect(err).toBeInstanceOf(UsageError);
          expect((err as Error).message.length).toBeGreaterThan(0);
        }
      }),
      RUNS,
    );
    expect(badFlag('x', 'must be y', '"').message).toBe('--x must be y, got "\\""');
  });
});

describe('fuzz: fromArrays', () => {
  it('any arrays, shape and options: a Dataset or a typed AdvbnError', () => {
    const images = fc.oneof(fc.float32Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), fc.constantFrom(undefined, null, [1, 2, 3], 'img', new Float64Array(4)));
    const shape = fc.oneof(fc.array(fc.integer({ min: -2, max: 6 }), { maxLength: 5 }), fc.constant(undefined));
    const labels = fc.oneof(
      fc.int32Array({ maxLength: 8 }).map((a) => a.map((v) => v % 5)),
      fc.constantFrom(undefined, [0, 1], new Uint8Array(2)),
    );
    const options = fc.record(
      {
        numClasses: fc.oneof(fc.integer({ min: -1, max: 6 }), fc.double(), fc.constant('3')),
        layout: fc.constantFrom('nchw', 'nhwc', 'NCHW', 'xyz', undefined),
        mean: fc.oneof(fc.array(fc.double(), { maxLength: 4 }), fc.constant(undefined)),
        std: fc.oneof(fc.array(fc.double(), { maxLength: 4 }), fc.constant(undefined)),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(images, shape, labels, options, (img, shp, lab, opts) => {
        const input = shp === undefined ? img : { data: img, shape: shp, ...(opts.layout !== undefined && { layout: opts.layout }) };
        try {
          const dataset = fromArrays(input as never, lab as never, opts as never);
          expect(dataset.length).toBeGreaterThan(0);
          dataset.dispose();
        } catch (err) {
          expect(err).toBeInstanceOf(AdvbnError);
        }
      }),
      RUNS,
    );
  });

  it('consistent shapes with hostile values: NaN, Infinity, labels out of range, mismatched counts', () => {
    const input = fc
      .record({ n: fc.integer({ min: 1, max: 3 }), c: fc.constantFrom(1, 2, 3), h: fc.integer({ min: 1, max: 3 }), w: fc.integer({ min: 1, max: 3 }) })
      .chain(({ n, c, h, w }) =>
        fc.record({
          shape: fc.constant([n, c, h, w] as const),
          data: fc.float32Array({ minLength: n * c * h * w, maxLength: n * c * h * w }),
          labels: fc.array(fc.integer({ min: -1, max: 4 }), { minLength: n - 1, maxLength: n + 1 }).map((a) => Int32Array.from(a)),
          numClasses: fc.oneof(fc.constant(undefined), fc.integer({ min: 1, max: 5 })),
        }),
      );
    let built = 0;
    fc.assert(
      fc.property(input, ({ shape, data, labels, numClasses }) => {
        try {
          const dataset = fromArrays({ data, shape }, labels, numClasses === undefined ? {} : { numClasses });
          built += 1;
          expect(dataset.length).toBe(shape[0]);
          dataset.dispose();
        } catch (err) {
          expect(err).toBeInstanceOf(AdvbnError);
          expect((err as Error).message).toMatch(/fromArrays|labels|images|NaN|finite|classes|range/i);
        }
      }),
      RUNS,
    );
    // The generator reaches the valid path too, not only refusals.
    expect(built).toBeGreaterThan(0);
  });
});
