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
