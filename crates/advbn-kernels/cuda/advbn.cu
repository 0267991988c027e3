// AdvBN on x [N, C, HW] (contiguous): y = beta[c] * (x - mu[c]) + alpha[c] * mu[c], optional
// ReLU. params = [alpha (C), beta (C), mu (C)] in float32 whatever the dtype of x.
//
// Passes over the data: forward = channel means (BatchNorm's statistics kernel, read x) + apply (read x, write y); backward =
// sums of g' and g'x (read x, g) + input gradient (read x, g, write dx) only when x needs it.
// Partial sums go to [C, chunks] then a second launch reduces them in a fixed order, so results
// are deterministic (no float atomics).
#include "common.cuh"

// out[k * C + c] = scale * sum_j partial[(k * C + c) * chunks + j] for k in 0..K; one thread per (k, c).
extern "C" __global__ void reduce_partials(const float* partial, float* out, int KC, int chunks, float scale) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= KC) return;
  float acc = 0.f;
  for (int j = 0; j < chunks; ++j) acc += partial[(size_t)i * chunks + j];
  out[i] = acc * scale;
}

// y over every plane; grid (N * C, HW chunks).
template <typename T>
__device__ void apply(const T* x, const float* params, T* y, int C, int HW, int relu) {
  const int c = blockIdx.x % C;
  const float beta = params[C + c];
  const float shift = (params[c] - beta) * params[2 * C + c];  // y = beta * x + (alpha - beta) * mu
  for_each_in_plane(HW, [&](size_t i) {
    float v = fmaf(beta, to_float(x[i]), shift);
    if (relu) v = fmaxf(v, 0.f);
    y[i] = from_float<T>(v);
  });
}

// Partial sums of g' and g' * x per channel (grid (chunks, C)); g' = g where the pre-activation
// is > 0 (PyTorch's ReLU gradient), or g without the clamp.
template <typename T>
__device__ void backward_partials(const T* x, const T* g, const float* params, float* partial, int N, int C, int HW,
                                  int chunks, int relu) {
  const int c = blockIdx.y;
  const float beta = params[C + c];
  const float shift = (params[c] - beta) * params[2 * C + c];
  channel_pair_partials(partial, N, C, HW, chunks, [&](size_t i, float& sg, float& sgx) {
    const float xv = to_float(x[i]);
    float gv = to_float(g[i]);
    if (relu && !(fmaf(beta, xv, shift) > 0.f)) gv = 0.f;
    sg += gv;
    sgx = fmaf(gv, xv, sgx);
  });
}

// dx = beta * g' + (alpha - beta) * S1 / M, with sums = [S1 (C), ...]; grid (N * C, HW chunks).
template <typename T>
__device__ void input_grad(const T* x, const T* g, const float* params, const float* sums, T* dx, int C, int HW, int M,
                           int relu) {
  const int c = blockIdx.x % C;
  const float alpha = params[c], beta = params[C + c];
  const float shift = (alpha - beta) * params[2 * C + c];
  const float common = (alpha - beta) * sums[c] / (float)M;
  for_each_in_plane(HW, [&](size_t i) {
    float gv = to_float(g[i]);
    if (relu && !(fmaf(beta, to_float(x[i]), shift) > 0.f)) gv = 0.f;
    dx[i] = from_float<T>(fmaf(beta, gv, common));
  });
}

// The launch signatures BatchNorm's kernels share (ops/cuda/channels.rs), ending in the flags
// (eps, relu, train); AdvBN has no eps and no train mode, so its kernels ignore both.
#define ADVBN_KERNELS(T, SUFFIX)                                                                            \
  extern "C" __global__ void advbn_apply_##SUFFIX(const T* x, const float* params, T* y, int C, int HW,       \
                                                  float /*eps*/, int relu, int /*train*/) {                  \
    apply<T>(x, params, y, C, HW, relu);                                                                     \
  }                                                                                                          \
  extern "C" __global__ void advbn_backward_partials_##SUFFIX(const T* x, const T* g, const float* params,    \
                                                              float* partial, int N, int C, int HW,           \
                                                              int chunks, float /*eps*/, int relu,            \
                                                              int /*train*/) {                               \
    backward_partials<T>(x, g, params, partial, N, C, HW, chunks, relu);                                     \
  }                                                                                                          \
  extern "C" __global__ void advbn_input_grad_##SUFFIX(const T* x, const T* g, const float* params,           \
                                                       const float* sums, T* dx, int C, int HW, int M,        \
                                                       float /*eps*/, int relu, int /*train*/) {              \
    input_grad<T>(x, g, params, sums, dx, C, HW, M, relu);                                                   \
  }

ADVBN_KERNELS(float, f32)
ADVBN_KERNELS(__nv_bfloat16, bf16)
