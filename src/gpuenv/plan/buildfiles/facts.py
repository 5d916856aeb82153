"""What a package's build files say, as typed records: each fact carries the file and line it was read from.

A fact the extractor did not recognise says so (``ArchKnob.recognised``,
``Gencode.nvcc is None``, an ``Unknown`` in a condition) rather than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpuenv.plan.buildfiles.conditions import Cond, Context
from gpuenv.plan.buildfiles.envreads import EnvCheck
from gpuenv.plan.buildfiles.pysource import Where


@dataclass(frozen=True)
class Gencode:
    """A hard-coded ``-gencode arch=compute_XX,code=sm_XX`` and when it is passed."""

    arch: str
    #: ``code=compute_XX``: PTX, not a cubin.
    ptx: bool
    condition: Cond
    #: The nvcc versions it is passed for (PEP 440, "" for any), the package's options and knob
    #: choices assumed on; None when the condition is no plain nvcc range.
    nvcc: str | None
    #: The value of the package's arch knob that turns it on ("90"), if it takes one.
    knob_choice: str | None
    #: The setup.py options or variables it also needs ("--cuda_ext"), as the file writes them.
    needs: tuple[str, ...]
    #: The variable it is added to (``cc_flag``), if any.
    into: str | None
    where: Where

    @property
    def label(self) -> str:
        return f"{self.arch}+PTX" if self.ptx else self.arch


@dataclass(frozen=True)
class StdFlag:
    """``-std=c++NN`` passed to ``compiler`` ("cxx", "nvcc", or "?" when it cannot be told)."""

    compiler: str
    std: int
    condition: Cond
    where: Where


@dataclass(frozen=True)
class NvccThreads:
    """``--threads N`` passed to nvcc: a constant ``count``, or the value of ``knob`` (``count``: its
    default)."""

    count: int | None
    knob: str | None
    condition: Cond
    where: Where


@dataclass(frozen=True)
class StableAbi:
    """``-DTORCH_TARGET_VERSION=0x020a…``: it builds against the stable ABI of torch ``version`` ("2.10")."""

    version: str
    condition: Cond
    where: Where


@dataclass(frozen=True)
class MinNvcc:
    """``if bare_metal_version < Version(X): raise``, in code that runs when ``condition`` holds."""

    version: str
    condition: Cond
    where: Where


@dataclass(frozen=True)
class ArchDefault:
    """The value the arch knob takes when unset, for the nvcc versions ``nvcc`` (None: unrecognised)."""

    value: str
    nvcc: str | None
    where: Where


@dataclass(frozen=True)
class ArchChoice:
    """A value the package's own arch knob understands ("90"), for the nvcc versions ``nvcc``."""

    value: str
    nvcc: str | None
    where: Where


@dataclass(frozen=True)
class ArchKnob:
    """The variable that carries the arch list; ``name`` None: the archs are fixed by ``-gencode``."""

    name: str | None
    #: "torch" (8.0;9.0) or "nodot" (80;90); None when it cannot be told.
    format: str | None
    defaults: tuple[ArchDefault, ...]
    choices: tuple[ArchChoice, ...]
    where: Where | None
    #: False: the build files do not show where the archs come from (``note`` says why).
    recognised: bool = True
    note: str = ""


@dataclass(frozen=True)
class CudaExtension:
    """A ``CUDAExtension(...)`` the build makes; ``fixed``: its nvcc flags hold ``-gencode`` flags,
    so torch ignores TORCH_CUDA_ARCH_LIST for it."""

    name: str | None
    fixed: bool
    condition: Cond
    where: Where


@dataclass(frozen=True)
class Ninja:
    """Whether the build compiles with ninja (so MAX_JOBS counts): when ``condition`` holds."""

    condition: Cond
    text: str
    where: Where | None


@dataclass(frozen=True)
class GpuGate:
    """The build compiles CUDA only when ``test`` holds (it asks torch for a GPU), or one of ``forcing``."""

    test: Cond
    forcing: tuple[Cond, ...]
    overrides: tuple[EnvCheck, ...]
    where: Where

    def builds_cuda(self, ctx: Context) -> bool | None:
        values = [self.test.value(ctx), *(f.value(ctx) for f in self.forcing)]
        if True in values:
            return True
        return False if all(v is False for v in values) else None


@dataclass(frozen=True)
class BuildOption:
    """A setup.py option read from ``sys.argv`` (``--cuda_ext``) and the variables that stand for it."""

    option: str
    env: tuple[str, ...]
    where: Where


@dataclass(frozen=True)
class ToolkitMatch:
    """The nvcc must equal torch's CUDA: "minor" (major.minor) or "major"."""

    level: str
    where: Where


@dataclass(frozen=True)
class BuildFacts:
    """Everything read from one package's build files."""

    files: tuple[str, ...]
    #: Every environment variable read, in the code a Linux CUDA build runs.
    env: tuple[EnvCheck, ...]
    arch_knob: ArchKnob
    gencodes: tuple[Gencode, ...]
    #: ``-gencode`` flags built at run time (an f-string): not a fixed list.
    computed_gencodes: tuple[Where, ...]
    cuda_extensions: tuple[CudaExtension, ...]
    std_flags: tuple[StdFlag, ...]
    min_nvcc: tuple[MinNvcc, ...]
    ninja: Ninja
    gpu_gates: tuple[GpuGate, ...]
    options: tuple[BuildOption, ...]
    toolkit_match: tuple[ToolkitMatch, ...]
    nvcc_threads: tuple[NvccThreads, ...]
    stable_abi: tuple[StableAbi, ...]
    #: The version the files declare (``setup(version="0.1")``), if a constant.
    declared_version: str | None
    #: What could not be read: a file that does not parse, an env read whose name is computed.
    notes: tuple[str, ...] = ()

    def reads(self, name: str) -> tuple[EnvCheck, ...]:
        return tuple(c for c in self.env if c.name == name)
