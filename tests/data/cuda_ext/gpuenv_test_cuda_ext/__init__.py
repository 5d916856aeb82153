"""gpuenv's test CUDA extension: two trivial kernels behind torch bindings."""

from gpuenv_test_cuda_ext._C import add_scalar_, arch_list, scale_

__all__ = ["add_scalar_", "arch_list", "scale_"]
