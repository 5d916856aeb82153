"""What ``gpuenv cache prune`` is asked to remove, read from its words and checked.

:func:`prune_limits` turns the command's options (days, a date, a size such
as ``20G``) into :class:`PruneLimits`, the keyword arguments of
:meth:`~gpuenv.cache.wheels.WheelCache.prune`, and refuses anything else with
an :class:`~gpuenv.errors.InputError`, so a typo never empties the cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpuenv.cache.words import aware
from gpuenv.errors import InputError

#: Longer than any cache lives; a bound so that timedelta and datetime arithmetic cannot overflow.
_MAX_DAYS = 365 * 1000

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_NUMBER = re.compile(r"[0-9]*\.?[0-9]+(?:E[+-]?[0-9]+)?", re.ASCII | re.IGNORECASE)


@dataclass(frozen=True)
class PruneLimits:
    """What ``gpuenv cache prune`` was asked to remove, checked: the keyword arguments of
    :meth:`~gpuenv.cache.wheels.WheelCache.prune`."""

    older_than: timedelta | None = None
    unused_since: datetime | None = None
    max_total_bytes: int | None = None


def prune_limits(
    *, older_than_days: float | None, unused_since: str | None, max_size: str | None
) -> PruneLimits:
    """Check the words of ``cache prune``: a finite, non-negative age, a date, a size such as
    ``20G``; raise InputError (exit 2) on anything else, so a typo never empties the cache."""

    if older_than_days is None and unused_since is None and max_size is None:
        raise InputError("cache prune: say what to remove",
                         hint="--older-than DAYS, --unused-since YYYY-MM-DD or --max-size SIZE")
    older = None
    if older_than_days is not None:
        if not (0 <= older_than_days <= _MAX_DAYS):  # False for nan too
            raise InputError(f"--older-than {older_than_days:g}: not a number of days from 0 to {_MAX_DAYS}",
                             hint="e.g. --older-than 30")
        older = timedelta(days=older_than_days)
    since = None
    if unused_since is not None:
        try:
            since = datetime.fromisoformat(unused_since.strip())
            aware(since)
        except (ValueError, OverflowError, OSError):
            raise InputError(f"--unused-since {unused_since!r}: not a date", hint="e.g. 2026-10-01") from None
    size = parse_size(max_size, option="--max-size") if max_size is not None else None
    return PruneLimits(older, since, size)


def parse_size(text: str, *, option: str = "size") -> int:
    """Bytes of ``20G``, ``500M``, ``1.5GiB``, ``0``: a finite, non-negative size."""

    raw = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (raw[:-1], raw[-1]) if raw and raw[-1] in _SIZE_UNITS else (raw, "")
    # ASCII digits only: float() would read Arabic-Indic or full-width digits as a size too.
    value = float(number.strip()) if _NUMBER.fullmatch(number.strip()) else float("nan")
    if not (0 <= value < 1 << 62) or value * _SIZE_UNITS[unit] >= 1 << 62:
        raise InputError(f"{option} {text!r}: not a size", hint="e.g. 20G or 500M (0 empties the cache)")
    return int(value * _SIZE_UNITS[unit])
