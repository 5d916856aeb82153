"""The recorded build files under tests/data/setup_py, and a way to name a line of one by its text."""

from __future__ import annotations

import functools
from pathlib import Path

from gpuenv.catalogcheck.sdists import build_files_of_tree
from gpuenv.plan.buildfiles.derive import derive
from gpuenv.plan.buildfiles.facts import BuildFacts

DATA = Path(__file__).resolve().parents[2] / "data" / "setup_py"


@functools.cache
def facts_of(package: str) -> BuildFacts:
    """The facts derived from the recorded excerpt ``package`` ("flash-attn-2.8.3.post2")."""
    return derive(build_files_of_tree(DATA / package))


def lines_of(package: str, text: str, file: str = "setup.py") -> list[int]:
    """The numbers of the lines of the excerpt that hold ``text``."""
    lines = (DATA / package / file).read_text(encoding="utf-8").splitlines()
    return [i + 1 for i, line in enumerate(lines) if text in line]


def line_of(package: str, text: str, file: str = "setup.py") -> int:
    """The number of the one line of the excerpt that holds ``text``."""
    found = lines_of(package, text, file)
    assert len(found) == 1, f"{text!r} is on lines {found} of {package}/{file}, not on exactly one"
    return found[0]
