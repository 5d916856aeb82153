"""Where wheels may come from besides a build here: the recipe's ``[cache]`` table, and the plan's words.

::

    [cache]
    from = ["http://cache.lab:8080/simple/", "/shared/gpuenv-wheels"]   # shared caches, asked in order
    push = true            # put what this setup builds on them (as --push)
    prebuilt = false       # never use a publisher's prebuilt wheels (as --no-prebuilt)

``--cache-from`` (repeatable) and ``GPUENV_CACHE_FROM`` replace ``from``; the
command line's ``--push``/``--no-prebuilt`` win over the table. The planner
does no I/O: :func:`wheel_origins` says in words, for each extension, what
setup will ask before building it, and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from gpuenv.plan.buildplan import ExtensionPlan

from gpuenv.plan.recipevalues import Where, as_boolean, as_strings, as_table, check_keys

_KEYS = ("from", "push", "prebuilt")


@dataclass(frozen=True)
class CacheSpec:
    """The ``[cache]`` table: shared cache sources (URLs, or folders resolved against the recipe)."""

    sources: tuple[str, ...] = ()
    push: bool = False
    prebuilt: bool = True


def cache_table(where: Where, raw: object, root: Path) -> CacheSpec:
    """The ``[cache]`` table of a recipe at ``root``, validated; an absent table is the defaults."""
    if raw is None:
        return CacheSpec()
    table: Mapping[str, Any] = as_table(where, "cache", raw)
    check_keys(where, "cache", table, _KEYS)
    sources = []
    for i, text in enumerate(as_strings(where, "cache.from", table.get("from", []))):
        problem = source_problem(text)
        if problem is not None:
            raise where.error(f"cache.from[{i}]", problem)
        sources.append(text if "://" in text else str((root / Path(text).expanduser()).absolute()))
    return CacheSpec(tuple(sources), as_boolean(where, "cache.push", table.get("push", False)),
                     as_boolean(where, "cache.prebuilt", table.get("prebuilt", True)))


def source_problem(text: str) -> str | None:
    """Why ``text`` is not a shared cache source (an http(s) or file URL, or a folder), or None."""
    if not text.strip() or any(not c.isprintable() or c.isspace() for c in text) or len(text) > 4096:
        return f"{text[:80]!r} is not a URL or a folder"
    parts = urlsplit(text)
    if "://" in text and parts.scheme not in ("http", "https", "file"):
        return f"{text!r}: gpuenv reads http, https and file URLs, and folders"
    if parts.scheme in ("http", "https") and not parts.hostname:
        return f"{text!r}: a URL without a host"
    return None


def wheel_origins(ext: ExtensionPlan, cache_from: Sequence[str], *, prebuilt: bool, push: bool) -> list[str]:
    """What setup asks for ``ext``'s wheel before building it, in order, in words (redacted URLs)."""
    if ext.action == "skip":
        return []
    said = ["the local wheel cache, by its ABI key"]
    if cache_from:
        said.append(f"the shared caches {', '.join(redact(u) for u in cache_from)}, by the same key")
    if ext.stable_abi:
        said.append(f"(keyed by torch's stable ABI {ext.stable_abi}, not the exact torch: its wheel runs on "
                    f"torch {ext.stable_abi} and later)")
    if ext.prebuilt and prebuilt and ext.path is None:
        urls = ", ".join(s.url.split("{")[0] + ("…" if "{" in s.url else "") for s in ext.prebuilt)
        said.append(f"prebuilt wheels from {urls}, used only if one passes the audit (Python and platform "
                    "tags, CUDA major, C++11 ABI, torch, libtorch symbols, device code for "
                    f"{', '.join(ext.arch_list) or 'no GPU'}, import)")
    elif ext.prebuilt and not prebuilt:
        said.append("no prebuilt wheels (turned off)")
    pushes = " and pushes the wheel to the shared caches" if push and cache_from else ""
    said.append("then it builds" + pushes)
    return said


def redact(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
