"""A pixi manifest (``pixi.toml``, or the ``[tool.pixi]`` tables of a pyproject.toml) read as the conda
environment it describes.

pixi resolves ``[dependencies]`` from conda channels, with conda's match-spec
versions (``pytorch = ">=2.2.0,<2.3"``, or a table ``{ version = "11.8.*",
channel = "pytorch", build = "..." }``), and ``[pypi-dependencies]`` with pip
(``name = ">=1"``, or ``{ version, extras, path, editable, git, rev }``); the
tables under ``[target.linux-64]`` add to both on Linux. Each becomes what a
conda file's specs and ``pip:`` list are (:class:`gpuenv.init.conda.CondaEnv`),
with the line it is on. Features (``[feature.*]``) are optional environments and
are not read; other platforms' targets neither.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from gpuenv.errors import InputError
from gpuenv.init.conda import MAX_BYTES, CondaEnv, MatchSpec, parse_match_spec
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.load.requirements import read_requirement_lines

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The tables that hold dependencies, as (path of keys) in the manifest, the Linux target after the top.
_TABLES = ((), ("target", "linux-64"))


def is_pixi(path: Path) -> bool:
    """Whether one of the environment files init found is a pixi manifest: a pixi.toml, or the
    pyproject.toml that is among them only because it holds pixi's tables (:func:`has_pixi_tables`)."""
    return path.name.lower() == "pixi.toml" or path.name == "pyproject.toml"


def has_pixi_tables(pyproject: Path) -> bool:
    """Whether a pyproject.toml holds pixi's tables (``[tool.pixi.dependencies]``…)."""
    try:
        data = tomllib.loads(read_input(pyproject, limit=MAX_BYTES))
    except (UnreadableInput, tomllib.TOMLDecodeError):
        return False
    return bool(_table(data, ("tool", "pixi")))


def read_pixi(path: Path) -> CondaEnv:
    """The environment a pixi.toml describes; InputError when it is not one gpuenv can read."""
    try:
        text = read_input(path, limit=MAX_BYTES)
    except UnreadableInput as exc:
        raise InputError(f"{path}: {exc.problem}", hint="a pixi manifest is a small TOML text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})", hint="pixi itself would refuse it") from None
    lines = text.splitlines()
    prefix: tuple[str, ...] = ("tool", "pixi") if path.name == "pyproject.toml" else ()
    data = _table(data, prefix) if prefix else data
    specs: list[MatchSpec] = []
    pip_lines: list[tuple[int, str]] = []
    skipped: list[tuple[int, str, str]] = []
    for keys in _TABLES:
        table = _table(data, keys)
        for name, value in _table(table, ("dependencies",)).items():
            lineno = _line_of(lines, (*prefix, *keys, "dependencies"), name)
            spec = _conda_spec(str(name), value)
            if spec is None:
                skipped.append((lineno, str(name), "not a conda dependency pixi reads"))
                continue
            try:
                specs.append(parse_match_spec(spec, lineno))
            except ValueError as exc:
                skipped.append((lineno, spec, str(exc)))
        for name, value in _table(table, ("pypi-dependencies",)).items():
            lineno = _line_of(lines, (*prefix, *keys, "pypi-dependencies"), name)
            line = _pip_line(str(name), value)
            if line is None:
                skipped.append((lineno, str(name), "not a PyPI dependency pixi reads"))
            else:
                pip_lines.append((lineno, line))
    channels = tuple(str(c) for c in _project(data).get("channels", []) if isinstance(c, str))
    return CondaEnv(
        path,
        tuple(specs),
        read_requirement_lines(pip_lines, path, path.parent),
        channels,
        skipped=tuple(skipped),
        pixi=True,
    )


def _project(data: dict[str, Any]) -> dict[str, Any]:
    for key in ("workspace", "project"):
        if isinstance(data.get(key), dict):
            return data[key]  # type: ignore[no-any-return]
    return {}


def _table(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    for key in keys:
        value = data.get(key)
        if not isinstance(value, dict):
            return {}
        data = value
    return data


def _conda_spec(name: str, value: object) -> str | None:
    """``name = "1.2.*"`` or ``{version, build, channel}`` as a conda match-spec string."""
    if isinstance(value, str):
        return f"{name} {value}".strip() if value.strip() not in ("", "*") else name
    if not isinstance(value, dict) or not {"version", "build", "channel"} >= set(value) - {"build-number"}:
        return None
    version = str(value.get("version", "")).strip()
    spec = name if version in ("", "*") else f"{name} {version}"
    brackets = [f"{k}='{value[k]}'" for k in ("build", "channel") if isinstance(value.get(k), str)]
    if brackets and version in ("", "*"):
        spec += "[" + ",".join(brackets) + "]"
    elif brackets:
        spec = f"{name}[version='{version}'," + ",".join(brackets) + "]"
    return spec


def _pip_line(name: str, value: object) -> str | None:
    """``name = ">=1"`` or a table (version and extras, a path, a git URL) as a pip requirement line."""
    if isinstance(value, str):
        return name + ("" if value.strip() in ("", "*") else value.strip())
    if not isinstance(value, dict):
        return None
    extras = value.get("extras")
    full = name + (f"[{','.join(str(e) for e in extras)}]" if isinstance(extras, list) and extras else "")
    if isinstance(value.get("path"), str):
        target = value["path"] if value["path"].startswith((".", "/")) else f"./{value['path']}"
        return f"-e {target}" if value.get("editable") else target
    if isinstance(value.get("git"), str):
        ref = next((value[k] for k in ("rev", "tag", "branch") if isinstance(value.get(k), str)), None)
        return f"{full} @ git+{value['git']}" + (f"@{ref}" if ref else "")
    if isinstance(value.get("url"), str):
        return f"{full} @ {value['url']}"
    version = str(value.get("version", "")).strip()
    return full + ("" if version in ("", "*") else version)


def _line_of(lines: list[str], table: tuple[str, ...], key: str) -> int:
    """The line of ``key = …`` under the ``[table]`` header (1-based), 0 where it is not found so."""
    header = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(re.escape(k) for k in table) + r"\s*\]\s*(#.*)?$")
    entry = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
    inside = False
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("["):
            inside = bool(header.match(line))
        elif inside and entry.match(line):
            return number
    return 0
