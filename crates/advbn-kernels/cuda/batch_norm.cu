// BatchNorm2d fused, on x [N, C, HW] (contiguous), with an optional ReLU after it:
//   y = relu?((x - mean[c]) * rsqrt(var[c] + eps) * gamma[c] + beta[c])
// coeffs = [gamma (C), beta (C), mean (C), var (C)] in float32 whatever the dtype of x; in
// training mean/var are the batch statistics (bn_stats_*), in eval the running ones.
//
// Passes over the data: forward = statistics (read x, training only) + apply (read x, write y);
// backward = sums of g' and g' * xhat (read x, g; skipped when nothing needs them) + input
// gradient (read x, g, write dx). Sums are two-phase ([C, chunks] partials reduced in a fixed
// order), so results are deterministic (no float atomics).
#include "common.cuh"

struct Coeffs {
  float scale, shift, mean, inv_std;
};

// Per-channel scale/shift of y = x * scale + shift (before the ReLU).
__device__ __forceinline__ Coeffs load_coeffs(const float* coeffs, int C, int c, float eps) {
  Coeffs k;
  k.mean = coeffs[2 * C + c];
  k.inv_std = rsqrtf(coeffs[3 * C + c] + eps);
  k.scale = coeffs[c] * k.inv_std;
  k.shift = coeffs[C + c] - k.mean * k.scale;
  return k;
}

// Partial sums of (x - s) and (x - s)^2 per channel (grid (chunks, C)), s = x[0, c, 0] (a sample
// of the channel, so E[(x-s)^2] - E[x-s]^2 does not cancel catastrophically when |mean| >> std).
template <typename T>
__device__ void stats_partials(const T* x, float* partial, int N, int C, int HW, int chunks) {
  const float s = to_float(x[(size_t)blockIdx.y * HW]);
  channel_pair_partials(partial, N, C, HW, chunks, [&](size_t i, float& s1, float& s2) {
    const float d = to_float(x[i]) - s;
    s1 += d;
    s2 = fmaf(d, d, s2);
  });
}

// stats = [mean (C), biased var (C)] from the partials; one thread per channel, fixed order.
template <typename T>
__device__ void stats_finalize(const T* x, const float* partial, float* stats, int C, int HW, int chunks, int M) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s1 = 0.f, s2 = 0.f;
  for (int j = 0; j < chunks; ++j) {
    s1 += partial[(size_t)c * chunks + j];
    s2 += partial[((size_t)C + c) * chunks + j];
  }
  const float m1 = s1 / (float)M;
  stats[c] = to_float(x[(size_t)c * HW]) + m1;
  stats[C + c] = fmaxf(s2 / (float)M - m1 * m1, 0.f);
}

// y over every plane; grid (N * C, HW chunks).
template <typename T>
__device__ void apply(const T* x, const float* coeffs, T* y, int C, int HW, float eps, int relu) {
  const Coeffs k = load_coeffs(coeffs, C, blockIdx.x % C, eps);
  for_each_in_plane(HW, [&](size_t i) {
    float v = fmaf(to_float(x[i]), k.scale, k.shift);
    if (relu) v = fmaxf(v, 0.f);
    y[i] = from_float<T>(v);
  });
}

// Partial sums of g' and g' * xhat per channel (grid (chunks, C)); g' = g masked by the ReLU as
// PyTorch's ReLU gradient: zero where the pre-activation is <= 0.
template <typename T>
__device__ void backward_partials(const T* x, const T* g, const float* coeffs, float* partial, int N, int C, int HW,
                                  int chunks, float eps, int relu) {
  const Coeffs k = load_coeffs(coeffs, C, blockIdx.y, eps);
  channel_pair_partials(partial, N, C, HW, chunks, [&](size_t i, float& sg, float& sgx) {
    const float xv = to_float(x[i]);
    float gv = to_float(g[i]);
    if (relu && !(fmaf(xv, k.scale, k.shift) > 0.f)) gv = 0.f;
    sg += gv;
    sgx = fmaf(gv, (xv - k.mean) * k.inv_std, sgx);
  });
}

// Training: dx = scale * (g' - sum(g')/M - xhat * sum(g' xhat)/M); eval: dx = scale * g'.
// sums = [sum g' (C), sum g' xhat (C)], unused in eval; grid (N * C, HW chunks).
template <typename T>
__device__ void input_grad(const T* x, const T* g, const float* coeffs, const float* sums, T* dx, int C, int HW, int M,
                           float eps, int relu, int train) {
  const int c = blockIdx.x % C;
  const Coeffs k = load_coeffs(coeffs, C, c, eps);
  const float mean_g = train ? sums[c] / (float)M : 0.f;
  const float mean_gx = train ? sums[C + c] / (float)M : 0.f;
  for_each_in_plane(HW, [&](size_t i) {
    const float xv = to_float(x[i]);
    float gv = to_float(g[i]);
    if (relu && !(fmaf(xv, k.scale, k.shift) > 0.f)) gv = 0.f;
    const float xhat = (xv - k.mean) * k.inv_std;
    dx[i] = from_float<T>(k.scale * (gv - mean_g - xhat * mean_gx));
  });
}

// apply, backward_partials and input_grad have the launch signatures AdvBN's kernels share
// (ops/cuda/channels.rs), ending in (eps, relu, train); train only matters to the input gradient.
#define BN_KERNELS(T, SUFFIX)                                                                                  \
  extern "C" __global__ void bn_stats_partials_##SUFFIX(const T* x, float* partial, int N, int C, int HW,       \
                                                        int chunks) {                                          \
    stats_partials<T>(x, partial, N, C, HW, chunks);                                                           \
  }                                                                                                            \
  extern "C" __global__ void bn_stats_finalize_##SUFFIX(const T* x, const float* partial, float* stats, int C,  \
                                                        int HW, int chunks, int M) {                           \
    stats_finalize<T>(x, partial, stats, C, HW, chunks, M);                                                    \
  }                                                                                                            \
  extern "C" __global__ void bn_apply_##SUFFIX(const T* x, const float* coeffs, T* y, int C, int HW, float eps, \
                                               int relu, int /*train*/) {                                      \
    apply<T>(x, coeffs, y, C, HW, eps, relu);                                                                  \
  }                                                                                                            \
  extern "C" __global__ void bn_backward_partials_##SUFFIX(const T* x, const T* g, const float* coeffs,         \
                                                           float* partial, int N, int C, int HW, int chunks,   \
                                                           float eps, int relu, int /*train*/) {               \
    backward_partials<T>(x, g, coeffs, partial, N, C, HW, chunks, eps, relu);                                  \
  }                                                                                                            \
  extern "C" __global__ void bn_input_grad_##SUFFIX(const T* x, const T* g, const float* coeffs,                \
                                                    const float* sums, T* dx, int C, int HW, int M, float eps, \
                                                    int relu, int train) {                                     \
    input_grad<T>(x, g, coeffs, sums, dx, C, HW, M, eps, relu, train);                                         \
  }

BN_KERNELS(float, f32)
BN_KERNELS(__nv_bfloat16, bf16)
