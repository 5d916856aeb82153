"""The wheel cache as a wheelhouse: find-links directories, one per ABI group.

A node that shares no file system with the machine that built the wheels
installs them with pip alone::

    pip install --no-index --find-links DIR/torch-2.14.1-cu130-sm90 torch-scatter

A group is a torch build (its public version and CUDA variant: the same binary
whichever index served it) and an arch list. It holds every cached wheel built
against that torch whose code runs on each of its archs: the wheels built for
exactly those archs, those built for more, and those without CUDA code. The
wheels without CUDA code of a torch also form a group of their own (no arch
suffix). ``gpuenv plan`` prints the group a node needs (:attr:`gpuenv.plan.envplan.Plan.wheelhouse_group`).

Each group directory has an ``index.html`` listing its wheels with their
sha256, so the directory can also be served over HTTP
(``--find-links https://host/DIR/GROUP/``).
"""

from __future__ import annotations

import html
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

from gpuenv.cache.entry import CacheEntry
from gpuenv.cache.key import CacheKey
from gpuenv.cache.wheels import WheelCache
from gpuenv.errors import InputError
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.plan.envplan import group_name
from gpuenv.plan.hardware import ComputeCapability

if TYPE_CHECKING:
    pass

INDEX_FILE = "index.html"
#: In every index.html gpuenv writes: a group directory holding it is gpuenv's to replace.
MARKER = "<!-- gpuenv wheelhouse -->"


# -- group names (pure: the planner's, so `gpuenv plan` names the group a node needs) ------------


def key_variant(key: CacheKey) -> str:
    """"cpu" or "cu130" from the torch a wheel was built against."""
    if key.torch_cuda is None:
        return "cpu"
    major, _, minor = key.torch_cuda.partition(".")
    return f"cu{major}{minor.split('.')[0]}"


def _public(version: str) -> str:
    try:
        return Version(version).public
    except InvalidVersion:
        return version.partition("+")[0]


def _runs_on_all(wheel_archs: tuple[str, ...], group_archs: tuple[str, ...]) -> bool:
    from gpuenv.plan import knowledge

    return all(knowledge.runs_on(wheel_archs, ComputeCapability.parse(a)) for a in group_archs)


# -- the export ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedGroup:
    name: str
    directory: Path
    #: The wheel files in the directory.
    wheels: tuple[str, ...]


@dataclass(frozen=True)
class WheelhouseExport:
    root: Path
    groups: tuple[ExportedGroup, ...]
    #: Cache entries not exported, each with the reason.
    left_out: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Member:
    entry: CacheEntry
    key: CacheKey


def export_wheelhouse(cache: WheelCache, target: Path) -> WheelhouseExport:
    """Copy the cache's sound wheels into ``target/GROUP/`` directories, each with an index.html.

    A group directory gpuenv wrote before is replaced; anything else already
    at a group's path is an error (gpuenv never deletes what it did not make).
    """
    members: list[_Member] = []
    left_out: list[str] = []
    for entry in cache.entries() if cache.path.exists() else []:
        problem = cache.verify(entry)
        if problem is not None:
            left_out.append(f"{entry.wheel.name} ({entry.digest[:12]}): {problem}")
            continue
        members.append(_Member(entry, entry.key))
    groups = _groups(members)
    target.mkdir(parents=True, exist_ok=True)
    exported = []
    for name, chosen in sorted(groups.items()):
        wheels, clashes = _one_per_file(chosen)
        left_out += clashes
        exported.append(_write_group(target / name, name, wheels))
    _write_root_index(target, exported)
    return WheelhouseExport(target, tuple(exported), tuple(dict.fromkeys(left_out)))


def _groups(members: list[_Member]) -> dict[str, list[_Member]]:
    """Group name → the wheels that belong in it (a wheel may belong to several)."""
    shapes = {(_public(m.key.torch_version), key_variant(m.key), m.key.arch_list) for m in members}
    groups: dict[str, list[_Member]] = {}
    for torch, variant, archs in shapes:
        groups[group_name(torch, variant, archs)] = [
            m for m in members
            if (_public(m.key.torch_version), key_variant(m.key)) == (torch, variant)
            and _belongs(m.key, archs)
        ]
    return groups


def _belongs(key: CacheKey, group_archs: tuple[str, ...]) -> bool:
    """A wheel without CUDA code belongs to every group of its torch; one with CUDA code where it runs."""
    if not key.arch_list:
        return True
    return bool(group_archs) and _runs_on_all(key.arch_list, group_archs)


def _one_per_file(members: list[_Member]) -> tuple[list[_Member], list[str]]:
    """One entry per wheel file name: the one whose arch list is shortest, then the most recently used."""
    by_file: dict[str, list[_Member]] = {}
    for m in members:
        by_file.setdefault(m.entry.wheel.name, []).append(m)
    kept, clashes = [], []
    for file_name, candidates in by_file.items():
        candidates.sort(key=lambda m: (len(m.key.arch_list), -m.entry.last_used.timestamp()))
        kept.append(candidates[0])
        clashes += [f"{file_name} ({m.entry.digest[:12]}): another build of the same file name "
                    f"({candidates[0].entry.digest[:12]}) was exported" for m in candidates[1:]]
    return kept, clashes


def _write_group(directory: Path, name: str, members: list[_Member]) -> ExportedGroup:
    if directory.exists():
        try:
            ours = MARKER in read_input(directory / INDEX_FILE, errors="replace")
        except UnreadableInput:
            ours = False
        if not ours:
            raise InputError(f"{directory} exists and is not a wheelhouse group gpuenv wrote",
                             hint="export into an empty directory, or remove this one yourself")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    files = []
    for m in sorted(members, key=lambda m: m.entry.wheel.name):
        shutil.copyfile(m.entry.wheel, directory / m.entry.wheel.name)
        files.append((m.entry.wheel.name, m.entry.sha256, m.key))
    links = "\n".join(
        f'<a href="{quote(file)}#sha256={sha}">{html.escape(file)}</a><br>'
        f"<!-- built for torch {html.escape(key.torch_version)}, "
        f"archs {html.escape(';'.join(key.arch_list) or 'none')}, cache key {key.digest[:12]} -->"
        for file, sha, key in files
    )
    _write_index(directory / INDEX_FILE, f"gpuenv wheelhouse {name}", links)
    return ExportedGroup(name, directory, tuple(f for f, _, _ in files))


def _write_root_index(target: Path, groups: list[ExportedGroup]) -> None:
    links = "\n".join(f'<a href="{quote(g.name)}/">{html.escape(g.name)}/</a><br>' for g in groups)
    _write_index(target / INDEX_FILE, "gpuenv wheelhouse", links)


def _write_index(path: Path, title: str, body: str) -> None:
    path.write_text(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head>\n<body>\n{MARKER}\n<h1>{html.escape(title)}</h1>\n"
        f"{body}\n</body>\n</html>\n",
        encoding="utf-8",
    )


def export_text(result: WheelhouseExport) -> str:
    """What ``gpuenv cache export`` prints: each group, its wheels, and how a node installs from it."""
    lines = []
    for group in result.groups:
        lines.append(f"{group.name}/  {len(group.wheels)} wheel(s): {', '.join(group.wheels)}")
    for line in result.left_out:
        lines.append(f"left out {line}")
    if result.groups:
        lines.append(f"on a node: pip install --no-index --find-links {result.root}/GROUP NAME "
                     "(GROUP: the 'wheelhouse' line of 'gpuenv plan' on that node)")
    else:
        lines.append(f"the wheel cache holds no wheel: nothing exported to {result.root}")
    return "\n".join(lines)
