"""gpuenv_bench_kernels: the CUDA extension of gpuenv's arch benchmark (benchmarks/run.py).

Eight kernel files in csrc/ with templated kernels (element-wise ops,
reductions, softmax, layer norm, GEMM, fused attention, causal conv1d,
scatter), instantiated over dtypes and tile shapes the way real extensions
are, built by torch's CUDAExtension: torch turns TORCH_CUDA_ARCH_LIST into
the -gencode flags, so the same source builds for one arch or for all the
torch wheel's archs. No .cu includes a torch header and the module is plain
CPython (csrc/module.cpp), so the build time is the device code's.

Like many extensions' sdists it has no pyproject.toml and imports torch in
setup.py: it builds only without isolation, in an env that has torch.
"""

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

KERNELS = ["elementwise", "reduce", "softmax", "layernorm", "gemm", "attention", "conv1d", "segment"]

setup(
    name="gpuenv_bench_kernels",
    version="0.1.0",
    description="gpuenv's benchmark CUDA extension",
    packages=["gpuenv_bench_kernels"],
    ext_modules=[
        CUDAExtension(
            name="gpuenv_bench_kernels._C",
            sources=["csrc/module.cpp", *(f"csrc/{name}.cu" for name in KERNELS)],
        )
    ],
    cmdclass={"build_ext": BuildExtension},
    python_requires=">=3.9",
)
