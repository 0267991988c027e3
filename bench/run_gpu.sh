#!/usr/bin/env bash
# Runs on the GPU machine (no cargo, no node needed): our bench_gpu and the PyTorch reference in
# one run, then prints the ratio table. Prepare here first:
#   bash scripts/build-cuda.sh --device-bundle   (builds .device/: addon, GPU tests, bench_gpu)
# and call the device tool with carry [".device"] and: bash bench/run_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/advbn-bench}"
mkdir -p "$out"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
xz -dc .device/bench_gpu.xz > /tmp/bench_gpu && chmod +x /tmp/bench_gpu
/tmp/bench_gpu > "$out/ours.json" 2> "$out/ours.log"
python3 bench/torch_reference.py > "$out/torch.json" 2> "$out/torch.log"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
ours, ref = json.load(open(f"{out}/ours.json")), json.load(open(f"{out}/torch.json"))
print(f"GPU {ref['gpu']}, torch {ref['torch']}")
print(f"copy bandwidth: ours {ours['copy_gb_per_s']:.0f} GB/s, torch {ref['copy_gb_per_s']:.0f} GB/s")
for d in ["f32", "bf16"]:
    fused = ours[f"advbn_layer_{d}_fused_ms"]
    print(f"AdvBN layer {d}: fused {fused:.3f} ms = {ours[f'advbn_layer_{d}_fused_gb_per_s'] / ours['copy_gb_per_s']:.0%} of copy bandwidth;"
          f" torch eager {ref[f'advbn_layer_{d}_torch_eager_ms']:.3f} ms -> {ref[f'advbn_layer_{d}_torch_eager_ms'] / fused:.2f}x")
for m in ["advbn", "erm"]:
    mine = ours[f"resnet50_{m}_images_per_s"]
    for p in ["fp32", "tf32", "bf16"]:
        theirs = ref[f"resnet50_{m}_{p}_images_per_s"]
        print(f"ResNet-50 {m} step: ours fp32 {mine:.1f} img/s vs torch {p} {theirs:.1f} img/s -> {mine / theirs:.2f}x")
PY
