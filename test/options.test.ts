import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdvbnError, InvalidOptionError, fineTune, fromArrays, selfCheck, smallResnet, type Model } from '../src/index.js';
import { NUM_CLASSES, rejection, separableData, tinyModel } from './helpers.js';

let model: Model;
const data = separableData(8);

beforeAll(async () => {
  model = await tinyModel();
});
afterAll(() => model.dispose());

// [description, options override, option name, value as it must appear in the message]
const badFineTuneOptions: Array<[string, Record<string, unknown>, string, string]> = [
  ['negative lr', { lr: -1 }, 'lr', '-1'],
  ['zero lr', { lr: 0 }, 'lr', '0'],
  ['NaN optimizer.lr', { optimizer: { type: 'sgd', lr: Number.NaN } }, 'optimizer.lr', 'NaN'],
  ['lr and optimizer.lr together', { lr: 0.1, optimizer: { lr: 0.1 } }, 'lr', '0.1'],
  ['unknown optimizer', { optimizer: { type: 'lion' } }, 'optimizer.type', '"lion"'],
  ['negative momentum', { optimizer: { momentum: -0.5 } }, 'optimizer.momentum', '-0.5'],
  ['adam beta2 of 1', { optimizer: { type: 'adamw', beta2: 1 } }, 'optimizer.beta2', '1'],
  ['sgd option on adamw', { optimizer: { type: 'adamw', momentum: 0.9 } }, 'optimizer.momentum', '0.9'],
  ['negative attack steps', { advbn: { steps: -1 } }, 'advbn.steps', '-1'],
  ['fractional attack steps', { advbn: { steps: 1.5 } }, 'advbn.steps', '1.5'],
  ['zero epsilon', { advbn: { epsilon: 0 } }, 'advbn.epsilon', '0'],
  ['negative stepSize', { advbn: { stepSize: -0.2 } }, 'advbn.stepSize', '-0.2'],
  ['bad reluClamp', { advbn: { reluClamp: 'yes' } }, 'advbn.reluClamp', '"yes"'],
  ['zero batchSize', { batchSize: 0 }, 'batchSize', '0'],
  ['zero epochs', { epochs: 0 }, 'epochs', '0'],
  ['cut 0 with advbn', { cut: 0 }, 'cut', '0'],
  ['cut beyond the network', { cut: 4 }, 'cut', '4'],
  ['unknown method', { method: 'pgd' }, 'method', '"pgd"'],
  ['unknown schedule', { schedule: { type: 'poly' } }, 'schedule.type', '"poly"'],
  ['decreasing milestones', { schedule: { type: 'step', milestones: [3, 2] } }, 'schedule.milestones', '[3, 2]'],
  ['negative seed', { seed: -3 }, 'seed', '-3'],
  ['shuffle not boolean', { shuffle: 'yes' }, 'shuffle', '"yes"'],
  ['callback hook not a function', { callbacks: { onEpochEnd: 3 } }, 'callbacks.onEpochEnd', '3'],
  ['signal not an AbortSignal', { signal: {} }, 'signal', 'an object'],
  ['typo in an option name', { learningRate: 0.1 }, 'learningRate', '0.1'],
  ['data missing', { data: undefined }, 'data', 'undefined'],
];

describe('fineTune option validation', () => {
  it.each(badFineTuneOptions)('%s', async (_name, override, option, shown) => {
    const err = await rejection(() => fineTune(model, { data, epochs: 1, ...override } as never));
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as InvalidOptionError).code).toBe('ADVBN_INVALID_OPTION');
    expect((err as InvalidOptionError).option).toBe(option);
    expect(err.message).toContain(`"${option}"`);
    expect(err.message).toContain(shown);
    expect(err.message).toMatch(/^fineTune: /);
  });

  it('names the option and value in the documented form', async () => {
    const err = await rejection(() => fineTune(model, { data, lr: -1 }));
    expect(err.message).toBe('fineTune: option "lr" must be a positive finite number, got -1');
  });

  it('allows cut 0 for erm and K = 0 attack steps', async () => {
    // Validation only: epochs 1 on 8 samples keeps these runs short.
    await expect(fineTune(model, { data, method: 'erm', cut: 0, epochs: 1, batchSize: 8 })).resolves.toBeTruthy();
    await expect(fineTune(model, { data, advbn: { steps: 0 }, epochs: 1, batchSize: 8 })).resolves.toBeTruthy();
  });

  it('rejects a second concurrent fineTune on the same model', async () => {
    const first = fineTune(model, { data, epochs: 1, batchSize: 4 });
    const err = await rejection(() => fineTune(model, { data, epochs: 1 }));
    expect(err).toBeInstanceOf(AdvbnError);
    expect((err as AdvbnError).code).toBe('ADVBN_BUSY');
    await first;
    // The guard is released once the first run ends.
    await expect(fineTune(model, { data, epochs: 1, batchSize: 8 })).resolves.toBeTruthy();
  });
});

describe('model builder validation', () => {
  const cases: Array<[Record<string, unknown>, string, string]> = [
    [{ numClasses: 1 }, 'numClasses', '1'],
    [{}, 'numClasses', 'undefined'],
    [{ numClasses: 4, depth: 10 }, 'depth', '10'],
    [{ numClasses: 4, width: 0 }, 'width', '0'],
    [{ numClasses: 4, device: 'gpu' }, 'device', '"gpu"'],
    [{ numClasses: 4, seed: 1.5 }, 'seed', '1.5'],
    [{ numClasses: 4, inChannels: 0 }, 'inChannels', '0'],
  ];
  it.each(cases)('smallResnet(%o) names %s', async (options, option, shown) => {
    const err = await rejection(() => smallResnet(options as never));
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.message).toContain(`smallResnet: option "${option}"`);
    expect(err.message).toContain(shown);
  });
});

describe('other entry points', () => {
  it('fromArrays rejects a bad layout and unknown options', () => {
    const { images, labels } = separableData(4);
    expect(() => fromArrays(images, labels, { layout: 'chwn' as never })).toThrow(InvalidOptionError);
    expect(() => fromArrays(images, labels, { layout: 'nhwc' })).toThrow(/same as images.layout/);
    expect(() => fromArrays(images, labels, { numclasses: 4 } as never)).toThrow(/numclasses/);
    expect(() => fromArrays(images, labels, { numClasses: NUM_CLASSES, mean: [0, 0, 0] })).toThrow(/"std"|"mean"/);
  });

  it('selfCheck rejects a malformed device string', async () => {
    const err = await rejection(() => selfCheck('tpu'));
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.message).toContain('"tpu"');
  });
});
