"""What a repository's package metadata declares: pyproject.toml, setup.cfg and setup.py, read statically.

The requirements files the metadata reads (``install_requires=parse("requirements.txt")``,
``[tool.setuptools.dynamic] dependencies = {file = [...]}``, ``file:`` in setup.cfg,
hatch-requirements-txt's ``files``) are the repository's install files: they
are what ``pip install .`` installs, and on a conflict their pins win.
"""

from __future__ import annotations

import configparser
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.load.setupscan import scan_setup
from gpuenv.plan.sourcetrees import SetupFacts

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Declared:
    """One requirement the metadata declares, and where."""

    text: str
    origin: str
    #: The extra it belongs to, or None for the install requirements.
    extra: str | None = None


@dataclass
class Metadata:
    root: Path
    name: str | None = None
    python: Declared | None = None
    requirements: list[Declared] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    #: Requirements files the metadata reads: relative path → (origin, extra or None for install).
    files: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    build_requires: list[str] = field(default_factory=list)
    setup: SetupFacts | None = None
    #: Files that could not be read, with why ("pyproject.toml: not valid TOML …").
    problems: list[str] = field(default_factory=list)

    @property
    def installable(self) -> bool:
        return any((self.root / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg"))


def read_metadata(root: Path) -> Metadata:
    meta = Metadata(root)
    _pyproject(meta)
    _setup_cfg(meta)
    if (root / "setup.py").is_file():
        meta.setup = scan_setup(root / "setup.py")
        _setup_py(meta, meta.setup)
    meta.extras = list(dict.fromkeys(meta.extras))
    return meta


def _text(path: Path, meta: Metadata) -> str | None:
    try:
        return read_input(path, limit=_MAX_BYTES)
    except UnreadableInput as exc:
        if not exc.missing:
            meta.problems.append(f"{path.name}: {exc.problem}")
        return None


def _line_of(text: str, needle: str) -> int | None:
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else None


def _pyproject(meta: Metadata) -> None:
    text = _text(meta.root / "pyproject.toml", meta)
    if text is None:
        return
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        meta.problems.append(f"pyproject.toml: not valid TOML ({exc})")
        return
    project = data.get("project")
    if isinstance(project, Mapping):
        _project(meta, project, text)
    build = data.get("build-system")
    if isinstance(build, Mapping) and isinstance(build.get("requires"), list):
        meta.build_requires = [r for r in build["requires"] if isinstance(r, str)]
    tool = data.get("tool")
    if isinstance(tool, Mapping):
        _dynamic_files(meta, tool, text)


def _project(meta: Metadata, project: Mapping[str, Any], text: str) -> None:
    def where(needle: str) -> str:
        line = _line_of(text, f'"{needle}"') or _line_of(text, f"'{needle}'")
        return f"pyproject.toml:{line}" if line else "pyproject.toml"

    if isinstance(project.get("name"), str):
        meta.name = project["name"]
    python = project.get("requires-python")
    if isinstance(python, str):
        meta.python = Declared(python, where(python))
    for dep in project.get("dependencies") or []:
        if isinstance(dep, str):
            meta.requirements.append(Declared(dep, where(dep)))
    optional = project.get("optional-dependencies") or {}
    if isinstance(optional, Mapping):
        for extra, deps in optional.items():
            meta.extras.append(str(extra))
            for dep in deps if isinstance(deps, list) else []:
                if isinstance(dep, str):
                    meta.requirements.append(Declared(dep, where(dep), str(extra)))


def _dynamic_files(meta: Metadata, tool: Mapping[str, Any], text: str) -> None:
    setuptools = tool.get("setuptools")
    dynamic = setuptools.get("dynamic") if isinstance(setuptools, Mapping) else None
    if isinstance(dynamic, Mapping):
        deps = dynamic.get("dependencies")
        for name in _files(deps):
            meta.files.setdefault(
                name, (f"pyproject.toml:{_line_of(text, name) or ''} [tool.setuptools.dynamic]", None)
            )
        optional = dynamic.get("optional-dependencies")
        if isinstance(optional, Mapping):
            for extra, value in optional.items():
                meta.extras.append(str(extra))
                for name in _files(value):
                    meta.files.setdefault(name, (f"pyproject.toml:{_line_of(text, name) or ''}", str(extra)))
    hatch = tool.get("hatch")
    hooks = hatch.get("metadata", {}).get("hooks", {}) if isinstance(hatch, Mapping) else {}
    plugin = hooks.get("requirements_txt") if isinstance(hooks, Mapping) else None
    if isinstance(plugin, Mapping):
        for name in _names(plugin.get("files")):
            meta.files.setdefault(name, (f"pyproject.toml:{_line_of(text, name) or ''} hatch", None))
        optional = plugin.get("optional-dependencies")
        if isinstance(optional, Mapping):
            for extra, value in optional.items():
                meta.extras.append(str(extra))
                for name in _names(value):
                    meta.files.setdefault(
                        name, (f"pyproject.toml:{_line_of(text, name) or ''} hatch", str(extra))
                    )


def _files(value: object) -> list[str]:
    return _names(value.get("file")) if isinstance(value, Mapping) else []


def _names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _setup_cfg(meta: Metadata) -> None:
    text = _text(meta.root / "setup.cfg", meta)
    if text is None:
        return
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        meta.problems.append(f"setup.cfg: not an INI file setuptools reads ({str(exc).splitlines()[0]})")
        return
    name = parser.get("metadata", "name", fallback=None)
    meta.name = meta.name or name
    python = parser.get("options", "python_requires", fallback="").strip()
    if python and meta.python is None:
        meta.python = Declared(python, "setup.cfg [options] python_requires")
    requires = parser.get("options", "install_requires", fallback="")
    if requires.strip().startswith("file:"):
        for name in requires.strip().removeprefix("file:").split(","):
            meta.files.setdefault(name.strip(), ("setup.cfg [options] install_requires", None))
    else:
        for line in requires.splitlines():
            if line.strip() and not line.strip().startswith("#"):
                meta.requirements.append(Declared(line.strip(), "setup.cfg [options] install_requires"))
    if parser.has_section("options.extras_require"):
        for extra, value in parser.items("options.extras_require"):
            meta.extras.append(extra)
            for line in value.splitlines():
                if line.strip():
                    meta.requirements.append(
                        Declared(line.strip(), "setup.cfg [options.extras_require]", extra)
                    )


def _setup_py(meta: Metadata, facts: SetupFacts) -> None:
    if facts.problem is not None:
        meta.problems.append(f"setup.py: {facts.problem}")
        return
    for text, line in facts.install_requires:
        meta.requirements.append(Declared(text, f"setup.py:{line} install_requires"))
    if facts.python_requires is not None and meta.python is None:
        meta.python = Declared(facts.python_requires[0], f"setup.py:{facts.python_requires[1]}")
    for name, line, where in facts.requirement_files:
        extra = where.split(":", 1)[1] if where.startswith("extras_require:") else None
        if where == "install_requires" or extra is not None:
            meta.files.setdefault(_normal(name), (f"setup.py:{line} {where.split(':')[0]}", extra))
            if extra is not None:
                meta.extras.append(extra)


def _normal(name: str) -> str:
    return re.sub(r"^\./", "", name)
