"""The recipe as the planner takes it: the frozen :class:`Recipe` and its ``[repo]`` and ``[packages]`` parts.

:mod:`gpuenv.load.recipe` reads and validates the file into it; the records of its other tables
are :mod:`gpuenv.plan.torchspec`'s, :mod:`gpuenv.plan.extensionspec`'s and :mod:`gpuenv.plan.cachespec`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gpuenv.plan.cachespec import CacheSpec
from gpuenv.plan.extensionspec import ExtensionSpec
from gpuenv.plan.torchspec import TorchSpec


@dataclass(frozen=True)
class RepoSpec:
    """The repository itself, installed last into the env (``[repo]``)."""

    #: The project directory (absolute).
    path: Path
    editable: bool = True
    extras: tuple[str, ...] = ()
    #: Build it under isolation; False (the default) builds against the env's torch.
    isolation: bool = False

    @property
    def requirement(self) -> str:
        """What pip is given: ``/repo[train]``."""
        return str(self.path) + (f"[{','.join(self.extras)}]" if self.extras else "")


@dataclass(frozen=True)
class PackageSources:
    """Index options a requirements file gives (``--index-url``, ``--extra-index-url``, ``--find-links``)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    #: The file it was read from (the pyproject.toml for a [tool.gpuenv] table).
    path: Path
    name: str
    description: str
    torch: TorchSpec
    extensions: tuple[ExtensionSpec, ...] = ()
    packages: tuple[str, ...] = ()
    #: The pyproject.toml table the recipe came from, or None for a recipe file.
    table: str | None = field(default=None)
    #: The Python the env must have (a specifier: ">=3.10,<3.12"), or None for gpuenv's own.
    python: str | None = None
    #: The repository itself, installed last; None: not installed.
    repo: RepoSpec | None = None
    #: The requirements files [packages] names; their lines are in ``packages`` (minus what
    #: the recipe installs itself), and their index options here.
    requirement_files: tuple[Path, ...] = ()
    package_sources: PackageSources = field(default_factory=PackageSources)
    #: Lines of those files left out, with why ("requirements.txt:3: torch==2.0.1: torch comes from [torch]").
    left_out: tuple[str, ...] = ()
    #: Lines of those files pip refuses ("requirements.txt:41: '-e ./sd-scripts': pip refuses it: …"):
    #: the plan stops on them.
    refused: tuple[str, ...] = ()
    #: The [cache] table: shared caches to ask before building, whether to push, prebuilt wheels.
    cache: CacheSpec = field(default_factory=CacheSpec)

    @property
    def root(self) -> Path:
        """The directory relative paths in the recipe are resolved against."""
        return self.path.parent
