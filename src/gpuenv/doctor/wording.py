"""How the doctor's checks word what they found: GPU code and GPU lists, the error a traceback ends with.

Shared by the torch and the extension checks, so both say the same thing the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gpuenv.plan.hardware import Gpu
from gpuenv.probe.binaries import CudaCode

#: What CUDA says when a kernel holds no code for the GPU: the checks predict it.
NO_KERNEL_IMAGE = "no kernel image is available for execution on the device"


def describe_code(code: CudaCode) -> str:
    """"sm_80 sm_90 +PTX compute_90", in arch order."""
    sass = " ".join(sorted(code.sass, key=_arch_order))
    ptx = " ".join(sorted(code.ptx, key=_arch_order))
    return " ".join(part for part in (sass, f"+PTX {ptx}" if ptx else "") if part)


def _arch_order(name: str) -> tuple[int, str]:
    digits = re.search(r"(\d+)(\w?)$", name)
    return (int(digits.group(1)), digits.group(2)) if digits else (0, name)


def gpu_list(gpus: Sequence[Gpu]) -> str:
    return ", ".join(f"GPU {g.index} {g.name} ({g.compute_capability})" for g in gpus)


def last_error(text: str) -> str:
    """The line that names the error in a traceback ("ImportError: …"), else the last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception)\b", line):
            return line
    return lines[-1] if lines else text
