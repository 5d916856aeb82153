"""The file operations both caches publish, read and remove entries with, safe against a crash.

A file is written and fsynced before the rename that publishes its directory
(:func:`write_synced`, :func:`copy_synced`, :func:`fsync_dir`), so an entry
appears complete or not at all; removal (:func:`remove_tree`,
:func:`remove_older`) tolerates what another process removed first.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from gpuenv.inputs import UnreadableInput, open_input, read_json

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The sha256 of the regular file at ``path``, read in chunks (a FIFO or device is an OSError)."""
    digest = hashlib.sha256()
    try:
        file = open_input(path)
    except UnreadableInput as exc:
        raise OSError(errno.ENOENT if exc.missing else errno.EINVAL, exc.problem, str(path)) from None
    with file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_synced(source: Path, target: Path) -> tuple[str, int]:
    """Copy ``source`` to ``target``, fsync it, return the sha256 and size of what was written."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(target, "xb") as dst:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest(), size


def write_synced(path: Path, text: str) -> None:
    """Create ``path`` (it must not exist) with ``text`` and fsync it."""
    with open(path, "x", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def fsync_dir(path: Path) -> None:
    """Fsync the directory ``path``, so the names created or renamed in it last; a no-op where the file
    system refuses."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some network file systems refuse fsync on a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def touch(path: Path) -> None:
    """Set the mtime of ``path`` to now, creating it; failures are ignored. A link is not followed
    (in a shared cache it could lead anywhere), nor a FIFO waited on."""
    with contextlib.suppress(OSError):  # read-only shared cache, or removed meanwhile: only a statistic
        flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        os.close(os.open(path, flags, 0o666))
        os.utime(path, follow_symlinks=False)


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything under it, whatever is already gone."""
    shutil.rmtree(path, ignore_errors=True)


def own_folder(path: Path, root: Path) -> Path:
    """``path`` made if missing (with its parents) and checked to be a folder of its own: neither it
    nor a folder between ``root`` (the cache) and it is a link.

    A cache keeps its temporary, quarantine and lock files in such folders; on a shared cache
    another user could put a link there, and what gpuenv then creates, moves or deletes in
    "its" folder would happen wherever the link points. Raises OSError naming the path.
    """
    if root not in path.parents:
        path.mkdir(parents=True, exist_ok=True)
        return path
    root.mkdir(parents=True, exist_ok=True)
    step = root
    for part in path.relative_to(root).parts:  # checked before anything is made below it
        step = step / part
        with contextlib.suppress(FileExistsError):
            os.mkdir(step)
        if step.is_symlink() or not step.is_dir():
            raise OSError(errno.ENOTDIR, "a link or a file where the cache keeps a folder of its own",
                          str(step))
    return path


def is_own_folder(path: Path, root: Path) -> bool:
    """Whether ``path`` is a folder and neither it nor a folder between ``root`` and it is a link."""
    step = path
    while root in step.parents:
        if step.is_symlink() or not step.is_dir():
            return False
        step = step.parent
    return path.is_dir()


def remove_older(directory: Path, older_than: timedelta, root: Path) -> list[Path]:
    """Remove the children of ``directory`` (a folder of the cache ``root``) last modified longer ago
    than ``older_than``; return them. A ``directory`` reached through a link is left alone: what
    the link points at is not the cache's to remove."""
    if not is_own_folder(directory, root):
        return []
    cutoff = time.time() - older_than.total_seconds()
    removed = []
    for child in directory.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if child.lstat().st_mtime <= cutoff:
                remove_tree(child)
                removed.append(child)
    return removed


#: A record gpuenv writes is a few KB; one far larger is not one of its records.
MAX_META_BYTES = 1 << 20


def read_meta(path: Path) -> dict[str, Any]:
    """The JSON object of a cache entry's record (``meta.json``, ``gpuenv-toolkit.json``), read through
    the bounded reader: a FIFO, a link to /dev/zero, a huge, deeply nested or non-finite one is a
    ValueError, as is anything but an object, so every reader meets a damaged entry the same way."""
    try:
        meta = read_json(path, limit=MAX_META_BYTES)
    except UnreadableInput as exc:
        if exc.missing:
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path)) from None
        raise ValueError(f"{path.name}: {exc.problem}") from None
    if not isinstance(meta, dict):
        raise TypeError(f"{path.name} is not a JSON object")
    return meta
