"""The catalog's entry for one extension version, as the checker reads it: the ONE place that
touches :class:`~gpuenv.plan.knowledge.CatalogEntry`.

The catalog's schema is changing (fixed archs per nvcc, ``cxx_std``, ``force_build``,
``build_options``); :func:`catalog_view` reads the new fields where the entry has them and
falls back to today's (a flat ``fixed_archs`` list, force-build flags inside ``env``). A field
the entry does not have at all is :data:`MISSING`, which the comparison reports as
"not in catalog".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from gpuenv.plan import knowledge


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: A field the catalog's entries do not have (yet).
MISSING: Final = _Missing()


@dataclass(frozen=True)
class FixedArch:
    arch: str
    #: PEP 440 specifier of the nvcc versions it is built with ("" for any).
    nvcc: str = ""


@dataclass(frozen=True)
class CatalogView:
    name: str
    version: str | None
    #: The catalog has an entry for this version (not the generic defaults).
    known: bool
    #: The versions the entry's table describes ("" for all).
    versions: str
    cuda: str
    arch_knob: str | None
    arch_format: str
    arch_choices: tuple[str, ...]
    fixed_archs: tuple[FixedArch, ...]
    fixed_archs_for: Callable[[str | None], tuple[str, ...]]
    cxx_std: int | _Missing | None
    #: Force-build variables and the values the plan sets them to.
    force_build: Mapping[str, str]
    skip_cuda_knob: str | None
    skip_cuda_value: str | None
    skips_cuda: Callable[[Mapping[str, str]], bool]
    #: Every other variable the plan sets (env, and cuda_env on a CUDA plan).
    env: Mapping[str, str]
    cuda_env: Mapping[str, str]
    cpu_env: Mapping[str, str]
    ignores_jobs: bool
    jobs_knobs: tuple[str, ...]
    min_nvcc: str | None
    toolkit_match: str
    build_options: tuple[str, ...] | _Missing
    sources: tuple[str, ...]


def extension_names() -> list[str]:
    """Every extension the catalog knows."""
    return sorted(knowledge.catalog())


def version_ranges(name: str) -> list[str]:
    return knowledge.catalog_version_ranges(name)


def catalog_view(name: str, version: str | None) -> CatalogView:
    """The catalog's facts for ``name`` at ``version`` (None: its newest table)."""
    entry: Any = knowledge.catalog_entry(name, version)
    raw_fixed = tuple(getattr(entry, "fixed_archs", ()))
    fixed = tuple(FixedArch(f) if isinstance(f, str) else FixedArch(str(f.arch), str(f.nvcc or ""))
                  for f in raw_fixed)
    fixed_for = getattr(entry, "fixed_archs_for", None)
    if not callable(fixed_for):
        def fixed_for(nvcc: str | None) -> tuple[str, ...]:
            return tuple(f.arch for f in fixed if _holds(f.nvcc, nvcc))
    env = dict(getattr(entry, "env", {}))
    force_build = getattr(entry, "force_build", None)
    if force_build is None:  # today's schema: the force-build flags are part of env
        force_build = {k: v for k, v in env.items() if "FORCE_BUILD" in k}
    env = {k: v for k, v in env.items() if k not in force_build}
    raw_std: Any = getattr(entry, "cxx_std", MISSING)
    cxx_std: int | _Missing | None = (raw_std if isinstance(raw_std, _Missing) or raw_std is None
                                      else int(raw_std))
    raw_options = getattr(entry, "build_options", MISSING)
    options = raw_options if isinstance(raw_options, _Missing) else tuple(str(o) for o in raw_options)
    return CatalogView(
        name=name,
        version=version,
        known=bool(entry.known),
        versions=str(getattr(entry, "versions", "")),
        cuda=str(entry.cuda),
        arch_knob=entry.arch_knob,
        arch_format=str(entry.arch_format),
        arch_choices=tuple(entry.arch_choices),
        fixed_archs=fixed,
        fixed_archs_for=fixed_for,
        cxx_std=cxx_std,
        force_build=dict(force_build),
        skip_cuda_knob=entry.skip_cuda_knob,
        skip_cuda_value=entry.skip_cuda_value,
        skips_cuda=entry.skips_cuda,
        env=env,
        cuda_env=dict(entry.cuda_env),
        cpu_env=dict(entry.cpu_env),
        ignores_jobs=bool(entry.ignores_jobs),
        jobs_knobs=tuple(entry.jobs_knobs),
        min_nvcc=entry.min_nvcc,
        toolkit_match=str(entry.toolkit_match),
        build_options=options,
        sources=tuple(getattr(entry, "sources", ())),
    )


def _holds(spec: str, nvcc: str | None) -> bool:
    if not spec:
        return True
    if nvcc is None:
        return False
    try:
        return SpecifierSet(spec).contains(Version(nvcc), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False
