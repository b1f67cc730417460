// RMSNorm (ggml's rms_norm then the weight), fused with the residual add, and QK-norm with NEOX
// rope: the element-wise parts of a gemma3 block. References: cpu_fwd in
// src/backend/candle/kernels.rs.
#include "common.cuh"

// y = x / sqrt(mean(x^2) + eps) * w, one block per row of d.
extern "C" __global__ void chimera_rms_norm(const float* x, const float* w, float* y, int d, float eps) {
  __shared__ float sh[32];
  const float* xr = x + (size_t)blockIdx.x * d;
  float* yr = y + (size_t)blockIdx.x * d;
  float ss = 0.f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
  ss = block_sum(ss, sh);
  float s = 1.f / sqrtf(ss / d + eps);
  for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] * s * w[i];
}

// x += RMSNorm(o) * w, one block per row.
extern "C" __global__ void chimera_add_rms_norm(float* x, const float* o, const float* w, int d, float eps) {
  __shared__ float sh[32];
  const float* orow = o + (size_t)blockIdx.x * d;
  float* xr = x + (size_t)blockIdx.x * d;
  float ss = 0.f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) ss += orow[i] * orow[i];
  ss = block_sum(ss, sh);
  float s = 1.f / sqrtf(ss / d + eps);
  for (int i = threadIdx.x; i < d; i += blockDim.x) xr[i] += orow[i] * s * w[i];
}

// Per head of a row (grid: rows x heads, block: hd/2 threads): RMSNorm with w, NEOX rope from the
// row's cos|sin (cs: rows x hd, cos first), times scale. Thread i owns elements i and i + hd/2.
extern "C" __global__ void chimera_qk_norm_rope(const float* x, const float* w, const float* cs, float* y,
                                                int heads, int hd, float eps, float scale) {
  __shared__ float sh[32];
  int row = blockIdx.x, h = blockIdx.y, i = threadIdx.x, half = hd / 2;
  size_t base = ((size_t)row * heads + h) * hd;
  float a = x[base + i], b = x[base + i + half];
  float ss = block_sum(a * a + b * b, sh);
  float s = 1.f / sqrtf(ss / hd + eps);
  a = a * s * w[i];
  b = b * s * w[i + half];
  float c = cs[(size_t)row * hd + i], sn = cs[(size_t)row * hd + half + i];
  y[base + i] = (a * c - b * sn) * scale;
  y[base + i + half] = (a * sn + b * c) * scale;
}
