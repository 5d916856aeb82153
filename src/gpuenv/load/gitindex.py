"""Git submodules as git sees them, read from ``.gitmodules`` and the git index, without running git.

A ``.gitmodules`` entry is a submodule only if the index holds a gitlink
(mode 160000) at its path: git checks out nothing for an entry without one (a
stale entry, left behind when a submodule was removed), and ``git submodule
update`` never fills it. A gitlink whose folder is empty is a submodule not
checked out. The index (``.git/index``, or the one a ``.git`` file points to)
is read in formats 2, 3 and 4; without a readable index, an empty folder at the
path is taken as not checked out and a missing one as unknown.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gpuenv.inputs import UnreadableInput, read_input, read_input_bytes

#: A git index larger than this is not read (a repository of a million files).
MAX_INDEX_BYTES = 128 << 20
_GITLINK = 0o160000

State = Literal["checked-out", "empty", "stale", "unknown"]


@dataclass(frozen=True)
class Submodule:
    path: str
    url: str
    #: Where .gitmodules declares it ("thirdparty/lietorch" → ".gitmodules:2").
    origin: str
    state: State
    #: What the state rests on ("no gitlink in the git index", "the folder is empty").
    why: str = ""


def submodules(root: Path) -> list[Submodule]:
    """The submodules ``root``'s own .gitmodules declares, each with its state."""
    entries = gitmodules(root / ".gitmodules")
    if not entries:
        return []
    links = gitlinks(root)
    found = []
    for path, url, line in entries:
        folder = root / path
        try:
            filled = folder.is_dir() and any(folder.iterdir())
        except OSError:
            filled = False
        origin = f".gitmodules:{line}"
        if links is not None and path.rstrip("/") not in links:
            found.append(
                Submodule(
                    path, url, origin, "stale", "no gitlink in the git index: git checks out nothing there"
                )
            )
        elif filled:
            found.append(Submodule(path, url, origin, "checked-out"))
        elif links is not None:
            found.append(Submodule(path, url, origin, "empty", "a gitlink whose folder is empty"))
        elif folder.is_dir():
            why = "its folder is empty and there is no git index to read"
            found.append(Submodule(path, url, origin, "empty", why))
        else:
            found.append(Submodule(path, url, origin, "unknown", "no folder and no git index to read"))
    return found


def gitmodules(path: Path) -> list[tuple[str, str, int]]:
    """(path, url, line of its section) of each entry of a .gitmodules file."""
    try:
        text = read_input(path, limit=1 << 20, errors="replace")
    except UnreadableInput:
        return []
    entries: list[tuple[str, str, int]] = []
    current: dict[str, str] = {}
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("["):
            if "path" in current:
                entries.append((current["path"], current.get("url", ""), start))
            current, start = {}, number
        else:
            match = re.match(r"(\w+)\s*=\s*(.*)", line)
            if match and "\0" not in match[2]:
                current[match[1].lower()] = match[2].strip().strip('"')
    if "path" in current:
        entries.append((current["path"], current.get("url", ""), start))
    return entries


def gitlinks(root: Path) -> set[str] | None:
    """The paths of every gitlink in ``root``'s git index; None when there is no index gpuenv can read."""
    index = _index_path(root)
    if index is None:
        return None
    if (root / ".git").is_dir() and not os.path.lexists(index):
        return set()  # a repository with nothing added yet (git init): no gitlinks
    data = _bytes(index)
    if data is None:
        return None
    try:
        return _parse(data)
    except (ValueError, struct.error, IndexError):
        return None


def _index_path(root: Path) -> Path | None:
    git = root / ".git"
    if git.is_dir():
        return git / "index"
    try:
        text = read_input(git, limit=4096)
    except UnreadableInput:
        return None
    match = re.match(r"gitdir:\s*(.+)", text.strip())
    if match is None:
        return None
    target = Path(match[1].strip())
    return (target if target.is_absolute() else root / target) / "index"


def _bytes(path: Path) -> bytes | None:
    """The bytes of a regular file (never a FIFO or a device), at most MAX_INDEX_BYTES."""
    try:
        return read_input_bytes(path, limit=MAX_INDEX_BYTES)
    except UnreadableInput:
        return None


def _parse(data: bytes) -> set[str]:
    """Gitlink paths of an index (git's Documentation/gitformat-index.txt: versions 2, 3 and 4)."""
    signature, version, count = struct.unpack(">4sII", data[:12])
    if signature != b"DIRC" or version not in (2, 3, 4):
        raise ValueError("not a git index")
    links: set[str] = set()
    offset = 12
    previous = b""
    for _ in range(count):
        start = offset
        mode = struct.unpack(">I", data[offset + 24 : offset + 28])[0]
        flags = struct.unpack(">H", data[offset + 60 : offset + 62])[0]
        offset += 62
        if version >= 3 and flags & 0x4000:
            offset += 2
        if version == 4:
            strip, offset = _varint(data, offset)
            end = data.index(b"\0", offset)
            name = previous[: len(previous) - strip] + data[offset:end]
            offset = end + 1
        else:
            end = data.index(b"\0", offset)
            name = data[offset:end]
            offset = start + ((end - start) // 8 + 1) * 8
        previous = name
        if mode & 0o170000 == _GITLINK:
            links.add(name.decode("utf-8", "replace"))
    return links


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    """git's offset varint (index format 4)."""
    byte = data[offset]
    value = byte & 0x7F
    offset += 1
    while byte & 0x80:
        byte = data[offset]
        value = ((value + 1) << 7) | (byte & 0x7F)
        offset += 1
    return value, offset


def repo_key(url: str) -> str:
    """A git repository's identity in a URL: "git@github.com:org/Name.git", "git+https://github.com/org/name@abc"
    and "org/name" on github.com all give "github.com/org/name"; "" for what is not one."""
    text = url.split(" @ ", 1)[-1].strip()
    text = re.sub(r"^git\+", "", text)
    text = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", text)
    text = re.sub(r"^[^@/]+@", "", text).replace(":", "/", 1)
    text = text.split("#", 1)[0].split("?", 1)[0]
    text = re.sub(r"@[^/]*$", "", text).rstrip("/")
    return text.removesuffix(".git").lower() if "/" in text else ""
