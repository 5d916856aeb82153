"""gpuenv_test_cuda_ext: the smallest CUDA extension built like the real ones.

It is used by gpuenv's slow end-to-end tests to check that a CUDAExtension is
built in the target env, against the torch installed there, for exactly the
archs of TORCH_CUDA_ARCH_LIST:

* No pyproject.toml, on purpose: like many extensions' sdists, it is built by
  setuptools' legacy backend (``setuptools.build_meta:__legacy__``). Under
  build isolation ``import torch`` below fails, so it only builds without
  isolation, in an env that already has torch, setuptools and ninja
  (ninja is optional: without it torch falls back to its slow serial build).
* No -gencode / arch flags are passed: torch derives them from
  TORCH_CUDA_ARCH_LIST (gpu-facts.md, section 5). With that variable unset on a
  machine without a GPU, torch fails with ``IndexError: list index out of
  range``; the builder must set it. CUDA_HOME must name a toolkit root whose
  nvcc has the major version of ``torch.version.cuda``.
* csrc/kernels.cu includes no torch header, so nvcc takes about a second per
  arch; csrc/binding.cpp is the only file that includes <torch/extension.h>.

Manual build: ``TORCH_CUDA_ARCH_LIST="8.0;9.0+PTX" CUDA_HOME=/usr/local/cuda-13.0
pip install --no-build-isolation .``; then ``gpuenv_test_cuda_ext.arch_list()``
returns nvcc's ``__CUDA_ARCH_LIST__`` ("800,900") without needing a GPU.
"""

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

setup(
    name="gpuenv_test_cuda_ext",
    version="0.1.0",
    description="gpuenv's test CUDA extension",
    packages=["gpuenv_test_cuda_ext"],
    ext_modules=[
        CUDAExtension(
            name="gpuenv_test_cuda_ext._C",
            sources=["csrc/binding.cpp", "csrc/kernels.cu"],
        )
    ],
    cmdclass={"build_ext": BuildExtension},
    python_requires=">=3.9",
)
