// 2-d max-pooling on x [N*C planes, H, W] (contiguous), PyTorch semantics: square kernel k,
// stride s, padding p <= k / 2 acting as -inf (so no window is empty), floor output size
// OH x OW. The argmax of a window is its first maximum in row-major order, or its last NaN
// (PyTorch's scan `v > best || isnan(v)`).
//
// Forward: one thread per output. Backward: one thread per input element, which recomputes
// the argmax of each window covering it and sums the gradients of those it wins, in increasing
// output order: deterministic, no atomics, nothing saved by the forward.
//
// Grid (N * C, chunks): one plane per blockIdx.x, blockIdx.y/threadIdx.x stride over it.
#include "common.cuh"

// Index within `plane` of the window's argmax (rows [h0, h0 + k) x cols [w0, w0 + k), clipped).
template <typename T>
__device__ __forceinline__ int window_argmax(const T* __restrict__ plane, int H, int W, int h0, int w0, int k) {
  const int hs = max(h0, 0), he = min(h0 + k, H);
  const int ws = max(w0, 0), we = min(w0 + k, W);
  int best_i = hs * W + ws;
  float best = to_float(plane[best_i]);
  for (int y = hs; y < he; ++y) {
    for (int x = ws; x < we; ++x) {
      const float v = to_float(plane[y * W + x]);
      if (v > best || isnan(v)) {
        best = v;
        best_i = y * W + x;
      }
    }
  }
  return best_i;
}

template <typename T>
__device__ void max_pool_forward(const T* __restrict__ x, T* __restrict__ y, int H, int W, int OH, int OW, int k,
                                 int s, int p) {
  const T* xp = x + (size_t)blockIdx.x * H * W;
  T* yp = y + (size_t)blockIdx.x * OH * OW;
  const int OHW = OH * OW;
  for (int o = blockIdx.y * blockDim.x + threadIdx.x; o < OHW; o += gridDim.y * blockDim.x) {
    const int oh = o / OW, ow = o - oh * OW;
    // Copy the element itself: exact in every dtype.
    yp[o] = xp[window_argmax(xp, H, W, oh * s - p, ow * s - p, k)];
  }
}

template <typename T>
__device__ void max_pool_backward(const T* __restrict__ x, const T* __restrict__ g, T* __restrict__ dx, int H, int W,
                                  int OH, int OW, int k, int s, int p) {
  const T* xp = x + (size_t)blockIdx.x * H * W;
  const T* gp = g + (size_t)blockIdx.x * OH * OW;
  T* dp = dx + (size_t)blockIdx.x * H * W;
  const int HW = H * W;
  for (int i = blockIdx.y * blockDim.x + threadIdx.x; i < HW; i += gridDim.y * blockDim.x) {
    const int ih = i / W, iw = i - ih * W;
    // Windows [o*s - p, o*s - p + k) containing ih: o in [ceil((ih + p - k + 1) / s), (ih + p) / s].
    const int oh0 = ih + p < k ? 0 : (ih + p - k) / s + 1, oh1 = min((ih + p) / s, OH - 1);
    const int ow0 = iw + p < k ? 0 : (iw + p - k) / s + 1, ow1 = min((iw + p) / s, OW - 1);
    float acc = 0.f;
    for (int oh = oh0; oh <= oh1; ++oh) {
      for (int ow = ow0; ow <= ow1; ++ow) {
        if (window_argmax(xp, H, W, oh * s - p, ow * s - p, k) == i) acc += to_float(gp[oh * OW + ow]);
      }
    }
    dp[i] = from_float<T>(acc);
  }
}

#define MAX_POOL_KERNELS(T, SUFFIX)                                                                           \
  extern "C" __global__ void max_pool2d_forward_##SUFFIX(const T* x, T* y, int H, int W, int OH, int OW,     \
                                                         int k, int s, int p) {                              \
    max_pool_forward<T>(x, y, H, W, OH, OW, k, s, p);                                                         \
  }                                                                                                          \
  extern "C" __global__ void max_pool2d_backward_##SUFFIX(const T* x, const T* g, T* dx, int H, int W,       \
                                                          int OH, int OW, int k, int s, int p) {             \
    max_pool_backward<T>(x, g, dx, H, W, OH, OW, k, s, p);                                                    \
  }

MAX_POOL_KERNELS(float, f32)
MAX_POOL_KERNELS(__nv_bfloat16, bf16)
