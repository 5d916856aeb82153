"""The wheel cache's lock of a key, as its callers meet it: who they wait for, what they got, a timeout.

:meth:`~gpuenv.cache.wheels.WheelCache.lock` calls its ``on_wait`` with a :class:`LockWait` before it
waits, yields a :class:`LockInfo`, and raises :class:`CacheLockTimeout` when the caller would wait no
longer. The locking itself is the store's (:mod:`gpuenv.cache.store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gpuenv.cache.key import CacheKey
from gpuenv.cache.locking import LockHolder
from gpuenv.cache.store import CacheError

# -- errors ---------------------------------------------------------------------------


class CacheLockTimeout(CacheError):
    """Another process held a key's lock for longer than the caller would wait."""

    def __init__(self, name: str, timeout: float, holder: LockHolder | None) -> None:
        self.name = name
        self.timeout = timeout
        self.holder = holder
        by = f" by {holder}" if holder else ""
        super().__init__(
            f"gave up after {timeout:g} s waiting for the cache lock of {name}, held{by}",
            hint="another gpuenv setup is building the same wheel; wait for it or raise the timeout",
        )


# -- waiting for a key's lock --------------------------------------------------------------------------


@dataclass(frozen=True)
class LockWait:
    """Passed to the ``on_wait`` callback of :meth:`WheelCache.lock` before it waits."""

    key: CacheKey
    lock_path: Path
    holder: LockHolder | None

    def describe(self) -> str:
        """``"waiting for another process building flash-attn (pid 12 on node07 since ...)"``."""
        by = f" ({self.holder})" if self.holder else ""
        return f"waiting for another process building {self.key.name}{by}"


@dataclass(frozen=True)
class LockInfo:
    """Yielded by :meth:`WheelCache.lock`: whether the caller had to wait, and how long.

    ``read_only`` is True when the cache cannot be written here (a read-only
    mount, another user's directory): no lock was taken, since nobody who
    shares that view can store or prune; lookups work, stores do not.
    """

    key: CacheKey
    waited: bool
    seconds: float
    read_only: bool = False


# Runtime alias: typing.Callable, so Python 3.9 can evaluate it.
WaitCallback = Callable[[LockWait], None]
