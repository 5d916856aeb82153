// Scatter reductions (sum, mean, max, min) of rows into segments given by an
// index (the kernels of torch-scatter): atomics on a float/double output,
// templated on dtype, index type, reduction and columns per thread.
#include "common.cuh"

namespace {

enum Reduce { kSum = 0, kMean = 1, kMax = 2, kMin = 3 };

__device__ __forceinline__ void atomic_reduce(float* addr, float v, int reduce) {
  if (reduce == kSum || reduce == kMean) {
    atomicAdd(addr, v);
    return;
  }
  int* bits = reinterpret_cast<int*>(addr);
  int old = *bits;
  while (true) {
    const float current = __int_as_float(old);
    const float next = reduce == kMax ? fmaxf(current, v) : fminf(current, v);
    if (next == current) return;
    const int seen = atomicCAS(bits, old, __float_as_int(next));
    if (seen == old) return;
    old = seen;
  }
}

__device__ __forceinline__ void atomic_reduce(double* addr, double v, int reduce) {
  if (reduce == kSum || reduce == kMean) {
    atomicAdd(addr, v);
    return;
  }
  unsigned long long* bits = reinterpret_cast<unsigned long long*>(addr);
  unsigned long long old = *bits;
  while (true) {
    const double current = __longlong_as_double(static_cast<long long>(old));
    const double next = reduce == kMax ? fmax(current, v) : fmin(current, v);
    if (next == current) return;
    const unsigned long long seen =
        atomicCAS(bits, old, static_cast<unsigned long long>(__double_as_longlong(next)));
    if (seen == old) return;
    old = seen;
  }
}

template <typename T, typename Index, int REDUCE, int COLS_PER_THREAD>
__global__ void __launch_bounds__(256) scatter_kernel(const T* __restrict__ src, const Index* __restrict__ index,
                                                      bench::acc_t<T>* __restrict__ out, int* __restrict__ counts,
                                                      long long rows, int cols) {
  const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  const long long target = static_cast<long long>(index[row]);
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int k = 0; k < COLS_PER_THREAD; ++k) {
    const int c = lane + k * 32;
    if (c < cols) atomic_reduce(out + target * cols + c, bench::to_acc(src[row * cols + c]), REDUCE);
  }
  if (REDUCE == kMean && lane == 0) atomicAdd(counts + target, 1);
}

template <typename T, typename Index, int REDUCE>
const char* launch(const void* src, const void* index, void* out, int* counts, long long rows, int cols) {
  using A = bench::acc_t<T>;
  const unsigned int blocks = bench::blocks_for(rows, 8);
  const T* s = (const T*)src;
  const Index* i = (const Index*)index;
  A* o = (A*)out;
  if (cols <= 32) scatter_kernel<T, Index, REDUCE, 1><<<blocks, 256>>>(s, i, o, counts, rows, cols);
  else if (cols <= 128) scatter_kernel<T, Index, REDUCE, 4><<<blocks, 256>>>(s, i, o, counts, rows, cols);
  else if (cols <= 512) scatter_kernel<T, Index, REDUCE, 16><<<blocks, 256>>>(s, i, o, counts, rows, cols);
  else return "more than 512 columns are not supported";
  return bench::launch_status();
}

template <typename T, typename Index>
const char* by_reduce(int reduce, const void* src, const void* index, void* out, int* counts, long long rows,
                      int cols) {
  switch (reduce) {
    case kSum: return launch<T, Index, kSum>(src, index, out, counts, rows, cols);
    case kMean: return launch<T, Index, kMean>(src, index, out, counts, rows, cols);
    case kMax: return launch<T, Index, kMax>(src, index, out, counts, rows, cols);
    case kMin: return launch<T, Index, kMin>(src, index, out, counts, rows, cols);
    default: return "unsupported reduction";
  }
}

}  // namespace

// out[index[r], c] = reduce(out[index[r], c], src[r, c]); out is float (double for double input).
extern "C" const char* gpuenv_bench_scatter(int dtype, int index_is_64bit, int reduce, const void* src,
                                            const void* index, void* out, int* counts, long long rows, int cols) {
  BENCH_DISPATCH_DTYPE(dtype, T, {
    return index_is_64bit ? by_reduce<T, long long>(reduce, src, index, out, counts, rows, cols)
                          : by_reduce<T, int>(reduce, src, index, out, counts, rows, cols);
  })
  return nullptr;
}

extern "C" int gpuenv_bench_scatter_kernels(void) { return 4 * 2 * 4 * 3; }
