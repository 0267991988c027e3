/**
 * Runtime: devices, which native binary is loaded and why, and the typed errors every function
 * throws.
 *
 * @module Runtime
 */
export {
  cpuThreads,
  listDevices,
  nativeInfo,
  selfCheck,
  setCpuLanes,
  type CpuThreads,
  type DeviceInfo,
  type DeviceName,
  type NativeInfo,
  type SelfCheckReport,
} from '../devices.js';
export { nativeLoadReport, type NativeLoadAttempt, type NativeLoadReport, type NativeVariant } from '../native.js';
export {
  AbortError,
  AdvbnError,
  DeviceError,
  DisposedError,
  InvalidDataError,
  InvalidOptionError,
  NativeLoadError,
  NativePanicError,
  TrainingDivergedError,
  type AdvbnErrorOptions,
} from '../errors.js';
