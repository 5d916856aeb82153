# NVIDIA apex, tag 25.09 (commit 4bdecd06, 2025-08-04; after bfb500c8 brought APEX_CPP_EXT/APEX_CUDA_EXT):
# an excerpt of its build logic, a fixture of the knowledge checker (tests/catalogcheck). Every apex
# setup.py says version 0.1. Copied from NVIDIA/apex@25.09:setup.py. BSD-3-Clause, Copyright (c) NVIDIA
# Corporation. Left out: the optional extensions but group_norm and fast_layer_norm, and all of --cuda_ext
# but amp_C and fused_weight_gradient_mlp_cuda, most source files; the lines kept are as published.
import sys
import warnings
import os
import threading
import glob
from packaging.version import parse, Version

from setuptools import setup, find_packages
import subprocess

import torch
from torch.utils.cpp_extension import (
    BuildExtension,
    CppExtension,
    CUDAExtension,
    CUDA_HOME,
    load,
)

# ninja build does not work unless include_dirs are abs path
this_dir = os.path.dirname(os.path.abspath(__file__))

# Allow environment variables to specify build flags for PEP 517 compatibility
ENV_TO_FLAG = {
    "APEX_CPP_EXT": "--cpp_ext",
    "APEX_CUDA_EXT": "--cuda_ext",
    "APEX_XENTROPY": "--xentropy",
    "APEX_FAST_LAYER_NORM": "--fast_layer_norm",
    "APEX_DISTRIBUTED_ADAM": "--distributed_adam",
    "APEX_DISTRIBUTED_LAMB": "--distributed_lamb",
    "APEX_BNP": "--bnp",
    "APEX_GROUP_NORM": "--group_norm",
    "APEX_INDEX_MUL_2D": "--index_mul_2d",
    "APEX_DEPRECATED_FUSED_ADAM": "--deprecated_fused_adam",
    "APEX_DEPRECATED_FUSED_LAMB": "--deprecated_fused_lamb",
    "APEX_FAST_MULTIHEAD_ATTN": "--fast_multihead_attn",
    "APEX_FMHA": "--fmha",
    "APEX_PERMUTATION_SEARCH": "--permutation_search",
    "APEX_FOCAL_LOSS": "--focal_loss",
    "APEX_TRANSDUCER": "--transducer",
    "APEX_CUDNN_GBN": "--cudnn_gbn",
    "APEX_PEER_MEMORY": "--peer_memory",
    "APEX_NCCL_P2P": "--nccl_p2p",
    "APEX_FAST_BOTTLENECK": "--fast_bottleneck",
    "APEX_FUSED_CONV_BIAS_RELU": "--fused_conv_bias_relu",
    "APEX_NCCL_ALLOCATOR": "--nccl_allocator",
    "APEX_GPU_DIRECT_STORAGE": "--gpu_direct_storage",
}
for env_var, flag in ENV_TO_FLAG.items():
    if os.environ.get(env_var, "0") == "1" and flag not in sys.argv:
        print(f"[apex] Detected {env_var}=1, adding {flag} to build flags.")
        sys.argv.append(flag)


FLAG_TO_ENV = {v: k for k, v in ENV_TO_FLAG.items()}
CORE_FLAGS = {"--cpp_ext", "--cuda_ext"}
CONTRIB_FLAGS = set(FLAG_TO_ENV.keys()) - CORE_FLAGS


def has_flag(flag, env_var):
    if flag in sys.argv or os.environ.get(env_var, "0") == "1":
        return True
    if flag in CONTRIB_FLAGS and os.environ.get("APEX_ALL_CONTRIB_EXT", "0") == "1":
        return True
    return False


def get_cuda_bare_metal_version(cuda_dir):
    raw_output = subprocess.check_output([cuda_dir + "/bin/nvcc", "-V"], universal_newlines=True)
    output = raw_output.split()
    release_idx = output.index("release") + 1
    bare_metal_version = parse(output[release_idx].split(",")[0])

    return raw_output, bare_metal_version


def check_cuda_torch_binary_vs_bare_metal(cuda_dir):
    raw_output, bare_metal_version = get_cuda_bare_metal_version(cuda_dir)
    torch_binary_version = parse(torch.version.cuda)

    print("\nCompiling cuda extensions with")
    print(raw_output + "from " + cuda_dir + "/bin\n")

    if (bare_metal_version != torch_binary_version):
        raise RuntimeError(
            "Cuda extensions are being compiled with a version of Cuda that does "
            "not match the version used to compile Pytorch binaries.  "
            "Pytorch binaries were compiled with Cuda {}.\n".format(torch.version.cuda)
            + "In some cases, a minor-version mismatch will not cause later errors:  "
            "https://github.com/NVIDIA/apex/pull/323#discussion_r287021798.  "
            "You can try commenting out this check (at your own risk)."
        )


def raise_if_cuda_home_none(global_option: str) -> None:
    if CUDA_HOME is not None:
        return
    raise RuntimeError(
        f"{global_option} was requested, but nvcc was not found.  Are you sure your environment has nvcc available?  "
        "If you're installing within a container from https://hub.docker.com/r/pytorch/pytorch, "
        "only images whose names contain 'devel' will provide nvcc."
    )


def check_cudnn_version_and_warn(global_option: str, required_cudnn_version: int) -> bool:
    cudnn_available = torch.backends.cudnn.is_available()
    cudnn_version = torch.backends.cudnn.version() if cudnn_available else None
    if not (cudnn_available and (cudnn_version >= required_cudnn_version)):
        warnings.warn(
            f"Skip `{global_option}` as it requires cuDNN {required_cudnn_version} or later, "
            f"but {'cuDNN is not available' if not cudnn_available else cudnn_version}"
        )
        return False
    return True


if not torch.cuda.is_available():
    # https://github.com/NVIDIA/apex/issues/486
    # Extension builds after https://github.com/pytorch/pytorch/pull/23408 attempt to query torch.cuda.get_device_capability(),
    # which will fail if you are compiling in an environment without visible GPUs (e.g. during an nvidia-docker build command).
    print(
        "\nWarning: Torch did not find available GPUs on this system.\n",
        "If your intention is to cross-compile, this is not an error.\n"
        "By default, Apex will cross-compile for Pascal (compute capabilities 6.0, 6.1, 6.2) (until CUDA 12.8),\n"
        "Volta (compute capability 7.0), Turing (compute capability 7.5),\n"
        "and, if the CUDA version is >= 11.0, Ampere (compute capability 8.0, 8.6), and,\n"
        "if the CUDA version is >= 12.8, Blackwell (compute capability 10.0, 12.0).\n"
        "If you wish to cross-compile for a single specific architecture,\n"
        'export TORCH_CUDA_ARCH_LIST="compute capability" before running setup.py.\n',
    )
    if os.environ.get("TORCH_CUDA_ARCH_LIST", None) is None and CUDA_HOME is not None:
        _, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)
        if bare_metal_version >= Version("13.0"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = "7.5;8.0;8.6;9.0;10.0;11.0;12.0"
        elif bare_metal_version >= Version("12.8"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = "7.0;7.5;8.0;8.6;9.0;10.0;12.0"
        elif bare_metal_version >= Version("11.8"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = "6.0;6.1;6.2;7.0;7.5;8.0;8.6;9.0"
        elif bare_metal_version >= Version("11.1"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = "6.0;6.1;6.2;7.0;7.5;8.0;8.6"
        elif bare_metal_version == Version("11.0"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = "6.0;6.1;6.2;7.0;7.5;8.0"
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = "6.0;6.1;6.2;7.0;7.5"

print("\n\ntorch.__version__  = {}\n\n".format(torch.__version__))
TORCH_MAJOR = int(torch.__version__.split(".")[0])
TORCH_MINOR = int(torch.__version__.split(".")[1])

if TORCH_MAJOR == 0 and TORCH_MINOR < 4:
    raise RuntimeError(
        "Apex requires Pytorch 0.4 or newer.\nThe latest stable release can be obtained from https://pytorch.org/"
    )

cmdclass = {}
ext_modules = []

extras = {}

if "--cpp_ext" in sys.argv or "--cuda_ext" in sys.argv:
    if TORCH_MAJOR == 0:
        raise RuntimeError(
            "--cpp_ext requires Pytorch 1.0 or later, " "found torch.__version__ = {}".format(torch.__version__)
        )

if has_flag("--cpp_ext", "APEX_CPP_EXT"):
    if "--cpp_ext" in sys.argv:
        sys.argv.remove("--cpp_ext")
    ext_modules.append(CppExtension("apex_C", ["csrc/flatten_unflatten.cpp"]))


# Set up macros for forward/backward compatibility hack around
# https://github.com/pytorch/pytorch/commit/4404762d7dd955383acee92e6f06b48144a0742e
# and
# https://github.com/NVIDIA/apex/issues/456
# https://github.com/pytorch/pytorch/commit/eb7b39e02f7d75c26d8a795ea8c7fd911334da7e#diff-4632522f237f1e4e728cb824300403ac
version_ge_1_1 = []
if (TORCH_MAJOR > 1) or (TORCH_MAJOR == 1 and TORCH_MINOR > 0):
    version_ge_1_1 = ["-DVERSION_GE_1_1"]
version_ge_1_3 = []
if (TORCH_MAJOR > 1) or (TORCH_MAJOR == 1 and TORCH_MINOR > 2):
    version_ge_1_3 = ["-DVERSION_GE_1_3"]
version_ge_1_5 = []
if (TORCH_MAJOR > 1) or (TORCH_MAJOR == 1 and TORCH_MINOR > 4):
    version_ge_1_5 = ["-DVERSION_GE_1_5"]
version_dependent_macros = version_ge_1_1 + version_ge_1_3 + version_ge_1_5

_, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)


if has_flag("--cuda_ext", "APEX_CUDA_EXT"):
    if "--cuda_ext" in sys.argv:
        sys.argv.remove("--cuda_ext")
    raise_if_cuda_home_none("--cuda_ext")
    check_cuda_torch_binary_vs_bare_metal(CUDA_HOME)

    ext_modules.append(
        CUDAExtension(
            name="amp_C",
            sources=[
                "csrc/amp_C_frontend.cpp",
                "csrc/multi_tensor_sgd_kernel.cu",  # ... 13 more sources left out
            ],
            extra_compile_args={
                "cxx": ["-O3"] + version_dependent_macros,
                "nvcc": [
                    "-lineinfo",
                    "-O3",
                    # '--resource-usage',
                    "--use_fast_math",
                ] + version_dependent_macros,
            },
        )
    )


    if bare_metal_version >= Version("11.0"):

        cc_flag = []
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_70,code=sm_70")
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_80,code=sm_80")
        if bare_metal_version >= Version("11.1"):
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_86,code=sm_86")
        if bare_metal_version >= Version("11.8"):
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_90,code=sm_90")
        if bare_metal_version >= Version("12.8"):
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_100,code=sm_100")
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_120,code=sm_120")

        ext_modules.append(
            CUDAExtension(
                name="fused_weight_gradient_mlp_cuda",
                include_dirs=[os.path.join(this_dir, "csrc")],
                sources=[
                    "csrc/megatron/fused_weight_gradient_dense.cpp",
                    "csrc/megatron/fused_weight_gradient_dense_cuda.cu",
                    "csrc/megatron/fused_weight_gradient_dense_16bit_prec_cuda.cu",
                ],
                extra_compile_args={
                    "cxx": ["-O3"] + version_dependent_macros,
                    "nvcc": [
                        "-O3",
                        "-U__CUDA_NO_HALF_OPERATORS__",
                        "-U__CUDA_NO_HALF_CONVERSIONS__",
                        "--expt-relaxed-constexpr",
                        "--expt-extended-lambda",
                        "--use_fast_math",
                    ] + version_dependent_macros + cc_flag,
                },
            )
        )


if has_flag("--group_norm", "APEX_GROUP_NORM"):
    if "--group_norm" in sys.argv:
        sys.argv.remove("--group_norm")
    raise_if_cuda_home_none("--group_norm")

    # CUDA group norm supports from SM70
    arch_flags = []
    # FIXME: this needs to be done more cleanly
    for arch in [70, 75, 80, 86, 90, 100, 120]:
        arch_flag = f"-gencode=arch=compute_{arch},code=sm_{arch}"
        arch_flags.append(arch_flag)
    arch_flags.append(arch_flag)

    ext_modules.append(
        CUDAExtension(
            name="group_norm_cuda",
            sources=[
                "apex/contrib/csrc/group_norm/group_norm_nhwc_op.cpp",
            ] + glob.glob("apex/contrib/csrc/group_norm/*.cu"),
            include_dirs=[os.path.join(this_dir, 'csrc')],
            extra_compile_args={
                "cxx": ["-O3", "-std=c++17"] + version_dependent_macros,
                "nvcc": [
                    "-O3", "-std=c++17", "--use_fast_math", "--ftz=false",
                ] + arch_flags + version_dependent_macros,
            },
        )
    )

    # CUDA group norm V2 is tested on SM100
    if bare_metal_version >= Version("12.8"):
        arch_flags = ["-gencode=arch=compute_100,code=sm_100"]
    else:
        arch_flags = ["-gencode=arch=compute_90,code=compute_90"]

    ext_modules.append(
        CUDAExtension(
            name="group_norm_v2_cuda",
            sources=[
                "apex/contrib/csrc/group_norm_v2/gn.cpp",
                "apex/contrib/csrc/group_norm_v2/gn_cuda.cu",
                "apex/contrib/csrc/group_norm_v2/gn_utils.cpp",
            ] + glob.glob("apex/contrib/csrc/group_norm_v2/gn_cuda_inst_*.cu"),
            extra_compile_args={
                "cxx": ["-O2"] + version_dependent_macros,
                "nvcc": [
                    "-O2", "--use_fast_math", "--ftz=false",
                    "-U__CUDA_NO_HALF_CONVERSIONS__",
                    "-U__CUDA_NO_HALF_OPERATORS__",
                    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
                    "-U__CUDA_NO_BFLOAT16_OPERATORS__",
                ] + arch_flags + version_dependent_macros,
            },
        )
    )


# Check, if ATen/CUDAGeneratorImpl.h is found, otherwise use ATen/cuda/CUDAGeneratorImpl.h
# See https://github.com/pytorch/pytorch/pull/70650
generator_flag = []
torch_dir = torch.__path__[0]
if os.path.exists(os.path.join(torch_dir, "include", "ATen", "CUDAGeneratorImpl.h")):
    generator_flag = ["-DOLD_GENERATOR_PATH"]

if has_flag("--fast_layer_norm", "APEX_FAST_LAYER_NORM"):
    if "--fast_layer_norm" in sys.argv:
        sys.argv.remove("--fast_layer_norm")
    raise_if_cuda_home_none("--fast_layer_norm")

    cc_flag = []
    cc_flag.append("-gencode")
    cc_flag.append("arch=compute_70,code=sm_70")

    if bare_metal_version >= Version("11.0"):
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_80,code=sm_80")
    if bare_metal_version >= Version("11.8"):
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_90,code=sm_90")
    if bare_metal_version >= Version("12.8"):
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_100,code=sm_100")
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_120,code=sm_120")

    ext_modules.append(
        CUDAExtension(
            name="fast_layer_norm",
            sources=[
                "apex/contrib/csrc/layer_norm/ln_api.cpp",
                "apex/contrib/csrc/layer_norm/ln_fwd_cuda_kernel.cu",
                "apex/contrib/csrc/layer_norm/ln_bwd_semi_cuda_kernel.cu",
            ],
            extra_compile_args={
                "cxx": ["-O3"] + version_dependent_macros + generator_flag,
                "nvcc": [
                    "-O3",
                    "-U__CUDA_NO_HALF_OPERATORS__",
                    "-U__CUDA_NO_HALF_CONVERSIONS__",
                    "-U__CUDA_NO_BFLOAT16_OPERATORS__",
                    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
                    "-U__CUDA_NO_BFLOAT162_OPERATORS__",
                    "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
                    "-I./apex/contrib/csrc/layer_norm/",
                    "--expt-relaxed-constexpr",
                    "--expt-extended-lambda",
                    "--use_fast_math",
                ] + version_dependent_macros + generator_flag + cc_flag,
            },
            include_dirs=[os.path.join(this_dir, "apex/contrib/csrc/layer_norm")],
        )
    )


# NOTE: Requires NCCL >= 2.10.3

# note (mkozuki): Now `--fast_bottleneck` option (i.e. apex/contrib/bottleneck) depends on `--peer_memory` and `--nccl_p2p`.


# Patch because `setup.py bdist_wheel` and `setup.py develop` do not support the `parallel` option
parallel: int | None = None
if "--parallel" in sys.argv:
    idx = sys.argv.index("--parallel")
    parallel = int(sys.argv[idx + 1])
    sys.argv.pop(idx + 1)
    sys.argv.pop(idx)
else:
    # Check if APEX_PARALLEL_BUILD environment variable is set
    apex_parallel_build = os.environ.get("APEX_PARALLEL_BUILD", None)
    if apex_parallel_build is not None:
        try:
            parallel = int(apex_parallel_build)
            print(f"[apex] Using parallel build with {parallel} jobs from APEX_PARALLEL_BUILD environment variable")
        except ValueError:
            print(f"[apex] Warning: APEX_PARALLEL_BUILD environment variable '{apex_parallel_build}' is not a valid integer, ignoring")


# Prevent file conflicts when multiple extensions are compiled simultaneously
class BuildExtensionSeparateDir(BuildExtension):
    build_extension_patch_lock = threading.Lock()
    thread_ext_name_map = {}

    def finalize_options(self):
        if parallel is not None:
            self.parallel = parallel
        super().finalize_options()

    def build_extension(self, ext):
        with self.build_extension_patch_lock:
            if not getattr(self.compiler, "_compile_separate_output_dir", False):
                compile_orig = self.compiler.compile

                def compile_new(*args, **kwargs):
                    return compile_orig(*args, **{
                        **kwargs,
                        "output_dir": os.path.join(
                            kwargs["output_dir"],
                            self.thread_ext_name_map[threading.current_thread().ident]),
                    })
                self.compiler.compile = compile_new
                self.compiler._compile_separate_output_dir = True
        self.thread_ext_name_map[threading.current_thread().ident] = ext.name
        objects = super().build_extension(ext)
        return objects


setup(
    name="apex",
    version="0.1",
    packages=find_packages(
        exclude=("build", "csrc", "include", "tests", "dist", "docs", "tests", "examples", "apex.egg-info",)
    ),
    install_requires=["packaging>20.6"],
    description="PyTorch Extensions written by NVIDIA",
    ext_modules=ext_modules,
    cmdclass={"build_ext": BuildExtensionSeparateDir} if ext_modules else {},
    extras_require=extras,
)
