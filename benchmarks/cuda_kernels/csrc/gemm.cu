// C = alpha * A @ B + beta * C with shared-memory tiles and a register tile
// per thread (the classic SGEMM structure), for a few tile shapes.
#include "common.cuh"

namespace {

template <typename T, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
gemm_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, int m, int n, int k, float alpha,
            float beta) {
  using A = bench::acc_t<T>;
  constexpr int THREADS = (BM / TM) * (BN / TN);
  __shared__ A as[BK][BM];
  __shared__ A bs[BK][BN];
  const int tx = threadIdx.x % (BN / TN);
  const int ty = threadIdx.x / (BN / TN);
  const int row0 = blockIdx.y * BM;
  const int col0 = blockIdx.x * BN;
  A acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = A(0);
  for (int kk = 0; kk < k; kk += BK) {
#pragma unroll
    for (int idx = threadIdx.x; idx < BM * BK; idx += THREADS) {
      const int r = idx / BK, q = idx % BK;
      as[q][r] = row0 + r < m && kk + q < k ? bench::to_acc(a[(long long)(row0 + r) * k + kk + q]) : A(0);
    }
#pragma unroll
    for (int idx = threadIdx.x; idx < BK * BN; idx += THREADS) {
      const int q = idx / BN, col = idx % BN;
      bs[q][col] = kk + q < k && col0 + col < n ? bench::to_acc(b[(long long)(kk + q) * n + col0 + col]) : A(0);
    }
    __syncthreads();
#pragma unroll
    for (int q = 0; q < BK; ++q) {
      A ra[TM], rb[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) ra[i] = as[q][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) rb[j] = bs[q][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fma(ra[i], rb[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int r = row0 + ty * TM + i, col = col0 + tx * TN + j;
      if (r < m && col < n) {
        T* dst = c + (long long)r * n + col;
        *dst = bench::from_acc<T>(A(alpha) * acc[i][j] + A(beta) * bench::to_acc(*dst));
      }
    }
  }
}

template <typename T, int BM, int BN, int BK, int TM, int TN>
const char* launch(const void* a, const void* b, void* c, int m, int n, int k, float alpha, float beta) {
  const dim3 grid((n + BN - 1) / BN, (m + BM - 1) / BM);
  gemm_kernel<T, BM, BN, BK, TM, TN><<<grid, (BM / TM) * (BN / TN)>>>((const T*)a, (const T*)b, (T*)c, m, n, k,
                                                                     alpha, beta);
  return bench::launch_status();
}

}  // namespace

// tile 0: 32x32x16 (2x2 per thread), 1: 64x64x8 (4x4), 2: 128x64x8 (8x4), 3: 128x128x8 (8x8).
extern "C" const char* gpuenv_bench_gemm(int dtype, int tile, const void* a, const void* b, void* c, int m, int n,
                                         int k, float alpha, float beta) {
  BENCH_DISPATCH_DTYPE(dtype, T, {
    switch (tile) {
      case 0: return launch<T, 32, 32, 16, 2, 2>(a, b, c, m, n, k, alpha, beta);
      case 1: return launch<T, 64, 64, 8, 4, 4>(a, b, c, m, n, k, alpha, beta);
      case 2: return launch<T, 128, 64, 8, 8, 4>(a, b, c, m, n, k, alpha, beta);
      case 3: return launch<T, 128, 128, 8, 8, 8>(a, b, c, m, n, k, alpha, beta);
      default: return "unsupported tile";
    }
  })
  return nullptr;
}

extern "C" int gpuenv_bench_gemm_kernels(void) { return 4 * 4; }
