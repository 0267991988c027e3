#!/usr/bin/env node
// Install step of the `advbn` package: make sure a native addon exists.
//
// Order of preference, and why:
// 1. A prebuilt package (`@advbn/linux-x64-gnu`) that npm resolved as an optional dependency.
// 2. A binary already in `native/` (a previous build, or one shipped in the tarball),
//    unless ADVBN_FORCE_BUILD is set.
// 3. A source build with the local Rust toolchain (`cargo`).
// Nothing is ever downloaded here: installs that fetch binaries are the most common source
// of broken installs in the Node ML ecosystem.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const nativeFile = join(packageRoot, 'native', 'advbn.linux-x64-gnu.node');
const prebuiltPackage = '@advbn/linux-x64-gnu';
const forceBuild = Boolean(process.env.ADVBN_FORCE_BUILD);

function log(message) {
  console.log(`[advbn install] ${message}`);
}

function fail(message) {
  console.error(`[advbn install] ERROR: ${message}`);
  process.exit(1);
}

function resolvePrebuiltPackage() {
  try {
    return createRequire(join(packageRoot, 'package.json')).resolve(prebuiltPackage);
  } catch {
    return undefined;
  }
}

function buildJobs() {
  const fromEnv = Number.parseInt(process.env.CARGO_BUILD_JOBS ?? '', 10);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : availableParallelism();
}

function buildFromSource() {
  const probe = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    fail(
      'no prebuilt native addon was found and `cargo` is not on PATH, so it cannot be built ' +
        'from source. Install Rust (https://rustup.rs) and run `npm install` again, or install ' +
        `the prebuilt package ${prebuiltPackage}.`,
    );
  }
  if (!existsSync(join(packageRoot, 'Cargo.toml'))) {
    fail(`Cargo.toml is missing from ${packageRoot}: this copy of advbn cannot be built from source.`);
  }
  const args = ['build', '--release', '-p', 'advbn-node', `-j${buildJobs()}`];
  log(`building the native addon from source: cargo ${args.join(' ')} (${probe.stdout.trim()})`);
  const build = spawnSync('cargo', args, { cwd: packageRoot, stdio: 'inherit' });
  if (build.status !== 0) {
    fail(`cargo build failed (exit ${build.status ?? build.signal}); see the output above.`);
  }
  const targetDir = process.env.CARGO_TARGET_DIR ?? join(packageRoot, 'target');
  const builtLibrary = join(targetDir, 'release', 'libadvbn_node.so');
  if (!existsSync(builtLibrary)) {
    fail(`cargo reported success but ${builtLibrary} does not exist.`);
  }
  mkdirSync(dirname(nativeFile), { recursive: true });
  copyFileSync(builtLibrary, nativeFile);
  log(`installed ${nativeFile}`);
}

const prebuilt = resolvePrebuiltPackage();
if (prebuilt && !forceBuild) {
  log(`using the prebuilt addon from ${prebuiltPackage} (${prebuilt}); nothing to build.`);
} else if (existsSync(nativeFile) && !forceBuild) {
  log(`native addon already present at ${nativeFile}; nothing to build (set ADVBN_FORCE_BUILD=1 to rebuild).`);
} else {
  if (forceBuild) log('ADVBN_FORCE_BUILD is set: building from source.');
  buildFromSource();
}
