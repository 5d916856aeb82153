// Row softmax and log-softmax, one warp per row held in registers (the
// "persistent" softmax of PyTorch): one kernel per power-of-two row length.
#include "common.cuh"

namespace {

template <typename T, int LOG2_COLS, bool LOG>
__global__ void __launch_bounds__(128) warp_softmax_kernel(const T* __restrict__ in, T* __restrict__ out,
                                                           int rows, int cols) {
  constexpr int COLS = 1 << LOG2_COLS;
  constexpr int PER_LANE = COLS > 32 ? COLS / 32 : 1;
  using A = bench::acc_t<T>;
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* src = in + (long long)row * cols;
  T* dst = out + (long long)row * cols;
  A x[PER_LANE];
#pragma unroll
  for (int k = 0; k < PER_LANE; ++k) {
    const int c = lane + k * 32;
    x[k] = c < cols ? bench::to_acc(src[c]) : A(-1e30);
  }
  A m = x[0];
#pragma unroll
  for (int k = 1; k < PER_LANE; ++k) m = fmax(m, x[k]);
  m = bench::warp_max(m);
  A sum = A(0);
#pragma unroll
  for (int k = 0; k < PER_LANE; ++k) {
    x[k] = LOG ? x[k] - m : exp(x[k] - m);
    sum += LOG ? exp(x[k]) : x[k];
  }
  sum = bench::warp_sum(sum);
#pragma unroll
  for (int k = 0; k < PER_LANE; ++k) {
    const int c = lane + k * 32;
    if (c < cols) dst[c] = bench::from_acc<T>(LOG ? x[k] - log(sum) : x[k] / sum);
  }
}

template <typename T, bool LOG>
const char* launch(const void* in, void* out, int rows, int cols) {
  int log2 = 0;
  while ((1 << log2) < cols) ++log2;
  const unsigned int blocks = bench::blocks_for(rows, 4);
  const T* src = (const T*)in;
  T* dst = (T*)out;
  switch (log2) {
#define BENCH_CASE(L) case L: warp_softmax_kernel<T, L, LOG><<<blocks, 128>>>(src, dst, rows, cols); break;
    BENCH_CASE(0) BENCH_CASE(1) BENCH_CASE(2) BENCH_CASE(3) BENCH_CASE(4) BENCH_CASE(5)
    BENCH_CASE(6) BENCH_CASE(7) BENCH_CASE(8) BENCH_CASE(9) BENCH_CASE(10)
#undef BENCH_CASE
    default: return "rows longer than 1024 are not supported";
  }
  return bench::launch_status();
}

}  // namespace

extern "C" const char* gpuenv_bench_softmax(int dtype, int log_softmax, const void* in, void* out, int rows,
                                            int cols) {
  BENCH_DISPATCH_DTYPE(dtype, T, {
    return log_softmax ? launch<T, true>(in, out, rows, cols) : launch<T, false>(in, out, rows, cols);
  })
  return nullptr;
}

extern "C" int gpuenv_bench_softmax_kernels(void) { return 4 * 2 * 11; }
