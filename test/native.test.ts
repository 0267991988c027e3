import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  DeviceError,
  DisposedError,
  InvalidDataError,
  InvalidOptionError,
  NativePanicError,
  TrainingDivergedError,
  cpuThreads,
  fineTune,
  listDevices,
  nativeInfo,
  nativeLoadReport,
  setCpuLanes,
} from '../src/index.js';
import { loadNative, wrapNativeError } from '../src/native.js';
import { separableData, tinyModel } from './helpers.js';

describe('native addon', () => {
  it('loads through the one loader and reports which binary and why', () => {
    loadNative(); // must not throw: CI always builds the addon
    const report = nativeLoadReport();
    expect(report.ok).toBe(true);
    expect(report.variant).toMatch(/^(cpu|cuda)$/);
    expect(report.path).toMatch(/\.node$/);
    expect(report.reason.length).toBeGreaterThan(10);
    expect(report.attempts.at(-1)).toMatchObject({ ok: true, error: null });
    for (const attempt of report.attempts.slice(0, -1)) expect(attempt.error).toBeTruthy();
    expect(nativeInfo().variant).toBe(report.variant);
    expect(listDevices().map((d) => d.id)).toContain('cpu');
  });

  it.each([
    { name: 'ADVBN_ALLOC_CACHE_MB', bad: ['lots', '-1', '1.5', '', '1e3'], good: ['0', '256', ' 64 '] },
    { name: 'ADVBN_CPU_WINOGRAD', bad: ['off', 'false', '', '2', 'yes'], good: ['0', '1', ' 1 '] },
    { name: 'ADVBN_CPU_L1D_KB', bad: ['32k', '4', '2048', '1.5', '', '-32'], good: ['32', ' 48 ', '8', '1024'] },
  ])('rejects an $name the addon does not accept, naming the variable', ({ name, bad, good }) => {
    const saved = process.env[name];
    try {
      for (const value of bad) {
        process.env[name] = value;
        expect(() => loadNative()).toThrow(InvalidOptionError);
        expect(() => loadNative()).toThrow(`${name}=${JSON.stringify(value)} is invalid`);
      }
      for (const value of good) {
        process.env[name] = value;
        expect(() => loadNative()).not.toThrow();
      }
    } finally {
      if (saved === undefined) delete process.env[name];
      else process.env[name] = saved;
    }
  });

  it('turns a synchronous native panic into a JS error; the process lives on', () => {
    const native = loadNative();
    let caught: unknown;
    try {
      native.testing.debugPanic('sync boom');
    } catch (err) {
      caught = wrapNativeError(err);
    }
    expect(caught).toBeInstanceOf(NativePanicError);
    // Contained: the message carries the location; nothing is printed on stderr.
    expect((caught as Error).message).toMatch(/panicked at .*info\.rs:\d+: sync boom/);
  });

  it('turns a panic in an async native task into a rejected promise', async () => {
    const native = loadNative();
    const err = await native.testing.debugPanicAsync('async boom').then(
      () => undefined,
      (e: unknown) => wrapNativeError(e),
    );
    expect(err).toBeInstanceOf(NativePanicError);
    expect((err as Error).message).toMatch(/panicked at .*info\.rs:\d+: async boom/);
    // Native work still runs after the panic.
    using model = await tinyModel();
    expect(model.parameterCount).toBeGreaterThan(0);
  });

  it('maps every native error code to its class by the code property, never by the message', () => {
    const thrown = (message: string, fields: Record<string, unknown>) => Object.assign(new Error(message), fields);
    const option = wrapNativeError(thrown('option `lr` = -1 is invalid: must be positive', { code: 'ADVBN_INVALID_OPTION', option: 'lr', value: -1 }));
    expect(option).toBeInstanceOf(InvalidOptionError);
    expect(option).toMatchObject({ code: 'ADVBN_INVALID_OPTION', option: 'lr', value: -1, message: 'option `lr` = -1 is invalid: must be positive' });
    expect(wrapNativeError(thrown('NaN at 3', { code: 'ADVBN_INVALID_DATA' }))).toBeInstanceOf(InvalidDataError);
    expect(wrapNativeError(thrown('no CUDA', { code: 'ADVBN_DEVICE' }))).toBeInstanceOf(DeviceError);
    expect(wrapNativeError(thrown('gone', { code: 'ADVBN_DISPOSED' }))).toBeInstanceOf(DisposedError);
    expect(wrapNativeError(thrown('boom', { code: 'ADVBN_PANIC' }))).toBeInstanceOf(NativePanicError);
    expect(wrapNativeError(thrown('loss is NaN', { code: 'ADVBN_DIVERGED' }))).toBeInstanceOf(TrainingDivergedError);
    expect(wrapNativeError(thrown('wait', { code: 'ADVBN_BUSY' }))).toMatchObject({ code: 'ADVBN_BUSY', message: 'wait' });
    expect(wrapNativeError(thrown('candle said no', { code: 'ADVBN_NATIVE' }))).toMatchObject({ code: 'ADVBN_NATIVE', message: 'candle said no' });
    // A message that looks like the old text protocol is just a message now.
    const old = wrapNativeError(new Error('[ADVBN_INVALID_OPTION option=lr] lr must be positive'));
    expect(old).not.toBeInstanceOf(InvalidOptionError);
    expect(old).toMatchObject({ code: 'ADVBN_NATIVE', message: '[ADVBN_INVALID_OPTION option=lr] lr must be positive' });
  });

  it('receives code, option and value as properties of the error the addon throws, sync and async', async () => {
    const native = loadNative();
    // Synchronous: a corruption name the core does not know.
    let sync: unknown;
    try {
      native.corruptionMetrics({ clean: 0.1, corruptions: { no_such_corruption: [0, 0, 0, 0, 0] } }, { clean: 0.1, corruptions: {} });
    } catch (err) {
      sync = err;
    }
    expect(sync).toBeInstanceOf(Error);
    expect(sync).toMatchObject({ code: 'ADVBN_INVALID_OPTION', option: 'corruption', value: 'no_such_corruption' });
    expect(wrapNativeError(sync)).toBeInstanceOf(InvalidOptionError);
    // Asynchronous: the rejection of a task carries the same fields (this file is no weights file).
    const notWeights = fileURLToPath(import.meta.url);
    const rejected = await native.createModel({ arch: { type: 'resnet18' }, numClasses: 3, device: 'cpu', seed: 0, weights: notWeights }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(rejected).toBeInstanceOf(Error);
    expect(rejected).toMatchObject({ code: 'ADVBN_INVALID_OPTION', option: 'weights', value: notWeights });
    const typed = wrapNativeError(rejected);
    expect(typed).toBeInstanceOf(InvalidOptionError);
    expect(typed).toMatchObject({ option: 'weights', value: notWeights });
    // A number stays a number.
    let count: unknown;
    try {
      native.createModel({ arch: { type: 'resnet18' }, numClasses: 0, device: 'cpu', seed: 0 });
    } catch (err) {
      count = err;
    }
    expect(count).toMatchObject({ code: 'ADVBN_INVALID_OPTION', option: 'numClasses', value: 0 });
  });

  it('splits the CPU threads into lanes: bad counts are refused by name, and results do not change', async () => {
    const { threads, lanes } = cpuThreads();
    expect(lanes).toBe(1);
    expect(threads).toBe(Number(process.env.RAYON_NUM_THREADS) || (await import('node:os')).cpus().length);
    for (const bad of [0, 1.5, threads + 1, Number.NaN]) expect(() => setCpuLanes(bad)).toThrow(InvalidOptionError);
    expect(() => setCpuLanes(0)).toThrow(/setCpuLanes: option "lanes" must be an integer from 1 to the number of compute threads/);
    expect(cpuThreads().lanes).toBe(1);

    const data = separableData(48, 5);
    const train = async () => {
      const model = await tinyModel(2);
      const { history } = await fineTune(model, { data, epochs: 2, batchSize: 16, seed: 1 });
      model.dispose();
      return [...history.loss, ...history.cleanLoss];
    };
    const alone = await train();
    if (threads < 2) return; // one thread makes one lane only
    setCpuLanes(2);
    try {
      expect(cpuThreads()).toEqual({ threads, lanes: 2 });
      // Two runs side by side, each in a lane of its own, give what one run alone gave.
      expect(await Promise.all([train(), train()])).toEqual([alone, alone]);
    } finally {
      setCpuLanes(1);
    }
    expect(cpuThreads().lanes).toBe(1);
  });
});
