"""The caches' words for sizes and ages, as listings print them, and the reading of a naive time.

Shared by the wheel cache and the toolkit cache, so ``gpuenv cache list``
says both the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def aware(when: datetime) -> datetime:
    """``when`` with a time zone: a naive datetime is local time."""
    return when if when.tzinfo is not None else when.astimezone()


def human_size(size: int) -> str:
    """``123.4 MB``: decimal units, one decimal; bytes below a kilobyte."""
    if size < 1000:
        return f"{size} B"
    scale, unit = next((s, u) for s, u in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")) if size >= s)
    return f"{size / scale:.1f} {unit}"


def human_age(age: timedelta) -> str:
    """``3 days ago``: the largest whole unit, down to minutes, else ``just now``."""
    seconds = max(0, int(age.total_seconds()))
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"
