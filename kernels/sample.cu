// The sampler chain's first stages on the device: llama.cpp's penalties over (id, count) pairs of
// the penalty window, then the k highest logits (descending, ties to the lower id), so that only
// k candidates reach the host. Reference: SampleFront's cpu_fwd.
#include <math.h>

#define SLICE 4096
#define TPB 256

// scratch = logits.
extern "C" __global__ void chimera_copy(const float* logits, float* scratch, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) scratch[i] = logits[i];
}

// One thread per (id, count) pair: repeat (divide positive, multiply non-positive), frequency
// (x count) and presence penalties.
extern "C" __global__ void chimera_penalize(float* scratch, const int* pairs, int np, int n, float rep,
                                            float freq, float pres) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= np) return;
  int id = pairs[2 * i], count = pairs[2 * i + 1];
  if (id < 0 || id >= n) return;
  float x = scratch[id];
  x = x <= 0.f ? x * rep : x / rep;
  // the host's rounding exactly: count * freq + pres, unfused, then subtracted
  scratch[id] = x - __fadd_rn(__fmul_rn((float)count, freq), pres);
}

__device__ __forceinline__ bool better(float a, int ia, float b, int ib) {
  return a > b || (a == b && ia < ib);
}

// The block's best (value, id) among vals/ids[0..len), every thread receiving it.
__device__ void block_best(const float* vals, const int* ids, int len, float* bv, int* bi) {
  __shared__ float sv[32];
  __shared__ int si[32];
  float v = -INFINITY;
  int id = 0x7fffffff;
  for (int i = threadIdx.x; i < len; i += blockDim.x)
    if (better(vals[i], ids[i], v, id)) {
      v = vals[i];
      id = ids[i];
    }
  for (int o = 16; o > 0; o >>= 1) {
    float ov = __shfl_xor_sync(0xffffffff, v, o);
    int oi = __shfl_xor_sync(0xffffffff, id, o);
    if (better(ov, oi, v, id)) {
      v = ov;
      id = oi;
    }
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = id;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < nw; w++)
      if (better(sv[w], si[w], sv[0], si[0])) {
        sv[0] = sv[w];
        si[0] = si[w];
      }
  }
  __syncthreads();
  *bv = sv[0];
  *bi = si[0];
  __syncthreads();
}

// Stage 1: each block's k best of its SLICE of scratch, into cand (block * k pairs of id, value).
extern "C" __global__ void chimera_topk_slice(const float* scratch, float* cand, int n, int k) {
  __shared__ float vals[SLICE];
  __shared__ int ids[SLICE];
  int base = blockIdx.x * SLICE, len = min(SLICE, n - base);
  for (int i = threadIdx.x; i < len; i += blockDim.x) {
    vals[i] = scratch[base + i];
    ids[i] = base + i;
  }
  __syncthreads();
  for (int r = 0; r < k; r++) {
    float v;
    int id;
    block_best(vals, ids, len, &v, &id);
    if (threadIdx.x == 0) {
      cand[2 * ((size_t)blockIdx.x * k + r)] = (float)id;
      cand[2 * ((size_t)blockIdx.x * k + r) + 1] = v;
    }
    if (id - base >= 0 && id - base < len && threadIdx.x == 0) vals[id - base] = -INFINITY;
    __syncthreads();
  }
}

// Stage 2: the k best of all blocks' candidates (m pairs), into out (k pairs of id, value).
extern "C" __global__ void chimera_topk_merge(const float* cand, float* out, int m, int k) {
  __shared__ float vals[SLICE];
  __shared__ int ids[SLICE];
  for (int i = threadIdx.x; i < m; i += blockDim.x) {
    ids[i] = (int)cand[2 * i];
    vals[i] = cand[2 * i + 1];
  }
  __syncthreads();
  for (int r = 0; r < k; r++) {
    float v;
    int id;
    block_best(vals, ids, m, &v, &id);
    if (threadIdx.x == 0) {
      out[2 * r] = (float)id;
      out[2 * r + 1] = v;
      for (int i = 0; i < m; i++)
        if (ids[i] == id) vals[i] = -INFINITY;
    }
    __syncthreads();
  }
}
