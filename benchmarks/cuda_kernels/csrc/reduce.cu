// Full reductions (sum, sum of squares, max, absolute max) and a Welford
// mean/variance: a block reduction through shared memory and warp shuffles.
#include "common.cuh"

namespace {

struct Sum {
  template <typename A> static __device__ A init() { return A(0); }
  template <typename A> static __device__ A map(A x) { return x; }
  template <typename A> static __device__ A combine(A a, A b) { return a + b; }
  template <typename A> static __device__ A warp(A v) { return bench::warp_sum(v); }
};
struct SumSq : Sum {
  template <typename A> static __device__ A map(A x) { return x * x; }
};
struct Max {
  template <typename A> static __device__ A init() { return A(-1e30); }
  template <typename A> static __device__ A map(A x) { return x; }
  template <typename A> static __device__ A combine(A a, A b) { return fmax(a, b); }
  template <typename A> static __device__ A warp(A v) { return bench::warp_max(v); }
};
struct AbsMax : Max {
  template <typename A> static __device__ A map(A x) { return fabs(x); }
};

template <typename T, typename Op, int BLOCK, int ILP>
__global__ void __launch_bounds__(BLOCK) reduce_kernel(const T* __restrict__ in, bench::acc_t<T>* out,
                                                       long long n) {
  using A = bench::acc_t<T>;
  __shared__ A partial[BLOCK / 32];
  A acc[ILP];
#pragma unroll
  for (int k = 0; k < ILP; ++k) acc[k] = Op::template init<A>();
  const long long stride = (long long)gridDim.x * BLOCK * ILP;
  for (long long base = (long long)blockIdx.x * BLOCK * ILP + threadIdx.x; base < n; base += stride) {
#pragma unroll
    for (int k = 0; k < ILP; ++k) {
      const long long i = base + (long long)k * BLOCK;
      if (i < n) acc[k] = Op::combine(acc[k], Op::map(bench::to_acc(in[i])));
    }
  }
#pragma unroll
  for (int k = 1; k < ILP; ++k) acc[0] = Op::combine(acc[0], acc[k]);
  A v = Op::warp(acc[0]);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < BLOCK / 32 ? partial[threadIdx.x] : Op::template init<A>();
    v = Op::warp(v);
    if (threadIdx.x == 0) out[blockIdx.x] = v;
  }
}

template <typename T, int BLOCK, int ILP>
__global__ void __launch_bounds__(BLOCK) welford_kernel(const T* __restrict__ in, float* mean_m2_count, long long n) {
  float mean[ILP], m2[ILP], count[ILP];
#pragma unroll
  for (int k = 0; k < ILP; ++k) mean[k] = m2[k] = count[k] = 0.f;
  const long long stride = (long long)gridDim.x * BLOCK * ILP;
  for (long long base = (long long)blockIdx.x * BLOCK * ILP + threadIdx.x; base < n; base += stride) {
#pragma unroll
    for (int k = 0; k < ILP; ++k) {
      const long long i = base + (long long)k * BLOCK;
      if (i < n) {
        const float x = static_cast<float>(bench::to_acc(in[i]));
        count[k] += 1.f;
        const float delta = x - mean[k];
        mean[k] += delta / count[k];
        m2[k] += delta * (x - mean[k]);
      }
    }
  }
#pragma unroll
  for (int k = 1; k < ILP; ++k) {
    const float total = count[0] + count[k];
    if (total > 0.f) {
      const float delta = mean[k] - mean[0];
      mean[0] += delta * count[k] / total;
      m2[0] += m2[k] + delta * delta * count[0] * count[k] / total;
      count[0] = total;
    }
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, mean[0], offset);
    const float o2 = __shfl_xor_sync(0xffffffffu, m2[0], offset);
    const float oc = __shfl_xor_sync(0xffffffffu, count[0], offset);
    const float total = count[0] + oc;
    if (total > 0.f) {
      const float delta = om - mean[0];
      mean[0] += delta * oc / total;
      m2[0] += o2 + delta * delta * count[0] * oc / total;
      count[0] = total;
    }
  }
  if (threadIdx.x % 32 == 0) {
    float* slot = mean_m2_count + 3 * ((long long)blockIdx.x * (BLOCK / 32) + threadIdx.x / 32);
    slot[0] = mean[0];
    slot[1] = m2[0];
    slot[2] = count[0];
  }
}

template <typename T, typename Op>
const char* launch(const void* in, void* out, long long n, int block) {
  using A = bench::acc_t<T>;
  BENCH_DISPATCH_BLOCK(block, B, {
    reduce_kernel<T, Op, B, 4><<<bench::blocks_for(n, B * 4), B>>>((const T*)in, (A*)out, n);
  })
  return bench::launch_status();
}

}  // namespace

// One partial result per block: op 0 sum, 1 sum of squares, 2 max, 3 absolute max, 4 Welford.
extern "C" const char* gpuenv_bench_reduce(int dtype, int op, const void* in, void* out, long long n, int block) {
  BENCH_DISPATCH_DTYPE(dtype, T, {
    switch (op) {
      case 0: return launch<T, Sum>(in, out, n, block);
      case 1: return launch<T, SumSq>(in, out, n, block);
      case 2: return launch<T, Max>(in, out, n, block);
      case 3: return launch<T, AbsMax>(in, out, n, block);
      case 4:
        BENCH_DISPATCH_BLOCK(block, B, {
          welford_kernel<T, B, 4><<<bench::blocks_for(n, B * 4), B>>>((const T*)in, (float*)out, n);
        })
        return bench::launch_status();
      default: return "unsupported op";
    }
  })
  return nullptr;
}

extern "C" int gpuenv_bench_reduce_kernels(void) { return 4 * 5 * 3; }
