"""What the recipe's local source trees say, as the planner takes it.

Read before planning, never by the planner: :func:`gpuenv.load.treefacts.recipe_tree` fills
:class:`TreeFacts` from the repository and the local extension trees, with what their ``setup.py``
says (:class:`SetupFacts`, :mod:`gpuenv.load.setupscan`) and the uses of APIs a torch release
removed (:class:`Hit`, :mod:`gpuenv.load.sourcecheck`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gpuenv.errors import UnsatisfiableError
from gpuenv.plan import knowledge
from gpuenv.plan.buildfiles.conditions import Context
from gpuenv.plan.buildfiles.facts import BuildFacts

#: What gpuenv sets for every CUDA build of a tree (the values only need to be present).
BUILD_ENV = {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "8.0"}


@dataclass(frozen=True)
class SetupFacts:
    path: Path
    problem: str | None = None
    build: BuildFacts | None = None
    #: The switches gpuenv sets so the CUDA build happens without a visible GPU (("FORCE_CUDA", "1"),).
    switches: tuple[tuple[str, str], ...] = ()
    #: Why a build without a visible GPU compiles no CUDA, or None.
    needs_visible_gpu: str | None = None
    #: (line, what): it asks the GPU it runs on.
    gpu_queries: tuple[tuple[int, str], ...] = ()
    #: Lines of a try/except around the CUDA extension (a failed CUDA build goes unnoticed).
    swallowed: tuple[int, ...] = ()
    #: (file, line, where: "install_requires", "extras_require:KEY" or "").
    requirement_files: tuple[tuple[str, int, str], ...] = ()
    #: Static ``install_requires`` strings, with their lines.
    install_requires: tuple[tuple[str, int], ...] = ()
    python_requires: tuple[str, int] | None = None
    #: The relative paths its string constants name ("thirdparty/lietorch/eigen").
    paths: tuple[str, ...] = ()
    #: (path, line) of the relative folders its extensions include (``include_dirs``).
    include_dirs: tuple[tuple[str, int], ...] = ()

    @property
    def cuda_lines(self) -> tuple[int, ...]:
        if self.build is None:
            return ()
        return tuple(
            e.where.line
            for e in self.build.cuda_extensions
            if e.where.file == "setup.py"
            and e.condition.value(Context(gpu=True, env=dict(BUILD_ENV))) is not False
        )

    @property
    def builds_cuda(self) -> bool:
        return bool(self.cuda_lines)

    @property
    def only_when_visible(self) -> bool:
        """Its CUDA build depends on what torch sees (a GPU test, or a query of the GPU)."""
        return bool(self.build is not None and self.build.gpu_gates) or bool(self.gpu_queries)


@dataclass(frozen=True)
class Hit:
    """One use of a removed API: what, where, from which torch release it fails, and why we know."""

    api: str
    #: The file, relative to the tree searched.
    path: str
    line: int
    removed_in: str
    fix: str
    source: str

    def reason(self, torch: str) -> str:
        return (
            f"{self.path}:{self.line} uses {self.api}, which torch {self.removed_in} removed "
            f"(torch {torch} cannot compile it; {self.fix}) [{self.source}]"
        )


def blocking(hits: tuple[Hit, ...], torch_version: str | None) -> Hit | None:
    """The first use that torch ``torch_version`` ("2.14.1") cannot compile, or None."""
    if torch_version is None:
        return None
    version = knowledge.version_tuple(torch_version)[:2]
    for hit in hits:
        if version >= knowledge.version_tuple(hit.removed_in)[:2]:
            return hit
    return None


@dataclass(frozen=True)
class RepoTree:
    """The repository itself, as its setup.py builds it."""

    path: Path
    setup: SetupFacts
    #: Uses of removed APIs in its own sources (not in extension folders or submodules).
    hits: tuple[Hit, ...] = ()

    @property
    def compiles_cuda(self) -> bool:
        return self.setup.problem is None and self.setup.builds_cuda


@dataclass(frozen=True)
class TreeFacts:
    blockers: tuple[UnsatisfiableError, ...] = ()
    #: Worth saying in the plan (a stale .gitmodules entry).
    notes: tuple[str, ...] = ()
    repo: RepoTree | None = None
    #: Extension name → uses of removed APIs in its local tree.
    hits: Mapping[str, tuple[Hit, ...]] = field(default_factory=dict)
    #: Extension name → what its local tree's setup.py says (its build facts, its GPU tests).
    setups: Mapping[str, SetupFacts] = field(default_factory=dict)
