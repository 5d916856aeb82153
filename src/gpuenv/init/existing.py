"""Whether ``gpuenv init`` runs in an env that already holds torch: a container's Python, a conda env.

There the recipe it writes builds into that env against its torch (``[torch]
use = "existing"``) instead of making a venv with a torch of its own.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from gpuenv.setup.adopt import made_by_gpuenv


@dataclass(frozen=True)
class ExistingTorch:
    """The torch of the Python gpuenv runs in, where gpuenv did not make that env."""

    version: str
    prefix: Path

    def describe(self) -> str:
        return f"torch {self.version} in {self.prefix} (the Python gpuenv runs in, not made by gpuenv)"


def torch_in_this_python() -> ExistingTorch | None:
    """torch in the interpreter running gpuenv, unless that env is gpuenv's own (or has none)."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None
    prefix = Path(sys.prefix)
    return None if made_by_gpuenv(prefix) else ExistingTorch(version, prefix)


def fits(found: ExistingTorch, pinned: str | None) -> bool:
    """Whether the repository's torch pin (a specifier or a version) admits the torch found."""
    if not pinned:
        return True
    text = pinned if any(c in pinned for c in "<>=!~") else f"=={pinned}"
    try:
        return SpecifierSet(text).contains(Version(found.version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False
