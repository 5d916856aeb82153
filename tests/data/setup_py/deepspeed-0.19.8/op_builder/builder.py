# deepspeed 0.19.8: an excerpt of its build logic, a fixture of the knowledge checker (tests/catalogcheck).
# Copied from its PyPI sdist deepspeed-0.19.8.tar.gz (sha256 9e491abd0827ea5c389dd702e15e11e13d83d904bac4a20d6c2a4cb37207a9af), op_builder/builder.py.
# Apache-2.0, Copyright (c) Microsoft Corporation. Left out: everything but the module header (lines 1-42), the version checks (79-132) and CUDAOpBuilder's builder, cxx_args and nvcc_args (638-639, 801-850, 865-910); the lines kept are as published.
# Copyright (c) Microsoft Corporation.
# SPDX-License-Identifier: Apache-2.0

# DeepSpeed Team

import os
import re
import sys
import time
import importlib
from pathlib import Path
import subprocess
import shlex
import shutil
import tempfile
from abc import ABC, abstractmethod
from typing import List

YELLOW = '\033[93m'
END = '\033[0m'
WARNING = f"{YELLOW} [WARNING] {END}"

DEFAULT_TORCH_EXTENSION_PATH = "/tmp/torch_extensions"
DEFAULT_COMPUTE_CAPABILITIES = "6.0;6.1;7.0"

try:
    import torch
except ImportError:
    print(f"{WARNING} unable to import torch, please install it if you want to pre-compile any deepspeed ops.")
else:
    TORCH_MAJOR = int(torch.__version__.split('.')[0])
    TORCH_MINOR = int(torch.__version__.split('.')[1])


class MissingCUDAException(Exception):
    pass


class CUDAMismatchException(Exception):
    pass


def get_default_compute_capabilities():
    compute_caps = DEFAULT_COMPUTE_CAPABILITIES
    # Update compute capability according to: https://en.wikipedia.org/wiki/CUDA#GPUs_supported
    import torch.utils.cpp_extension
    if torch.utils.cpp_extension.CUDA_HOME is not None:
        if installed_cuda_version()[0] == 11:
            if installed_cuda_version()[1] >= 0:
                compute_caps += ";8.0"
            if installed_cuda_version()[1] >= 1:
                compute_caps += ";8.6"
            if installed_cuda_version()[1] >= 8:
                compute_caps += ";9.0"
        elif installed_cuda_version()[0] == 12:
            compute_caps += ";8.0;8.6;9.0"
            if installed_cuda_version()[1] >= 8:
                compute_caps += ";10.0;12.0"
    return compute_caps


# list compatible minor CUDA versions - so that for example pytorch built with cuda-11.0 can be used
# to build deepspeed and system-wide installed cuda 11.2
cuda_minor_mismatch_ok = {
    10: ["10.0", "10.1", "10.2"],
    11: ["11.0", "11.1", "11.2", "11.3", "11.4", "11.5", "11.6", "11.7", "11.8"],
    12: ["12.0", "12.1", "12.2", "12.3", "12.4", "12.5", "12.6", "12.8", "12.9"],  # There is no CUDATk 12.7
}


def assert_no_cuda_mismatch(name=""):
    cuda_major, cuda_minor = installed_cuda_version(name)
    sys_cuda_version = f'{cuda_major}.{cuda_minor}'
    torch_cuda_version = ".".join(torch.version.cuda.split('.')[:2])
    # This is a show-stopping error, should probably not proceed past this
    if sys_cuda_version != torch_cuda_version:
        if (cuda_major in cuda_minor_mismatch_ok and sys_cuda_version in cuda_minor_mismatch_ok[cuda_major]
                and torch_cuda_version in cuda_minor_mismatch_ok[cuda_major]):
            print(f"Installed CUDA version {sys_cuda_version} does not match the "
                  f"version torch was compiled with {torch.version.cuda} "
                  "but since the APIs are compatible, accepting this combination")
            return True
        elif os.getenv("DS_SKIP_CUDA_CHECK", "0") == "1":
            print(
                f"{WARNING} DeepSpeed Op Builder: Installed CUDA version {sys_cuda_version} does not match the "
                f"version torch was compiled with {torch.version.cuda}."
                "Detected `DS_SKIP_CUDA_CHECK=1`: Allowing this combination of CUDA, but it may result in unexpected behavior."
            )
            return True
        raise CUDAMismatchException(
            f">- DeepSpeed Op Builder: Installed CUDA version {sys_cuda_version} does not match the "
            f"version torch was compiled with {torch.version.cuda}, unable to compile "
            "cuda/cpp extensions without a matching cuda version.")
    return True


class CUDAOpBuilder(OpBuilder):

    def builder(self):
        try:
            if not self.is_rocm_pytorch():
                assert_no_cuda_mismatch(self.name)
            self.build_for_cpu = False
        except MissingCUDAException:
            self.build_for_cpu = True

        if self.build_for_cpu:
            from torch.utils.cpp_extension import CppExtension as ExtensionBuilder
        else:
            from torch.utils.cpp_extension import CUDAExtension as ExtensionBuilder
        include_dirs = [os.path.abspath(x) for x in self.strip_empty_entries(self.include_paths())]
        compile_args = {'cxx': self.strip_empty_entries(self.cxx_args())} if self.build_for_cpu else \
                       {'cxx': self.strip_empty_entries(self.cxx_args()), \
                        'nvcc': self.strip_empty_entries(self.nvcc_args())}

        if not self.build_for_cpu and self.enable_bf16:
            compile_args['cxx'].append("-DBF16_AVAILABLE")
            compile_args['nvcc'].append("-DBF16_AVAILABLE")

        if self.is_rocm_pytorch():
            compile_args['cxx'].append("-D__HIP_PLATFORM_AMD__=1")
            #cxx compiler args are required to compile cpp files
            compile_args['cxx'].append('-DROCM_WAVEFRONT_SIZE=%s' % self.get_rocm_wavefront_size())
            #nvcc compiler args are required to compile hip files
            compile_args['nvcc'].append('-DROCM_WAVEFRONT_SIZE=%s' % self.get_rocm_wavefront_size())
            if self.get_rocm_gpu_arch():
                os.environ["PYTORCH_ROCM_ARCH"] = self.get_rocm_gpu_arch()

        cuda_ext = ExtensionBuilder(name=self.absolute_name(),
                                    sources=self.strip_empty_entries(self.sources()),
                                    include_dirs=include_dirs,
                                    libraries=self.strip_empty_entries(self.libraries_args()),
                                    extra_compile_args=compile_args,
                                    extra_link_args=self.strip_empty_entries(self.extra_ldflags()))

        if self.is_rocm_pytorch():
            # hip converts paths to absolute, this converts back to relative
            sources = cuda_ext.sources
            curr_file = Path(__file__).parent.parent  # ds root
            for i in range(len(sources)):
                src = Path(sources[i])
                if src.is_absolute():
                    sources[i] = str(src.relative_to(curr_file))
                else:
                    sources[i] = str(src)
            cuda_ext.sources = sources
        return cuda_ext

    def cxx_args(self):
        if sys.platform == "win32":
            return ['-O2']
        else:
            cpp_standard = '-std=c++20' if (TORCH_MAJOR, TORCH_MINOR) >= (2, 12) else '-std=c++17'
            return ['-O3', cpp_standard, '-g', '-Wno-reorder']

    def nvcc_args(self):
        if self.build_for_cpu:
            return []
        args = ['-O3']
        if self.is_rocm_pytorch():
            ROCM_MAJOR, ROCM_MINOR = self.installed_rocm_version()
            args += [
                '-std=c++17', '-U__HIP_NO_HALF_OPERATORS__', '-U__HIP_NO_HALF_CONVERSIONS__',
                '-U__HIP_NO_HALF2_OPERATORS__',
                '-DROCM_VERSION_MAJOR=%s' % ROCM_MAJOR,
                '-DROCM_VERSION_MINOR=%s' % ROCM_MINOR
            ]
            self.enable_bf16 = True
        else:
            try:
                nvcc_threads = int(os.getenv("DS_NVCC_THREADS", ""))
                if nvcc_threads <= 0:
                    raise ValueError("")
            except ValueError:
                nvcc_threads = min(os.cpu_count(), 8)

            cuda_major, cuda_minor = installed_cuda_version()
            if cuda_major > 10:
                if (cuda_major == 12 and cuda_minor >= 5) or cuda_major >= 13:
                    std_lib = '-std=c++20'
                else:
                    std_lib = '-std=c++17'
            else:
                std_lib = '-std=c++14'
            args += [
                '-allow-unsupported-compiler' if sys.platform == "win32" else '', '--use_fast_math', std_lib,
                '-U__CUDA_NO_HALF_OPERATORS__', '-U__CUDA_NO_HALF_CONVERSIONS__', '-U__CUDA_NO_HALF2_OPERATORS__',
                f'--threads={nvcc_threads}'
            ]
            if os.environ.get('DS_DEBUG_CUDA_BUILD', '0') == '1':
                args.append('--ptxas-options=-v')
            args += self.compute_capability_args()
        return args

