"""``gpuenv export uv``: the plan as ``[tool.uv]`` settings, so ``uv sync`` follows it.

What the plan decides, in uv's own terms:

- the requirements (torch with its paired packages, the extensions, the
  recipe's packages) as the dependency group ``gpuenv``, which
  ``default-groups`` makes ``uv sync`` install;
- the torch variant's index as an explicit ``[[tool.uv.index]]`` with torch
  and its paired packages sourced from it (none when PyPI serves the
  variant, or with ``--torch-index config``: then torch comes from the
  sources the installer is configured with, which uv does not read: the
  export says which ``uv sync`` options carry them);
- each extension built against the runtime torch: ``extra-build-dependencies``
  with ``match-runtime`` (uv builds it with exactly the torch it installs)
  plus the build requirements gpuenv knows, and its planned build
  environment (arch knob, force-build flags, ``CUDA_HOME``, jobs) as
  ``extra-build-variables``. ``match-runtime`` needs the package's metadata
  without a build, so each extension gets a ``[[tool.uv.dependency-metadata]]``
  entry with its version (an extension whose version is unknown before
  building cannot be exported this way);
- ``environments``: Linux on this machine's architecture, the nodes the plan
  is for, so uv's universal resolution does not pull in other torch builds.

This replaces ``no-build-isolation-package``: uv builds such a package in the
project env before it has installed torch there, so one ``uv sync`` cannot
do it. What uv cannot express is said, not dropped: a skipped extension, the
nvcc the builds need (uv installs no toolkit), pip options uv has no setting
for.

``--write`` merges the settings into a pyproject.toml line by line: the keys
gpuenv sets are replaced or added, everything else stays byte for byte; the
result is parsed back and checked before it is written.
"""

from __future__ import annotations

import platform
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from gpuenv.env.pipconfig import PipSources, pip_config, pip_sources
from gpuenv.errors import InputError
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.outputs import output_file, write_atomic
from gpuenv.plan.buildplan import pinned_version
from gpuenv.plan.envplan import Plan
from gpuenv.plan.extensionspec import ProjectFacts
from gpuenv.plan.planner import PlanOptions
from gpuenv.tomlwrite import toml_key, toml_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GROUP = "gpuenv"


@dataclass(frozen=True)
class Table:
    """Keys gpuenv sets in one TOML table (``path`` as dotted names); values are Python data."""

    path: tuple[str, ...]
    values: Mapping[str, Any]
    #: An entry of an array of tables (``[[tool.uv.index]]``), identified by its ``name``.
    array_entry: bool = False


@dataclass(frozen=True)
class UvExport:
    tables: tuple[Table, ...]
    #: What the settings cannot carry, one line each.
    notes: tuple[str, ...]
    #: The uv options that carry the installer's configured sources (with --torch-index config).
    source_options: tuple[str, ...] = ()
    written: Path | None = None

    @property
    def settings(self) -> str:
        return render_tables(self.tables)

    @property
    def text(self) -> str:
        head = [f"merged into {self.written}"] if self.written is not None else [self.settings.rstrip("\n")]
        notes = [f"# note: {line}" for line in self.notes]
        return "\n".join(head + ([""] if notes and self.written is None else []) + notes)


# -- the settings (pure) ---------------------------------------------------------------


def uv_tables(result: Plan, *, sources: PipSources | None = None,
              trees: Mapping[str, ProjectFacts] | None = None, machine: str | None = None) -> UvExport:
    """The [tool.uv] settings and dependency group of ``result``, and what they cannot express.

    ``sources`` are pip's configured sources, given when torch comes from them (--torch-index config);
    ``trees`` what local and URL sources say about themselves (the plan's sources): name, version;
    ``machine`` the platform_machine the plan is for (x86_64): uv then resolves for Linux on it only.
    """
    notes: list[str] = []
    requirements = [result.torch, *result.torch_packages]
    built = [e for e in result.extensions if e.action != "skip"]
    uv: dict[str, Any] = {"default-groups": [GROUP]}
    if machine is not None:
        # The plan is for Linux nodes like this one; resolving for every platform would also pick
        # other torch builds (PyPI's CUDA wheels for aarch64, …) and confuse match-runtime.
        uv["environments"] = [f"sys_platform == 'linux' and platform_machine == '{machine}'"]
    tables: list[Table] = []
    source_options: tuple[str, ...] = ()
    if result.index_url is not None:
        name = f"pytorch-{result.variant}"
        index = {"name": name, "url": result.index_url, "explicit": True}
        tables.append(Table(("tool", "uv", "index"), index, array_entry=True))
        torch_names = ["torch", *(_name(p) for p in result.torch_packages)]
        tables.append(Table(("tool", "uv", "sources"), {n: {"index": name} for n in torch_names}))
    elif sources is not None:
        source_options = _uv_source_options(sources)
        notes.append("torch comes from the sources pip is configured with (--torch-index config), which uv "
                     "does not read: run uv sync with them"
                     + (f": uv sync {' '.join(source_options)}" if source_options else ""))
        if sources.constraints:
            notes.append(f"pip's constraint files ({', '.join(sources.constraints)}) have no uv sync option: "
                         "copy what matters into [tool.uv] constraint-dependencies")
        if sources.find_links and built:
            notes.append("uv builds an extension against the runtime torch only from an index, not from a "
                         "find-links directory: if torch is in one, serve it as a simple index (--index)")
    build_deps: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    metadata: list[Table] = []
    for ext in built:
        facts = (trees or {}).get(ext.name)
        name = _name(ext.requirement) or (canonicalize_name(facts.name) if facts and facts.name else ext.name)
        version = (facts.version if facts else None) or pinned_version(ext.requirement)
        if version is None:
            notes.append(f"{ext.name} is not exported: its version is unknown before building, and uv builds "
                         "against the runtime torch only a package whose metadata it has without building "
                         "(dependency-metadata needs the version): pin it (name==X) in the recipe")
            continue
        # A bare local path is no PEP 508 requirement: name it, with the path as its URL.
        bare_path = ext.path is not None and not _name(ext.requirement)
        requirements.append(f"{name} @ {Path(str(ext.path)).as_uri()}" if bare_path else ext.requirement)
        # match-runtime needs the package's metadata without building it.
        metadata.append(Table(("tool", "uv", "dependency-metadata"),
                              {"name": name, "version": version, "requires-dist": []}, array_entry=True))
        build_deps[name] = [{"requirement": "torch", "match-runtime": True}, *ext.build_requires]
        if ext.env:
            variables[name] = dict(ext.env)
    if build_deps:
        uv["extra-build-dependencies"] = build_deps
    if variables:
        uv["extra-build-variables"] = variables
    tables.insert(0, Table(("dependency-groups",), {GROUP: [*requirements, *result.packages]}))
    tables.insert(1, Table(("tool", "uv"), {k: v for k, v in uv.items() if not isinstance(v, dict)}))
    for key in ("extra-build-dependencies", "extra-build-variables"):
        if key in uv:
            tables.append(Table(("tool", "uv", key), uv[key]))
    tables += metadata
    if metadata:
        notes.append("dependency-metadata declares no runtime dependencies of the extensions "
                     f"({', '.join(str(t.values['name']) for t in metadata)}): add theirs to requires-dist "
                     "if they have any")
    notes += [f"{e.name} is not exported: the plan skips it ({e.reason})"
              for e in result.extensions if e.action == "skip"]
    if result.toolkit is not None and any(e.compiles_cuda for e in built):
        notes.append(f"uv installs no CUDA toolkit: the builds need nvcc {result.toolkit.version} at "
                     f"CUDA_HOME={result.toolkit.root}, as on this machine")
    if result.arch_list and any(e.compiles_cuda for e in built):
        notes.append(f"the extensions are built for {', '.join(result.arch_list)} "
                     f"({result.hardware_source}); export again for other GPUs")
    return UvExport(tuple(tables), tuple(notes), source_options)


def _name(requirement: str) -> str:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return ""


def _uv_source_options(sources: PipSources) -> tuple[str, ...]:
    """``uv sync`` options for pip's configured sources (uv has no setting for pip's constraint files)."""
    args: list[str] = []
    if sources.no_index:
        args.append("--no-index")
    if sources.index_url:
        args += ["--default-index", sources.index_url]
    for url in sources.extra_index_urls:
        args += ["--index", url]
    for link in sources.find_links:
        args += ["--find-links", link]
    if sources.extra_index_urls and not sources.no_index:
        args += ["--index-strategy", "unsafe-best-match"]
    return tuple(args)


def configured_sources() -> PipSources:
    """pip's sources on this machine, read as ``--installer uv`` reads them."""
    return pip_sources(pip_config())


# -- rendering and merging -------------------------------------------------------------


def render_tables(tables: Sequence[Table]) -> str:
    blocks = []
    for table in tables:
        header = ".".join(toml_key(p) for p in table.path)
        header = f"[[{header}]]" if table.array_entry else f"[{header}]"
        blocks.append("\n".join([header, *(_line(k, v) for k, v in table.values.items())]))
    return "\n\n".join(blocks) + "\n"


def _line(key: str, value: Any) -> str:
    return f"{toml_key(key)} = {toml_value(value)}"


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")


def _headers(lines: list[str]) -> list[tuple[int, tuple[str, ...], bool]]:
    """(line number, table path, is an array entry) of every table header outside multi-line strings."""
    found = []
    in_string: str | None = None
    for number, line in enumerate(lines):
        if in_string is None:
            match = _HEADER.match(line)
            if match:
                found.append((number, _dotted(match.group(2)), match.group(1) == "[["))
        for quote in ('"""', "'''"):
            if line.count(quote) % 2 == 1:
                in_string = None if in_string == quote else (in_string or quote)
    return found


def _dotted(text: str) -> tuple[str, ...]:
    data: Any = tomllib.loads(f"{text} = 0")
    path = []
    while isinstance(data, dict):
        (key, data), = data.items()
        path.append(key)
    return tuple(path)


class _Ours(str):
    """A line gpuenv wrote into the merged file (it gets the file's own line end)."""


def merge(text: str, tables: Sequence[Table]) -> str:
    """``text`` (a pyproject.toml) with ``tables`` merged in; everything else unchanged, byte for byte."""
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"cannot merge into a pyproject.toml that is not valid TOML: {exc}",
                         hint="fix the TOML (or run without --write and paste what it prints)") from None
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    for table in tables:
        lines = _merge_table(lines, table)
    # gpuenv's own lines get the file's line end; every other line keeps its bytes.
    merged = "".join(line[:-1] + newline if isinstance(line, _Ours) else line for line in lines)
    _check(before, merged, tables)
    return merged


def _sections(lines: list[str]) -> list[tuple[tuple[str, ...], bool, int, int]]:
    """(path, array entry, first body line, end) of each table in ``lines``."""
    heads = _headers(lines)
    return [(path, array, number + 1, heads[i + 1][0] if i + 1 < len(heads) else len(lines))
            for i, (number, path, array) in enumerate(heads)]


def _merge_table(lines: list[str], table: Table) -> list[str]:
    sections = _sections(lines)
    if table.array_entry:
        for path, array, start, end in sections:
            if path == table.path and array and _name_in(lines[start:end], table.values["name"]):
                body: list[str] = [_Ours(_line(k, v) + "\n") for k, v in table.values.items()]
                return lines[:start] + body + _trailing_blank(lines[start:end]) + lines[end:]
        return _append(lines, table)
    for path, array, start, end in sections:
        if path == table.path and not array:
            return _merge_keys(lines, start, end, table)
    return _append(lines, table)


def _name_in(body: list[str], name: str) -> bool:
    for line in body:
        try:
            if tomllib.loads(line).get("name") == name:
                return True
        except tomllib.TOMLDecodeError:
            continue
    return False


def _trailing_blank(body: list[str]) -> list[str]:
    blank = []
    for line in reversed(body):
        if line.strip():
            break
        blank.append(line)
    return blank


def _merge_keys(lines: list[str], start: int, end: int, table: Table) -> list[str]:
    lines = list(lines)
    last = start - 1
    for number in range(start, end):
        if lines[number].strip() and not lines[number].lstrip().startswith("#"):
            last = number
    added: list[str] = []
    for key, value in table.values.items():
        at = _key_line(lines, start, end, key)
        if at is None:
            added.append(_Ours(_line(key, value) + "\n"))
            continue
        try:
            tomllib.loads(lines[at])
        except tomllib.TOMLDecodeError:
            raise InputError(
                f"cannot merge {'.'.join(table.path)}.{key}: its value spans several lines",
                hint="put it on one line, or merge the printed settings ('gpuenv export uv') by hand",
            ) from None
        lines[at] = _Ours(_line(key, value) + "\n")
    return lines[:last + 1] + added + lines[last + 1:]


def _key_line(lines: list[str], start: int, end: int, key: str) -> int | None:
    for number in range(start, end):
        head = lines[number].split("=", 1)[0].strip()
        if "=" in lines[number] and head.strip("\"'") == key and "." not in head.strip("\"'"):
            return number
    return None


def _append(lines: list[str], table: Table) -> list[str]:
    block = render_tables([table])
    separator: list[str] = [_Ours("\n")] if lines and lines[-1].strip() else []
    return lines + separator + [_Ours(line) for line in block.splitlines(keepends=True)]


def _check(before: Mapping[str, Any], merged: str, tables: Sequence[Table]) -> None:
    """The merged text parses, holds gpuenv's values, and everything else reads as before."""
    try:
        after = tomllib.loads(merged)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"merging would make pyproject.toml invalid TOML ({exc})",
                         hint="merge the printed settings ('gpuenv export uv') by hand") from None
    for table in tables:
        node: Any = after
        for part in table.path:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        entries = node if table.array_entry else [node]
        wanted = dict(table.values)
        ok = any(isinstance(e, dict) and all(e.get(k) == v for k, v in wanted.items()) for e in entries)
        if not ok:
            raise InputError(f"merging did not set {'.'.join(table.path)} as planned "
                             "(it is written in a form gpuenv does not edit, e.g. an inline table)",
                             hint="merge the printed settings ('gpuenv export uv') by hand")
    if _without(before, tables) != _without(after, tables):
        raise InputError("merging would change settings gpuenv does not own",
                         hint="merge the printed settings ('gpuenv export uv') by hand")


def _without(data: Mapping[str, Any], tables: Sequence[Table]) -> Any:
    """``data`` with gpuenv's keys removed, to compare the rest."""
    import copy

    rest: Any = copy.deepcopy(dict(data))
    for table in tables:
        node: Any = rest
        for part in table.path[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        last = table.path[-1]
        if not isinstance(node, dict) or last not in node:
            continue
        if table.array_entry:
            node[last] = [e for e in node[last] if not (isinstance(e, dict)
                                                        and e.get("name") == table.values.get("name"))]
        elif isinstance(node[last], dict):
            for key in table.values:
                node[last].pop(key, None)
    return _pruned(rest)


def _pruned(data: Any) -> Any:
    """``data`` without empty tables and arrays (those gpuenv's keys leave behind, or a user's own)."""
    if isinstance(data, dict):
        kept = {k: _pruned(v) for k, v in data.items()}
        return {k: v for k, v in kept.items() if v not in ({}, [])}
    if isinstance(data, list):
        return [_pruned(v) for v in data]
    return data


# -- the command ---------------------------------------------------------------------------


def export_uv(result: Plan, options: PlanOptions, *, write: Path | None = None) -> UvExport:
    """The plan (made with ``options``) as uv settings; with ``write``, merged into that file."""
    config = result.index_url is None and options.torch_index == "config"
    export = uv_tables(result, sources=configured_sources() if config else None, trees=options.sources,
                       machine=platform.machine())
    if write is None:
        return export
    try:
        text = read_input(write)  # as it is: its line ends are kept, byte for byte
    except UnreadableInput as exc:
        if not exc.missing:
            raise InputError(f"cannot read {write}: {exc.problem}",
                             hint="name a pyproject.toml to merge into, or run without --write") from None
        raise InputError(f"{write} does not exist",
                         hint="run it in your project's directory, or name the file: --write PATH") from None
    target = output_file(write)
    merged = merge(text, export.tables)
    write_atomic(target, merged.encode("utf-8"))
    return UvExport(export.tables, export.notes, export.source_options, written=write)
