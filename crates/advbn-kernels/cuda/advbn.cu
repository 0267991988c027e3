// AdvBN on x [N, C, HW] (contiguous): y = beta[c] * (x - mu[c]) + alpha[c] * mu[c], optional
// ReLU. params = [alpha (C), beta (C), mu (C)] in float32 whatever the dtype of x.
//
// Passes over the data: forward = channel sums (read x) + apply (read x, write y); backward =
// sums of g' and g'x (read x, g) + input gradient (read x, g, write dx) only when x needs it.
// Partial sums go to [C, chunks] then a second launch reduces them in a fixed order, so results
// are deterministic (no float atomics).
#include "common.cuh"

// grid (chunks, C); block reduces planes n in [chunk*per, ...) of channel c.
template <typename T>
__device__ void channel_sum_partials(const T* x, float* partial, int N, int C, int HW, int chunks) {
  __shared__ float scratch[32];
  const int c = blockIdx.y, chunk = blockIdx.x;
  const int per = (N + chunks - 1) / chunks;
  const int n0 = chunk * per, n1 = min(N, n0 + per);
  float acc = 0.f;
  for (int n = n0; n < n1; ++n) {
    const T* plane = x + ((size_t)n * C + c) * HW;
    for (int p = threadIdx.x; p < HW; p += blockDim.x) acc += to_float(plane[p]);
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[(size_t)c * chunks + chunk] = acc;
}

// out[k * C + c] = scale * sum_j partial[(k * C + c) * chunks + j] for k in 0..K; one thread per (k, c).
extern "C" __global__ void reduce_partials(const float* partial, float* out, int KC, int chunks, float scale) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= KC) return;
  float acc = 0.f;
  for (int j = 0; j < chunks; ++j) acc += partial[(size_t)i * chunks + j];
  out[i] = acc * scale;
}

// grid (N * C, HW chunks): one (n, c) plane per blockIdx.x (grid.y is limited to 65535), so
// no per-element index division.
template <typename T>
__device__ void apply(const T* x, const float* params, T* y, int C, int HW, int relu) {
  const int plane = blockIdx.x, c = plane % C;
  const float alpha = params[c], beta = params[C + c], mu = params[2 * C + c];
  const float shift = (alpha - beta) * mu;  // y = beta * x + (alpha - beta) * mu
  const T* xp = x + (size_t)plane * HW;
  T* yp = y + (size_t)plane * HW;
  for (int p = blockIdx.y * blockDim.x + threadIdx.x; p < HW; p += gridDim.y * blockDim.x) {
    float v = fmaf(beta, to_float(xp[p]), shift);
    if (relu) v = fmaxf(v, 0.f);
    yp[p] = from_float<T>(v);
  }
}

// Partial sums of g' and g' * x per channel: partial[(0 * C + c) * chunks + chunk] and
// partial[(1 * C + c) * chunks + chunk]; g' = g where the pre-activation is > 0 (PyTorch's
// ReLU gradient), or g without the clamp.
template <typename T>
__device__ void backward_partials(const T* x, const T* g, const float* params, float* partial, int N, int C, int HW,
                                  int chunks, int relu) {
  __shared__ float scratch[32];
  const int c = blockIdx.y, chunk = blockIdx.x;
  const float alpha = params[c], beta = params[C + c], mu = params[2 * C + c];
  const float shift = (alpha - beta) * mu;
  const int per = (N + chunks - 1) / chunks;
  const int n0 = chunk * per, n1 = min(N, n0 + per);
  float sg = 0.f, sgx = 0.f;
  for (int n = n0; n < n1; ++n) {
    const size_t base = ((size_t)n * C + c) * HW;
    for (int p = threadIdx.x; p < HW; p += blockDim.x) {
      const float xv = to_float(x[base + p]);
      float gv = to_float(g[base + p]);
      if (relu && !(fmaf(beta, xv, shift) > 0.f)) gv = 0.f;
      sg += gv;
      sgx = fmaf(gv, xv, sgx);
    }
  }
  sg = block_sum(sg, scratch);
  sgx = block_sum(sgx, scratch);
  if (threadIdx.x == 0) {
    partial[(size_t)c * chunks + chunk] = sg;
    partial[((size_t)C + c) * chunks + chunk] = sgx;
  }
}

// dx = beta * g' + (alpha - beta) * S1 / M, with sums = [S1 (C), ...].
template <typename T>
__device__ void input_grad(const T* x, const T* g, const float* params, const float* sums, T* dx, int C, int HW, int M,
                           int relu) {
  const int plane = blockIdx.x, c = plane % C;
  const float alpha = params[c], beta = params[C + c], mu = params[2 * C + c];
  const float shift = (alpha - beta) * mu;
  const float common = (alpha - beta) * sums[c] / (float)M;
  const size_t base = (size_t)plane * HW;
  for (int p = blockIdx.y * blockDim.x + threadIdx.x; p < HW; p += gridDim.y * blockDim.x) {
    float gv = to_float(g[base + p]);
    if (relu && !(fmaf(beta, to_float(x[base + p]), shift) > 0.f)) gv = 0.f;
    dx[base + p] = from_float<T>(fmaf(beta, gv, common));
  }
}

#define ADVBN_KERNELS(T, SUFFIX)                                                                            \
  extern "C" __global__ void channel_sum_partials_##SUFFIX(const T* x, float* partial, int N, int C, int HW,  \
                                                           int chunks) {                                     \
    channel_sum_partials<T>(x, partial, N, C, HW, chunks);                                                   \
  }                                                                                                          \
  extern "C" __global__ void advbn_apply_##SUFFIX(const T* x, const float* params, T* y, int C, int HW,       \
                                                  int relu) {                                                \
    apply<T>(x, params, y, C, HW, relu);                                                                     \
  }                                                                                                          \
  extern "C" __global__ void advbn_backward_partials_##SUFFIX(const T* x, const T* g, const float* params,    \
                                                              float* partial, int N, int C, int HW,           \
                                                              int chunks, int relu) {                        \
    backward_partials<T>(x, g, params, partial, N, C, HW, chunks, relu);                                     \
  }                                                                                                          \
  extern "C" __global__ void advbn_input_grad_##SUFFIX(const T* x, const T* g, const float* params,           \
                                                       const float* sums, T* dx, int C, int HW, int M,        \
                                                       int relu) {                                           \
    input_grad<T>(x, g, params, sums, dx, C, HW, M, relu);                                                   \
  }

ADVBN_KERNELS(float, f32)
ADVBN_KERNELS(__nv_bfloat16, bf16)
