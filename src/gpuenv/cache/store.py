"""The one store both caches keep their entries in: folders published whole, removed whole, under flock.

Under its ``base`` (``<cache>/v1``) a store keeps, besides the entries the cache lays out::

    base/.locks/<name>.lock         flock(2) targets, one per entry name
    base/.tmp/<prefix>-<pid>-<hex>  folders being written or removed

Guarantees, also on a shared (cluster) file system:

- An entry appears complete or not at all: it is written into a temporary
  folder inside ``base`` (:meth:`Store.new_temp`) and published with one
  ``rename(2)`` (:meth:`Store.publish`). A process killed at any point leaves
  at most a temporary folder, which :meth:`Store.remove_stale_temps` removes
  once it is an hour old.
- An entry is removed by renaming it into a temporary folder first
  (:meth:`Store.remove`): it vanishes at once for readers.
- A lock is ``flock`` on one file per name (:meth:`Store.lock`), so the kernel
  releases it when its holder dies, even by SIGKILL. The holder writes who it
  is into the file for whoever waits. A lock file unlinked while a process
  waited (the wheel cache's prune does so) is noticed, and the new one locked.
  (On NFS, Linux emulates flock with byte-range locks, which are shared
  between clients; Lustre needs the ``flock`` mount option.)

No folder between the cache's root and what the store creates, moves or
deletes may be a link (:func:`~gpuenv.cache.files.own_folder`): on a shared
cache another user could plant one. Where each entry lives is the cache's.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path
from typing import Callable, Optional

from gpuenv.cache.files import fsync_dir, own_folder, remove_older, remove_tree
from gpuenv.cache.locking import (
    LockHolder,
    is_current,
    open_lock_file,
    read_holder,
    try_flock,
    wait_flock,
    write_holder,
)
from gpuenv.errors import StepError

#: A temporary folder older than this belongs to a dead process.
STALE_TEMP_AGE = timedelta(hours=1)
#: In each entry of either cache: empty, its mtime is the entry's last use.
LAST_USED_FILE = "last_used"

# Runtime alias: typing.Optional/Callable, not ``X | None``, so Python 3.9 can evaluate it.
#: Told once, before waiting, who holds the lock (None: it did not say).
OnWait = Callable[[Optional[LockHolder]], None]


class CacheError(StepError):
    """A cache cannot be used: a wheel to store is missing, the directory is not writable..."""


class Store:
    """Entries under ``base`` (a folder of the cache ``within``). Nothing is touched until used."""

    def __init__(self, base: Path, within: Path) -> None:
        self.base = base
        #: The cache's root: no folder below it that the store uses may be a link.
        self.within = within

    def __repr__(self) -> str:
        return f"Store({str(self.base)!r})"

    @property
    def tmp(self) -> Path:
        return self.base / ".tmp"

    @property
    def locks(self) -> Path:
        return self.base / ".locks"

    # -- writing and removing --------------------------------------------------------

    def new_temp(self, prefix: str) -> Path:
        """A new empty folder under ``.tmp`` to write an entry into (or to remove one through)."""
        own_folder(self.tmp, self.within)
        temp = self.tmp / f"{prefix}-{os.getpid()}-{secrets.token_hex(6)}"
        temp.mkdir()  # not mkdtemp: the umask decides who else may read a shared cache
        return temp

    def publish(self, temp: Path, final: Path) -> None:
        """Rename the complete folder ``temp`` to ``final`` and make the rename last.

        Raises OSError (EEXIST or ENOTEMPTY) when an entry is at ``final`` already:
        the cache decides whether it stands.
        """
        own_folder(final.parent, self.within)
        os.rename(temp, final)
        fsync_dir(final.parent)

    def set_aside(self, path: Path, prefix: str) -> Path:
        """Rename the entry at ``path`` into a new temporary folder (it vanishes at once for
        lookups); return that folder, to be removed. FileNotFoundError when it is gone."""
        trash = self.new_temp(f"{prefix}-removing")
        try:
            os.rename(path, trash / "entry")
        except OSError:
            remove_tree(trash)
            raise
        return trash

    def remove(self, path: Path, prefix: str) -> bool:
        """Remove the entry at ``path`` whole; False when it was gone already."""
        try:
            trash = self.set_aside(path, prefix)
        except FileNotFoundError:
            return False
        remove_tree(trash)
        return True

    def remove_stale_temps(self, older_than: timedelta = STALE_TEMP_AGE) -> list[Path]:
        """Remove temporary folders of dead processes (older than an hour); return them."""
        return remove_older(self.tmp, older_than, self.within)

    # -- locks -------------------------------------------------------------------------

    def lock_path(self, name: str) -> Path:
        return self.locks / f"{name}.lock"

    def lock(
        self,
        name: str,
        mode: int = fcntl.LOCK_EX,
        *,
        timeout: float | None = None,
        on_wait: OnWait | None = None,
        poll_interval: float = 0.2,
    ) -> tuple[int, bool] | None:
        """Take the lock of ``name`` (``LOCK_EX``, or ``LOCK_SH`` for those who only use the entry).

        Returns the locked descriptor (the caller closes it to let go) and whether it
        waited; None when ``timeout`` seconds passed first. ``on_wait`` is told once,
        before waiting, who holds it. Raises OSError when there is nothing to lock (a
        read-only cache where the lock file is missing) or its folder is a link.
        """
        path = self.lock_path(name)
        deadline = None if timeout is None else time.monotonic() + timeout
        waited = False
        while True:
            fd = open_lock_file(path, self.within)
            if not try_flock(fd, mode):
                if not waited and on_wait is not None:
                    on_wait(read_holder(path))
                waited = True
                if not wait_flock(fd, deadline, poll_interval, mode):
                    os.close(fd)
                    return None
            if is_current(fd, path):
                return fd, waited
            os.close(fd)  # the lock file was unlinked while we waited: lock the new one

    def relock(self, fd: int, name: str, mode: int, on_wait: OnWait | None = None) -> bool:
        """Change the lock ``fd`` holds on ``name`` to ``mode`` (shared to exclusive and back),
        waiting as long as it takes; return whether it waited."""
        if try_flock(fd, mode):
            return False
        if on_wait is not None:
            on_wait(read_holder(self.lock_path(name)))
        wait_flock(fd, None, 0.2, mode)
        return True

    def try_lock(self, name: str) -> int | None:
        """The descriptor of ``name``'s exclusive lock if it is free now, else None."""
        fd = open_lock_file(self.lock_path(name), self.within)
        if try_flock(fd) and is_current(fd, self.lock_path(name)):
            return fd
        os.close(fd)
        return None

    def holder(self, name: str) -> LockHolder | None:
        """Who holds ``name``'s lock, as the holder wrote it; None if unknown."""
        return read_holder(self.lock_path(name))

    def unlink_lock(self, name: str) -> None:
        """Remove ``name``'s lock file (held by the caller): those waiting on it notice and re-open."""
        self.lock_path(name).unlink(missing_ok=True)

    @staticmethod
    def say_holder(fd: int) -> None:
        """Write this process into the lock file ``fd`` holds, for whoever waits."""
        write_holder(fd)
