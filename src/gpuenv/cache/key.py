"""The wheel cache's key: everything a built wheel's binary depends on, its digest and its words.

A :class:`CacheKey` is computed before building, from the recipe, the
interpreter, the torch and the toolkit; its :attr:`~CacheKey.digest` names the
entry in :class:`~gpuenv.cache.wheels.WheelCache`. :func:`binary_knobs` picks
the build environment entries that belong in it; :func:`key_differences` says
in words how two keys differ (why a cached wheel does not fit).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpuenv.env.abi import ABI_FIELDS, EnvAbi

#: Version of the key's definition; part of every digest and of the layout (``v1``).
CACHE_SCHEMA = 1

#: What the key's text fields may hold (see :meth:`CacheKey.check`): ASCII only, so no "/" or "..".
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", re.ASCII)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*", re.ASCII)
_ARCH = re.compile(r"[0-9]{1,2}\.[0-9](\+PTX)?", re.ASCII)
_MAX_FIELD = 4096

#: Build environment entries that do not change the binary.
NON_BINARY_KNOBS = frozenset({"MAX_JOBS", "NVTE_BUILD_MAX_JOBS", "NVCC_THREADS", "CUDA_HOME", "PATH"})


def binary_knobs(env: Mapping[str, str], build_options: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
    """The entries of a build environment (and the build options) that change the binary, sorted.

    Parallelism (``MAX_JOBS``, ``NVCC_THREADS``, anything with ``JOBS`` in its
    name), ``PATH`` and ``CUDA_HOME`` (the key holds nvcc's version instead of
    its location) are dropped. Build options (apex's ``--cuda_ext``) choose what
    is compiled: they are a knob named ``--build-option``.
    """
    knobs = [(name, value) for name, value in env.items()
             if name not in NON_BINARY_KNOBS and "JOBS" not in name]
    if build_options:
        knobs.append(("--build-option", " ".join(build_options)))
    return tuple(sorted(knobs))


@dataclass(frozen=True)
class CacheKey:
    """Everything a built wheel's binary depends on: the env's ABI, and what was built how.

    ``version`` may be ``""`` when it is unknown before building (a local
    tree): ``source_sha256`` covers it.
    """

    name: str
    version: str
    source_sha256: str
    abi: EnvAbi
    arch_list: tuple[str, ...]
    nvcc_version: str | None
    knobs: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON-ready values, the ABI's among them (tuples become lists)."""
        return {
            "name": self.name,
            "version": self.version,
            "source_sha256": self.source_sha256,
            **self.abi.to_json(),
            "arch_list": list(self.arch_list),
            "nvcc_version": self.nvcc_version,
            "knobs": [list(knob) for knob in self.knobs],
        }

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of the fields and :data:`CACHE_SCHEMA`."""
        payload = {"schema": CACHE_SCHEMA, **self.to_json()}
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def describe(self) -> dict[str, str]:
        """The key in words, for meta.json, plans and error messages."""
        return {
            "name": self.name,
            "version": self.version or "(from source)",
            "source sha256": self.source_sha256,
            **self.abi.describe(),
            "archs": archs(self.arch_list),
            "nvcc": self.nvcc_version or "none",
            "knobs": " ".join(f"{k}={v}" for k, v in self.knobs) or "none",
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CacheKey:
        """The key :meth:`to_json` wrote; raises KeyError/TypeError/ValueError on anything else."""
        if not isinstance(data, Mapping) or set(data) != _JSON_FIELDS:
            raise ValueError(f"key fields {sorted(data) if isinstance(data, Mapping) else data!r} "
                             f"are not {sorted(_JSON_FIELDS)}")
        for name in ("name", "version", "source_sha256"):
            if not isinstance(data[name], str):
                raise TypeError(f"key field {name} is not a string")
        if data["nvcc_version"] is not None and not isinstance(data["nvcc_version"], str):
            raise TypeError("key field nvcc_version is not a string or null")
        if not isinstance(data["arch_list"], list) or not isinstance(data["knobs"], list):
            raise TypeError("key fields arch_list and knobs are not lists")
        if not all(isinstance(k, list) and len(k) == 2 and all(isinstance(p, str) for p in k)
                   for k in data["knobs"]):
            raise TypeError("key field knobs is not a list of [name, value] strings")
        key = cls(
            name=data["name"],
            version=data["version"],
            source_sha256=data["source_sha256"],
            abi=EnvAbi.from_json(data),
            arch_list=tuple(str(a) for a in data["arch_list"]),
            nvcc_version=data["nvcc_version"],
            knobs=tuple((k, v) for k, v in data["knobs"]),
        )
        key.check()
        return key

    def check(self) -> None:
        """Raise ValueError unless every field looks like what gpuenv writes into it.

        A key read back from a cache (a shared one: anyone who can write its ``meta.json`` chose
        its text) names folders (a wheelhouse group is made of its torch version, CUDA release and
        archs) and is printed: a value that could climb out of a folder, hold control characters
        or not parse is refused, and the entry is unreadable like any other damaged one.
        """
        texts = [self.name, self.version, self.source_sha256, *self.abi.texts(), self.nvcc_version or "",
                 *self.arch_list, *(part for knob in self.knobs for part in knob)]
        for text in texts:
            if len(text) > _MAX_FIELD or not text.isprintable():
                raise ValueError(f"key field value {text[:40]!r}… is not one gpuenv writes")
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"key field name {self.name!r} is not a distribution name")
        for name, value in (("version", self.version), ("nvcc_version", self.nvcc_version or "")):
            if value and not _TOKEN.fullmatch(value):
                raise ValueError(f"key field {name} {value!r} holds characters no {name} has")
        self.abi.check()
        for arch in self.arch_list:
            if not _ARCH.fullmatch(arch):
                raise ValueError(f"key field arch_list holds {arch!r}, not a compute capability (\"9.0\")")


#: The names :meth:`CacheKey.to_json` writes.
_JSON_FIELDS = {"name", "version", "source_sha256", *ABI_FIELDS, "arch_list", "nvcc_version", "knobs"}


def archs(arch_list: tuple[str, ...]) -> str:
    return ";".join(arch_list) or "none"


def short_sha(sha: str) -> str:
    return sha[:8] + "…"


def key_differences(cached: CacheKey, wanted: CacheKey) -> list[str]:
    """What differs from ``cached`` to ``wanted``, in words: ``"torch 2.4.1+cu121 → 2.5.1+cu124"``."""
    said_cached, said_wanted = cached.describe(), wanted.describe()
    if cached.source_sha256 != wanted.source_sha256:
        said_cached["source sha256"] = short_sha(cached.source_sha256)
        said_wanted["source sha256"] = short_sha(wanted.source_sha256)
    words = [
        f"{what} {said_cached[what]} → {said_wanted[what]}"
        for what in said_cached
        if what != "knobs" and said_cached[what] != said_wanted[what]
    ]
    return words + _knob_differences(dict(cached.knobs), dict(wanted.knobs))


def _knob_differences(cached: dict[str, str], wanted: dict[str, str]) -> list[str]:
    return [
        f"knob {name} {cached.get(name, '(unset)')} → {wanted.get(name, '(unset)')}"
        for name in sorted(set(cached) | set(wanted))
        if cached.get(name) != wanted.get(name)
    ]


def differing_fields(a: CacheKey, b: CacheKey) -> int:
    """How many of the fields :meth:`CacheKey.to_json` writes differ (each of the ABI's counts)."""
    mine, theirs = a.to_json(), b.to_json()
    return sum(mine[name] != theirs[name] for name in mine)
