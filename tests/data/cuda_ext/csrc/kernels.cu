// Device code of gpuenv's test extension. It includes no torch header on
// purpose: nvcc then compiles it in about a second per arch, where a .cu that
// includes <torch/extension.h> takes over a minute (gpu-facts.md, section 8).
#include <cuda_runtime.h>

// Variadic: the value holds commas ("800,900").
#define GPUENV_STR2(...) #__VA_ARGS__
#define GPUENV_STR(...) GPUENV_STR2(__VA_ARGS__)

__global__ void add_scalar_kernel(float* data, long long n, float value) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) data[i] += value;
}

__global__ void scale_kernel(float* data, long long n, float factor) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) data[i] *= factor;
}

static unsigned int blocks_for(long long n) { return (unsigned int)((n + 255) / 256); }

// Both launchers return NULL on success or the CUDA error text. They use the
// legacy default stream: enough for a test, and it keeps torch out of this file.
extern "C" const char* gpuenv_test_add_scalar(float* data, long long n, float value) {
  if (n > 0) add_scalar_kernel<<<blocks_for(n), 256>>>(data, n, value);
  cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

extern "C" const char* gpuenv_test_scale(float* data, long long n, float factor) {
  if (n > 0) scale_kernel<<<blocks_for(n), 256>>>(data, n, factor);
  cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

// nvcc defines __CUDA_ARCH_LIST__ ("800,900") on the host pass from the
// -gencode flags it was given, so a GPU-less machine can still ask the
// imported module which archs TORCH_CUDA_ARCH_LIST turned into.
extern "C" const char* gpuenv_test_arch_list() {
#ifdef __CUDA_ARCH_LIST__
  return GPUENV_STR(__CUDA_ARCH_LIST__);
#else
  return "";
#endif
}
