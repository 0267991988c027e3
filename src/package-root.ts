// Paths inside the installed package. Source (src/) and build (dist/) files both sit one level
// below the package root, so the same relative step works for vitest and for the compiled code.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const packageRoot: string = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface PackageInfo {
  name: string;
  version: string;
}

let cached: PackageInfo | undefined;

/** Name and version from the package's own package.json (not the caller's cwd). */
export function packageInfo(): PackageInfo {
  if (!cached) {
    const parsed = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as PackageInfo;
    cached = { name: parsed.name, version: parsed.version };
  }
  return cached;
}
