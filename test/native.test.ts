import { describe, expect, it } from 'vitest';
import { DeviceError, DisposedError, InvalidDataError, InvalidOptionError, NativePanicError, listDevices, nativeInfo, nativeLoadReport } from '../src/index.js';
import { loadNative, wrapNativeError } from '../src/native.js';
import { tinyModel } from './helpers.js';

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

  it('turns a synchronous native panic into a JS error; the process lives on', () => {
    const native = loadNative();
    let caught: unknown;
    try {
      native.debugPanic('sync boom');
    } catch (err) {
      caught = wrapNativeError(err);
    }
    expect(caught).toBeInstanceOf(NativePanicError);
    expect((caught as Error).message).toContain('sync boom');
  });

  it('turns a panic in an async native task into a rejected promise', async () => {
    const native = loadNative();
    const err = await native.debugPanicAsync('async boom').then(
      () => undefined,
      (e: unknown) => wrapNativeError(e),
    );
    expect(err).toBeInstanceOf(NativePanicError);
    expect((err as Error).message).toContain('async boom');
    // Native work still runs after the panic.
    using model = await tinyModel();
    expect(model.parameterCount).toBeGreaterThan(0);
  });

  it('maps every native error code to its class', () => {
    const option = wrapNativeError(new Error('[ADVBN_INVALID_OPTION option=lr] lr must be positive, got -1'));
    expect(option).toBeInstanceOf(InvalidOptionError);
    expect((option as InvalidOptionError).option).toBe('lr');
    expect(option.message).toBe('lr must be positive, got -1');
    expect(wrapNativeError(new Error('[ADVBN_INVALID_DATA] NaN at 3'))).toBeInstanceOf(InvalidDataError);
    expect(wrapNativeError(new Error('[ADVBN_DEVICE] no CUDA'))).toBeInstanceOf(DeviceError);
    expect(wrapNativeError(new Error('[ADVBN_DISPOSED] gone'))).toBeInstanceOf(DisposedError);
    expect(wrapNativeError(new Error('[ADVBN_PANIC] boom'))).toBeInstanceOf(NativePanicError);
    const other = wrapNativeError(new Error('[ADVBN_NATIVE] candle said no'));
    expect(other).toMatchObject({ code: 'ADVBN_NATIVE', message: 'candle said no' });
    expect(wrapNativeError(new Error('plain'))).toMatchObject({ code: 'ADVBN_NATIVE', message: 'plain' });
  });
});
