"""gpuenv's benchmark CUDA extension: what a build holds (arch list, kernel counts)."""

import torch  # noqa: F401  (loads libc10/libtorch and the CUDA runtime the module links against)

from gpuenv_bench_kernels._C import arch_list, kernel_counts

__all__ = ["arch_list", "kernel_counts"]
