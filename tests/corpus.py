"""The corpus of real research repositories under tests/data/repos: their install files, where they
come from, and the facts a careful reader of those files infers.

Each folder ``tests/data/repos/<owner>__<name>/`` holds the install files of one public repository,
copied unchanged at their relative paths, plus

- ``SOURCE.toml``: the repository, the commit copied from, its licence, the files copied, and what the
  real tree has that the copy lacks (submodule gitlinks, local extension folders);
- ``expected.toml``: what pip, conda and setuptools would make of those files, each fact with the
  ``file:line`` it comes from.

tests/data/repos/README.md describes every field. This module only reads; it runs nothing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

CORPUS = Path(__file__).parent / "data" / "repos"

#: The licences whose terms allow copying these files into this repository (SPDX ids).
ALLOWED_LICENSES = frozenset({"MIT", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0", "Unlicense", "ISC"})

#: What a requirements-like file is to the repo (``[[files]] role``).
ROLES = frozenset({
    "install",            # what the repo's install uses (setup.py reads it, or the README installs it)
    "extra",              # mapped to an extra, or an optional feature's file
    "dev", "test", "docs",
    "frozen-other-tool",  # a frozen env of a separate tool, not of this repo
    "demo",               # a demo's or the examples' requirements
    "per-cuda",           # the torch stack for one CUDA variant
    "other-platform",     # the torch stack for another OS or accelerator (ROCm, XPU, macOS)
    "conda",              # a conda environment file
    "lock",               # this repo's own frozen, fully pinned env
    "tool",               # the requirements of a helper tool that lives in the repo
    "subproject",         # another package or task of a monorepo, with its own env
})

#: Where an extension comes from (``[[extensions]] kind``).
KINDS = frozenset({
    "index",      # a requirement resolved from a package index
    "local",      # a folder of the repo with its own setup.py (name = the folder's path)
    "submodule",  # a git submodule (name = its path)
    "git",        # a VCS URL requirement
    "conda",      # a conda package (name = its PyPI name, e.g. pytorch-scatter -> torch-scatter)
})


class Submodule(TypedDict, total=False):
    path: str
    url: str
    gitlink: bool           # the real tree has a gitlink (mode 160000) at ``path``
    gitlink_commit: str
    notes: str


class LocalFolder(TypedDict, total=False):
    path: str
    cuda_files: int         # .cu/.cuh files under the folder in the real tree (not copied)
    cpp_files: int
    build_files: list[str]  # setup.py/pyproject.toml paths under the folder in the real tree


class Source(TypedDict, total=False):
    repo: str               # owner/name
    commit: str             # 40 hex digits
    commit_date: str
    license: str            # SPDX id
    license_file: str       # its path in the real repository
    date: str               # the day the files were copied
    copied: list[str]
    notes: str
    submodules: list[Submodule]
    local_folders: list[LocalFolder]


class Torch(TypedDict, total=False):
    requirement: str        # PEP 440 form, e.g. "torch==2.2.2"
    cuda: str               # one CUDA version, e.g. "12.1"
    cuda_requirement: str   # where the files state a range instead, e.g. ">=11.7"
    source: str             # "file:line"
    cuda_source: str        # "file:line" where the CUDA comes from another line than the requirement
    notes: str


class Python(TypedDict, total=False):
    requirement: str
    source: str
    notes: str


class RepoBuild(TypedDict, total=False):
    builds_cuda: bool              # the repo's own setup.py defines CUDAExtension(s)
    cuda_only_when_visible: bool   # ... and builds them only when it sees CUDA or a GPU
    cuda_opt_in: bool              # ... and only when asked to (an environment switch)
    source: str
    notes: str


class Extension(TypedDict, total=False):
    name: str
    requirement: str
    kind: str                      # one of KINDS
    optional: bool                 # only through an extra, an optional file or a sub-project
    cuda_only_when_visible: bool   # for local folders: as RepoBuild's
    source: str
    notes: str


class RequirementsFile(TypedDict, total=False):
    path: str
    role: str                      # one of ROLES
    why: str


class Conflict(TypedDict, total=False):
    package: str
    between: list[str]             # "file:line" of each pin
    notes: str


class Blocker(TypedDict, total=False):
    what: str
    notes: str


class NotACatalogPackage(TypedDict, total=False):
    name: str
    source: str
    why: str


class Expected(TypedDict, total=False):
    notes: str
    torch: Torch
    python: Python
    repo: RepoBuild
    extensions: list[Extension]
    files: list[RequirementsFile]
    conflicts: list[Conflict]
    blockers: list[Blocker]
    not_a_catalog_package: list[NotACatalogPackage]


@dataclass(frozen=True)
class CorpusRepo:
    """One repository of the corpus: its folder, where it comes from, and what its files say."""

    path: Path
    source: Source
    expected: Expected

    @property
    def name(self) -> str:
        """The folder's name, ``<owner>__<name>``."""
        return self.path.name

    def install_files(self) -> list[Path]:
        """The copied install files, as paths under the repo's folder."""
        return [self.path / rel for rel in self.source.get("copied", [])]


def parse_ref(ref: str) -> tuple[str, int]:
    """``"requirements/base.txt:12"`` -> ``("requirements/base.txt", 12)``."""
    path, _, line = ref.rpartition(":")
    if not path or not line.isdigit():
        raise ValueError(f"not a file:line reference: {ref!r}")
    return path, int(line)


def load_repo(path: Path) -> CorpusRepo:
    """Read one corpus folder's SOURCE.toml and expected.toml."""
    with (path / "SOURCE.toml").open("rb") as f:
        source: Source = tomllib.load(f)  # type: ignore[assignment]
    with (path / "expected.toml").open("rb") as f:
        expected: Expected = tomllib.load(f)  # type: ignore[assignment]
    return CorpusRepo(path=path, source=source, expected=expected)


def load_corpus(root: Path = CORPUS) -> list[CorpusRepo]:
    """Every repository of the corpus, by folder name."""
    return [load_repo(p) for p in sorted(root.iterdir()) if p.is_dir()]
