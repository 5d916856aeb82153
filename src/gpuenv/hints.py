"""One-line hints for the failure messages builds and installs are known to print.

A table of ``(pattern, hint)`` pairs, most specific first: :func:`hint_for`
returns the hint of the first pattern found anywhere in the text. A hint may
use the pattern's groups as ``{0}``, ``{1}``…. The messages and their causes
are those of the facts sheet, §7 and §8.
"""

from __future__ import annotations

import re

_OOM = (
    r"(?:\bKilled\b|exit (?:code|status) 137|returned non-zero exit status 137|"
    r"died due to signal 9|signal 9 \(Kill signal\)|Killed signal terminated program|"
    r"virtual memory exhausted|out of memory allocating)"
)

#: (pattern, hint) pairs; the first pattern that matches wins, so specific ones come first.
HINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), hint)
    for pattern, hint in (
        (
            r"The detected CUDA version \(([\d.]+)\) mismatches the version that was used to "
            r"compile\s+PyTorch \(([\d.]+)\)",
            "nvcc {0} does not match the CUDA {1} torch was built with: point CUDA_HOME at a CUDA {1} "
            "toolkit, or plan for the toolkit you have with --cuda {0}",
        ),
        (
            r"#error C\+\+20 or later compatible compiler is required",
            "this torch's headers need C++20 but the extension compiles with an older -std: "
            "pin a torch release the extension supports, or a newer release of the extension",
        ),
        (
            r"nvcc fatal\s*:\s*Unsupported gpu architecture '(\w+)'",
            "this nvcc cannot compile for {0}: build only the architectures it supports with --arch "
            "(or --gpu), or use a CUDA toolkit that supports them (CUDA_HOME)",
        ),
        (
            r"Unknown CUDA arch \(([^)]*)\) or GPU not supported",
            "this torch does not accept the architecture {0} in TORCH_CUDA_ARCH_LIST: "
            "pass architectures it knows with --arch (e.g. --arch 8.0,9.0)",
        ),
        (
            r"(?s)_get_cuda_arch_flags.*IndexError: list index out of range",
            "no GPU is visible and no architecture was given: pass --gpu or --arch "
            "so gpuenv sets TORCH_CUDA_ARCH_LIST",
        ),
        (
            _OOM,
            "the compiler was killed, most likely out of memory: lower MAX_JOBS (and NVCC_THREADS) "
            "in the recipe's env for this extension, or build fewer architectures with --arch",
        ),
        (
            r"CUDA_HOME environment variable is not set|CUDA was not found on the system",
            "no CUDA toolkit was found for this build: set CUDA_HOME to a toolkit root with bin/nvcc "
            "(gpuenv sets it from the planned toolkit), and check that torch is a CUDA build, not +cpu",
        ),
        (
            r"cannot find -lcudart",
            "the linker found no libcudart: set CUDA_HOME to a real toolkit root "
            "(one with include/cuda_runtime.h), not a directory that only holds an nvcc wrapper",
        ),
        (
            r"unsupported GNU version|gcc versions later than \d+ are not supported",
            "nvcc rejects this host compiler: set CC and CXX to a gcc this CUDA toolkit supports "
            "in the recipe's env for this extension",
        ),
        (
            r"No module named '?torch'?(?![.\w])",
            "the build could not import torch: it ran under build isolation or in another interpreter; "
            "build without isolation in the env that holds torch (gpuenv does: install torch first)",
        ),
        (
            r"No module named '?(\w+(?:\.\w+)*)",
            "the build imports {0}, which the build env lacks: build without isolation and add {0} "
            "to the extension's build-requires in the recipe",
        ),
        (
            r"undefined symbol: (\S+)",
            "undefined symbol {0}: the extension was built for another torch or C++ ABI; rebuild it "
            "against the installed torch (set its force-build flag so no prebuilt wheel is downloaded)",
        ),
        (
            r"No matching distribution found for (\S+)",
            "{0} is not on the configured package indexes: check --torch-index / GPUENV_TORCH_INDEX "
            "and the installer's own index configuration",
        ),
    )
)


def hint_for(log_text: str) -> str | None:
    """The hint for the first known failure message in ``log_text``, or None."""
    for pattern, hint in HINTS:
        match = pattern.search(log_text)
        if match is not None:
            return hint.format(*match.groups())
    return None
