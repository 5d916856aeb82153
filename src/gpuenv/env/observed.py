"""What an installed torch really is, read from its files: the one reader of setup and ``gpuenv doctor``.

Shipped data can be wrong; the installed torch cannot. Setup reads it right
after torch lands (and of an adopted env before planning), and ``gpuenv
doctor`` reads it of any env, through these functions:

- its arch list: ``torch.cuda.get_arch_list()`` where the env's interpreter
  reported one (it needs no GPU from torch 2.14 on), else the fat binary of
  ``libtorch_cuda.so``: the targets nearly every compiled object holds (a
  few kernels add their own ``sm_90a`` or ``sm_89``, which are not the build's
  arch list);
- the C++ standard its headers require (``torch/all.h``: ``#error C++20 or
  later compatible compiler is required``);
- its version, CUDA release and C++11 ABI, from :class:`TorchInfo`, which the
  env's interpreter read from torch's files.

Together they make the :class:`~gpuenv.plan.giventorch.TorchFacts` the planner
plans a given torch with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gpuenv.env.targetenv import TargetEnv, TorchInfo
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.plan import knowledge
from gpuenv.plan.giventorch import TorchFacts, arch_list_from_names
from gpuenv.probe.binaries import BinaryFormatError, count_cuda_code
from gpuenv.runner import Runner

#: The torch library whose fat binary holds its kernels.
TORCH_CUDA_LIB = "libtorch_cuda.so"
#: The header that says which C++ standard torch's headers require.
TORCH_ALL_HEADER = Path("include") / "torch" / "csrc" / "api" / "include" / "torch" / "all.h"

_CXX_ERROR = re.compile(r"#\s*error\s+C\+\+(\d+) or later compatible compiler is required")

#: Where torch reported its arch list itself.
FROM_ARCH_LIST = "torch.cuda.get_arch_list()"


@dataclass(frozen=True)
class WheelArchs:
    """The arch list a torch wheel was built with, by nvcc's names, and where it was read."""

    #: "sm_80", "sm_90", "compute_90"…; empty when unknown or a CPU build.
    names: tuple[str, ...]
    #: ``torch.cuda.get_arch_list()`` or the library read; "" for a CPU build.
    source: str = ""
    #: Why it could not be read ("" when it was, or when there is nothing to read).
    problem: str = ""


def torch_library(info: TorchInfo, name: str = TORCH_CUDA_LIB, *, site: Path | None = None) -> Path | None:
    """``name`` of the torch in ``info``: in ``torch/lib`` (pip's wheels), else the env prefix's ``lib``
    (conda-forge's builds); ``site`` stands for where torch is when ``info`` does not say."""
    root = Path(info.path) if info.path else (site / "torch" if site is not None else None)
    if root is None:
        return None
    candidates = [root / "lib" / name]
    if len(root.parents) >= 4:
        candidates.append(root.parents[3] / "lib" / name)  # PREFIX/lib/pythonX.Y/site-packages/torch
    return next((c for c in candidates if c.is_file()), None)


def wheel_archs(info: TorchInfo, *, site: Path | None = None) -> WheelArchs:
    """The arch list torch was built with: as torch reports it, else from ``libtorch_cuda.so``."""
    if info.arch_list:
        return WheelArchs(tuple(info.arch_list), FROM_ARCH_LIST)
    if info.cuda is None:
        return WheelArchs(())
    library = torch_library(info, site=site)
    if library is None:
        return WheelArchs((), "", f"torch reports no arch list and has no {TORCH_CUDA_LIB}")
    try:
        counts = count_cuda_code(library)
    except BinaryFormatError as exc:
        return WheelArchs((), str(library), f"{library} cannot be read ({exc.problem})")
    return WheelArchs(build_arch_names(counts), str(library))


def build_arch_names(counts: Mapping[str, int]) -> tuple[str, ...]:
    """The targets of a library's arch list: those in at least half as many objects as the most held one."""
    if not counts:
        return ()
    most = max(counts.values())
    return tuple(sorted((n for n, c in counts.items() if 2 * c >= most), key=_arch_order))


def _arch_order(name: str) -> tuple[int, bool, str]:
    """As torch lists them: by arch, SASS before PTX."""
    digits = re.findall(r"\d+", name)
    return (int(digits[0]) if digits else 0, name.startswith("compute_"), name)


def cxx_standard(info: TorchInfo) -> int | None:
    """The C++ standard torch's headers require (17, 20), read from ``torch/all.h``; None if not found."""
    if not info.path:
        return None
    try:
        text = read_input(Path(info.path) / TORCH_ALL_HEADER, errors="replace")
    except UnreadableInput:
        return None
    match = _CXX_ERROR.search(text)
    return int(match[1]) if match else None


def torch_facts(info: TorchInfo, *, where: str = "", installed: Mapping[str, str] | None = None,
                site: Path | None = None) -> TorchFacts:
    """``info`` with the facts read from torch's files, as the planner takes them."""
    archs = wheel_archs(info, site=site)
    paired = {n: v for n, v in (installed or {}).items() if n in knowledge.paired_packages()}
    return TorchFacts(
        version=info.version,
        cuda=info.cuda,
        arch_list=arch_list_from_names(archs.names),
        cxx11_abi=info.cxx11_abi,
        cxx_standard=cxx_standard(info),
        distribution=info.distribution,
        where=where,
        arch_source=archs.source,
        paired=paired,
        hip=info.hip,
        installer=info.installer,
    )


def observe(env: TargetEnv, runner: Runner, info: TorchInfo) -> TorchFacts:
    """The facts of the torch ``info`` describes, in ``env`` (asks the env what else it holds)."""
    interpreter = env.interpreter(runner)
    return torch_facts(info, where=f"in {env.path}, Python {interpreter.version}",
                       installed=env.installed(runner), site=interpreter.site_packages)
