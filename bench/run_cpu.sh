#!/usr/bin/env bash
# The CPU step benchmark, ours and PyTorch eager side by side in one run (issue #10):
#   bash bench/run_cpu.sh            # all four workloads, 2 threads
#   THREADS=1 ROUNDS=3 bash bench/run_cpu.sh
#   CONV_LAYERS=1 bash bench/run_cpu.sh     # also every conv layer's three passes, both sides
#   ISA=avx2 bash bench/run_cpu.sh          # both sides capped at AVX2 (an AVX2-only CPU's kernels:
#                                           # ADVBN_CPU_ISA, ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA,
#                                           # the gemm crate built without AVX-512)
# Needs PyTorch in a venv outside the repo (TORCH_PY, default ~/torch-venv/bin/python):
#   python3 -m venv ~/torch-venv && ~/torch-venv/bin/pip install torch torchvision
# Each round runs ours, then PyTorch, on every workload; the table reports each side's best
# round median (the machine's quietest moment for both) and each round's ratio (ours against the
# PyTorch run right after it: lowest / median / highest); floors use the run's fastest GEMM.
# Logs and JSON go to $OUT (default /tmp/advbn-cpu-bench). Run it on a quiet machine: nothing
# else building.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/advbn-cpu-bench}"
threads="${THREADS:-2}"
rounds="${ROUNDS:-2}"
torch_py="${TORCH_PY:-$HOME/torch-venv/bin/python}"
mkdir -p "$out"
features=()
if [ "${ISA:-}" = avx2 ]; then
  export ADVBN_CPU_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
  # ADVBN_CPU_ISA caps our kernels; the gemm crate picks its own at run time, so it is built
  # without its AVX-512 kernels (the im2col passes' products, and the GEMM ceiling line).
  features=(--no-default-features)
fi
if [ ! -x "$torch_py" ]; then
  echo "PyTorch not found at $torch_py: python3 -m venv ~/torch-venv && ~/torch-venv/bin/pip install torch torchvision" >&2
  exit 2
fi

bench=$(cargo bench -j2 -p advbn-core "${features[@]}" --bench cpu_step --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cpu_step" and m.get("executable"):
        print(m["executable"])')
{ lscpu | sed -n 's/^Model name: *//p' | head -1 | tr -d '\n'; printf ' (%s)' "$(grep -o -w 'avx512f\|avx2\|fma' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')"; } > "$out/cpu.txt"
rustc --version > "$out/rustc.txt"

for round in $(seq 1 "$rounds"); do
  RAYON_NUM_THREADS="$threads" "$bench" --warm 2 --reps 9 --budget 40 > "$out/ours.$round.json" 2> "$out/ours.$round.log"
  "$torch_py" bench/torch_cpu_step.py --threads "$threads" --warm 2 --reps 9 --budget 40 > "$out/torch.$round.json" 2> "$out/torch.$round.log"
done
RAYON_NUM_THREADS="$threads" "$bench" --only gemm2048 > "$out/ours.gemm.json" 2> "$out/ours.gemm.log"
rm -f "$out/ours.conv.json" "$out/torch.conv.json"
if [ -n "${CONV_LAYERS:-}" ]; then
  RAYON_NUM_THREADS="$threads" "$bench" --only conv_layers --warm 3 --reps 15 > "$out/ours.conv.json" 2> "$out/ours.conv.log"
  "$torch_py" bench/torch_cpu_step.py --threads "$threads" --only conv_layers --gemm 0 > "$out/torch.conv.json" 2> "$out/torch.conv.log"
fi

python3 - "$out" "$rounds" "$threads" <<'PY'
import json, statistics, sys
out, rounds, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ours = [json.load(open(f"{out}/ours.{r}.json")) for r in range(1, rounds + 1)]
ref = [json.load(open(f"{out}/torch.{r}.json")) for r in range(1, rounds + 1)]
gemm = json.load(open(f"{out}/ours.gemm.json"))["gemm2048_gflops"]
cpu = open(f"{out}/cpu.txt").read().strip()
import os
isa = os.environ.get("ADVBN_CPU_ISA", "best available")
print(f"CPU: {cpu}; threads {threads}; kernels capped at: {isa}; L1d {ours[0].get('l1d_kb', '?')} KB (kernel blocks of half); {open(f'{out}/rustc.txt').read().strip()}, candle {ours[0]['candle']}; torch {ref[0]['torch']} ({ref[0]['cpu_capability']})")
# The floor's ceiling: the fastest 2048^3 GEMM of the run, either side's (a busy host's slow
# moment would otherwise lift every "% of floor").
ceiling = max([gemm] + [t["gemm2048_gflops"] for t in ref])
torch_gemm = "/".join(f"{t['gemm2048_gflops']:.0f}" for t in ref)
print(f"f32 GEMM 2048^3: gemm crate {gemm:.0f} GFLOP/s, torch {torch_gemm} GFLOP/s (by round); floors at {ceiling:.0f}")
names = {
    "resnet18_train": ("ResNet-18, 96 px, batch 32, whole-network training step (SGD momentum)", 32),
    "resnet18_eval": ("ResNet-18, 96 px, batch 32, eval forward", 32),
    "small_advbn": ("small ResNet depth 20 width 16, 32 px, batch 128, cut 1, AdvBN step K=6", 128),
    "small_erm": ("same model, plain tail step (ERM, cut 1)", 128),
}
print()
# "round ratios": each round's ours against the same round's PyTorch (run back to back), lowest,
# median and highest: on a noisy host, the pairing says more than the best rounds do.
print("| workload | GFLOP/step | floor img/s | PyTorch img/s | advbn img/s | ratio | round ratios (min / median / max) | advbn % of floor |")
print("|---|---|---|---|---|---|---|---|")
for key, (label, batch) in names.items():
    mine = max(o[f"{key}_images_per_s"] for o in ours)
    theirs = max(t[f"{key}_images_per_s"] for t in ref)
    paired = sorted(o[f"{key}_images_per_s"] / t[f"{key}_images_per_s"] for o, t in zip(ours, ref))
    median = statistics.median(paired)
    flop = ref[0]["step_gflop"][key]
    floor = batch / (flop / ceiling)
    print(f"| {label} | {flop:.1f} | {floor:.0f} | {theirs:.1f} | {mine:.1f} | {mine / theirs:.2f}x | {paired[0]:.2f}x / {median:.2f}x / {paired[-1]:.2f}x | {mine / floor:.0%} |")
if os.path.exists(f"{out}/ours.conv.json"):
    oc, tc = json.load(open(f"{out}/ours.conv.json")), json.load(open(f"{out}/torch.conv.json"))
    print()
    print("| conv layer | forward ms (torch / ours) | input gradient ms | weight gradient ms |")
    print("|---|---|---|---|")
    for key in [k for k in tc if k.startswith("conv_")]:
        t, o = tc[key], oc[key]
        print(f"| {key[5:-3]} | " + " | ".join(f"{a:.2f} / {b:.2f}" for a, b in zip(t, o)) + " |")
PY
