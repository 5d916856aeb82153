"""Torch releases (versions, CUDA variants, wheel archs, wheels of each) and the packages paired with torch.

One :class:`TorchReleases` value holds all of it. Two sources make it: the data
shipped in ``data/torch.toml`` (:func:`shipped_releases`: every fact with its
source, checked on the date the file names) and what the package indexes say
today (:func:`gpuenv.plan.indexfacts.merge_index_facts`, from what
:mod:`gpuenv.probe.torchindex` read). The planner takes the value as input and
reads no index itself.

torchvision and torchaudio are paired with torch by what each of their
releases requires of torch (its ``Requires-Dist``): a release that pins this
torch exactly is its pair; else the newest whose requirement (a lower bound,
``torch>=2.14.0``) this torch satisfies.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from gpuenv.plan.packagedata import data_file

#: The platform the shipped arch sets and Python lists describe.
LINUX_X86_64 = "linux_x86_64"


@dataclass(frozen=True)
class TorchRelease:
    release: str
    versions: tuple[str, ...]
    pypi_default: str
    #: variant → arch strings ("9.0", "12.0+PTX") of the index build.
    variants: Mapping[str, tuple[str, ...]]
    #: arch strings of the PyPI wheel (the default variant), when they differ.
    pypi_archs: tuple[str, ...] | None = None
    #: The C++ standard torch's headers require of an extension (14, 17, 20), or None if unknown.
    cxx_standard: int | None = None
    #: version → platform ("linux_x86_64") → the Pythons ("3.11", "3.14t") it has wheels for. A version
    #: or platform not here is unknown, and then no Python is refused.
    wheels: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)
    #: The versions whose wheels an index listed for every platform (the shipped data names Linux x86_64
    #: only): for these, a platform not in :attr:`wheels` has no wheel.
    listed: frozenset[str] = frozenset()
    #: The facts no source states for this release, taken from another: "arch sets (from torch 2.15)".
    assumed: tuple[str, ...] = ()

    def archs(self, variant: str, *, from_pypi: bool) -> tuple[str, ...]:
        if from_pypi and variant == self.pypi_default and self.pypi_archs is not None:
            return self.pypi_archs
        return self.variants.get(variant, ())

    @property
    def version(self) -> Version:
        return Version(self.release)

    def pythons(self, version: str, platform: str) -> frozenset[str] | None:
        """The Pythons ``version`` has a wheel for on ``platform``; None when unknown."""
        try:
            key = str(Version(version).public)
        except ValueError:  # InvalidVersion, or more digits than int() converts
            return None
        return self.wheels.get(key, {}).get(platform)


@dataclass(frozen=True)
class Companion:
    """A release of a package paired with torch (torchvision 0.29.2) and what it requires of torch."""

    package: str
    version: str
    #: Its ``Requires-Dist`` on torch (``==2.5.1``, ``>=2.14.0``); empty when it states none.
    torch: SpecifierSet

    def pins(self, torch_version: Version) -> bool:
        return any(s.operator in ("==", "===") and "*" not in s.version
                   and Version(s.version) == torch_version for s in self.torch)

    def admits(self, torch_version: Version) -> bool:
        return bool(self.torch) and self.torch.contains(torch_version, prereleases=True)


#: The date of an index no listing was ever read from.
NEVER = "never"


@dataclass(frozen=True)
class KnowledgeSource:
    """Where some of the plan's knowledge came from, and when it was true."""

    #: "shipped" (gpuenv's data) or "index" (a package index, read before planning).
    kind: str
    #: The data file, or the index's URL.
    where: str
    #: The date the shipped data was checked ("2026-12-04"), or when the index was read (ISO 8601, UTC).
    date: str
    #: How it was used: "read now", "cached", "unreachable: …".
    note: str = ""

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "date": self.date, "note": self.note}

    def text(self) -> str:
        when = "checked" if self.kind == "shipped" else "read"
        if self.date == NEVER:
            return f"{self.where} (never read: {self.note})"
        note = f"; {self.note}" if self.note else ""
        return f"{self.where} ({when} {self.date}{note})"


@dataclass(frozen=True)
class TorchReleases:
    """Every torch release the plan may choose, the packages paired with them, and where it all came from."""

    #: minor ("2.14") → release, oldest first.
    releases: Mapping[str, TorchRelease]
    #: package (canonical name) → its releases, newest first.
    companions: Mapping[str, tuple[Companion, ...]]
    sources: tuple[KnowledgeSource, ...] = ()
    #: What the planner must pass on: an index that did not answer, data that is old.
    warnings: tuple[str, ...] = ()

    def candidates(self, spec: SpecifierSet) -> list[tuple[TorchRelease, str]]:
        """Every (release, version) ``spec`` admits, newest version first.

        An exact pin to a patch nothing has heard of (``==2.4.7``) is a
        candidate of its minor release: it has that release's variants.
        """
        found: dict[str, tuple[TorchRelease, str]] = {}
        pins = _exact_pins(spec)
        for rel in self.releases.values():
            for text in (*rel.versions, *(p for p in pins if release_of(p) == rel.release)):
                if spec.contains(Version(text), prereleases=True):
                    found.setdefault(str(Version(text)), (rel, text))
        return sorted(found.values(), key=lambda pair: Version(pair[1]), reverse=True)

    def resolve(self, spec: SpecifierSet) -> tuple[TorchRelease, str] | None:
        """The newest release with a version ``spec`` admits, and that version."""
        candidates = self.candidates(spec)
        return candidates[0] if candidates else None

    def variants_for(self, spec: SpecifierSet, forced: str | None = None) -> tuple[str, ...]:
        """The CUDA variants a plan for ``spec`` may use: those of the releases it admits, and of the
        newest release (a release newer than the data is planned with its variants), and ``forced``."""
        admitted = {release.release for release, _ in self.candidates(spec)}
        newest = max(self.releases.values(), key=lambda r: r.version, default=None)
        variants = {v for r in self.releases.values() if r.release in admitted for v in r.variants}
        if newest is not None:
            variants |= set(newest.variants)
        if forced is not None and forced != "cpu":
            variants.add(forced)
        return tuple(sorted(variants))

    @property
    def packages(self) -> frozenset[str]:
        """The distributions paired with torch (torchvision, torchaudio)."""
        return frozenset(self.companions)

    def paired_version(self, torch_version: str, package: str, *,
                       within: SpecifierSet | None = None) -> str | None:
        """The release of ``package`` paired with ``torch_version`` ("2.5.1", "torchvision" → "0.20.1"),
        among those ``within`` allows."""
        try:
            torch = Version(Version(torch_version).public)
        except ValueError:  # InvalidVersion, or more digits than int() converts
            return None
        releases = [c for c in self.companions.get(canonicalize_name(package), ())
                    if within is None or within.contains(c.version, prereleases=True)]
        exact = [c for c in releases if c.pins(torch)]
        fitting = exact or [c for c in releases if c.admits(torch)]
        return max(fitting, key=lambda c: Version(c.version)).version if fitting else None

    def pairs_of(self, package: str) -> list[tuple[str, str]]:
        """Every (torch version, ``package`` version) pair of the known torch versions, newest torch first."""
        versions = sorted({v for r in self.releases.values() for v in r.versions}, key=Version, reverse=True)
        return [(v, pair) for v in versions if (pair := self.paired_version(v, package)) is not None]


@dataclass(frozen=True)
class PlanKnowledge:
    """What a plan's torch decisions stood on: each source with its date, and the facts assumed."""

    sources: tuple[KnowledgeSource, ...] = ()
    #: The chosen release's facts no source states, each with the release it was taken from.
    assumed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"sources": [s.to_json() for s in self.sources], "assumed": list(self.assumed)}


def release_of(version_text: str) -> str | None:
    """"2.5.1" → "2.5"; None for what is not a version."""
    try:
        version = Version(version_text)
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return None
    return f"{version.major}.{version.minor}"


def release_of_spec(spec: SpecifierSet) -> str | None:
    """The minor release a specifier pins ("==2.15.*" → "2.15"), if it pins one."""
    for s in spec:
        if s.operator == "==":
            release = release_of(s.version.rstrip(".*"))
            if release:
                return release
    return None


def _exact_pins(spec: SpecifierSet) -> list[str]:
    return [s.version for s in spec if s.operator in ("==", "===") and "*" not in s.version]


def newest_first(companions: Iterable[Companion]) -> tuple[Companion, ...]:
    return tuple(sorted(companions, key=lambda c: Version(c.version), reverse=True))


# -- the shipped data -------------------------------------------------------------------------------

DATA_FILE = "torch.toml"


def shipped_data() -> dict[str, Any]:
    """``data/torch.toml``, parsed once."""
    return data_file(DATA_FILE)


@functools.cache
def shipped_releases() -> TorchReleases:
    """The releases and pairs of ``data/torch.toml``, as checked on the date it names."""
    data = shipped_data()
    sets = {name: tuple(raw["archs"]) for name, raw in data["arch_sets"].items()}
    releases = {}
    for name, raw in data["releases"].items():
        pypi_set = raw.get("pypi_arch_set")
        pythons = frozenset(raw.get("python", ()))
        releases[name] = TorchRelease(
            release=name,
            versions=tuple(raw["versions"]),
            pypi_default=raw["pypi_default"],
            variants={v: sets[s] for v, s in raw["variants"].items()},
            pypi_archs=sets[pypi_set] if pypi_set else None,
            cxx_standard=int(raw["cxx_standard"]) if "cxx_standard" in raw else None,
            wheels={str(Version(v)): {LINUX_X86_64: pythons} for v in raw["versions"]} if pythons else {},
        )
    companions = {
        str(canonicalize_name(package)): newest_first(
            Companion(canonicalize_name(package), version, _specifier(requirement))
            for version, requirement in raw["requires"].items())
        for package, raw in data["companions"].items()
    }
    ordered = dict(sorted(releases.items(), key=lambda item: Version(item[0])))
    source = KnowledgeSource("shipped", f"gpuenv's data (gpuenv/plan/data/{DATA_FILE})", str(data["checked"]))
    return TorchReleases(ordered, companions, (source,))


def _specifier(text: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return SpecifierSet()
