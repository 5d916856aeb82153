"""The flock(2) locks both caches take: opening a lock file, taking the lock, and who holds it.

A lock is one file per key (or per CUDA release) locked with ``flock``, so
the kernel releases it when its holder dies. The holder writes its pid, host
and start into the file (:func:`write_holder`) for whoever waits to report
(:func:`read_holder`). A lock file that prune unlinked while a process waited
is noticed by :func:`is_current`, and the waiter locks the new one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from gpuenv.cache.files import own_folder
from gpuenv.inputs import UnreadableInput, parse_json, read_input

#: What a cache that may be read but not written answers to a lock or a store.
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@dataclass(frozen=True)
class LockHolder:
    """Who holds a key's lock, as the holder wrote it into the lock file."""

    pid: int | None
    host: str | None
    since: datetime | None

    def __str__(self) -> str:
        where = f"pid {self.pid}" if self.pid is not None else "a process"
        if self.host:
            where += f" on {self.host}"
        if self.since:
            where += f" since {self.since.astimezone().strftime('%Y-%m-%d %H:%M:%S')}"
        return where


def open_lock_file(path: Path, root: Path) -> int:
    """A descriptor of the lock file at ``path`` (in the cache ``root``), created if missing; read-only
    where it cannot be written (another user's file, a read-only mount). Raises OSError when there
    is nothing to lock, or when its folder is a link (in a shared cache, lock files created there
    would land wherever it points)."""
    try:
        own_folder(path.parent, root)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NO_LINK, 0o666)
    except OSError as exc:
        # Another user's lock file in a shared cache, or a read-only mount of it:
        # flock works on a read-only descriptor of a file that is there.
        if exc.errno not in READ_ONLY_ERRNOS:
            raise
        try:
            fd = os.open(path, os.O_RDONLY | _NO_LINK)
        except FileNotFoundError:
            raise exc from None  # nothing to lock: the caller sees the cache as read-only
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "a lock file that is not a regular file", str(path))
    os.set_blocking(fd, True)
    return fd


#: Lock files are opened without following a link: in a shared cache, a link planted where a lock
#: file goes could make the holder truncate (write_holder) a file of its own elsewhere. O_NONBLOCK:
#: a FIFO planted there must not hang the open.
_NO_LINK = getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def try_flock(fd: int, mode: int = fcntl.LOCK_EX) -> bool:
    """Take the lock (exclusive, or ``LOCK_SH`` for the toolkit cache's users) if it is free now."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def wait_flock(fd: int, deadline: float | None, poll_interval: float, mode: int = fcntl.LOCK_EX) -> bool:
    """Block until locked (True) or the deadline passes (False)."""
    if deadline is None:
        fcntl.flock(fd, mode)
        return True
    while time.monotonic() < deadline:
        time.sleep(max(0.0, min(poll_interval, deadline - time.monotonic())))
        if try_flock(fd, mode):
            return True
    return False


def is_current(fd: int, path: Path) -> bool:
    """Whether the locked fd is still the file at ``path`` (prune may have unlinked it)."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def write_holder(fd: int) -> None:
    """Write this process (pid, host, since when) into the held lock file, for whoever waits."""
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(timezone.utc).isoformat(),
    }
    with contextlib.suppress(OSError):  # read-only fd: waiters just learn less
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)


def read_holder(path: Path) -> LockHolder | None:
    """Who :func:`write_holder` says holds the lock at ``path``; None if unknown."""
    try:
        data = parse_json(read_input(path, limit=1 << 16))
        since = datetime.fromisoformat(data["since"]) if data.get("since") else None
        pid = data.get("pid")
        return LockHolder(int(pid) if pid is not None else None, data.get("host"), since)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UnreadableInput):
        return None
