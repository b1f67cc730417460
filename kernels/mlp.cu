// The gated MLP's element-wise part: gelu(gate) * up, GELU-tanh rounded through f16 as ggml's
// CPU table gives it (f16(gelu(f16(x))), x for x >= 10, 0 for x <= -10). Reference: GeluMul's
// cpu_fwd in src/backend/candle/kernels.rs.
#include <cuda_fp16.h>

extern "C" __global__ void chimera_gelu_mul(const float* g, const float* u, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = g[i], r;
  if (x <= -10.f) {
    r = 0.f;
  } else if (x >= 10.f) {
    r = x;
  } else {
    float xh = __half2float(__float2half_rn(x));
    float t = 0.5f * xh * (1.f + tanhf(0.7978846f * xh * (1.f + 0.044715f * xh * xh)));
    r = __half2float(__float2half_rn(t));
  }
  y[i] = r * u[i];
}
