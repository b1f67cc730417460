// Attention over a sequence's cache (2*cells rows of kv_dim: K rows, then V rows) for tokens at
// consecutive positions from meta[0], causal and, where window > 0, sliding: token t at
// p = meta[0] + t sees positions max(0, p + 1 - window)..p at cells pos % cells. One block per
// (token, head); each warp runs an online softmax over every nw-th key, then the warps combine.
// head_dim must be a multiple of 32, at most 256. Reference: DecodeAttention's cpu_fwd.
#include "common.cuh"

#define MAX_PER_LANE 8
#define MAX_WARPS 8

extern "C" __global__ void chimera_attention(const float* q, const float* kv, const int* meta, float* out,
                                             int n_head, int n_kv, int hd, int cells, int window) {
  int t = blockIdx.x, h = blockIdx.y;
  int p = meta[0] + t;
  int start = window > 0 ? max(0, p + 1 - window) : 0;
  int len = p + 1 - start;
  int group = n_head / n_kv, g = h / group, kvd = n_kv * hd, qd = n_head * hd;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5, per = hd / 32;
  const float* qh = q + (size_t)t * qd + (size_t)h * hd;
  const float* K = kv;
  const float* V = kv + (size_t)cells * kvd;
  float qv[MAX_PER_LANE], acc[MAX_PER_LANE];
  for (int j = 0; j < per; j++) {
    qv[j] = qh[lane + 32 * j];
    acc[j] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int i = warp; i < len; i += nw) {
    int cell = (start + i) % cells;
    const float* kr = K + (size_t)cell * kvd + (size_t)g * hd;
    float s = 0.f;
    for (int j = 0; j < per; j++) s += qv[j] * kr[lane + 32 * j];
    s = warp_sum(s);
    float mn = fmaxf(m, s);
    float c = expf(m - mn), e = expf(s - mn);
    const float* vr = V + (size_t)cell * kvd + (size_t)g * hd;
    for (int j = 0; j < per; j++) acc[j] = acc[j] * c + e * vr[lane + 32 * j];
    l = l * c + e;
    m = mn;
  }
  __shared__ float sm[MAX_WARPS], sl[MAX_WARPS];
  __shared__ float sacc[MAX_WARPS][32 * MAX_PER_LANE];
  if (lane == 0) {
    sm[warp] = m;
    sl[warp] = l;
  }
  for (int j = 0; j < per; j++) sacc[warp][lane + 32 * j] = acc[j];
  __syncthreads();
  if (warp != 0) return;
  float M = -INFINITY;
  for (int w = 0; w < nw; w++) M = fmaxf(M, sm[w]);
  float L = 0.f;
  for (int w = 0; w < nw; w++) L += sl[w] > 0.f ? sl[w] * expf(sm[w] - M) : 0.f;
  float* o = out + (size_t)t * qd + (size_t)h * hd;
  for (int j = 0; j < per; j++) {
    float a = 0.f;
    for (int w = 0; w < nw; w++) a += sl[w] > 0.f ? sacc[w][lane + 32 * j] * expf(sm[w] - M) : 0.f;
    o[lane + 32 * j] = a / L;
  }
}

// One K (v = 0) or V (v = 1) row of a token at position meta[0] into its cell of the cache:
// row meta[0] % cells, or cells + that for V. Reference: StoreKv's cpu_fwd.
extern "C" __global__ void chimera_store_kv(float* cache, const float* row, const int* meta, int width, int cells,
                                            int v) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  size_t at = (size_t)(meta[0] % cells) + (v ? cells : 0);
  if (i < width) cache[at * width + i] = row[i];
}
