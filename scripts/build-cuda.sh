#!/usr/bin/env bash
# Builds the CUDA variant of the addon on a machine with no GPU (see scripts/cuda-toolchain.sh
# for the toolchain and the CUDA_COMPUTE_CAP choice) into native/advbn.linux-x64-gnu.cuda.node.
# With --device-bundle, also packs what a GPU machine without cargo/node needs into .device/:
# the addon and the GPU test binary (xz), node itself (xz), and the compiled TypeScript.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
eval "$(bash scripts/cuda-toolchain.sh)"
export CARGO_TARGET_DIR="$root/target/cuda"
jobs="${CARGO_BUILD_JOBS:-2}"
cargo build --release -j"$jobs" -p advbn-node --features cudnn
mkdir -p native
cp "$CARGO_TARGET_DIR/release/libadvbn_node.so" native/advbn.linux-x64-gnu.cuda.node
echo "built native/advbn.linux-x64-gnu.cuda.node (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP)"
if [ "${1:-}" = "--device-bundle" ]; then
  mkdir -p .device
  cargo test --release -j"$jobs" -p advbn-core --features cudnn --test gpu_kernels --no-run --message-format=json \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const l of s.split("\n")){try{const m=JSON.parse(l);if(m.executable&&m.target.name==="gpu_kernels")console.log(m.executable)}catch{}}})' \
    > .device/gpu_kernels.path
  xz -T2 -9 -c "$(cat .device/gpu_kernels.path)" > .device/gpu_kernels.xz
  xz -T2 -9 -c native/advbn.linux-x64-gnu.cuda.node > .device/advbn.cuda.node.xz
  cargo build --release -j"$jobs" -p advbn-core --features cudnn --example bench_gpu
  xz -T2 -9 -c "$CARGO_TARGET_DIR/release/examples/bench_gpu" > .device/bench_gpu.xz
  [ -f .device/node.xz ] || xz -T2 -9 -c "$(command -v node)" > .device/node.xz
  npm run build >/dev/null
  tar -cf .device/dist.tar dist package.json
  du -sh .device/*
fi
