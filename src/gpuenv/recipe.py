"""Recipes: the declarative description of an environment.

A recipe is a TOML file (``envs/NAME.toml``) or the ``[tool.gpuenv]`` table of a
pyproject.toml. It is read once, validated fully, and becomes the frozen
dataclasses below. See README.md ("Recipes") for every key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_INDEX = "https://download.pytorch.org/whl/{variant}"


@dataclass(frozen=True)
class TorchSpec:
    #: The PEP 440 specifier, normalised: "2.4.1" is stored as "==2.4.1".
    version: str
    #: "auto", "cpu", or a variant such as "cu121" ("12.1" is normalised to "cu121").
    cuda: str = "auto"
    #: Index URL template; ``{variant}`` is replaced by the chosen variant.
    index: str = DEFAULT_INDEX
    #: Whether ``index`` was written in the recipe (rather than the default).
    index_given: bool = False
    #: Requirements installed together with torch, from the same index.
    packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtensionSpec:
    #: What the recipe wrote: PEP 508, a direct URL, or a local path.
    requirement: str
    #: The canonical distribution name (PEP 503 normalised), e.g. "flash-attn".
    name: str
    env: tuple[tuple[str, str], ...] = ()
    build_requires: tuple[str, ...] = ()
    required: bool = False
    import_name: str | None = None
    #: For a local path requirement: the absolute directory; else None.
    path: Path | None = None

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)


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

    @property
    def root(self) -> Path:
        """The directory relative paths in the recipe are resolved against."""
        return self.path.parent
