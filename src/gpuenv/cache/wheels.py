"""The wheel cache: every built wheel stored once per ABI, safe to share.

A wheel is stored under a :class:`~gpuenv.cache.key.CacheKey`, a fingerprint
of everything that changes the binary (source, Python, platform, the torch it
was compiled against, the arch list, nvcc, the build knobs). The key is
computed *before* building, so a hit skips the build entirely.

On disk (``root`` is :func:`default_cache_dir` or ``GPUENV_CACHE_DIR``)::

    root/v1/<digest[:2]>/<digest>/<wheel file name>   the wheel, name unchanged
    root/v1/<digest[:2]>/<digest>/meta.json           the key in words and fields, wheel sha256, size, ...
    root/v1/<digest[:2]>/<digest>/last_used           empty; its mtime is the last hit
    root/v1/.locks/<digest>.lock                      flock(2) target of :meth:`WheelCache.lock`
    root/v1/.tmp/<...>                                entries being written or deleted
    root/v1/.corrupt/<digest>-<time>                  entries refused by :meth:`WheelCache.lookup`

Entries are published whole, removed whole and locked as the store both caches
use does it (:mod:`gpuenv.cache.store`, whose guarantees hold on a shared file
system too); this module owns the layout above and what an entry holds. Besides:

- :meth:`WheelCache.lookup` hashes the wheel every time and never hands out one
  whose sha256 differs from the one recorded when it was stored; such an entry
  is moved aside to ``.corrupt`` and the result says why.
- :meth:`WheelCache.lock` is an exclusive lock per key, so concurrent setups
  build a key once; :meth:`WheelCache.prune` removes an entry only while
  holding it.

The intended flow of a caller::

    key = CacheKey(...)
    with cache.lock(key, on_wait=report):         # the second builder waits here
        result = cache.lookup(key)
        if result.refused:
            report(f"cached wheel refused: {result.refused}")
        entry = result.entry or cache.store(key, build_wheel())
        install(entry.wheel)                      # under the lock: prune cannot remove it
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Optional

from gpuenv.cache.entry import CacheEntry, LookupResult
from gpuenv.cache.files import (
    copy_synced,
    fsync_dir,
    own_folder,
    read_meta,
    remove_older,
    remove_tree,
    sha256_file,
    touch,
    write_synced,
)
from gpuenv.cache.key import CACHE_SCHEMA, CacheKey, differing_fields, key_differences, short_sha
from gpuenv.cache.keylock import CacheLockTimeout, LockInfo, LockWait, WaitCallback
from gpuenv.cache.locking import READ_ONLY_ERRNOS
from gpuenv.cache.store import LAST_USED_FILE, STALE_TEMP_AGE, CacheError, Store
from gpuenv.cache.words import aware
from gpuenv.options import chosen_value
from gpuenv.version import __version__

META_FILE = "meta.json"

# Runtime alias: typing.Optional/Callable, not ``X | None``, so Python 3.9 can evaluate it.
Checkpoint = Optional[Callable[[str], None]]


# -- the cache ------------------------------------------------------------------------


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``GPUENV_CACHE_DIR``, else ``$XDG_CACHE_HOME/gpuenv/wheels``, else ``~/.cache/gpuenv/wheels``."""
    given = chosen_value("cache_dir", environ=environ)  # the option's variable, read as the option's
    if given is not None:
        return Path(given)
    xdg = environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "gpuenv" / "wheels"
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".cache" / "gpuenv" / "wheels"


class WheelCache:
    """Built wheels under ``root``, keyed by :class:`CacheKey`. Nothing is touched until used."""

    def __init__(self, root: Path | str) -> None:
        self.path = Path(root)
        self._base = self.path / f"v{CACHE_SCHEMA}"
        self._store = Store(self._base, self.path)

    def __repr__(self) -> str:
        return f"WheelCache({str(self.path)!r})"

    # -- paths ----------------------------------------------------------------

    def entry_dir(self, key: CacheKey) -> Path:
        return self._entry_dir(key.digest)

    def _entry_dir(self, digest: str) -> Path:
        return self._base / digest[:2] / digest

    @property
    def _corrupt(self) -> Path:
        return self._base / ".corrupt"

    # -- lookup ---------------------------------------------------------------

    def lookup(self, key: CacheKey) -> LookupResult:
        """The verified entry of ``key``; a refused entry is moved aside and reported.

        Hashes the wheel (tens of MB: well under a second) and, on a hit,
        touches ``last_used``.
        """
        directory = self.entry_dir(key)
        try:
            before = os.stat(directory)
        except FileNotFoundError:
            return LookupResult(None)
        entry, problem = self._load_verified(directory, key.digest)
        if entry is None:
            moved = self._quarantine(directory, before)
            return LookupResult(None, refused=problem, quarantined=moved)
        touch(directory / LAST_USED_FILE)
        return LookupResult(replace(entry, last_used=datetime.now(timezone.utc)))

    def entry_of(self, digest: str) -> CacheEntry | None:
        """The published entry of the key digest ``digest`` (as gpuenv.lock records it), not verified."""
        if not _DIGEST.fullmatch(digest):
            return None
        try:
            return self._load(self._entry_dir(digest))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def verify(self, entry: CacheEntry) -> str | None:
        """Why ``entry``'s wheel cannot be trusted, or None if its size and sha256 match meta.json."""
        try:
            size = entry.wheel.stat().st_size
            if size != entry.meta.get("size"):
                return f"{entry.wheel.name} is {size} bytes, {entry.meta.get('size')} were stored"
            actual = sha256_file(entry.wheel)
        except OSError as exc:
            return f"cannot read {entry.wheel.name}: {exc.strerror or exc}"
        if actual != entry.sha256:
            return (
                f"{entry.wheel.name} has sha256 {short_sha(actual)}, "
                f"{short_sha(entry.sha256)} was stored: the file was altered"
            )
        return None

    def _load_verified(self, directory: Path, digest: str) -> tuple[CacheEntry | None, str]:
        try:
            entry = self._load(directory)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"the entry is incomplete or unreadable: {exc}"
        if entry.digest != digest or entry.key.digest != digest:
            return None, f"its {META_FILE} describes another key"
        problem = self.verify(entry)
        return (None, problem) if problem else (entry, "")

    def _quarantine(self, directory: Path, seen: os.stat_result) -> Path | None:
        """Move a refused entry aside, unless it is gone or was replaced since it was examined."""
        try:
            now = os.stat(directory)
        except FileNotFoundError:
            return None
        if (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
            return None  # a fresh entry replaced it; the next lookup examines that one
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        target = self._corrupt / f"{directory.name}-{stamp}-{secrets.token_hex(3)}"
        try:
            own_folder(self._corrupt, self.path)
            os.rename(directory, target)
        except OSError:  # gone meanwhile, or a read-only shared cache: refused all the same
            return None
        return target

    # -- store ----------------------------------------------------------------

    def store(self, key: CacheKey, wheel_path: Path | str, *, _checkpoint: Checkpoint = None) -> CacheEntry:
        """Copy ``wheel_path`` into the cache under ``key`` atomically and return the entry.

        If another process published the key first, its entry is returned and
        this copy is discarded (unless that entry fails verification: then it
        is moved aside and this one takes its place). ``_checkpoint`` is
        called with the name of each stage (``"temp-created"``,
        ``"wheel-copied"``, ``"meta-written"``, ``"before-publish"``), for
        fault-injection tests.
        """
        wheel_path = Path(wheel_path)
        if not wheel_path.is_file():
            raise CacheError(f"cannot store {wheel_path} in the wheel cache: no such file")
        hook = _checkpoint or (lambda stage: None)
        try:
            self.remove_stale_temps()
            temp = self._store.new_temp(key.digest[:16])
            try:
                hook("temp-created")
                self._fill_temp(temp, key, wheel_path, hook)
                hook("before-publish")
                return self._publish(key, temp)
            finally:
                remove_tree(temp)  # gone already once published
        except OSError as exc:
            raise CacheError(
                f"cannot store {wheel_path.name} in the wheel cache {self.path}: {exc.strerror or exc}",
                hint="choose a writable cache directory with GPUENV_CACHE_DIR or --cache-dir",
            ) from exc

    def _fill_temp(self, temp: Path, key: CacheKey, wheel_path: Path, hook: Callable[[str], None]) -> None:
        sha, size = copy_synced(wheel_path, temp / wheel_path.name)
        hook("wheel-copied")
        meta = {
            "schema": CACHE_SCHEMA,
            "digest": key.digest,
            "described": key.describe(),
            "key": key.to_json(),
            "wheel": wheel_path.name,
            "wheel_sha256": sha,
            "size": size,
            "created": datetime.now(timezone.utc).isoformat(),
            "gpuenv_version": __version__,
        }
        write_synced(temp / META_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        write_synced(temp / LAST_USED_FILE, "")
        fsync_dir(temp)
        hook("meta-written")

    def _publish(self, key: CacheKey, temp: Path) -> CacheEntry:
        final = self.entry_dir(key)
        for _ in range(3):
            try:
                self._store.publish(temp, final)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                existing = self.lookup(key).entry
                if existing is not None:  # another process won; the caller discards our copy
                    return existing
                continue  # the existing one was refused and moved aside: take its place
            return self._load(final)
        raise CacheError(f"cannot publish {key.name} in the wheel cache {self.path}: keeps being replaced")

    # -- locks ----------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self,
        key: CacheKey,
        *,
        timeout: float | None = None,
        on_wait: WaitCallback | None = None,
        poll_interval: float = 0.2,
    ) -> Iterator[LockInfo]:
        """Hold the exclusive lock of ``key`` (``flock`` on ``.locks/<digest>.lock``).

        If another process holds it, ``on_wait`` is called once with who holds
        it, then this waits: forever, or up to ``timeout`` seconds and then
        raises :class:`CacheLockTimeout`. Yields whether it waited. The lock
        is per open file, so a second ``lock`` of the same key in the same
        process waits too.
        """
        path = self._store.lock_path(key.digest)
        started = time.monotonic()
        told = (lambda holder: on_wait(LockWait(key, path, holder))) if on_wait is not None else None
        try:
            locked = self._store.lock(key.digest, timeout=timeout, on_wait=told, poll_interval=poll_interval)
        except OSError as exc:
            if exc.errno in READ_ONLY_ERRNOS and self._base.is_dir():
                yield LockInfo(key, False, 0.0, read_only=True)
                return
            raise CacheError(
                f"cannot lock {key.name} in the wheel cache {self.path}: {exc.strerror or exc}",
                hint="choose a writable cache directory with GPUENV_CACHE_DIR or --cache-dir",
            ) from exc
        if locked is None:
            raise CacheLockTimeout(key.name, timeout or 0.0, self._store.holder(key.digest))
        fd, waited = locked
        try:
            Store.say_holder(fd)
            read_only = not os.access(self._base, os.W_OK)  # locked through another's file: store fails
            yield LockInfo(key, waited, time.monotonic() - started, read_only=read_only)
        finally:
            os.close(fd)

    # -- listing and nearest --------------------------------------------------

    def entries(self) -> list[CacheEntry]:
        """Every published entry with a readable meta.json (wheels are not hashed), newest use first."""
        found = []
        for directory in self._entry_dirs():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                found.append(self._load(directory))
        return sorted(found, key=lambda e: e.last_used, reverse=True)

    def nearest(self, key: CacheKey) -> tuple[CacheEntry, list[str]] | None:
        """The entry of the same distribution whose key differs least, and how it differs in words.

        Differences read from the cached entry to ``key``, e.g.
        ``"torch 2.4.1+cu121 → 2.5.1+cu124"``. Ties go to the most recently used.
        """
        candidates = []
        for entry in self.entries():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                if entry.key.name == key.name:
                    candidates.append((entry, entry.key))
        if not candidates:
            return None
        best, best_key = min(
            candidates,
            key=lambda c: (differing_fields(c[1], key), len(key_differences(c[1], key)),
                           -c[0].last_used.timestamp()),
        )
        return best, key_differences(best_key, key)

    def _entry_dirs(self) -> Iterator[Path]:
        """Every published entry's folder. A link is none (gpuenv publishes an entry by renaming a
        folder it made): on a shared cache it could lead to another user's folders, which prune
        would then remove as unreadable entries."""
        if self._base.is_symlink() or not self._base.is_dir():
            return
        for shard in sorted(self._base.iterdir()):
            if shard.name.startswith(".") or shard.is_symlink() or not shard.is_dir():
                continue
            yield from sorted(d for d in shard.iterdir() if not d.is_symlink() and d.is_dir())

    def _load(self, directory: Path) -> CacheEntry:
        """The entry in ``directory``; raises OSError/ValueError/KeyError/TypeError for anything
        short of a complete meta.json (a missing or malformed key included), so every reader
        meets a damaged entry the same way: as unreadable."""
        meta = read_meta(directory / META_FILE)
        CacheKey.from_json(meta["key"])
        if not isinstance(meta["wheel_sha256"], str) or not isinstance(meta["wheel"], str):
            raise TypeError(f"{META_FILE}: wheel and wheel_sha256 must be strings")
        if not _WHEEL_NAME.fullmatch(meta["wheel"]) or meta["wheel"] in (".", ".."):
            raise ValueError(f"{META_FILE}: wheel {meta['wheel'][:80]!r} is not a file name")
        if not isinstance(meta.get("size"), int) or isinstance(meta["size"], bool) or meta["size"] < 0:
            raise TypeError(f"{META_FILE}: size is not a byte count")
        if not isinstance(meta["digest"], str) or not _DIGEST.fullmatch(meta["digest"]):
            raise ValueError(f"{META_FILE}: digest {str(meta['digest'])[:80]!r} is not a key digest")
        wheel = directory / str(meta["wheel"])
        created = aware(datetime.fromisoformat(str(meta["created"])))
        try:
            last_used = datetime.fromtimestamp((directory / LAST_USED_FILE).stat().st_mtime, timezone.utc)
        except FileNotFoundError:
            last_used = created
        return CacheEntry(
            digest=str(meta["digest"]),
            path=directory,
            wheel=wheel,
            meta=meta,
            size=wheel.stat().st_size,
            created=created,
            last_used=max(last_used, created),
        )

    # -- prune ----------------------------------------------------------------

    def prune(
        self,
        *,
        older_than: timedelta | None = None,
        unused_since: datetime | None = None,
        max_total_bytes: int | None = None,
        dry_run: bool = False,
    ) -> list[CacheEntry]:
        """Remove entries and return them (with ``dry_run``: return them and remove nothing).

        Removes entries stored longer ago than ``older_than``, entries not
        used since ``unused_since`` (a naive datetime is local time), then the
        least recently used until the rest fit in ``max_total_bytes``. An
        entry whose key lock is held (being built or installed) is skipped.
        An entry used or replaced while prune runs is kept. Always removes
        temporary directories older than an hour, entries :meth:`lookup`
        moved aside, and free lock files of keys without an entry.
        """
        if not dry_run:
            self.remove_stale_temps()
            self._remove_quarantined()
            self._remove_orphan_locks()
            self._remove_unreadable()
        remove = (lambda entry: True) if dry_run else self._remove_entry
        now = datetime.now(timezone.utc)
        since = aware(unused_since) if unused_since is not None else None
        kept = sorted(self.entries(), key=lambda e: e.last_used)  # least recently used first
        removed = []
        for entry in list(kept):
            too_old = older_than is not None and now - entry.created > older_than
            unused = since is not None and entry.last_used < since
            if (too_old or unused) and remove(entry):
                removed.append(entry)
                kept.remove(entry)
        if max_total_bytes is not None:
            removed += self._shrink(kept, max_total_bytes, remove)
        return removed

    def _shrink(
        self, lru_first: list[CacheEntry], max_total_bytes: int, remove: Callable[[CacheEntry], bool]
    ) -> list[CacheEntry]:
        total = sum(e.size for e in lru_first)
        removed = []
        for entry in lru_first:
            if total <= max_total_bytes:
                break
            if remove(entry):
                removed.append(entry)
                total -= entry.size
        return removed

    def _remove_entry(self, entry: CacheEntry) -> bool:
        """Remove ``entry`` under its key lock; False if the lock is busy or the entry is gone."""
        fd = self._store.try_lock(entry.digest)
        if fd is None:
            return False
        try:
            if not self._unchanged(entry):
                return False
            try:
                return self._store.remove(entry.path, entry.digest[:16])
            finally:
                with contextlib.suppress(OSError):
                    self._store.unlink_lock(entry.digest)  # waiters notice and re-open
        finally:
            os.close(fd)

    def _unchanged(self, entry: CacheEntry) -> bool:
        """Whether ``entry`` is still the one listed: not replaced, not used since."""
        try:
            now = self._load(entry.path)
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return now.created == entry.created and now.last_used <= entry.last_used

    def _remove_unreadable(self) -> None:
        """Remove published entries whose meta.json cannot be read (an entry is published whole, so
        one that is unreadable now stays so), under their key lock, as :meth:`lookup` would."""
        for directory in list(self._entry_dirs()):
            try:
                self._load(directory)
                continue
            except (OSError, ValueError, KeyError, TypeError):
                pass
            with contextlib.suppress(OSError):
                fd = self._store.try_lock(directory.name)
                if fd is None:
                    continue
                try:
                    self._store.remove(directory, directory.name[:16])
                finally:
                    os.close(fd)

    def _remove_orphan_locks(self) -> None:
        """Unlink lock files of keys without an entry (failed builds), if nobody holds them."""
        locks = self._store.locks
        if locks.is_symlink() or not locks.is_dir():
            return
        for lock_file in locks.glob("*.lock"):
            digest = lock_file.name[: -len(".lock")]
            if self._entry_dir(digest).exists():
                continue
            with contextlib.suppress(OSError):
                fd = self._store.try_lock(digest)
                if fd is not None:
                    with contextlib.suppress(OSError):
                        lock_file.unlink()
                    os.close(fd)

    def remove_stale_temps(self, older_than: timedelta = STALE_TEMP_AGE) -> list[Path]:
        """Remove temporary directories of dead processes (older than an hour); return them."""
        return self._store.remove_stale_temps(older_than)

    def _remove_quarantined(self) -> list[Path]:
        return remove_older(self._corrupt, timedelta(0), self.path)


# -- helpers --------------------------------------------------------------------------

#: A wheel's file name as a cache entry records it: one name, ASCII, no folder.
_WHEEL_NAME = re.compile(r"[A-Za-z0-9_.+!-]{1,255}", re.ASCII)
#: A key's digest, as entries are named (it names lock files too: nothing else may be in it).
_DIGEST = re.compile(r"[0-9a-f]{64}", re.ASCII)
