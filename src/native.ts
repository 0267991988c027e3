// The one loader of the native addon, and the one mapping of native errors to typed errors.
//
// Why a hand-written loader instead of napi-rs's generated index.js: napi-rs has no notion of a
// CUDA variant. A CUDA build fails to `require()` on machines without the CUDA libraries, and
// users of GPU stacks complain most about silent CPU fallbacks, so every attempt and its failure
// reason is recorded and exposed through nativeLoadReport() and `advbn doctor`.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import type * as NativeBindingModule from '../index.js';
import {
  AdvbnError,
  DeviceError,
  DisposedError,
  InvalidDataError,
  InvalidOptionError,
  NativeLoadError,
  NativePanicError,
  TrainingDivergedError,
  type NativeLoadAttempt,
} from './errors.js';
import { packageRoot } from './package-root.js';

export type NativeBinding = typeof NativeBindingModule;
/** Build variant of the native addon. */
export type NativeVariant = 'cpu' | 'cuda';
export type { NativeLoadAttempt };

/** Which native binary is in use and why; see `advbn doctor`. */
export interface NativeLoadReport {
  /** Whether a binary is loaded. */
  ok: boolean;
  /** Variant of the loaded binary (as the binary reports it), `null` if none loaded. */
  variant: NativeVariant | null;
  /** Resolved file of the loaded binary, `null` if none loaded. */
  path: string | null;
  /** One sentence explaining the choice (or the failure). */
  reason: string;
  /** Every candidate in the order tried. */
  attempts: NativeLoadAttempt[];
}

interface Candidate {
  label: string;
  variant: NativeVariant;
  /** Resolves to a file path, or throws/returns undefined when the candidate is not installed. */
  locate: () => string | undefined;
}

const requireFromHere = createRequire(import.meta.url);
const PREBUILT_PACKAGE = { cpu: '@advbn/linux-x64-gnu', cuda: '@advbn/linux-x64-gnu-cuda' } as const;
const LOCAL_FILE = {
  cpu: join(packageRoot, 'native', 'advbn.linux-x64-gnu.node'),
  cuda: join(packageRoot, 'native', 'advbn.linux-x64-gnu.cuda.node'),
} as const;

function supportedPlatform(): boolean {
  if (process.platform !== 'linux' || process.arch !== 'x64') return false;
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return Boolean(header?.glibcVersionRuntime);
}

function packageCandidate(variant: NativeVariant): Candidate {
  const name = PREBUILT_PACKAGE[variant];
  return { label: `package ${name}`, variant, locate: () => requireFromHere.resolve(name) };
}

function fileCandidate(variant: NativeVariant): Candidate {
  const file = LOCAL_FILE[variant];
  return { label: file, variant, locate: () => (existsSync(file) ? file : undefined) };
}

function candidates(): { list: Candidate[]; explicit: boolean } {
  const override = process.env.ADVBN_NATIVE_PATH;
  if (override) {
    // An explicit choice is never silently replaced by another binary.
    const path = resolve(override);
    return {
      explicit: true,
      list: [{ label: `ADVBN_NATIVE_PATH=${override}`, variant: 'cpu', locate: () => (existsSync(path) ? path : undefined) }],
    };
  }
  const list: Candidate[] = [];
  if (process.env.ADVBN_DEVICE !== 'cpu') list.push(packageCandidate('cuda'), fileCandidate('cuda'));
  list.push(packageCandidate('cpu'), fileCandidate('cpu'));
  return { list, explicit: false };
}

function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0] ?? text;
}

interface LoadState {
  binding: NativeBinding | null;
  report: NativeLoadReport;
}

let state: LoadState | undefined;

function attemptLoad(): LoadState {
  const { list, explicit } = candidates();
  const attempts: NativeLoadAttempt[] = [];
  for (const candidate of list) {
    let file: string | undefined;
    try {
      file = candidate.locate();
    } catch (err) {
      attempts.push({ candidate: candidate.label, ok: false, error: `not installed (${errorText(err)})` });
      continue;
    }
    if (!file) {
      attempts.push({ candidate: candidate.label, ok: false, error: 'not found' });
      continue;
    }
    try {
      const binding = requireFromHere(file) as NativeBinding;
      const variant = reportedVariant(binding) ?? candidate.variant;
      attempts.push({ candidate: candidate.label, ok: true, error: null });
      return { binding, report: { ok: true, variant, path: file, reason: explainChoice(candidate, variant, attempts, explicit), attempts } };
    } catch (err) {
      attempts.push({ candidate: candidate.label, ok: false, error: errorText(err) });
    }
  }
  const platformNote = supportedPlatform()
    ? 'run `npm install` (it builds the addon from source when no prebuilt binary exists)'
    : `no binary is published for ${process.platform}-${process.arch}; build from source with \`ADVBN_FORCE_BUILD=1 npm install\``;
  const reason = explicit
    ? `ADVBN_NATIVE_PATH is set but that binary could not be loaded (${attempts[0]?.error ?? 'unknown'})`
    : `no native advbn binary could be loaded; ${platformNote}`;
  return { binding: null, report: { ok: false, variant: null, path: null, reason, attempts } };
}

function reportedVariant(binding: NativeBinding): NativeVariant | undefined {
  try {
    const variant = binding.nativeInfo().variant;
    return variant === 'cuda' || variant === 'cpu' ? variant : undefined;
  } catch {
    return undefined;
  }
}

function explainChoice(chosen: Candidate, variant: NativeVariant, attempts: NativeLoadAttempt[], explicit: boolean): string {
  if (explicit) return `ADVBN_NATIVE_PATH selects this binary (${variant} build)`;
  if (variant === 'cuda') return 'the CUDA build loaded';
  if (process.env.ADVBN_DEVICE === 'cpu') return 'ADVBN_DEVICE=cpu: the CUDA build was not tried';
  const cudaFailures = attempts.filter((a) => !a.ok && a.error !== 'not found' && !a.error?.startsWith('not installed'));
  if (cudaFailures.length > 0) {
    return `the CUDA build is installed but failed to load (${cudaFailures[0]?.error}); using the CPU build from ${chosen.label}`;
  }
  return `no CUDA build is installed; using the CPU build from ${chosen.label}`;
}

/**
 * The environment variables the addon reads (once, when its compute threads start), each with
 * the values it accepts: `ADVBN_ALLOC_CACHE_MB` bounds its cache of freed large blocks (default
 * 256, 0 turns it off); `ADVBN_CPU_WINOGRAD=0` runs the 3x3 convolutions through the direct
 * kernels instead of Winograd's F(2x2, 3x3) (`1`, the default, lets them use it);
 * `ADVBN_CPU_L1D_KB` replaces the L1 data cache size CPUID reports, from which the CPU kernels
 * size their channel blocks (half of it; results do not depend on it).
 */
const NATIVE_VARIABLES: readonly { name: string; accepts: (value: string) => boolean; expected: string }[] = [
  {
    name: 'ADVBN_ALLOC_CACHE_MB',
    accepts: (value) => /^\s*\d+\s*$/.test(value) && Number.isSafeInteger(Number(value)),
    expected: "a whole number of MiB (0 turns the allocator's block cache off)",
  },
  {
    name: 'ADVBN_CPU_WINOGRAD',
    accepts: (value) => /^\s*[01]\s*$/.test(value),
    expected: "0 (the direct kernels' sums) or 1 (Winograd's F(2x2, 3x3) where it suits, the default)",
  },
  {
    name: 'ADVBN_CPU_L1D_KB',
    accepts: (value) => /^\s*\d+\s*$/.test(value) && Number(value) >= 8 && Number(value) <= 1024,
    expected: 'a whole number of KB from 8 to 1024 (the L1 data cache the CPU kernels plan for; unset: what the CPU reports)',
  },
];

/** Throws {@link InvalidOptionError} naming the first of {@link NATIVE_VARIABLES} set to a value it does not accept. */
function checkNativeVariables(): void {
  for (const { name, accepts, expected } of NATIVE_VARIABLES) {
    const value = process.env[name];
    if (value !== undefined && !accepts(value)) {
      throw new InvalidOptionError(`${name}=${JSON.stringify(value)} is invalid: expected ${expected}`, name, value);
    }
  }
}

/** Loads the addon once (cached); throws {@link NativeLoadError} listing every attempt if none loads. */
export function loadNative(): NativeBinding {
  checkNativeVariables();
  state ??= attemptLoad();
  if (!state.binding) throw new NativeLoadError(state.report.reason, state.report.attempts);
  return state.binding;
}

/** Which binary is loaded and why (tries to load it first if nothing was tried yet). Never throws. */
export function nativeLoadReport(): NativeLoadReport {
  state ??= attemptLoad();
  return { ...state.report, attempts: state.report.attempts.map((a) => ({ ...a })) };
}

/** What the addon throws (crates/advbn-node/src/errors.rs): an `Error` whose own `code` names the failure, with `option` and `value` when an option was rejected. */
interface NativeErrorFields {
  code?: unknown;
  option?: unknown;
  value?: unknown;
}

/** Maps an error thrown by the addon to the exported class of its `code`; no message is parsed. */
export function wrapNativeError(err: unknown): Error {
  if (err instanceof AdvbnError) return err;
  if (!(err instanceof Error)) return new AdvbnError(String(err), 'ADVBN_NATIVE', { cause: err });
  const { code, option, value } = err as Error & NativeErrorFields;
  const text = err.message;
  switch (code) {
    case 'ADVBN_INVALID_OPTION':
      return new InvalidOptionError(text, typeof option === 'string' ? option : 'unknown', value, { cause: err });
    case 'ADVBN_INVALID_DATA':
      return new InvalidDataError(text, { cause: err });
    case 'ADVBN_DEVICE':
      return new DeviceError(text, { cause: err });
    case 'ADVBN_DISPOSED':
      return new DisposedError(text, { cause: err });
    case 'ADVBN_PANIC':
      return new NativePanicError(text, { cause: err });
    case 'ADVBN_DIVERGED':
      return new TrainingDivergedError(text, { cause: err });
    case 'ADVBN_BUSY':
      return new AdvbnError(text, 'ADVBN_BUSY', { cause: err });
    default:
      // ADVBN_NATIVE (a numeric failure inside Candle), or napi-rs's own argument conversion
      // errors (code `InvalidArg`, `NumberExpected`, ...): kept under one code, the original as cause.
      return new AdvbnError(text, 'ADVBN_NATIVE', { cause: err });
  }
}

/** Runs an async native call and rejects with a typed error. */
export async function callNative<T>(fn: (native: NativeBinding) => Promise<T> | T): Promise<T> {
  const native = loadNative();
  try {
    return await fn(native);
  } catch (err) {
    throw wrapNativeError(err);
  }
}

/** Runs a synchronous native call and throws a typed error. */
export function callNativeSync<T>(fn: (native: NativeBinding) => T): T {
  const native = loadNative();
  try {
    return fn(native);
  } catch (err) {
    throw wrapNativeError(err);
  }
}
