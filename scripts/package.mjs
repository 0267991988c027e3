#!/usr/bin/env node
// `npm run package`: builds installable tarballs into pack/ (git-ignored):
//   advbn-<v>.tgz                      the library (TypeScript build, crate sources for source
//                                      builds, no binary); its packed package.json names the
//                                      platform packages as optionalDependencies
//   advbn-linux-x64-gnu-<v>.tgz        the CPU addon (@advbn/linux-x64-gnu)
//   advbn-linux-x64-gnu-cuda-<v>.tgz   the CUDA addon (@advbn/linux-x64-gnu-cuda), when
//                                      native/advbn.linux-x64-gnu.cuda.node exists (npm run build:cuda)
// The loader prefers the CUDA package, falls back to the CPU one, and reports why (advbn doctor).
// Nothing here or in the install script downloads anything.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const out = join(root, 'pack');
const stage = join(out, 'stage');
rmSync(out, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });

const run = (cmd, args, cwd = root) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
const pack = (dir) => run('npm', ['pack', '--silent', '--pack-destination', out], dir).trim().split('\n').pop();

const variants = [
  { suffix: '', file: 'advbn.linux-x64-gnu.node', description: 'CPU build' },
  { suffix: '-cuda', file: 'advbn.linux-x64-gnu.cuda.node', description: 'CUDA 13 build (needs driver >= 580 and the CUDA 13 runtime libraries)' },
];
if (!existsSync(join(root, 'native', variants[0].file))) {
  console.log('building the CPU addon (cargo build --release -p advbn-node)');
  execFileSync('node', [join(root, 'scripts', 'install.mjs')], { cwd: root, stdio: 'inherit', env: { ...process.env, ADVBN_FORCE_BUILD: '1' } });
}
const optional = {};
for (const v of variants) {
  const binary = join(root, 'native', v.file);
  if (!existsSync(binary)) {
    console.log(`skipping @advbn/linux-x64-gnu${v.suffix}: ${binary} not built`);
    continue;
  }
  const name = `@advbn/linux-x64-gnu${v.suffix}`;
  const dir = join(stage, `linux-x64-gnu${v.suffix}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(binary, join(dir, v.file));
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify(
      {
        name,
        version: pkg.version,
        description: `advbn native addon, ${v.description}`,
        license: pkg.license,
        os: ['linux'],
        cpu: ['x64'],
        libc: ['glibc'],
        main: v.file,
        files: [v.file],
      },
      null,
      2,
    )}\n`,
  );
  console.log(`packed ${pack(dir)}`);
  optional[name] = pkg.version;
}

// The library: the repo's package, with the platform packages as optional dependencies
// (kept out of the repo's own package.json so a clone's `npm ci` never looks for them).
const lib = join(stage, 'advbn');
mkdirSync(lib, { recursive: true });
run('npm', ['run', 'build', '--silent']);
const files = run('npm', ['pack', '--dry-run', '--json'], root);
for (const { path } of JSON.parse(files)[0].files) {
  if (path.startsWith('native/') && path.endsWith('.node')) continue;
  mkdirSync(dirname(join(lib, path)), { recursive: true });
  copyFileSync(join(root, path), join(lib, path));
}
const libPkg = { ...pkg, optionalDependencies: { ...(pkg.optionalDependencies ?? {}), ...optional } };
delete libPkg.devDependencies;
delete libPkg.scripts.prepare;
writeFileSync(join(lib, 'package.json'), `${JSON.stringify(libPkg, null, 2)}\n`);
console.log(`packed ${pack(lib)}`);
rmSync(stage, { recursive: true, force: true });
