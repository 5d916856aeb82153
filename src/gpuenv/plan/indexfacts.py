"""What the package indexes say about torch, torchvision and torchaudio, and how it joins the shipped data.

:class:`IndexFacts` is what :mod:`gpuenv.probe.torchindex` read (or found in
its cache): each project's listing on each index (versions, and the Pythons
and platforms each has wheels for) and what a few wheel files say inside
(torch's ``version.py`` and C++ standard, the pairs' ``Requires-Dist`` on
torch). :func:`merge_index_facts` joins it with the shipped data into the
:class:`~gpuenv.plan.releases.TorchReleases` the planner takes. Pure: the
reading is the probe's, the JSON form here is what its cache holds.

A torch release newer than the shipped data is planned from the nearest one
the data knows: its arch sets for each variant (and its variants when no
variant index answered, its C++ standard when the wheel could not be read),
each such fact listed in :attr:`TorchRelease.assumed`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from gpuenv.plan.releases import (
    LINUX_X86_64,
    Companion,
    KnowledgeSource,
    TorchRelease,
    TorchReleases,
    newest_first,
    release_of,
)

#: The projects read from the ordinary indexes; the variant indexes are read for torch only.
PROJECTS = ("torch", "torchvision", "torchaudio")


@dataclass(frozen=True)
class FileFacts:
    """What one wheel says inside: the same for ever, so cached for good."""

    #: torch: ``torch/version.py``'s ``__version__`` and ``cuda`` ("2.15.0+cu132", "13.2"; None: a CPU build).
    torch_version: str | None = None
    cuda: str | None = None
    #: torch: the C++ standard ``all.h`` requires (20), None when it names none.
    cxx_standard: int | None = None
    #: torchvision/torchaudio: the Requires-Dist on torch (">=2.14.0"; "" when none).
    requires_torch: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"torch_version": self.torch_version, "cuda": self.cuda, "cxx_standard": self.cxx_standard,
                "requires_torch": self.requires_torch}

    @classmethod
    def from_json(cls, raw: object) -> FileFacts:
        data = _mapping(raw)
        cxx = data.get("cxx_standard")
        if cxx is not None and (not isinstance(cxx, int) or isinstance(cxx, bool) or not 11 <= cxx <= 99):
            raise ValueError("cxx_standard is not a C++ standard")
        return cls(_text_or_none(data.get("torch_version")), _text_or_none(data.get("cuda")), cxx,
                   _text_or_none(data.get("requires_torch")))


@dataclass(frozen=True)
class Listing:
    """One project's page on one index: the versions it lists, and the wheels of each."""

    index: str
    project: str
    #: None for an ordinary index; the variant ("cu130") of a variant index.
    variant: str | None
    #: When it was read (ISO 8601, UTC), or when it was last tried if it did not answer.
    read: str
    #: public version → platform ("linux_x86_64") → the Pythons ("3.11", "3.14t") with a wheel.
    versions: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)
    #: public version → the URL of the wheel whose insides are read for that version.
    samples: Mapping[str, str] = field(default_factory=dict)
    #: Why it could not be read (None: it was).
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "project": self.project, "variant": self.variant, "read": self.read,
            "versions": {v: {p: sorted(py) for p, py in platforms.items()}
                         for v, platforms in self.versions.items()},
            "samples": dict(self.samples), "problem": self.problem,
        }

    @classmethod
    def from_json(cls, raw: object) -> Listing:
        data = _mapping(raw)
        versions = {}
        for version, platforms in _mapping(data.get("versions", {})).items():
            versions[str(Version(version))] = {_text(p): frozenset(_text(x) for x in _list(pythons))
                                               for p, pythons in _mapping(platforms).items()}
        return cls(
            index=_text(data.get("index")), project=_text(data.get("project")),
            variant=_text_or_none(data.get("variant")), read=_text(data.get("read")), versions=versions,
            samples={str(Version(v)): _text(u) for v, u in _mapping(data.get("samples", {})).items()},
            problem=_text_or_none(data.get("problem")),
        )


@dataclass(frozen=True)
class IndexFacts:
    """Everything read from the indexes for one plan, with where and when."""

    listings: tuple[Listing, ...] = ()
    #: A sample wheel's URL → what it says inside.
    files: Mapping[str, FileFacts] = field(default_factory=dict)
    #: Each index consulted, with when it was read and how ("read now", "cached", "unreachable: …").
    sources: tuple[KnowledgeSource, ...] = ()
    warnings: tuple[str, ...] = ()


# -- joining the index facts with the shipped data ----------------------------------------------------


def merge_index_facts(shipped: TorchReleases, facts: IndexFacts) -> TorchReleases:
    """The shipped releases and pairs, with what the indexes add: new versions, new releases, new pairs."""
    ordinary = [x for x in facts.listings if x.problem is None and x.variant is None]
    variants = [x for x in facts.listings if x.problem is None and x.variant is not None]
    wheels = _torch_wheels([x for x in (*ordinary, *variants) if x.project == "torch"])
    releases = dict(shipped.releases)
    oldest, newest = min(releases, key=Version), max(releases, key=Version)
    new: dict[str, list[str]] = {}
    for version in sorted(wheels, key=Version):
        minor = release_of(version)
        if minor is None or Version(minor) < Version(oldest):
            continue
        if minor in releases:
            releases[minor] = _with_version(releases[minor], version, wheels[version])
        elif Version(minor) > Version(newest):
            new.setdefault(minor, []).append(version)
    for minor, versions in new.items():
        listed = {x.variant for x in variants if x.project == "torch" and x.variant
                  and any(release_of(v) == minor for v in x.versions)}
        sample = _sample([x for x in ordinary if x.project == "torch"], max(versions, key=Version))
        releases[minor] = _assumed_release(
            minor, versions, wheels, releases[newest], shipped.releases, listed,
            answered=bool(variants), inside=facts.files.get(sample) if sample else None)
    companions = {name: _with_companions(known, name, ordinary, facts.files)
                  for name, known in shipped.companions.items()}
    return TorchReleases(dict(sorted(releases.items(), key=lambda item: Version(item[0]))), companions,
                         (*shipped.sources, *facts.sources), (*shipped.warnings, *facts.warnings))


def _torch_wheels(listings: list[Listing]) -> dict[str, dict[str, frozenset[str]]]:
    """public version → platform → Pythons, over every listing that answered."""
    merged: dict[str, dict[str, frozenset[str]]] = {}
    for listing in listings:
        for version, platforms in listing.versions.items():
            into = merged.setdefault(version, {})
            for platform, pythons in platforms.items():
                into[platform] = into.get(platform, frozenset()) | pythons
    return merged


def _with_version(release: TorchRelease, version: str, wheels: Mapping[str, frozenset[str]]) -> TorchRelease:
    known = {str(Version(v)) for v in release.versions}
    versions = release.versions if version in known else \
        tuple(sorted((*release.versions, version), key=Version))
    return replace(release, versions=versions, wheels={**release.wheels, version: dict(wheels)},
                   listed=release.listed | {version})


def _sample(listings: list[Listing], version: str) -> str | None:
    return next((x.samples[version] for x in listings if version in x.samples), None)


def _assumed_release(
    minor: str, versions: list[str], wheels: Mapping[str, Mapping[str, frozenset[str]]],
    nearest: TorchRelease, known: Mapping[str, TorchRelease], listed: set[str], *, answered: bool,
    inside: FileFacts | None,
) -> TorchRelease:
    """A release the shipped data does not know, planned from ``nearest`` where no source says more."""
    assumed: list[str] = []
    variant_names = set(listed)
    if not variant_names:
        variant_names = set(nearest.variants)
        why = "no variant index lists it" if answered else "no variant index answered"
        assumed.append(f"its CUDA variants {', '.join(_by_cuda(variant_names))} "
                       f"(from torch {nearest.release}: {why})")
    pypi = _variant_of(inside.cuda) if inside is not None and inside.cuda else None
    if pypi is None:
        pypi = nearest.pypi_default
        assumed.append(f"PyPI's default variant {pypi} (from torch {nearest.release}: "
                       "its wheel was not read)")
    variant_names.add(pypi)
    archs: dict[str, tuple[str, ...]] = {}
    taken: dict[str, list[str]] = {}
    for variant in _by_cuda(variant_names):
        source = _arch_source(variant, known)
        if source is None:
            continue
        release, from_variant = source
        archs[variant] = release.variants[from_variant]
        label = variant if from_variant == variant else f"{variant} (as {from_variant})"
        taken.setdefault(release.release, []).append(label)
    for release_name, labels in taken.items():
        assumed.append(f"the arch sets of {', '.join(labels)} (from torch {release_name})")
    pypi_archs = nearest.pypi_archs if nearest.pypi_default == pypi else None
    if pypi_archs is not None:
        assumed.append(f"the arch set of PyPI's {pypi} wheel (from torch {nearest.release})")
    cxx = inside.cxx_standard if inside is not None and inside.torch_version else None
    if cxx is None:
        cxx = nearest.cxx_standard
        assumed.append(f"the C++ standard, C++{cxx} (from torch {nearest.release}: "
                       "its headers were not read)")
    ordered = tuple(sorted(versions, key=Version))
    return TorchRelease(
        release=minor, versions=ordered, pypi_default=pypi, variants=archs, pypi_archs=pypi_archs,
        cxx_standard=cxx, wheels={v: dict(wheels.get(v, {})) for v in ordered}, listed=frozenset(ordered),
        assumed=tuple(assumed),
    )


def _arch_source(variant: str, known: Mapping[str, TorchRelease]) -> tuple[TorchRelease, str] | None:
    """The newest known release with ``variant`` (failing that, the newest variant of its CUDA major)."""
    newest_first_releases = sorted(known.values(), key=lambda r: r.version, reverse=True)
    for release in newest_first_releases:
        if variant in release.variants:
            return release, variant
    major = _cuda_major(variant)
    for release in newest_first_releases:
        same = [v for v in _by_cuda(set(release.variants)) if _cuda_major(v) == major]
        if same:
            return release, same[0]
    return None


_VARIANT = re.compile(r"cu([0-9]+)([0-9])", re.ASCII)


def _cuda_major(variant: str) -> int | None:
    match = _VARIANT.fullmatch(variant)
    return int(match.group(1)) if match else None


def _by_cuda(variants: set[str]) -> list[str]:
    """Newest CUDA first."""
    return sorted(variants, key=lambda v: (len(v), v), reverse=True)


def _variant_of(cuda: str) -> str | None:
    """"13.2" → "cu132"."""
    match = re.fullmatch(r"([0-9]+)\.([0-9])", cuda.strip(), re.ASCII)
    return f"cu{match.group(1)}{match.group(2)}" if match else None


def _with_companions(known: tuple[Companion, ...], name: str, ordinary: list[Listing],
                     files: Mapping[str, FileFacts]) -> tuple[Companion, ...]:
    """The shipped releases of ``name`` and the newer ones the indexes list whose Requires-Dist was read."""
    from packaging.specifiers import SpecifierSet

    newest = max((Version(c.version) for c in known), default=None)
    found = {c.version: c for c in known}
    for listing in ordinary:
        if canonicalize_name(listing.project) != name:
            continue
        for version, url in listing.samples.items():
            facts = files.get(url)
            if facts is None or facts.requires_torch is None or version in found:
                continue
            try:
                if newest is not None and Version(version) <= newest:
                    continue
                found[version] = Companion(name, version, SpecifierSet(facts.requires_torch))
            except ValueError:  # InvalidVersion, InvalidSpecifier, or more digits than int() converts
                continue
    return newest_first(found.values())


def platform_of(tag: str) -> str:
    """A wheel's platform tag as gpuenv groups them: manylinux_2_28_x86_64 → linux_x86_64,
    macosx_14_0_arm64 → macos_arm64, win_amd64 → win_amd64, any → any."""
    if tag == "any":
        return "any"
    arch = re.sub(r"^(many|musl)?linux(1|2010|2014|_\d+_\d+)?_", "", tag)
    if arch != tag:
        return f"{'musl' if tag.startswith('musllinux') else ''}linux_{arch}"
    mac = re.fullmatch(r"macosx_\d+_\d+_(\w+)", tag)
    if mac:
        return f"macos_{mac.group(1)}"
    return tag


def python_of(interpreter: str, abi: str) -> str | None:
    """The CPython a wheel tag is for: (cp311, cp311) → "3.11", (cp314, cp314t) → "3.14t"; None otherwise."""
    match = re.fullmatch(r"cp([0-9])([0-9]+)", interpreter, re.ASCII)
    if not match:
        return None
    version = f"{match.group(1)}.{match.group(2)}"
    return f"{version}t" if abi.endswith("t") else version


# -- the JSON form's checks (a cache file may hold anything) -------------------------------------------


def _mapping(raw: object) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise ValueError("not a table")
    return raw


def _list(raw: object) -> list[Any]:
    if not isinstance(raw, list):
        raise ValueError("not a list")
    return raw


def _text(raw: object) -> str:
    if not isinstance(raw, str) or len(raw) > 4096:
        raise ValueError("not a string")
    return raw


def _text_or_none(raw: object) -> str | None:
    return None if raw is None else _text(raw)


__all__ = ["LINUX_X86_64", "PROJECTS", "FileFacts", "IndexFacts", "Listing", "merge_index_facts"]
