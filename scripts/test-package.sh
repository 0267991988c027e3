#!/usr/bin/env bash
# Installs the tarballs from `npm run package` into a fresh project with NO Rust toolchain on
# PATH and runs `advbn doctor --json` there: the prebuilt path must need neither cargo nor a
# download of a binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version=$(node -p "require('$root/package.json').version")
lib="$root/pack/advbn-$version.tgz"
cpu="$root/pack/advbn-linux-x64-gnu-$version.tgz"
[ -f "$lib" ] && [ -f "$cpu" ] || { echo "run npm run package first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
# PATH without cargo/rustc: only the directories of node and the basic tools.
clean_path="$(dirname "$(command -v node)"):/usr/bin:/bin"
if PATH="$clean_path" command -v cargo >/dev/null; then echo "cargo still on PATH" >&2; exit 1; fi
PATH="$clean_path" npm install --no-audit --no-fund --prefer-offline "$cpu" "$lib"
PATH="$clean_path" npx --no-install advbn doctor --json > doctor.json
node -e '
const r = JSON.parse(require("fs").readFileSync("doctor.json", "utf8"));
if (!r.ok) { console.error(JSON.stringify(r, null, 2)); process.exit(1); }
console.log(`installed without cargo: ${r.load.path} (${r.load.variant}); ${r.checks.length} self-check(s) ok`);
'

# The library as users consume it: ESM import, CommonJS require (Node >= 20.19 loads the ES
# module synchronously; no separate CJS build to drift) and a TypeScript NodeNext project with
# both module kinds. Each runs one fine-tune epoch on a tiny model (ESM and CommonJS also draw
# the training-curves chart).
cat > step.txt <<'JS'
const n = 8, size = 16;
const data = new Float32Array(n * 3 * size * size).map((_, i) => (i % 7) / 7);
const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
const run = async (advbn, kind) => {
  const dataset = advbn.fromArrays({ data, shape: [n, 3, size, size] }, labels);
  const model = await advbn.smallResnet({ numClasses: 2, depth: 8, width: 4, device: 'cpu' });
  // The training-curves chart: resvg's prebuilt binary and the font package, from the tarball's dependencies.
  const curves = `curves-${kind.split(' ')[0]}.png`;
  const history = await advbn.fineTune(model, { data: dataset, epochs: 1, batchSize: 4, callbacks: [advbn.trainingCurves(curves)] });
  if (history.history.loss.length !== 1 || !Number.isFinite(history.history.loss[0])) throw new Error(`${kind}: bad history`);
  const { readFileSync } = await import('node:fs');
  const png = readFileSync(curves);
  if (png.subarray(1, 4).toString() !== 'PNG' || png.length < 5000) throw new Error(`${kind}: no curves chart`);
  console.log(`${kind}: one fine-tune epoch, loss ${history.history.loss[0].toFixed(4)}, ${curves} ${png.length} bytes`);
  model.dispose();
};
JS
{ echo "import * as advbn from 'advbn';"; cat step.txt; echo "await run(advbn, 'ESM import');"; } > esm.mjs
{ echo "const advbn = require('advbn');"; cat step.txt; echo "run(advbn, 'CommonJS require').catch((e) => { console.error(e); process.exit(1); });"; } > cjs.cjs
PATH="$clean_path" node esm.mjs
PATH="$clean_path" node cjs.cjs
mkdir ts && cd ts
cat > tsconfig.json <<'JSON'
{ "compilerOptions": { "module": "nodenext", "moduleResolution": "nodenext", "target": "es2022", "strict": true, "outDir": "out", "skipLibCheck": true, "types": ["node"], "typeRoots": ["TYPE_ROOTS"] }, "files": ["esm.mts", "cjs.cts"] }
JSON
cat > esm.mts <<'TS'
import { fineTune, fromArrays, smallResnet, type History } from 'advbn';
const data = new Float32Array(4 * 3 * 16 * 16);
const model = await smallResnet({ numClasses: 2, depth: 8, width: 4, device: 'cpu' });
const history: History = await fineTune(model, { data: fromArrays({ data, shape: [4, 3, 16, 16] }, Int32Array.from([0, 1, 0, 1])), epochs: 1, batchSize: 4 });
console.log(`TypeScript ESM: ${history.history.loss.length} epoch`);
TS
cat > cjs.cts <<'TS'
import advbn = require('advbn');
const data = new Float32Array(4 * 3 * 16 * 16);
void (async () => {
  const model = await advbn.smallResnet({ numClasses: 2, depth: 8, width: 4, device: 'cpu' });
  const history: advbn.History = await advbn.fineTune(model, { data: advbn.fromArrays({ data, shape: [4, 3, 16, 16] }, Int32Array.from([0, 1, 0, 1])), epochs: 1, batchSize: 4 });
  console.log(`TypeScript CommonJS: ${history.history.loss.length} epoch`);
})();
TS
# As `tsc --init` sets it up (skipLibCheck, Node's types; here the repository's @types/node and
# TypeScript, no download); the project's node_modules is one folder up.
sed -i "s|TYPE_ROOTS|$root/node_modules/@types|" tsconfig.json
ln -s ../node_modules node_modules
"$root/node_modules/.bin/tsc" -p tsconfig.json
PATH="$clean_path" node out/esm.mjs
PATH="$clean_path" node out/cjs.cjs

# Each tarball is publishable as it stands (what the release workflow runs, without the upload).
cd "$work"
for tgz in "$root"/pack/*.tgz; do
  out=$(npm publish --dry-run "$tgz" 2>&1) || { echo "$out" >&2; exit 1; }
  echo "$out" | grep -E '^\+ ' || { echo "$out" >&2; echo "npm publish --dry-run $tgz: no package line" >&2; exit 1; }
done
