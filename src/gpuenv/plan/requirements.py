"""Requirements files as pip reads them: requirements, ``-e`` lines, ``-r`` includes, index options.

Used where a research repository's own file stays the source of truth: a
recipe's ``[packages] requirements-files`` is read when the recipe is loaded,
and ``gpuenv init`` reads the same files to sort what a repository declares.
Each line keeps where it came from (file and line number), so what is taken or
left out can be said precisely.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from gpuenv.errors import InputError
from gpuenv.inputs import UnreadableInput, read_input

#: A requirements file larger than this is not a requirements file.
MAX_BYTES = 4 << 20
#: ``-r`` nesting deeper than this is a loop or a mistake.
MAX_DEPTH = 16

_OPTION_ARG = {"-i": "index-url", "--index-url": "index-url", "--extra-index-url": "extra-index-url",
               "-f": "find-links", "--find-links": "find-links", "-r": "requirement",
               "--requirement": "requirement", "-c": "constraint", "--constraint": "constraint",
               "-e": "editable", "--editable": "editable", "--pre": "pre"}


@dataclass(frozen=True)
class Line:
    """One requirement of a requirements file, with where it was written."""

    #: The requirement as pip would take it ("numpy>=1.24", "-e ./lib", "pkg @ https://…").
    text: str
    path: Path
    lineno: int
    #: The canonical distribution name, when it can be told ("numpy"); None for "-e ./lib".
    name: str | None = None
    editable: bool = False

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"


@dataclass(frozen=True)
class RequirementsFile:
    requirements: tuple[Line, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    #: Lines that are neither requirements nor options gpuenv passes on, with why.
    ignored: tuple[tuple[Line, str], ...] = field(default=())


def read_requirements(path: Path) -> RequirementsFile:
    """Parse ``path`` and every file it includes with ``-r``; raise InputError for what cannot be read."""
    acc = _Accumulator()
    _read(Path(path), acc, depth=0, seen=())
    return RequirementsFile(tuple(acc.requirements), acc.index_url, tuple(dict.fromkeys(acc.extra)),
                            tuple(dict.fromkeys(acc.links)), tuple(acc.ignored))


@dataclass
class _Accumulator:
    requirements: list[Line] = field(default_factory=list)
    index_url: str | None = None
    extra: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    ignored: list[tuple[Line, str]] = field(default_factory=list)


def _text(path: Path) -> str:
    try:
        return read_input(path, limit=MAX_BYTES)
    except UnreadableInput as exc:
        raise InputError(f"{path}: {exc.problem}", hint="name a requirements file") from None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) with comments removed and backslash continuations joined."""
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        line = re.sub(r"(^|\s+)#.*$", "", raw)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            lines.append((start, line))
    return lines


def _read(path: Path, acc: _Accumulator, *, depth: int, seen: tuple[Path, ...]) -> None:
    resolved = path.resolve()
    if depth > MAX_DEPTH or resolved in seen:
        raise InputError(f"{path}: -r includes loop or nest deeper than {MAX_DEPTH}")
    for lineno, line in _logical_lines(_text(path)):
        _line(path, lineno, line, acc, depth, (*seen, resolved))


def _line(path: Path, lineno: int, line: str, acc: _Accumulator, depth: int, seen: tuple[Path, ...]) -> None:
    here = Line(line, path, lineno)
    if not line.startswith("-"):
        acc.requirements.append(_requirement(path, lineno, line))
        return
    try:
        words = shlex.split(line)
    except ValueError:
        acc.ignored.append((here, "cannot be split into words"))
        return
    flag, _, attached = words[0].partition("=")
    option = _OPTION_ARG.get(flag)
    value = attached or (words[1] if len(words) > 1 else "")
    if option is None:
        acc.ignored.append((here, f"pip option {flag} is not passed on by gpuenv"))
        return
    if option == "pre":
        acc.ignored.append((here, "--pre is not passed on by gpuenv"))
    elif not value:
        acc.ignored.append((here, f"{flag} without a value"))
    elif option == "requirement":
        _read(_relative(path, value), acc, depth=depth + 1, seen=seen)
    elif option == "constraint":
        acc.ignored.append((here, "constraints files are not passed on: gpuenv pins torch itself"))
    elif option == "editable":
        target = value if "://" in value or value.startswith("git+") else _local(path, value)
        acc.requirements.append(Line(f"-e {target}", path, lineno, _editable_name(value), editable=True))
    elif option == "index-url":
        acc.index_url = value
    elif option == "extra-index-url":
        acc.extra.append(value)
    else:
        acc.links.append(value if "://" in value else str(_relative(path, value)))


def _local(path: Path, value: str) -> str:
    """A local tree of a requirements line, absolute, with its extras kept ("/repo[train]")."""
    match = re.fullmatch(r"(.*?)(\[[^\]]*\])?", value.strip())
    assert match is not None
    return str(_relative(path, match[1])) + (match[2] or "")


def _relative(path: Path, value: str) -> Path:
    target = Path(value).expanduser()
    return target if target.is_absolute() else path.parent / target


def _requirement(path: Path, lineno: int, line: str) -> Line:
    try:
        req = Requirement(line)
    except InvalidRequirement:
        if line.startswith((".", "/", "~")) or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", line):
            # A path or URL on a line of its own: pip installs it as is.
            return Line(_local(path, line) if "://" not in line else line, path, lineno)
        raise InputError(f"{path}:{lineno}: {line!r} is not a requirement pip understands") from None
    return Line(line, path, lineno, canonicalize_name(req.name))


def _editable_name(value: str) -> str | None:
    match = re.search(r"#egg=([A-Za-z0-9][A-Za-z0-9._-]*)", value)
    return canonicalize_name(match[1]) if match else None
