// A fused attention forward (softmax(Q K^T / sqrt(d)) V) with the online
// softmax of flash attention: one warp per query row, keys streamed through
// shared memory, templated on head dimension, key tile and causality.
#include "common.cuh"

namespace {

template <typename T, int HEAD_DIM, int KEYS_PER_TILE, bool CAUSAL>
__global__ void __launch_bounds__(128) attention_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                                        const T* __restrict__ v, T* __restrict__ out,
                                                        int seq_q, int seq_k, float scale) {
  constexpr int PER_LANE = HEAD_DIM / 32;
  using A = float;
  __shared__ A ks[KEYS_PER_TILE][HEAD_DIM];
  __shared__ A vs[KEYS_PER_TILE][HEAD_DIM];
  const int head = blockIdx.y;
  const int row = blockIdx.x * 4 + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const long long q_off = ((long long)head * seq_q + row) * HEAD_DIM;
  const long long kv_off = (long long)head * seq_k * HEAD_DIM;
  A qr[PER_LANE], o[PER_LANE];
#pragma unroll
  for (int d = 0; d < PER_LANE; ++d) {
    qr[d] = row < seq_q ? static_cast<A>(bench::to_acc(q[q_off + lane + d * 32])) * scale : A(0);
    o[d] = A(0);
  }
  A m = -1e30f, l = 0.f;
  for (int start = 0; start < seq_k; start += KEYS_PER_TILE) {
    for (int idx = threadIdx.x; idx < KEYS_PER_TILE * HEAD_DIM; idx += blockDim.x) {
      const int key = start + idx / HEAD_DIM, d = idx % HEAD_DIM;
      const bool in = key < seq_k;
      ks[idx / HEAD_DIM][d] = in ? static_cast<A>(bench::to_acc(k[kv_off + (long long)key * HEAD_DIM + d])) : A(0);
      vs[idx / HEAD_DIM][d] = in ? static_cast<A>(bench::to_acc(v[kv_off + (long long)key * HEAD_DIM + d])) : A(0);
    }
    __syncthreads();
#pragma unroll 4
    for (int j = 0; j < KEYS_PER_TILE; ++j) {
      const int key = start + j;
      A s = A(0);
#pragma unroll
      for (int d = 0; d < PER_LANE; ++d) s = fmaf(qr[d], ks[j][lane + d * 32], s);
      s = bench::warp_sum(s);
      const bool masked = key >= seq_k || (CAUSAL && key > row);
      const A m_new = masked ? m : fmaxf(m, s);
      const A correction = __expf(m - m_new);
      const A p = masked ? A(0) : __expf(s - m_new);
      l = l * correction + p;
#pragma unroll
      for (int d = 0; d < PER_LANE; ++d) o[d] = fmaf(p, vs[j][lane + d * 32], o[d] * correction);
      m = m_new;
    }
    __syncthreads();
  }
  if (row < seq_q) {
#pragma unroll
    for (int d = 0; d < PER_LANE; ++d) out[q_off + lane + d * 32] = bench::from_acc<T>(o[d] / l);
  }
}

template <typename T, int HEAD_DIM, bool CAUSAL>
const char* launch(const void* q, const void* k, const void* v, void* out, int heads, int seq_q, int seq_k) {
  const dim3 grid((seq_q + 3) / 4, heads);
  const float scale = rsqrtf(static_cast<float>(HEAD_DIM));
  constexpr int TILE = HEAD_DIM >= 128 ? 16 : 32;
  attention_kernel<T, HEAD_DIM, TILE, CAUSAL><<<grid, 128>>>((const T*)q, (const T*)k, (const T*)v, (T*)out,
                                                             seq_q, seq_k, scale);
  return bench::launch_status();
}

template <typename T, bool CAUSAL>
const char* by_head_dim(int head_dim, const void* q, const void* k, const void* v, void* out, int heads,
                        int seq_q, int seq_k) {
  switch (head_dim) {
    case 32: return launch<T, 32, CAUSAL>(q, k, v, out, heads, seq_q, seq_k);
    case 64: return launch<T, 64, CAUSAL>(q, k, v, out, heads, seq_q, seq_k);
    case 128: return launch<T, 128, CAUSAL>(q, k, v, out, heads, seq_q, seq_k);
    case 256: return launch<T, 256, CAUSAL>(q, k, v, out, heads, seq_q, seq_k);
    default: return "unsupported head dimension";
  }
}

}  // namespace

// q: [heads, seq_q, head_dim]; k, v: [heads, seq_k, head_dim]; out like q. float, half and bfloat16.
extern "C" const char* gpuenv_bench_attention(int dtype, int causal, int head_dim, const void* q, const void* k,
                                              const void* v, void* out, int heads, int seq_q, int seq_k) {
  switch (dtype) {
    case bench::kFloat: return causal ? by_head_dim<float, true>(head_dim, q, k, v, out, heads, seq_q, seq_k)
                                      : by_head_dim<float, false>(head_dim, q, k, v, out, heads, seq_q, seq_k);
    case bench::kHalf: return causal ? by_head_dim<__half, true>(head_dim, q, k, v, out, heads, seq_q, seq_k)
                                     : by_head_dim<__half, false>(head_dim, q, k, v, out, heads, seq_q, seq_k);
    case bench::kBFloat16:
      return causal ? by_head_dim<__nv_bfloat16, true>(head_dim, q, k, v, out, heads, seq_q, seq_k)
                    : by_head_dim<__nv_bfloat16, false>(head_dim, q, k, v, out, heads, seq_q, seq_k);
    default: return "unsupported dtype";
  }
}

extern "C" int gpuenv_bench_attention_kernels(void) { return 3 * 2 * 4; }
