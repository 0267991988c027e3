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
    bn = ours[f"bn_layer_{d}_fused_ms"]
    print(f"BN+ReLU layer {d}: fused {bn:.3f} ms = {ours[f'bn_layer_{d}_fused_gb_per_s'] / ours['copy_gb_per_s']:.0%} of copy bandwidth;"
          f" composite {ours[f'bn_layer_{d}_composite_ms']:.3f} ms; torch {ref[f'bn_layer_{d}_torch_ms']:.3f} ms -> {ref[f'bn_layer_{d}_torch_ms'] / bn:.2f}x")
for p in ["fp32", "tf32", "bf16"]:
    c, t = ours[f"conv3x3_{p}_ms"], ref[f"conv3x3_{p}_torch_ms"]
    print(f"conv3x3 fwd+bwd {p}: ours {c:.3f} ms ({ours[f'conv3x3_{p}_tflops']:.1f} TFLOP/s) vs torch {t:.3f} ms -> {t / c:.2f}x")
for m in ["advbn", "erm"]:
    for p in ["fp32", "tf32", "bf16"]:
        mine, theirs = ours[f"resnet50_{m}_{p}_images_per_s"], ref[f"resnet50_{m}_{p}_images_per_s"]
        print(f"ResNet-50 {m} step {p}: ours {mine:.1f} img/s vs torch {theirs:.1f} img/s -> {mine / theirs:.2f}x;"
              f" peak memory ours {ours[f'resnet50_{m}_{p}_peak_gib']:.2f} GiB vs torch {ref[f'resnet50_{m}_{p}_peak_gib']:.2f} GiB allocated"
              f" ({ref[f'resnet50_{m}_{p}_reserved_gib']:.2f} reserved)")
PY
