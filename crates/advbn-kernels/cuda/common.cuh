// Shared helpers: dtype conversion and block-wide reductions.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

// Sum over the block; every thread gets the result. blockDim.x must be a multiple of 32, <= 1024.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  return v;
}

// Two per-channel partial sums over a chunk of the batch, for a grid (chunks, C):
// add(i, s1, s2) accumulates element i of plane (n, c) for every n of this block's chunk; the
// block's totals go to partial[(0 * C + c) * chunks + chunk] and partial[(1 * C + c) * chunks +
// chunk]. A fixed launch shape gives a fixed summation order (no float atomics).
template <typename Add>
__device__ __forceinline__ void channel_pair_partials(float* partial, int N, int C, int HW, int chunks, Add add) {
  __shared__ float scratch[32];
  const int c = blockIdx.y, chunk = blockIdx.x;
  const int per = (N + chunks - 1) / chunks;
  const int n0 = chunk * per, n1 = min(N, n0 + per);
  float s1 = 0.f, s2 = 0.f;
  for (int n = n0; n < n1; ++n) {
    const size_t base = ((size_t)n * C + c) * HW;
    for (int p = threadIdx.x; p < HW; p += blockDim.x) add(base + p, s1, s2);
  }
  s1 = block_sum(s1, scratch);
  s2 = block_sum(s2, scratch);
  if (threadIdx.x == 0) {
    partial[(size_t)c * chunks + chunk] = s1;
    partial[((size_t)C + c) * chunks + chunk] = s2;
  }
}

// For a grid (N * C, HW chunks): f(i) for every element i of plane blockIdx.x (one (n, c) plane
// per block row, so no per-element index division).
template <typename F>
__device__ __forceinline__ void for_each_in_plane(int HW, F f) {
  const size_t base = (size_t)blockIdx.x * HW;
  for (int p = blockIdx.y * blockDim.x + threadIdx.x; p < HW; p += gridDim.y * blockDim.x) f(base + p);
}
