"""The data files gpuenv ships in ``gpuenv/plan/data``: the one place the planner reads a file.

Each is parsed once, on first use; the typed records over them are
:mod:`gpuenv.plan.knowledge`'s, :mod:`gpuenv.plan.releases`' and :mod:`gpuenv.plan.catalog`'s.
"""

from __future__ import annotations

import functools
import sys
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@functools.cache
def data_file(name: str) -> dict[str, Any]:
    """The parsed data file ``name`` ("cuda.toml") of ``gpuenv/plan/data``, read once."""
    text = resources.files("gpuenv.plan").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    data: dict[str, Any] = tomllib.loads(text)
    return data
