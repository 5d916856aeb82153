"""The catalog's entry for one extension version, as the checker reads it: the ONE place that
touches :class:`~gpuenv.plan.catalog.CatalogEntry`, so a change of the catalog's schema is one edit.

The checker reads the shipped catalog, or any other (``--catalog FILE``, a test's fake):
:func:`load_catalog`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuenv.errors import InputError
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.plan.catalog import Catalog, shipped

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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
    arch_choices: tuple[FixedArch, ...]
    choices_for: Callable[[str | None], tuple[str, ...]]
    fixed_archs: tuple[FixedArch, ...]
    fixed_archs_for: Callable[[str | None], tuple[str, ...]]
    #: The -std=c++NN its build hard-codes; None: it leaves torch's default.
    cxx_std: int | None
    #: The torch release whose stable ABI it builds against, or None.
    stable_abi: str | None
    #: Force-build variables and the values the plan sets them to.
    force_build: Mapping[str, str]
    skip_cuda_knob: str | None
    skip_cuda_value: str | None
    skips_cuda: Callable[[Mapping[str, str]], bool]
    #: Every other variable the plan sets (env always, cuda_env on a CUDA plan, cpu_env on a cpu one).
    env: Mapping[str, str]
    cuda_env: Mapping[str, str]
    cpu_env: Mapping[str, str]
    ignores_jobs: bool
    jobs_knobs: tuple[str, ...]
    threads_knob: str | None
    nvcc_threads: int | None
    min_nvcc: str | None
    toolkit_match: str
    build_options: tuple[str, ...]
    sources: tuple[str, ...]


_CATALOG_HINT = "name an extensions.toml shaped like gpuenv's own (src/gpuenv/plan/data/extensions.toml)"


def load_catalog(path: Path | None = None) -> Catalog:
    """The shipped catalog, or the extensions.toml at ``path``."""
    if path is None:
        return shipped()
    try:
        data: dict[str, Any] = tomllib.loads(read_input(path))
    except UnreadableInput as exc:
        raise InputError(f"--catalog {path}: {exc.problem}", hint=_CATALOG_HINT) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"--catalog {path}: not TOML: {exc}", hint=_CATALOG_HINT) from None
    return Catalog(data)


def catalog_view(catalog: Catalog, name: str, version: str | None) -> CatalogView:
    """The catalog's facts for ``name`` at ``version`` (None: its newest table)."""
    entry = catalog.entry(name, version)
    return CatalogView(
        name=name,
        version=version,
        known=entry.known,
        versions=entry.versions,
        cuda=entry.cuda,
        arch_knob=entry.arch_knob or None,
        arch_format=entry.arch_format,
        arch_choices=tuple(FixedArch(a.arch, a.nvcc) for a in entry.arch_choices),
        choices_for=entry.choices_for,
        fixed_archs=tuple(FixedArch(a.arch, a.nvcc) for a in entry.fixed_archs),
        fixed_archs_for=entry.fixed_archs_for,
        cxx_std=entry.cxx_std,
        stable_abi=entry.stable_abi,
        force_build=dict(entry.force_build),
        skip_cuda_knob=entry.skip_cuda_knob,
        skip_cuda_value=entry.skip_cuda_value,
        skips_cuda=entry.skips_cuda,
        env=dict(entry.env),
        cuda_env=dict(entry.cuda_env),
        cpu_env=dict(entry.cpu_env),
        ignores_jobs=entry.ignores_jobs,
        jobs_knobs=entry.jobs_knobs,
        threads_knob=entry.threads_knob,
        nvcc_threads=entry.nvcc_threads,
        min_nvcc=entry.min_nvcc,
        toolkit_match=entry.toolkit_match,
        build_options=entry.build_options,
        sources=entry.sources,
    )
