"""What the wheel cache hands back: an entry (its wheel, key and times) and the result of a lookup."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from gpuenv.cache.key import CacheKey, archs
from gpuenv.cache.words import human_age, human_size


@dataclass(frozen=True)
class CacheEntry:
    """One stored wheel. ``meta`` is the parsed meta.json."""

    digest: str
    path: Path
    wheel: Path
    meta: dict[str, Any] = field(repr=False)
    size: int
    created: datetime
    last_used: datetime

    @property
    def key(self) -> CacheKey:
        return CacheKey.from_json(self.meta["key"])

    @property
    def sha256(self) -> str:
        return str(self.meta["wheel_sha256"])

    def summary(self, now: datetime | None = None) -> str:
        """One line, e.g. ``flash-attn 2.8.3.post2 · torch 2.13.0+cu130 · cu 13.0 · archs 9.0 · 123.4 MB ·
        3 days ago``.

        The age is the time since the wheel was stored; the last use is added
        when it is later than that.
        """
        now = now or datetime.now(timezone.utc)
        key = self.key
        version = key.version or _wheel_version(self.wheel.name)
        parts = [
            f"{key.name} {version}".rstrip(),
            f"torch {key.abi.torch_version}",
            f"cu {key.abi.torch_cuda}" if key.abi.torch_cuda else "cpu",
            f"archs {archs(key.arch_list)}",
            human_size(self.size),
            human_age(now - self.created),
        ]
        if self.last_used - self.created > timedelta(minutes=1):
            parts.append(f"used {human_age(now - self.last_used)}")
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """What ``gpuenv cache list --json`` prints for the entry (a stable shape for scripts)."""
        return {
            "digest": self.digest,
            "wheel": str(self.wheel),
            "size": self.size,
            "created": self.created.isoformat(),
            "last_used": self.last_used.isoformat(),
            "key": self.key.to_json(),
        }


@dataclass(frozen=True)
class LookupResult:
    """What :meth:`WheelCache.lookup` found.

    ``entry`` is a verified hit or None. ``refused`` says why an entry that
    existed for this key was not handed out (its wheel's sha256 differs from
    the recorded one, its meta.json is unreadable...); it was moved to
    ``quarantined`` (None if another process moved it first).
    """

    entry: CacheEntry | None
    refused: str | None = None
    quarantined: Path | None = None

    @property
    def hit(self) -> bool:
        return self.entry is not None


def _wheel_version(filename: str) -> str:
    parts = filename.split("-")
    return parts[1] if len(parts) >= 5 else ""
