// Type-level checks of the public API (the typecheck of `npm run typecheck` is the test; the
// runtime parts only make sure the file is not empty for vitest): callbacks may return anything,
// device strings are typed, so a typo fails to compile.
import { describe, expect, it } from 'vitest';
import type { Callback, DeviceName, ModelOptions } from '../src/index.js';

describe('public types', () => {
  it('accept a callback whose return value is not void, and type device strings', () => {
    const logged: string[] = [];
    // process.stdout.write returns a boolean: a hook may return anything (only promises are awaited).
    const callback: Callback = { onBatchEnd: (batch, logs) => logged.push(`${batch}: ${logs.loss}`) };
    const devices: DeviceName[] = ['cpu', 'cuda', 'auto', 'cuda:1'];
    // @ts-expect-error 'gpu' is no device
    const typo: ModelOptions = { numClasses: 2, device: 'gpu' };
    expect(typeof callback.onBatchEnd).toBe('function');
    expect(devices).toHaveLength(4);
    expect(typo.numClasses).toBe(2);
  });
});
