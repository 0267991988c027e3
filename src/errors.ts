/**
 * Typed errors of advbn. Every error thrown or rejected by the library is an {@link AdvbnError}
 * with a stable `code`, so callers can branch on `err.code` or `instanceof`.
 * @module
 */

/** Options accepted by the error constructors (standard `cause` chaining). */
export interface AdvbnErrorOptions {
  /** The underlying error, if any (for example the raw native error). */
  cause?: unknown;
}

/** Base class of every advbn error. */
export class AdvbnError extends Error {
  /** Stable machine-readable code, e.g. `ADVBN_INVALID_OPTION`. */
  readonly code: string;

  /**
   * @param message - Human-readable description.
   * @param code - Stable machine-readable code.
   * @param options - Optional `cause`.
   */
  constructor(message: string, code = 'ADVBN_ERROR', options?: AdvbnErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option has a wrong type, is out of range, or conflicts with another option. */
export class InvalidOptionError extends AdvbnError {
  /** Dotted name of the offending option, e.g. `advbn.steps`. */
  readonly option: string;
  /** The value that was rejected (`undefined` when only the native side knew it). */
  readonly value: unknown;

  /**
   * @param message - Full message; it names the option and the value.
   * @param option - Dotted option name.
   * @param value - The rejected value.
   * @param options - Optional `cause`.
   */
  constructor(message: string, option: string, value: unknown, options?: AdvbnErrorOptions) {
    super(message, 'ADVBN_INVALID_OPTION', options);
    this.option = option;
    this.value = value;
  }
}

/** Input data is malformed: wrong shape, NaN/Infinity, labels out of range, class-count mismatch. */
export class InvalidDataError extends AdvbnError {
  /**
   * @param message - Human-readable description.
   * @param options - Optional `cause`.
   */
  constructor(message: string, options?: AdvbnErrorOptions) {
    super(message, 'ADVBN_INVALID_DATA', options);
  }
}

/** A device is unavailable or failed (CUDA missing, out of memory, driver error). */
export class DeviceError extends AdvbnError {
  /**
   * @param message - Human-readable description.
   * @param options - Optional `cause`.
   */
  constructor(message: string, options?: AdvbnErrorOptions) {
    super(message, 'ADVBN_DEVICE', options);
  }
}

/** A model, dataset or batch was used after `dispose()`. */
export class DisposedError extends AdvbnError {
  /**
   * @param message - Human-readable description.
   * @param options - Optional `cause`.
   */
  constructor(message: string, options?: AdvbnErrorOptions) {
    super(message, 'ADVBN_DISPOSED', options);
  }
}

/** Native code panicked. The panic was contained; the process and other objects stay usable. */
export class NativePanicError extends AdvbnError {
  /**
   * @param message - Human-readable description.
   * @param options - Optional `cause`.
   */
  constructor(message: string, options?: AdvbnErrorOptions) {
    super(message, 'ADVBN_PANIC', options);
  }
}

/**
 * The loss became NaN or infinite. The failing step updated nothing, so the model and the last
 * checkpoint hold the state before it; the message names the epoch and step.
 */
export class TrainingDivergedError extends AdvbnError {
  /**
   * @param message - Human-readable description naming the epoch and step.
   * @param options - Optional `cause`.
   */
  constructor(message: string, options?: AdvbnErrorOptions) {
    super(message, 'ADVBN_DIVERGED', options);
  }
}

/** One native binary the loader tried. */
export interface NativeLoadAttempt {
  /** What was tried: an env override, a package name or a file path. */
  candidate: string;
  /** Whether it loaded. */
  ok: boolean;
  /** Why it did not load (`null` when it did). */
  error: string | null;
}

/** The native addon could not be loaded; `attempts` lists every candidate binary and why it failed. */
export class NativeLoadError extends AdvbnError {
  /** Every binary that was tried, in order, with its failure reason. */
  readonly attempts: readonly NativeLoadAttempt[];

  /**
   * @param message - Human-readable description.
   * @param attempts - The load attempts.
   */
  constructor(message: string, attempts: readonly NativeLoadAttempt[]) {
    super(message, 'ADVBN_NATIVE_LOAD');
    this.attempts = attempts;
  }
}

/** An operation was cancelled through its `AbortSignal`. `name` is `'AbortError'`, as in the DOM. */
export class AbortError extends AdvbnError {
  /**
   * @param message - Human-readable description.
   * @param options - Optional `cause` (the signal's `reason`).
   */
  constructor(message = 'The operation was aborted', options?: AdvbnErrorOptions) {
    super(message, 'ADVBN_ABORTED', options);
    this.name = 'AbortError';
  }
}
