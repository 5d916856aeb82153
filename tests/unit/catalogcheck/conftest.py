from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from gpuenv.plan.catalog import Catalog

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GENERIC = """
[generic]
build_requires = ["setuptools", "wheel", "ninja"]
cuda = "optional"
arch_knob = "TORCH_CUDA_ARCH_LIST"
arch_format = "torch"
toolkit_match = "major"
cuda_env = { FORCE_CUDA = "1" }
jobs_knobs = ["MAX_JOBS"]
"""


@pytest.fixture
def fake_catalog() -> Callable[[str], Catalog]:
    """A tiny catalog, not the shipped one: the text of an extensions.toml (its [generic] table is added)."""
    def make(text: str) -> Catalog:
        return Catalog(tomllib.loads(GENERIC + textwrap.dedent(text)))
    return make


@pytest.fixture
def catalog_file(tmp_path: Path) -> Callable[[str], Path]:
    """The same, as a file for ``--catalog``."""
    def write(text: str) -> Path:
        path = tmp_path / "extensions.toml"
        path.write_text(GENERIC + textwrap.dedent(text))
        return path
    return write
