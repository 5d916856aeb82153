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
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from packaging.version import Version

from gpuenv.cache.entry import CacheEntry
from gpuenv.cache.key import CacheKey
from gpuenv.cache.wheels import WheelCache
from gpuenv.errors import OutputError
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.outputs import TEMP_SUFFIX, hint_of, make_folders, path_inside, problem_of, write_atomic
from gpuenv.plan.envplan import group_name
from gpuenv.plan.hardware import ComputeCapability

INDEX_FILE = "index.html"
#: In every index.html gpuenv writes: a group directory holding it is gpuenv's to replace.
MARKER = "<!-- gpuenv wheelhouse -->"


# -- group names (pure: the planner's, so `gpuenv plan` names the group a node needs) ------------


def key_variant(key: CacheKey) -> str:
    """"cpu" or "cu130" from the torch a wheel was built against."""
    if key.abi.torch_cuda is None:
        return "cpu"
    major, _, minor = key.abi.torch_cuda.partition(".")
    return f"cu{major}{minor.split('.')[0]}"


def _public(version: str) -> str:
    try:
        return Version(version).public
    except ValueError:  # InvalidVersion, or more digits than int() converts
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

    Everything is written inside ``target`` (a group name comes from cache keys, which a shared
    cache's other users wrote: one that is not a plain name is left out, and every path is checked
    with :func:`~gpuenv.outputs.path_inside`). What gpuenv wrote before (an index.html or a group
    directory holding :data:`MARKER`) is replaced; anything else at one of its paths is an error,
    raised before anything is written (gpuenv never overwrites or deletes what it did not make).
    """
    members: list[_Member] = []
    left_out: list[str] = []
    for entry in cache.entries() if cache.path.exists() else []:
        problem = cache.verify(entry)
        if problem is not None:
            left_out.append(f"{entry.wheel.name} ({entry.digest[:12]}): {problem}")
            continue
        members.append(_Member(entry, entry.key))
    groups = _groups(members, left_out)
    root = _export_root(target)
    planned = [(name, _group_path(root, target, name), chosen) for name, chosen in sorted(groups.items())]
    index = path_inside(root, INDEX_FILE)
    _check_ours(index, shown=target / INDEX_FILE, what="an index.html")
    exported = []
    for name, directory, chosen in planned:
        wheels, clashes = _one_per_file(chosen)
        left_out += clashes
        exported.append(_write_group(directory, name, wheels))
    _write_root_index(index, exported)
    return WheelhouseExport(target, tuple(exported), tuple(dict.fromkeys(left_out)))


#: A group directory's name: what :func:`~gpuenv.plan.envplan.group_name` makes of sound keys.
_GROUP_NAME = re.compile(r"torch-[A-Za-z0-9.!+_-]+", re.ASCII)


def _export_root(target: Path) -> Path:
    """``target`` made (with its parents) if missing; refused if it is not a folder."""
    if os.path.lexists(target) and not os.path.isdir(target):
        raise OutputError(target, "is not a folder (cache export writes a folder of groups)",
                          hint="name a new or empty folder, or one a previous export wrote")
    make_folders(target)
    return Path(os.path.realpath(target))


def _group_path(root: Path, target: Path, name: str) -> Path:
    """Where group ``name`` goes: inside ``root``, not through a link, and free or a group gpuenv wrote."""
    if os.path.islink(root / name):
        raise OutputError(target / name, "is a link; gpuenv writes a wheelhouse group only as a folder",
                          hint="export into an empty directory, or remove the link yourself")
    directory = path_inside(root, name, folder=True)
    _check_ours(directory / INDEX_FILE, shown=target / name, what="a wheelhouse group", folder=directory)
    return directory


def _check_ours(index: Path, *, shown: Path, what: str, folder: Path | None = None) -> None:
    """Raise unless ``index`` is missing (and ``folder``, if given) or an index.html gpuenv wrote."""
    if not os.path.lexists(folder if folder is not None else index):
        return
    try:
        text = read_input(index, errors="replace")
    except UnreadableInput:
        text = ""
    if MARKER not in text:
        raise OutputError(shown, f"exists and is not {what} gpuenv wrote; gpuenv does not replace it",
                          hint="export into an empty directory, or remove this one yourself")
    if folder is None:
        return
    # A group is replaced whole: a file someone added to it would go with it, silently.
    listed = {INDEX_FILE, *(unquote(name) for name in re.findall(r'href="([^"#]+)', text))}
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in listed)
    if foreign:
        raise OutputError(shown / foreign[0], "is in a wheelhouse group gpuenv wrote, but gpuenv did not "
                          "write it; replacing the group would remove it",
                          hint="move it out of the group, then export again")


def _groups(members: list[_Member], left_out: list[str]) -> dict[str, list[_Member]]:
    """Group name → the wheels that belong in it (a wheel may belong to several). A wheel whose key
    makes no plain group name is left out, with the reason."""
    sound = []
    for m in members:
        name = group_name(_public(m.key.abi.torch_version), key_variant(m.key), m.key.arch_list)
        if _GROUP_NAME.fullmatch(name) and ".." not in name:
            sound.append(m)
        else:
            left_out.append(f"{m.entry.wheel.name} ({m.entry.digest[:12]}): its key makes the group name "
                            f"{name[:80]!r}, not a plain folder name")
    members = sound
    shapes = {(_public(m.key.abi.torch_version), key_variant(m.key), m.key.arch_list) for m in members}
    groups: dict[str, list[_Member]] = {}
    for torch, variant, archs in shapes:
        groups[group_name(torch, variant, archs)] = [
            m for m in members
            if (_public(m.key.abi.torch_version), key_variant(m.key)) == (torch, variant)
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
    """Make the group in a temporary directory beside it, then put it in place of the old one."""
    temp = directory.parent / f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        os.mkdir(temp)
        files = []
        for m in sorted(members, key=lambda m: m.entry.wheel.name):
            shutil.copyfile(m.entry.wheel, temp / m.entry.wheel.name)
            files.append((m.entry.wheel.name, m.entry.sha256, m.key))
        links = "\n".join(
            f'<a href="{quote(file)}#sha256={sha}">{html.escape(file)}</a><br>'
            f"<!-- built for torch {html.escape(key.abi.torch_version)}, "
            f"archs {html.escape(';'.join(key.arch_list) or 'none')}, cache key {key.digest[:12]} -->"
            for file, sha, key in files
        )
        write_atomic(temp / INDEX_FILE, _index_text(f"gpuenv wheelhouse {name}", links))
        if os.path.isdir(directory):
            old = directory.parent / f".{name}.{secrets.token_hex(4)}.old{TEMP_SUFFIX}"
            os.rename(directory, old)
            os.rename(temp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temp, directory)
    except OSError as exc:
        raise OutputError(directory, f"cannot write the group: {problem_of(exc)}",
                          hint=hint_of(exc)) from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return ExportedGroup(name, directory, tuple(f for f, _, _ in files))


def _write_root_index(index: Path, groups: list[ExportedGroup]) -> None:
    links = "\n".join(f'<a href="{quote(g.name)}/">{html.escape(g.name)}/</a><br>' for g in groups)
    write_atomic(index, _index_text("gpuenv wheelhouse", links))


def _index_text(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head>\n<body>\n{MARKER}\n<h1>{html.escape(title)}</h1>\n"
        f"{body}\n</body>\n</html>\n"
    ).encode()


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
