// What the native side can run on, and a quick end-to-end check of each device.
import { cpus } from 'node:os';
import { callNative, callNativeSync } from './native.js';
import { DEVICE_PATTERN, DEVICE_RULE, invalidOption } from './validation.js';

/** A device to run on: `'cpu'`, `'cuda'` (the first GPU), `'cuda:N'`, or `'auto'` (CUDA when available, else CPU). */
export type DeviceName = 'cpu' | 'cuda' | 'auto' | `cuda:${number}`;

/** Build information of the loaded native addon. */
export interface NativeInfo {
  /** Version of the native crate. */
  version: string;
  /** `'cpu'` or `'cuda'` build. */
  variant: string;
  /** Version of Candle it was built with. */
  candleVersion: string;
}

/** A compute device. */
export interface DeviceInfo {
  /** Device string to pass as `device`: `'cpu'`, `'cuda:0'`, ... */
  id: string;
  /** `'cpu'` or `'cuda'`. */
  kind: string;
  /** Human-readable name. */
  name: string;
}

/** Result of {@link selfCheck}. */
export interface SelfCheckReport {
  /** Device checked. */
  device: string;
  /** Whether the check passed. */
  ok: boolean;
  /** Clean loss of the tiny AdvBN step. */
  cleanLoss: number;
  /** Adversarial loss of the tiny AdvBN step. */
  advLoss: number;
  /** Duration in milliseconds. */
  millis: number;
  /** What was checked, or what went wrong. */
  message: string;
}

/** Version and variant of the loaded native addon. */
export function nativeInfo(): NativeInfo {
  return callNativeSync((n) => n.nativeInfo());
}

/** Devices the loaded addon can use (always includes `'cpu'`). */
export function listDevices(): DeviceInfo[] {
  return callNativeSync((n) => n.listDevices());
}

/** Runs one tiny AdvBN training step on `device` and checks the losses are finite and sane. */
export async function selfCheck(device = 'cpu'): Promise<SelfCheckReport> {
  if (typeof device !== 'string' || !DEVICE_PATTERN.test(device)) throw invalidOption('selfCheck', 'device', device, DEVICE_RULE);
  return callNative((n) => n.selfCheck(device));
}

/** The CPU compute threads (`RAYON_NUM_THREADS`, else one per core) and the lanes they form. */
export interface CpuThreads {
  /** Threads every CPU kernel forks onto, over all lanes. */
  threads: number;
  /** Independent groups of those threads: each CPU job (a training step, a prediction) runs in one lane at a time. */
  lanes: number;
}

/** The CPU compute threads and their lanes (see {@link setCpuLanes}). */
export function cpuThreads(): CpuThreads {
  return callNativeSync((n) => n.cpuThreads());
}

/**
 * Splits the CPU compute threads into `lanes` groups of (nearly) equal size, for that many
 * models trained or evaluated side by side: each job then runs on threads of its own instead of
 * all jobs sharing every thread, so small models' ops do not wait on each other. The default is
 * 1 (every thread for each job). Results are the same either way (every sum is split the same
 * whatever the thread count); jobs already running finish where they started.
 */
export function setCpuLanes(lanes: number): void {
  const { threads } = cpuThreads();
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > threads) {
    throw invalidOption('setCpuLanes', 'lanes', lanes, `an integer from 1 to the number of compute threads (${threads})`);
  }
  callNativeSync((n) => n.setCpuLanes(lanes));
}

/** The machine a report's figures came from: `<cores> x <CPU model>; device <device>`. @internal */
export function hardwareDescription(device: string): string {
  return `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}; device ${device}`;
}
