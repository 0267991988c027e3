#!/usr/bin/env bash
# Side by side on this machine: advbn's digits protocol (reproduce, no corruptions, no AugMix)
# and its PyTorch twin (bench/torch_digits_lodo.py) on the exported image folders, then a table.
#   HELD_OUT=mnist_m,sketch SEEDS=2 [BASELINE_LR=3e-3] bash bench/run_digits_twin.sh [OUT_DIR]
# BASELINE_LR overrides the baselines' AdamW learning rate on both sides (default: the preset's).
# Needs a built package (npm run build) and PyTorch in $TORCH_PY (default ~/torch-venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/advbn-digits-twin}
HELD_OUT=${HELD_OUT:-mnist,mnist_m,inverted,colorized,sketch,low_light}
SEEDS=${SEEDS:-2}
METHODS=${METHODS:-erm,advbn,mixstyle,dsu,advbn_mixstyle,advbn_dsu}
TORCH_PY=${TORCH_PY:-$HOME/torch-venv/bin/python}
BASELINE_LR=${BASELINE_LR:-}
rm -rf "$OUT" && mkdir -p "$OUT"
# Seed 0: train and test splits; seeds >= 1: their train splits (reproduce tests every pair on seed 0's).
node dist/cli/main.js digits export --out "$OUT/export/seed0" --split both --seed 0 > /dev/null
for ((s = 1; s < SEEDS; s++)); do
  node dist/cli/main.js digits export --out "$OUT/export/seed$s" --split train --seed "$s" > /dev/null
done
node - "$OUT" "$HELD_OUT" "$SEEDS" "$METHODS" "$BASELINE_LR" <<'JS'
const [out, heldOut, seeds, methods, baselineLr] = process.argv.slice(2);
const { reproduce, DIGITS_PRESET } = await import(`${process.cwd()}/dist/index.js`);
const baseline = baselineLr ? { baseline: { ...DIGITS_PRESET.baseline, lr: Number(baselineLr) } } : {};
const t = performance.now();
await reproduce({ out: `${out}/ours`, seeds: Number(seeds), methods: methods.split(','), device: 'cpu', digits: { heldOut: heldOut.split(','), corruptions: false, ...baseline } });
console.log(`ours: ${((performance.now() - t) / 1000).toFixed(0)} s`);
JS
"$TORCH_PY" bench/torch_digits_lodo.py "$OUT/export" --held-out "$HELD_OUT" --seeds "$SEEDS" --methods "$METHODS" --threads 2 ${BASELINE_LR:+--baseline-lr "$BASELINE_LR"} --out "$OUT/torch.json"
"$TORCH_PY" bench/compare_digits_twin.py "$OUT/ours/results.json" "$OUT/torch.json" | tee "$OUT/comparison.md"
