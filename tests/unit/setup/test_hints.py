"""The known failure messages and the hint each one gets."""

from __future__ import annotations

import pytest

from gpuenv.hints import hint_for

CASES = [
    (
        "RuntimeError: \nThe detected CUDA version (13.0) mismatches the version that was used to compile\n"
        "PyTorch (12.1). Please make sure to use the same CUDA versions.",
        ["nvcc 13.0", "CUDA 12.1", "CUDA_HOME", "--cuda 13.0"],
    ),
    (
        "OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.",
        ["CUDA_HOME", "+cpu"],
    ),
    ("CUDA was not found on the system, please set the CUDA_HOME or the CUDA_PATH", ["CUDA_HOME"]),
    ("g++: fatal error: Killed signal terminated program cc1plus\nninja: build stopped: subcommand failed.",
     ["out of memory", "MAX_JOBS", "--arch"]),
    ("nvcc error   : 'cicc' died due to signal 9 (Kill signal)", ["out of memory", "MAX_JOBS"]),
    ("error: command '/usr/bin/g++' failed with exit code 137", ["out of memory"]),
    ("Killed", ["MAX_JOBS"]),
    ("nvcc fatal   : Unsupported gpu architecture 'compute_35'", ["compute_35", "--arch", "CUDA_HOME"]),
    ("ValueError: Unknown CUDA arch (10.1) or GPU not supported", ["10.1", "--arch"]),
    (
        '  File "torch/utils/cpp_extension.py", line 2301, in _get_cuda_arch_flags\n'
        "    arch_list[-1] += '+PTX'\nIndexError: list index out of range",
        ["--gpu", "--arch", "TORCH_CUDA_ARCH_LIST"],
    ),
    ("ModuleNotFoundError: No module named 'torch'", ["isolation", "install torch first"]),
    ("ModuleNotFoundError: No module named 'packaging'", ["packaging", "build-requires"]),
    ("ImportError: flash_attn_2_cuda.so: undefined symbol: _ZN3c105ErrorC2ENS_14SourceLocationE",
     ["_ZN3c105ErrorC2ENS_14SourceLocationE", "ABI", "force-build"]),
    ("/usr/include/c10/util/C++17.h:13:2: error: #error C++20 or later compatible compiler is required",
     ["C++20", "torch release"]),
    ("/usr/bin/ld: cannot find -lcudart: No such file or directory", ["CUDA_HOME", "cuda_runtime.h"]),
    ("#error -- unsupported GNU version! gcc versions later than 13 are not supported!", ["CC", "CXX"]),
    ("ERROR: No matching distribution found for flash-attn==9.9", ["flash-attn==9.9", "--torch-index"]),
]


@pytest.mark.parametrize(("log", "words"), CASES, ids=[c[0][:40] for c in CASES])
def test_each_known_message_gets_its_hint(log: str, words: list[str]) -> None:
    hint = hint_for(f"some output\n{log}\nmore output\n")
    assert hint is not None
    for word in words:
        assert word in hint
    assert "\n" not in hint


def test_unknown_output_gets_no_hint() -> None:
    log = "error: something nobody has seen before\nninja: build stopped: subcommand failed."
    assert hint_for(log) is None


def test_the_specific_message_wins_over_a_generic_one() -> None:
    log = "No module named 'packaging'\nThe detected CUDA version (12.8) mismatches the version that was " \
          "used to compile\nPyTorch (13.0). Please make sure to use the same CUDA versions."
    hint = hint_for(log)
    assert hint is not None and "nvcc 12.8" in hint


def test_a_torch_submodule_is_not_taken_for_torch_missing() -> None:
    hint = hint_for("ModuleNotFoundError: No module named 'torch.utils.foo'")
    assert hint is not None and "torch.utils.foo" in hint
