// Shared by the benchmark extension's kernel files. No torch header anywhere
// in the .cu files: torch's headers cost ~50 s per file whatever the arch list
// (measured on a 2-core machine), and the benchmark is about the per-arch device code.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace bench {

// The element types every launcher dispatches over, as the Python side names them.
enum DType : int { kFloat = 0, kDouble = 1, kHalf = 2, kBFloat16 = 3 };

// Arithmetic happens in float (double for double), as in PyTorch's kernels.
template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <typename T> using acc_t = typename AccOf<T>::type;

__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ float to_acc(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_acc(acc_t<T> x) { return static_cast<T>(x); }
template <> __device__ __forceinline__ __half from_acc<__half>(float x) { return __float2half(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float x) {
  return __float2bfloat16(x);
}

template <typename A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename A> __device__ __forceinline__ A warp_max(A v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

inline unsigned int blocks_for(long long n, int per_block) {
  long long blocks = (n + per_block - 1) / per_block;
  return static_cast<unsigned int>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

// Every launcher returns NULL on success or the CUDA error text.
inline const char* launch_status() {
  cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace bench

// Runs BODY with T bound to the C++ type of a runtime DType.
#define BENCH_DISPATCH_DTYPE(dtype, T, ...)                       \
  switch (dtype) {                                                \
    case bench::kFloat: { using T = float; __VA_ARGS__; } break;  \
    case bench::kDouble: { using T = double; __VA_ARGS__; } break; \
    case bench::kHalf: { using T = __half; __VA_ARGS__; } break;  \
    case bench::kBFloat16: { using T = __nv_bfloat16; __VA_ARGS__; } break; \
    default: return "unsupported dtype";                          \
  }

// Runs BODY with the constexpr int NAME bound to one of the block sizes.
#define BENCH_DISPATCH_BLOCK(block, NAME, ...)                     \
  switch (block) {                                                 \
    case 128: { constexpr int NAME = 128; __VA_ARGS__; } break;    \
    case 256: { constexpr int NAME = 256; __VA_ARGS__; } break;    \
    case 512: { constexpr int NAME = 512; __VA_ARGS__; } break;    \
    default: return "unsupported block size";                      \
  }
