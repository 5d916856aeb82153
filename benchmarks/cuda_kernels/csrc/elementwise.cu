// Element-wise binary and activation kernels, vectorised: dtype x op x width.
#include "common.cuh"

#define BENCH_STR2(...) #__VA_ARGS__
#define BENCH_STR(...) BENCH_STR2(__VA_ARGS__)

namespace {

struct Add { template <typename A> __device__ A operator()(A a, A b, A s) const { return a + s * b; } };
struct Mul { template <typename A> __device__ A operator()(A a, A b, A s) const { return a * b * s; } };
struct Relu { template <typename A> __device__ A operator()(A a, A b, A) const { return a > A(0) ? a + b : b; } };
struct Gelu {
  template <typename A> __device__ A operator()(A a, A b, A) const {
    return A(0.5) * a * (A(1) + tanh(A(0.7978845608) * (a + A(0.044715) * a * a * a))) + b;
  }
};
struct Silu { template <typename A> __device__ A operator()(A a, A b, A) const { return a / (A(1) + exp(-a)) * b; } };
struct Sigmoid { template <typename A> __device__ A operator()(A a, A b, A) const { return A(1) / (A(1) + exp(-a - b)); } };
struct Softplus {
  template <typename A> __device__ A operator()(A a, A b, A s) const { return log1p(exp(s * a)) / s + b; }
};
struct Erf { template <typename A> __device__ A operator()(A a, A b, A) const { return erf(a) * b + erfc(b); } };

template <typename T, typename Op, int VEC>
__global__ void binary_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, long long n,
                              float scale) {
  using A = bench::acc_t<T>;
  const Op op;
  long long stride = (long long)gridDim.x * blockDim.x * VEC;
  for (long long base = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * VEC; base < n; base += stride) {
    A va[VEC], vb[VEC];
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      va[k] = base + k < n ? bench::to_acc(a[base + k]) : A(0);
      vb[k] = base + k < n ? bench::to_acc(b[base + k]) : A(0);
    }
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      if (base + k < n) out[base + k] = bench::from_acc<T>(op(va[k], vb[k], A(scale)));
    }
  }
}

template <typename T, typename Op>
const char* launch(const void* a, const void* b, void* out, long long n, float scale, int vec) {
  const unsigned int blocks = bench::blocks_for(n, 256 * vec);
  switch (vec) {
    case 4: binary_kernel<T, Op, 4><<<blocks, 256>>>((const T*)a, (const T*)b, (T*)out, n, scale); break;
    case 8: binary_kernel<T, Op, 8><<<blocks, 256>>>((const T*)a, (const T*)b, (T*)out, n, scale); break;
    default: return "unsupported vector width";
  }
  return bench::launch_status();
}

}  // namespace

// out = op(a, b) for op in add, mul, relu, gelu, silu, sigmoid, softplus, erf (0..7).
extern "C" const char* gpuenv_bench_elementwise(int dtype, int op, const void* a, const void* b, void* out,
                                                long long n, float scale, int vec) {
  BENCH_DISPATCH_DTYPE(dtype, T, {
    switch (op) {
      case 0: return launch<T, Add>(a, b, out, n, scale, vec);
      case 1: return launch<T, Mul>(a, b, out, n, scale, vec);
      case 2: return launch<T, Relu>(a, b, out, n, scale, vec);
      case 3: return launch<T, Gelu>(a, b, out, n, scale, vec);
      case 4: return launch<T, Silu>(a, b, out, n, scale, vec);
      case 5: return launch<T, Sigmoid>(a, b, out, n, scale, vec);
      case 6: return launch<T, Softplus>(a, b, out, n, scale, vec);
      case 7: return launch<T, Erf>(a, b, out, n, scale, vec);
      default: return "unsupported op";
    }
  })
  return nullptr;
}

extern "C" int gpuenv_bench_elementwise_kernels(void) { return 4 * 8 * 2; }

// nvcc defines __CUDA_ARCH_LIST__ ("750,900") on the host pass from the -gencode
// flags it was given: the built module says which archs it holds without a GPU.
extern "C" const char* gpuenv_bench_arch_list(void) {
#ifdef __CUDA_ARCH_LIST__
  return BENCH_STR(__CUDA_ARCH_LIST__);
#else
  return "";
#endif
}
