// Causal depthwise 1-D convolution with an optional SiLU (the kernel of
// causal-conv1d / Mamba): each thread produces a run of outputs from a sliding
// window in registers; templated on filter width, outputs per thread and
// activation.
#include "common.cuh"

namespace {

template <typename T, int WIDTH, int PER_THREAD, bool SILU>
__global__ void __launch_bounds__(128) causal_conv1d_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                            const T* __restrict__ bias, T* __restrict__ out,
                                                            int channels, int length) {
  using A = bench::acc_t<T>;
  const int channel = blockIdx.y;
  const long long base = ((long long)blockIdx.z * channels + channel) * length;
  const int t0 = (blockIdx.x * blockDim.x + threadIdx.x) * PER_THREAD;
  if (t0 >= length) return;
  A weight[WIDTH];
#pragma unroll
  for (int i = 0; i < WIDTH; ++i) weight[i] = bench::to_acc(w[channel * WIDTH + i]);
  const A b = bias != nullptr ? bench::to_acc(bias[channel]) : A(0);
  A window[PER_THREAD + WIDTH - 1];
#pragma unroll
  for (int i = 0; i < PER_THREAD + WIDTH - 1; ++i) {
    const int t = t0 - (WIDTH - 1) + i;
    window[i] = t >= 0 && t < length ? bench::to_acc(x[base + t]) : A(0);
  }
#pragma unroll
  for (int j = 0; j < PER_THREAD; ++j) {
    A acc = b;
#pragma unroll
    for (int i = 0; i < WIDTH; ++i) acc = fma(weight[i], window[j + i], acc);
    if (SILU) acc = acc / (A(1) + exp(-acc));
    if (t0 + j < length) out[base + t0 + j] = bench::from_acc<T>(acc);
  }
}

template <typename T, int WIDTH, bool SILU>
const char* launch(const void* x, const void* w, const void* bias, void* out, int batch, int channels,
                   int length, int per_thread) {
  const T* xs = (const T*)x;
  const T* ws = (const T*)w;
  const T* bs = (const T*)bias;
  T* ys = (T*)out;
  switch (per_thread) {
#define BENCH_CASE(P)                                                                                \
  case P: {                                                                                          \
    const dim3 grid(bench::blocks_for(length, 128 * P), channels, batch);                            \
    causal_conv1d_kernel<T, WIDTH, P, SILU><<<grid, 128>>>(xs, ws, bs, ys, channels, length);        \
  } break;
    BENCH_CASE(4) BENCH_CASE(8) BENCH_CASE(16)
#undef BENCH_CASE
    default: return "unsupported outputs per thread";
  }
  return bench::launch_status();
}

template <typename T, bool SILU>
const char* by_width(int width, const void* x, const void* w, const void* bias, void* out, int batch,
                     int channels, int length, int per_thread) {
  switch (width) {
    case 2: return launch<T, 2, SILU>(x, w, bias, out, batch, channels, length, per_thread);
    case 3: return launch<T, 3, SILU>(x, w, bias, out, batch, channels, length, per_thread);
    case 4: return launch<T, 4, SILU>(x, w, bias, out, batch, channels, length, per_thread);
    default: return "unsupported filter width";
  }
}

}  // namespace

// x, out: [batch, channels, length]; w: [channels, width]; bias: [channels] or NULL.
extern "C" const char* gpuenv_bench_causal_conv1d(int dtype, int silu, int width, const void* x, const void* w,
                                                  const void* bias, void* out, int batch, int channels,
                                                  int length, int per_thread) {
  BENCH_DISPATCH_DTYPE(dtype, T, {
    return silu ? by_width<T, true>(width, x, w, bias, out, batch, channels, length, per_thread)
                : by_width<T, false>(width, x, w, bias, out, batch, channels, length, per_thread);
  })
  return nullptr;
}

extern "C" int gpuenv_bench_causal_conv1d_kernels(void) { return 4 * 2 * 3 * 3; }
