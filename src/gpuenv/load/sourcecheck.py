"""Local C++/CUDA sources searched, as text, for APIs a torch release removed.

A repository's own CUDA code and its extension folders are compiled against
the env's torch; code that uses an API torch removed (``.type()`` passed to
``AT_DISPATCH_*`` since 2.6, ``THC/THC.h`` since 1.11, …: the table with its
sources is gpuenv/plan/data/removed_apis.toml) cannot compile against that
release or a newer one. Each such use caps the torch release; the plan names the
file and line. (A hard-coded ``-std=c++NN`` older than a release's headers require
is :mod:`gpuenv.plan.treecheck`'s.) The search is bounded: at most :data:`MAX_FILES`
source files of at most :data:`MAX_FILE_BYTES` each, nothing is compiled.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.load.treewalk import subfolders
from gpuenv.plan.packagedata import data_file
from gpuenv.plan.sourcetrees import Hit

MAX_FILES = 3000
MAX_FILE_BYTES = 2 << 20
MAX_DEPTH = 8
_SUFFIXES = (".cu", ".cuh", ".cpp", ".cc", ".cxx", ".c", ".h", ".hpp", ".hh", ".inl")
#: Besides what no reader walks: vendored code, docs and tests, whose CUDA is not what the tree builds.
_NOT_WALKED = frozenset(
    {"third_party", "thirdparty", "3rdparty", "external", "extern", "docs", "test", "tests"}
)


@dataclass(frozen=True)
class _Api:
    name: str
    pattern: re.Pattern[str]
    removed_in: str
    fix: str
    source: str


@functools.cache
def _apis() -> tuple[_Api, ...]:
    raw = data_file("removed_apis.toml").get("api", [])
    return tuple(
        _Api(
            str(a["name"]),
            re.compile(str(a["pattern"])),
            str(a["removed_in"]),
            str(a["fix"]),
            str(a["sources"][0]),
        )
        for a in raw
    )


def scan_tree(tree: Path, *, skip: frozenset[Path] = frozenset()) -> tuple[Hit, ...]:
    """Every use of a removed API in the C++/CUDA sources of ``tree`` (not under ``skip``)."""
    hits: list[Hit] = []
    seen = 0
    for directory, dirs, files in os.walk(tree):
        here = Path(directory)
        depth = len(here.relative_to(tree).parts)
        dirs[:] = subfolders(here, dirs, depth, max_depth=MAX_DEPTH, skipped=skip, also=_NOT_WALKED,
                             hidden=False)
        for name in sorted(files):
            if not name.lower().endswith(_SUFFIXES):
                continue
            seen += 1
            if seen > MAX_FILES:
                return tuple(hits)
            hits += _scan_file(tree, here / name)
    return tuple(hits)


def _scan_file(tree: Path, path: Path) -> list[Hit]:
    try:
        text = read_input(path, limit=MAX_FILE_BYTES, errors="replace")
    except UnreadableInput:
        return []
    found = []
    for api in _apis():
        match = api.pattern.search(text)
        if match is not None:
            line = text.count("\n", 0, match.start()) + 1
            found.append(
                Hit(api.name, path.relative_to(tree).as_posix(), line, api.removed_in, api.fix, api.source)
            )
    return found
