// What `advbn evaluate` and `advbn predict` share: the flags that pick and feed a model
// (--weights, --arch, --size, --batch-size, --device), checked before anything is read, the
// evaluation transforms, and the checks that a path the user named exists.
import { statSync } from 'node:fs';
import { centerCrop, resizeShorter, type Transform } from '../data/transforms.js';
import type { DeviceName } from '../devices.js';
import type { Model } from '../models.js';
import { DEVICE_PATTERN, optionRule } from '../validation.js';
import { badFlag, wholeFlag } from './args.js';
import { BUILDERS } from './fine-tune.js';

/** Default `--size`: ImageNet's centre crop. */
export const DEFAULT_SIZE = 224;

/** The --help lines of the shared flags, with the library's defaults. */
export function modelFlagsHelp(): string {
  return [
    "  --weights FILE      the weights: advbn's (saveWeights, advbn fine-tune's weights.safetensors; both",
    '                      BN branches) or torchvision/timm ResNet weights (.pth or .safetensors); the',
    "                      class count is that of the file's classifier (fc.weight)",
    `  --arch NAME         ${Object.keys(BUILDERS).join(', ')} (default resnet18)`,
    `  --size PX           resize the shorter side to round(PX / 0.875), centre-crop PX x PX, ImageNet`,
    `                      normalisation (default ${DEFAULT_SIZE})`,
    `  --batch-size N      images per forward pass (default ${optionRule('evaluate.batchSize').default})`,
    '  --device NAME       cpu, cuda, cuda:N or auto (default auto)',
  ].join('\n');
}

/** The shared flags as given on the command line. */
export interface ModelFlagValues {
  weights?: string;
  arch?: string;
  size?: string;
  'batch-size'?: string;
  device?: string;
}

/** The shared flags, checked. */
export interface ModelSettings {
  weights: string;
  arch: string;
  size: number;
  batchSize: number;
  device: DeviceName | undefined;
}

/** Checks the shared flags (a {@link UsageError} names the first bad one); touches no file but `--weights`' existence. */
export function readModelFlags(v: ModelFlagValues): ModelSettings {
  if (v.weights === undefined) throw badFlag('weights', 'is required (advbn or torchvision/timm ResNet weights, .safetensors or .pth)');
  const arch = v.arch ?? 'resnet18';
  if (!BUILDERS[arch]) throw badFlag('arch', `must be one of ${Object.keys(BUILDERS).join(', ')}`, arch);
  if (v.device !== undefined && !DEVICE_PATTERN.test(v.device)) throw badFlag('device', 'must be cpu, cuda, cuda:N or auto', v.device);
  const size = wholeFlag('size', v.size, 1) ?? DEFAULT_SIZE;
  const batchSize = wholeFlag('batch-size', v['batch-size'], 1) ?? optionRule('evaluate.batchSize').default!;
  return { weights: v.weights, arch, size, batchSize, device: v.device as DeviceName | undefined };
}

/** The evaluation transforms: shorter side to round(size / 0.875), centre crop `size` (then ImageNet normalisation). */
export function evalTransforms(size: number): Transform[] {
  return [resizeShorter(Math.round(size / 0.875)), centerCrop(size)];
}

/** `--name PATH` must be an existing folder. */
export function existingFolder(name: string, path: string): string {
  if (!statOrUndefined(path)?.isDirectory()) throw badFlag(name, statOrUndefined(path) ? 'must be a folder' : 'names no such folder', path);
  return path;
}

/** `--name PATH` must be an existing file. */
export function existingFile(name: string, path: string): string {
  if (!statOrUndefined(path)?.isFile()) throw badFlag(name, statOrUndefined(path) ? 'must be a file' : 'names no such file', path);
  return path;
}

const DOMAIN_NAME = /^[A-Za-z0-9][\w.-]*$/;

/**
 * The repeatable `--domain NAME=DIR` flags: NAME of letters, digits, `_ . -`, none of `reserved`
 * (the command's own test sets) or given twice, DIR an existing folder.
 */
export function readDomainFlags(specs: readonly string[] | undefined, reserved: readonly string[]): Record<string, string> {
  const domains: Record<string, string> = {};
  for (const spec of specs ?? []) {
    const at = spec.indexOf('=');
    const [name, dir] = at < 0 ? [spec, ''] : [spec.slice(0, at), spec.slice(at + 1)];
    if (!DOMAIN_NAME.test(name) || dir === '') throw badFlag('domain', 'must be NAME=DIR (NAME of letters, digits, _ . -), e.g. sketch=imagenet-sketch', spec);
    if (reserved.includes(name)) throw badFlag('domain', `may not be named ${name} (a test set of its own)`, spec);
    if (Object.hasOwn(domains, name)) throw badFlag('domain', `names ${name} twice`, spec);
    domains[name] = dir;
  }
  return domains;
}

/** Each `--domain` folder must exist (checked with the command's other paths, after its flags). */
export function existingDomainFolders(domains: Record<string, string>): void {
  for (const [name, dir] of Object.entries(domains)) {
    if (!statOrUndefined(dir)?.isDirectory()) throw badFlag('domain', `${name}: names no such folder`, `${name}=${dir}`);
  }
}

/** `--out DIR` may be missing (it is created later) but not a file. */
export function outFolder(path: string): string {
  if (statOrUndefined(path) && !statOrUndefined(path)!.isDirectory()) throw badFlag('out', 'must be a folder (it exists and is not one)', path);
  return path;
}

function statOrUndefined(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** The model of `--arch` with `--weights` (its class count from the file), on `--device`. */
export function buildModel(settings: ModelSettings): Promise<Model> {
  return BUILDERS[settings.arch]!({ weights: settings.weights, ...(settings.device !== undefined && { device: settings.device }) });
}
