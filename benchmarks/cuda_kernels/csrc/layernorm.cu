// LayerNorm and RMSNorm forward, one block per row, with the row cached in
// registers: templated on dtype, block size and elements per thread.
#include "common.cuh"

namespace {

template <typename A, int BLOCK>
__device__ A block_sum(A v, A* shared) {
  v = bench::warp_sum(v);
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
  __syncthreads();
  v = threadIdx.x < BLOCK / 32 ? shared[threadIdx.x] : A(0);
  if (threadIdx.x < 32) v = bench::warp_sum(v);
  if (threadIdx.x == 0) shared[0] = v;
  __syncthreads();
  v = shared[0];
  __syncthreads();
  return v;
}

template <typename T, int BLOCK, int PER_THREAD, bool RMS>
__global__ void __launch_bounds__(BLOCK) norm_kernel(const T* __restrict__ in, const T* __restrict__ gamma,
                                                     const T* __restrict__ beta, T* __restrict__ out,
                                                     float* __restrict__ stats, int cols, float eps) {
  using A = bench::acc_t<T>;
  __shared__ A shared[BLOCK / 32];
  const T* src = in + (long long)blockIdx.x * cols;
  T* dst = out + (long long)blockIdx.x * cols;
  A x[PER_THREAD];
  A local = A(0);
#pragma unroll
  for (int k = 0; k < PER_THREAD; ++k) {
    const int c = threadIdx.x + k * BLOCK;
    x[k] = c < cols ? bench::to_acc(src[c]) : A(0);
    local += x[k];
  }
  const A mean = RMS ? A(0) : block_sum<A, BLOCK>(local, shared) / A(cols);
  A sq = A(0);
#pragma unroll
  for (int k = 0; k < PER_THREAD; ++k) {
    const int c = threadIdx.x + k * BLOCK;
    const A d = c < cols ? x[k] - mean : A(0);
    sq += d * d;
  }
  const A rstd = rsqrt(block_sum<A, BLOCK>(sq, shared) / A(cols) + A(eps));
#pragma unroll
  for (int k = 0; k < PER_THREAD; ++k) {
    const int c = threadIdx.x + k * BLOCK;
    if (c < cols) {
      A y = (x[k] - mean) * rstd * bench::to_acc(gamma[c]);
      if (!RMS) y += bench::to_acc(beta[c]);
      dst[c] = bench::from_acc<T>(y);
    }
  }
  if (threadIdx.x == 0) {
    stats[2 * blockIdx.x] = static_cast<float>(mean);
    stats[2 * blockIdx.x + 1] = static_cast<float>(rstd);
  }
}

template <typename T, bool RMS>
const char* launch(const void* in, const void* gamma, const void* beta, void* out, float* stats, int rows,
                   int cols, float eps, int block) {
  const T* x = (const T*)in;
  const T* g = (const T*)gamma;
  const T* b = (const T*)beta;
  T* y = (T*)out;
  BENCH_DISPATCH_BLOCK(block, B, {
    const int per_thread = (cols + B - 1) / B;
    if (per_thread <= 1) norm_kernel<T, B, 1, RMS><<<rows, B>>>(x, g, b, y, stats, cols, eps);
    else if (per_thread <= 4) norm_kernel<T, B, 4, RMS><<<rows, B>>>(x, g, b, y, stats, cols, eps);
    else if (per_thread <= 8) norm_kernel<T, B, 8, RMS><<<rows, B>>>(x, g, b, y, stats, cols, eps);
    else return "rows longer than 8 x block size are not supported";
  })
  return bench::launch_status();
}

}  // namespace

extern "C" const char* gpuenv_bench_layernorm(int dtype, int rms, const void* in, const void* gamma,
                                              const void* beta, void* out, float* stats, int rows, int cols,
                                              float eps, int block) {
  BENCH_DISPATCH_DTYPE(dtype, T, {
    return rms ? launch<T, true>(in, gamma, beta, out, stats, rows, cols, eps, block)
               : launch<T, false>(in, gamma, beta, out, stats, rows, cols, eps, block);
  })
  return nullptr;
}

extern "C" int gpuenv_bench_layernorm_kernels(void) { return 4 * 2 * 3 * 3; }
