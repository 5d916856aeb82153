"""Which folders gpuenv's readers of a source tree walk into: one rule for all of them.

Never a link (it may lead out of the tree, or round in a loop), never deeper
than the reader's depth, never a folder the caller already accounts for
(a submodule, an extension folder read on its own), and never a folder that
holds no project's own files: version control, envs, tool caches, build
output (:data:`NEVER_WALKED`). Each reader adds the folders it has no use
for (vendored code and docs for the CUDA source check; datasets and
checkpoints for the requirements search).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

#: Folders no reader walks into: version control, envs, tool caches and build output.
NEVER_WALKED = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".nox",
        ".tox",
        "node_modules",
        "build",
        "dist",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "site-packages",
        ".eggs",
    }
)


def subfolders(here: Path, names: Collection[str], depth: int, *, max_depth: int,
               skipped: Collection[Path] = (), also: Collection[str] = (), hidden: bool = True) -> list[str]:
    """The folders of ``names`` (those in ``here``, ``depth`` below the root) a reader walks into, sorted.

    ``also``: names this reader passes over too; ``hidden=False`` passes over every name starting
    with a dot; ``skipped``: paths the caller accounts for itself.
    """
    if depth >= max_depth:
        return []
    return sorted(
        name for name in names
        if name not in NEVER_WALKED
        and name not in also
        and not name.endswith(".egg-info")
        and (hidden or not name.startswith("."))
        and (here / name) not in skipped
        and not (here / name).is_symlink()
    )
