// Fused optimiser updates (PyTorch's SGD with momentum / Nesterov / coupled weight decay, and
// AdamW), in place. Every kernel writes ONLY its first pointer `x`; `a` and `b` are read and may
// alias each other (ops with one input pass it twice), never x. Elements are float32 or bf16
// (all arguments of one launch share the dtype); the math is float32.
//
// Signature of every kernel: (T* x, const T* a, const T* b, size_t n, OptimHyper h)
//   sgd_momentum : x = buf, a = g, b = p       buf = momentum * buf + (g + wd * p)  (first: g + wd * p)
//   sgd_param    : x = p,   a = g, b = buf     p -= lr * d, d = g' | buf | g' + momentum * buf (h.mode 0/1/2)
//   adamw_moments: x = [m; v] (2n), a = g      m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2
//   adamw_param  : x = p,   a = m,  b = v      p = p * decay - lr * (m * inv_bc1) / (sqrt(v * inv_bc2) + eps)
//
// Reads are skipped where the update does not use them (p in sgd_momentum without weight decay,
// g in sgd_param with plain momentum, the old state on the first step).
//
// Grid-stride loops over 16-byte packs (4 floats / 8 bf16) when every pointer is 16-byte aligned,
// then the remaining elements one by one (all of them when a pointer is not aligned).
#include "common.cuh"

// Must match `OptimHyper` in advbn-core/src/ops/cuda/optim.rs (repr(C)).
struct OptimHyper {
  float lr, weight_decay, momentum;
  float beta1, beta2, one_minus_beta1, one_minus_beta2;
  float eps, decay, inv_bc1, inv_bc2;
  int mode;   // sgd_param: 0 = no momentum, 1 = momentum, 2 = Nesterov
  int first;  // state kernels: the first step (previous contents ignored)
};

template <typename T> struct alignas(16) Pack {
  static constexpr int N = 16 / sizeof(T);
  T v[N];
};

template <int W> struct Width {
  static constexpr int value = W;
};

template <int W, typename T> __device__ __forceinline__ void load(const T* p, float (&out)[W]) {
  if constexpr (W == 1) {
    out[0] = to_float(*p);
  } else {
    static_assert(W == Pack<T>::N, "pack width");
    const Pack<T> pk = *reinterpret_cast<const Pack<T>*>(p);
#pragma unroll
    for (int k = 0; k < W; ++k) out[k] = to_float(pk.v[k]);
  }
}

template <int W, typename T> __device__ __forceinline__ void store(T* p, const float (&in)[W]) {
  if constexpr (W == 1) {
    *p = from_float<T>(in[0]);
  } else {
    Pack<T> pk;
#pragma unroll
    for (int k = 0; k < W; ++k) pk.v[k] = from_float<T>(in[k]);
    *reinterpret_cast<Pack<T>*>(p) = pk;
  }
}

__device__ __forceinline__ bool aligned16(const void* a, const void* b, const void* c, const void* d) {
  return ((reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b) | reinterpret_cast<uintptr_t>(c) |
           reinterpret_cast<uintptr_t>(d)) & 15) == 0;
}

// Calls f(Width<W>{}, i) for element offsets i: packs of W = Pack<T>::N, then single elements.
template <typename T, typename F> __device__ __forceinline__ void grid_stride(size_t n, bool aligned, F&& f) {
  constexpr int V = Pack<T>::N;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  const size_t packs = aligned ? n / V : 0;
  for (size_t i = tid; i < packs; i += stride) f(Width<V>{}, i * V);
  for (size_t i = packs * V + tid; i < n; i += stride) f(Width<1>{}, i);
}

template <typename T>
__device__ void sgd_momentum(T* __restrict__ buf, const T* __restrict__ g, const T* __restrict__ p, size_t n,
                             const OptimHyper& h) {
  grid_stride<T>(n, aligned16(buf, g, p, p), [&](auto w, size_t i) {
    constexpr int W = decltype(w)::value;
    float bv[W] = {}, gv[W], pv[W] = {};
    load<W>(g + i, gv);
    if (h.weight_decay != 0.f) load<W>(p + i, pv);
    if (!h.first) load<W>(buf + i, bv);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float gd = h.weight_decay != 0.f ? gv[k] + pv[k] * h.weight_decay : gv[k];
      bv[k] = h.first ? gd : bv[k] * h.momentum + gd;
    }
    store<W>(buf + i, bv);
  });
}

template <typename T>
__device__ void sgd_param(T* __restrict__ p, const T* __restrict__ g, const T* __restrict__ buf, size_t n,
                          const OptimHyper& h) {
  grid_stride<T>(n, aligned16(p, g, buf, buf), [&](auto w, size_t i) {
    constexpr int W = decltype(w)::value;
    float pv[W], gv[W] = {}, bv[W] = {};
    load<W>(p + i, pv);
    if (h.mode != 1) load<W>(g + i, gv);  // plain momentum steps by buf alone
    if (h.mode != 0) load<W>(buf + i, bv);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float gd = h.weight_decay != 0.f ? gv[k] + pv[k] * h.weight_decay : gv[k];
      const float d = h.mode == 0 ? gd : (h.mode == 1 ? bv[k] : gd + bv[k] * h.momentum);
      pv[k] = pv[k] - d * h.lr;
    }
    store<W>(p + i, pv);
  });
}

template <typename T>
__device__ void adamw_moments(T* __restrict__ mv, const T* __restrict__ g, size_t n, const OptimHyper& h) {
  T* __restrict__ m = mv;
  T* __restrict__ v = mv + n;
  grid_stride<T>(n, aligned16(m, v, g, g), [&](auto w, size_t i) {
    constexpr int W = decltype(w)::value;
    float mw[W] = {}, vw[W] = {}, gv[W];
    load<W>(g + i, gv);
    if (!h.first) {
      load<W>(m + i, mw);
      load<W>(v + i, vw);
    }
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float dm = gv[k] * h.one_minus_beta1, dv = (gv[k] * gv[k]) * h.one_minus_beta2;
      mw[k] = h.first ? dm : mw[k] * h.beta1 + dm;
      vw[k] = h.first ? dv : vw[k] * h.beta2 + dv;
    }
    store<W>(m + i, mw);
    store<W>(v + i, vw);
  });
}

template <typename T>
__device__ void adamw_param(T* __restrict__ p, const T* __restrict__ m, const T* __restrict__ v, size_t n,
                            const OptimHyper& h) {
  grid_stride<T>(n, aligned16(p, m, v, v), [&](auto w, size_t i) {
    constexpr int W = decltype(w)::value;
    float pv[W], mw[W], vw[W];
    load<W>(p + i, pv);
    load<W>(m + i, mw);
    load<W>(v + i, vw);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float update = (mw[k] * h.inv_bc1) / (sqrtf(vw[k] * h.inv_bc2) + h.eps);
      pv[k] = pv[k] * h.decay - update * h.lr;
    }
    store<W>(p + i, pv);
  });
}

#define OPTIM_KERNELS(T, SUFFIX)                                                                             \
  extern "C" __global__ void sgd_momentum_##SUFFIX(T* x, const T* a, const T* b, size_t n, OptimHyper h) {    \
    sgd_momentum<T>(x, a, b, n, h);                                                                          \
  }                                                                                                          \
  extern "C" __global__ void sgd_param_##SUFFIX(T* x, const T* a, const T* b, size_t n, OptimHyper h) {       \
    sgd_param<T>(x, a, b, n, h);                                                                             \
  }                                                                                                          \
  extern "C" __global__ void adamw_moments_##SUFFIX(T* x, const T* a, const T*, size_t n, OptimHyper h) {     \
    adamw_moments<T>(x, a, n, h);                                                                            \
  }                                                                                                          \
  extern "C" __global__ void adamw_param_##SUFFIX(T* x, const T* a, const T* b, size_t n, OptimHyper h) {     \
    adamw_param<T>(x, a, b, n, h);                                                                           \
  }

OPTIM_KERNELS(float, f32)
OPTIM_KERNELS(__nv_bfloat16, bf16)
