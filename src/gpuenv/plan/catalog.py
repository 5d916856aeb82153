"""The extension catalog: how each extension that must be built without isolation builds.

Read lazily from ``gpuenv/plan/data/extensions.toml``. Each entry describes a
range of the package's versions (``versions``) and names the build files it was
read from (``sources``); older ranges are ``[[NAME.older]]`` tables merged onto
the newest. What an extension's setup.py compiles often depends on the nvcc
that runs it (``if bare_metal_version >= Version("11.8"): cc_flag += [...]``):
such arch lists are :class:`ArchEntry` records with the nvcc condition of each.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from gpuenv.plan.knowledge import version_tuple
from gpuenv.plan.packagedata import data_file


@dataclass(frozen=True)
class ArchEntry:
    """One arch a package compiles (or offers), and the nvcc releases for which it does."""

    #: The compute capability ("9.0").
    arch: str
    #: A PEP 440 specifier over nvcc's major.minor (">=11.8", "<=12.9"); "" for every nvcc.
    nvcc: str = ""

    def applies(self, nvcc_version: str | None) -> bool:
        """Whether an nvcc of ``nvcc_version`` ("12.9.86", "13.0") gets this arch; unknown nvcc: yes."""
        if not self.nvcc or nvcc_version is None:
            return True
        # setup.py files parse nvcc's "release X.Y": compare major.minor only.
        release = ".".join(str(p) for p in version_tuple(nvcc_version)[:2])
        return SpecifierSet(self.nvcc).contains(release, prereleases=True)

    def __str__(self) -> str:
        return f"{self.arch} (nvcc {self.nvcc})" if self.nvcc else self.arch


def archs_for(entries: Iterable[ArchEntry], nvcc_version: str | None) -> tuple[str, ...]:
    """The archs of ``entries`` that an nvcc of ``nvcc_version`` gets, in order, once each."""
    found: list[str] = []
    for entry in entries:
        if entry.applies(nvcc_version) and entry.arch not in found:
            found.append(entry.arch)
    return tuple(found)


@dataclass(frozen=True)
class PrebuiltSource:
    """Where a publisher puts prebuilt wheels of an extension, and how their names say what they fit.

    ``url`` is a template (a find-links page, an index, or one wheel's URL) whose placeholders
    (``{torch_release}``, ``{variant}``, ``{cuda_major}``, ``{cxx11_abi}``, ``{python}``,
    ``{platform}``, ``{version}``…) are filled for the env; ``local`` is the template of the wheels'
    local version label ("" when the page itself is per torch and CUDA). Audited before use
    (gpuenv.cache.audit).
    """

    url: str
    local: str = ""

    def to_json(self) -> dict[str, str]:
        return {"url": self.url, "local": self.local}


def prebuilt_sources(raw: object) -> tuple[PrebuiltSource, ...]:
    """``[{url = "...", local = "..."}]`` (or plain URL strings) as records."""
    found = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, str):
            found.append(PrebuiltSource(item))
        elif isinstance(item, Mapping) and isinstance(item.get("url"), str):
            found.append(PrebuiltSource(item["url"], str(item.get("local", ""))))
    return tuple(found)


@dataclass(frozen=True)
class Incompatibility:
    extension: SpecifierSet
    torch: SpecifierSet
    reason: str


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    known: bool
    import_name: str | None
    build_requires: tuple[str, ...]
    cuda: str
    arch_knob: str | None
    arch_format: str
    #: The archs a "nodot" knob may name (the package has kernels for these), each with its nvcc condition.
    arch_choices: tuple[ArchEntry, ...]
    #: The archs the package compiles whatever is set (its own -gencode list), each with its nvcc condition.
    fixed_archs: tuple[ArchEntry, ...]
    min_cc: str | None
    toolkit_match: str
    skip_cuda_knob: str | None
    #: The exact value the package compares the skip knob with ("TRUE"), or None for any true-ish value.
    skip_cuda_value: str | None
    #: Always set (NVCC_THREADS…).
    env: Mapping[str, str]
    cuda_env: Mapping[str, str]
    cpu_env: Mapping[str, str]
    jobs_knobs: tuple[str, ...]
    threads_knob: str | None
    job_memory_mib: int
    cpu_job_memory_mib: int
    incompatible: tuple[Incompatibility, ...] = field(default=())
    #: The oldest nvcc its setup.py accepts, or None.
    min_nvcc: str | None = None
    #: Its setup.py compiles one file at a time whatever MAX_JOBS says.
    ignores_jobs: bool = False
    #: The extension versions this entry describes ("" for all), as the data file writes them.
    versions: str = ""
    #: The variables (and their exact values) that make its setup.py build instead of downloading a wheel.
    force_build: Mapping[str, str] = field(default_factory=dict)
    #: The C++ standard its build hard-codes (``-std=c++17``), or None when it leaves torch's default.
    cxx_std: int | None = None
    #: Options its setup.py reads from the build command (``--cpp_ext``), passed as ``--build-option``.
    build_options: tuple[str, ...] = ()
    #: Where the facts of this entry were read (repo@tag:path, an sdist's file, a PR).
    sources: tuple[str, ...] = ()
    #: The ``--threads N`` its build passes to nvcc when no ``threads_knob`` says otherwise.
    nvcc_threads: int | None = None
    #: The torch release whose stable ABI it builds against (``TORCH_TARGET_VERSION``), or None.
    stable_abi: str | None = None
    #: The project this entry describes ("NVIDIA apex, github.com/NVIDIA/apex"), where a name is ambiguous.
    distribution: str = ""
    #: Whether an index's package of this name is that project; False: it comes from its repository, and
    #: a requirement of the name from an index (``apex==0.9.10.dev0``) is another, ordinary package.
    from_index: bool = True
    #: Its git repository ("github.com/Dao-AILab/flash-attention"): a VCS URL of it is this project.
    repository: str = ""
    #: Where its publisher puts prebuilt wheels (used after an audit instead of building).
    prebuilt: tuple[PrebuiltSource, ...] = ()

    def describes(self, requirement: str) -> bool:
        """Whether ``requirement`` (PEP 508, a URL or a path) is the project this entry describes."""
        if self.from_index:
            return True
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            return Requirement(requirement).url is not None
        except InvalidRequirement:
            return True  # a path or a VCS URL: the project's own source

    def skips_cuda(self, env: Mapping[str, str]) -> bool:
        """Whether ``env`` turns this package's CUDA build off, as its setup.py reads the knob."""
        if self.skip_cuda_knob is None or self.skip_cuda_knob not in env:
            return False
        value = env[self.skip_cuda_knob]
        if self.skip_cuda_value is not None:
            return value == self.skip_cuda_value
        return value.strip().lower() in {"1", "true", "yes", "on"}

    def fixed_archs_for(self, nvcc_version: str | None) -> tuple[str, ...]:
        """The archs its own -gencode list holds when nvcc ``nvcc_version`` builds it."""
        return archs_for(self.fixed_archs, nvcc_version)

    def choices_for(self, nvcc_version: str | None) -> tuple[str, ...]:
        """The archs its arch knob may name when nvcc ``nvcc_version`` builds it."""
        return archs_for(self.arch_choices, nvcc_version)


def arch_entries(raw: object) -> tuple[ArchEntry, ...]:
    """``["8.0", {arch = "9.0", nvcc = ">=11.8"}]`` as records (a recipe gives plain strings)."""
    entries = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, str):
            entries.append(ArchEntry(item))
        elif isinstance(item, Mapping):
            entries.append(ArchEntry(str(item["arch"]), str(item.get("nvcc", ""))))
    return tuple(entries)


def _entry(name: str, raw: Mapping[str, Any], generic: Mapping[str, Any], known: bool) -> CatalogEntry:
    def get(key: str, default: Any = None) -> Any:
        return raw.get(key, generic.get(key, default))

    # A package that fixes its own archs has no arch knob to inherit; "" undoes an inherited knob.
    arch_knob = None if raw.get("fixed_archs") else (get("arch_knob") or None)
    sources = raw.get("sources", [])
    return CatalogEntry(
        name=name,
        known=known,
        import_name=raw.get("import"),
        build_requires=tuple(get("build_requires", [])),
        cuda=get("cuda", "optional"),
        arch_knob=arch_knob,
        arch_format=raw.get("arch_format", "torch") if arch_knob else "torch",
        arch_choices=arch_entries(raw.get("arch_choices", [])),
        fixed_archs=arch_entries(raw.get("fixed_archs", [])),
        min_cc=raw.get("min_cc"),
        toolkit_match=get("toolkit_match", "major"),
        skip_cuda_knob=raw.get("skip_cuda_knob") or None,
        skip_cuda_value=raw.get("skip_cuda_value"),
        env=dict(raw.get("env", {})),
        # An entry's own tables replace the generic ones: torch-scatter's
        # FORCE_CUDA is its own, and apex must not get a generic FORCE_CUDA.
        cuda_env=dict(raw.get("cuda_env", {} if known else generic.get("cuda_env", {}))),
        cpu_env=dict(raw.get("cpu_env", {})),
        jobs_knobs=tuple(get("jobs_knobs", ["MAX_JOBS"])),
        threads_knob=raw.get("threads_knob") or None,
        job_memory_mib=int(get("job_memory_mib", 2048)),
        cpu_job_memory_mib=int(get("cpu_job_memory_mib", 1536)),
        incompatible=tuple(
            Incompatibility(SpecifierSet(i["extension"]), SpecifierSet(i["torch"]), i["reason"])
            for i in raw.get("incompatible", [])
        ),
        min_nvcc=raw.get("min_nvcc"),
        ignores_jobs=bool(raw.get("ignores_jobs", False)),
        versions=str(raw.get("versions", "")),
        force_build=dict(raw.get("force_build", {})),
        cxx_std=int(raw["cxx_std"]) if raw.get("cxx_std") is not None else None,
        build_options=tuple(raw.get("build_options", [])),
        sources=(sources,) if isinstance(sources, str) else tuple(sources),
        nvcc_threads=int(raw["nvcc_threads"]) if raw.get("nvcc_threads") is not None else None,
        stable_abi=str(raw["stable_abi"]) if raw.get("stable_abi") else None,
        distribution=str(raw.get("distribution", "")),
        from_index=bool(raw.get("from_index", True)),
        repository=str(raw.get("repository", "")).lower(),
        prebuilt=prebuilt_sources(raw.get("prebuilt", [])),
    )


#: Keys of an entry that describe the entry itself, not a version of the package.
_NOT_INHERITED = ("older", "versions", "sources", "unverified", "prebuilt_sources")


class Catalog:
    """The entries of an extensions.toml: each name's tables, the newest versions first."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._generic: Mapping[str, Any] = data.get("generic", {})
        self._tables: dict[str, list[dict[str, Any]]] = {}
        for name, raw in data.items():
            if name == "generic":
                continue
            base = {k: v for k, v in raw.items() if k != "older"}
            inherited = {k: v for k, v in base.items() if k not in _NOT_INHERITED}
            # Each [[NAME.older]] table is merged onto the newest: what it does not say is unchanged.
            self._tables[name] = [base, *({**inherited, **older} for older in raw.get("older", []))]

    @property
    def names(self) -> list[str]:
        return list(self._tables)

    def version_ranges(self, name: str) -> list[str]:
        """The version ranges the tables of ``name`` describe, newest first ("" for all)."""
        return [str(table.get("versions", "")) for table in self._tables.get(name, [])]

    def by_repository(self, key: str) -> str | None:
        """The name of the entry whose git repository is ``key`` ("github.com/nvidia/apex"), or None."""
        for name, tables in self._tables.items():
            if key and str(tables[0].get("repository", "")).lower() == key:
                return name
        return None

    def generic(self, name: str) -> CatalogEntry:
        """The generic defaults, for ``name`` (an extension the catalog says nothing about)."""
        return _entry(name, {}, self._generic, False)

    def entry(self, name: str, version: str | None = None) -> CatalogEntry:
        """The entry for ``name`` (at ``version`` if known), or the generic defaults.

        A version no table of the entry describes gets the generic defaults: the
        catalog says nothing about it. An unknown version gets the newest table.
        """
        tables = self._tables.get(name)
        if tables is None:
            return _entry(name, {}, self._generic, False)
        if version is not None:
            try:
                parsed = Version(version)
            except ValueError:  # InvalidVersion, or more digits than int() converts
                return _entry(name, tables[0], self._generic, True)
            for table in tables:
                if SpecifierSet(str(table.get("versions", ""))).contains(parsed, prereleases=True):
                    return _entry(name, table, self._generic, True)
            return _entry(name, {}, self._generic, False)
        return _entry(name, tables[0], self._generic, True)


@functools.cache
def shipped() -> Catalog:
    """The catalog gpuenv ships (gpuenv/plan/data/extensions.toml)."""
    return Catalog(data_file("extensions.toml"))


def catalog() -> dict[str, CatalogEntry]:
    """Every known extension's entry for its newest versions."""
    return {name: shipped().entry(name) for name in shipped().names}


def version_ranges(name: str) -> list[str]:
    """The version ranges the shipped catalog's tables of ``name`` describe, newest first."""
    return shipped().version_ranges(name)


def catalog_entry(name: str, version: str | None = None) -> CatalogEntry:
    """The shipped catalog's entry for ``name`` (at ``version`` if known): see :meth:`Catalog.entry`."""
    return shipped().entry(name, version)


def parse_specifier(text: str) -> SpecifierSet | None:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None
