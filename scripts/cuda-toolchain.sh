#!/usr/bin/env bash
# Installs the pinned NVIDIA CUDA 13.0 build toolchain from PyPI wheels into .cuda/ (git-ignored)
# so the CUDA variant of the addon builds on a machine with no GPU and no CUDA install.
# Prints the environment to use; `npm run build:cuda` sources it.
#
# Target choice (CUDA_COMPUTE_CAP):
#   90 (default) -> sm_90a PTX: H100/H200 only, uses Hopper-only instructions.
#   80           -> compute_80 PTX: portable, newer GPUs JIT-compile it at first load.
# The driver must support the PTX ISA of nvcc 13.0 (driver >= 580).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/.cuda"
wheels=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
)
if [ ! -x "$dir/site/nvidia/cu13/bin/nvcc" ]; then
  echo "installing the CUDA 13.0 toolchain wheels into $dir (once)" >&2
  python3 -m pip install --quiet --no-deps --target "$dir/site" "${wheels[@]}" >&2
fi
cuda="$dir/site/nvidia/cu13"
# Link-time stand-ins for the driver and math libraries: shared objects with the real sonames
# that define every function cudarc declares for them (as empty bodies, never called). Linking
# against them records the sonames as needed libraries; when the addon loads on the GPU machine,
# the real libraries (CUDA 13 driver 580, cuBLAS 13, cuRAND 10, NVRTC 13, cuDNN 9) provide the
# functions. Executables (tests, benchmarks) need the symbols defined at link time too.
stubs="$dir/stubs"
if [ ! -f "$stubs/.complete" ]; then
  rm -rf "$stubs" && mkdir -p "$stubs"
  cudarc=$(cd "$root" && cargo metadata --format-version 1 --all-features 2>/dev/null \
    | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc").rsplit("/",1)[0])')
  for spec in cuda:1:driver cublas:13:cublas cublasLt:13:cublaslt curand:10:curand nvrtc:13:nvrtc cudnn:9:cudnn; do
    IFS=: read -r name major module <<<"$spec"
    grep -ohE '^\s*(pub\s+)?(unsafe\s+)?fn [A-Za-z_][A-Za-z0-9_]*\(' "$cudarc/src/$module/sys/mod.rs" \
      | sed -E 's/.*fn ([A-Za-z0-9_]+)\(/\1/' | sort -u | sed 's/.*/void &(void) {}/' > "$stubs/$name.c"
    gcc -shared -fPIC -o "$stubs/lib$name.so.$major" -Wl,-soname,"lib$name.so.$major" "$stubs/$name.c"
    ln -sf "lib$name.so.$major" "$stubs/lib$name.so"
  done
  ln -sf "$cuda/lib/libcudart.so.13" "$stubs/libcudart.so"
  touch "$stubs/.complete"
fi
cat <<ENV
export CUDA_HOME="$cuda"
export CUDA_PATH="$cuda"
export PATH="$cuda/bin:\$PATH"
export CUDA_COMPUTE_CAP="\${CUDA_COMPUTE_CAP:-90}"
export LIBRARY_PATH="$stubs:$cuda/lib\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export RUSTFLAGS="-L $stubs -L $cuda/lib \${RUSTFLAGS:-}"
ENV
