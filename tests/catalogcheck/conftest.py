from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gpuenv.plan import knowledge

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


def _clear() -> None:
    knowledge._catalog_tables.cache_clear()
    knowledge.catalog.cache_clear()


@pytest.fixture
def fake_catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Replace the shipped extensions.toml by a tiny one (its [generic] table is added)."""
    real = knowledge._data

    def install(text: str) -> None:
        data = tomllib.loads(GENERIC + text)

        def fake(name: str) -> dict[str, Any]:
            return data if name == "extensions.toml" else real(name)

        monkeypatch.setattr(knowledge, "_data", fake)
        _clear()

    yield install
    monkeypatch.undo()
    _clear()
