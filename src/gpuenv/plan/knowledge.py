"""The compatibility knowledge, read lazily from the data files in ``gpuenv/plan/data``.

torch.toml (releases, variants, wheel archs), cuda.toml (driver minimums, nvcc
and torch arch support), gpus.toml (``--gpu`` names) and extensions.toml (the
catalog of build knobs). Nothing is read at import; each file is parsed once,
on first use, into the typed records below.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from gpuenv.plan.hardware import ComputeCapability
from gpuenv.plan.releases import TorchRelease, release_of_spec, shipped_releases

__all__ = ["TorchRelease", "release_of_spec"]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@functools.cache
def _data(name: str) -> dict[str, Any]:
    text = resources.files("gpuenv.plan").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    data: dict[str, Any] = tomllib.loads(text)
    return data


# -- variants ------------------------------------------------------------------

_VARIANT_RE = re.compile(r"^cu(\d{2,3})$")


def normalize_variant(text: str) -> str | None:
    """"12.1" / "cu121" / "CU121" → "cu121"; "cpu" → "cpu"; anything else → None."""
    raw = text.strip().lower()
    if raw == "cpu":
        return "cpu"
    if _VARIANT_RE.match(raw):
        return raw
    match = re.fullmatch(r"(\d{2})\.(\d)", raw)
    if match:
        return f"cu{match.group(1)}{match.group(2)}"
    return None


def variant_cuda(variant: str) -> str | None:
    """"cu121" → "12.1"; "cpu" → None."""
    match = _VARIANT_RE.match(variant)
    if not match:
        return None
    digits = match.group(1)
    return f"{int(digits[:-1])}.{digits[-1]}"


def version_tuple(text: str) -> tuple[int, ...]:
    """"12.1" → (12, 1); tolerant of a third part ("550.54.14")."""
    return tuple(int(p) for p in re.findall(r"\d+", text))


# -- torch releases (the shipped data; see gpuenv.plan.releases) ---------------------------------


def torch_releases() -> Mapping[str, TorchRelease]:
    """The releases of the shipped data, oldest first (the planner takes :class:`TorchReleases` instead)."""
    return shipped_releases().releases


def torch_candidates(spec: SpecifierSet) -> list[tuple[TorchRelease, str]]:
    """Every (release, version) of the shipped data that ``spec`` admits, newest version first."""
    return shipped_releases().candidates(spec)


def resolve_release(spec: SpecifierSet) -> tuple[TorchRelease, str] | None:
    """The newest release of the shipped data with a version ``spec`` admits, and that version."""
    return shipped_releases().resolve(spec)


def paired_packages() -> frozenset[str]:
    """The distributions released together with torch (torchvision, torchaudio)."""
    return shipped_releases().packages


def paired_version(torch_version: str, package: str) -> str | None:
    """The version of ``package`` the shipped data pairs with ``torch_version``."""
    return shipped_releases().paired_version(torch_version, package)


def pairs_of(package: str) -> list[tuple[str, str]]:
    """Every (torch version, package version) pair of the shipped data, newest torch first."""
    return shipped_releases().pairs_of(package)


# -- archs, toolkits, drivers -----------------------------------------------------


@dataclass(frozen=True)
class ArchSupport:
    cc: str
    nvcc_first: str
    nvcc_last: str
    torch_first: str
    torch_last: str

    def nvcc_can_compile(self, nvcc_version: str) -> bool:
        return _within(nvcc_version, self.nvcc_first, self.nvcc_last)

    def torch_accepts(self, torch_release: str) -> bool:
        return _within(torch_release, self.torch_first, self.torch_last)


def _within(version: str, first: str, last: str) -> bool:
    v = version_tuple(version)[:2]
    if first and v < version_tuple(first)[:2]:
        return False
    return not (last and v > version_tuple(last)[:2])


@functools.cache
def _arch_table() -> dict[str, ArchSupport]:
    table = {}
    for cc, raw in _data("cuda.toml")["archs"].items():
        table[cc] = ArchSupport(cc, raw["nvcc"][0], raw["nvcc"][1], raw["torch"][0], raw["torch"][1])
    return table


def arch_support(cc: str) -> ArchSupport | None:
    return _arch_table().get(cc)


def known_archs() -> list[str]:
    return sorted(_arch_table(), key=lambda c: ComputeCapability.parse(c))


def driver_minimum(cuda_major: int) -> str | None:
    """The oldest driver that runs CUDA ``cuda_major``.x under minor-version compatibility."""
    value = _data("cuda.toml")["driver_minimum"].get(str(cuda_major))
    return str(value) if value is not None else None


def pypi_toolkit_versions() -> tuple[str, ...]:
    """The CUDA releases ("13.0") whose compiler PyPI holds, so gpuenv can provision them."""
    return tuple(str(v) for v in _data("cuda.toml")["pypi_toolkit"]["versions"])


def pypi_toolkit_wheels() -> tuple[str, ...]:
    """The distributions that make a CUDA_HOME, each pinned to the release when installed."""
    return tuple(str(w) for w in _data("cuda.toml")["pypi_toolkit"]["wheels"])


def toolkit_driver(cuda: str) -> str | None:
    """The driver CUDA ``cuda`` ships with."""
    value = _data("cuda.toml")["toolkit_driver"].get(cuda)
    return str(value) if value is not None else None


def cuda_for_driver(driver_version: str) -> str | None:
    """The newest CUDA release whose bundled driver is not newer than ``driver_version``."""
    driver = version_tuple(driver_version)
    best = None
    for cuda, bundled in _data("cuda.toml")["toolkit_driver"].items():
        if version_tuple(bundled) <= driver and (best is None or version_tuple(cuda) > version_tuple(best)):
            best = cuda
    return best


def runs_on(archs: tuple[str, ...], cc: ComputeCapability) -> bool:
    """Whether code compiled for ``archs`` runs on a GPU of compute capability ``cc``.

    A cubin for X.Y runs on X.Z with Z ≥ Y; PTX for X.Y is JIT-compiled by the
    driver for any newer GPU.
    """
    for entry in archs:
        target = ComputeCapability.parse(entry.removesuffix("+PTX"))
        if target.major == cc.major and target.minor <= cc.minor:
            return True
        if entry.endswith("+PTX") and target <= cc:
            return True
    return False


# -- GPU models ---------------------------------------------------------------------


@dataclass(frozen=True)
class GpuModel:
    name: str
    cc: str
    memory_mib: int


def gpu_key(name: str) -> str:
    key = re.sub(r"[\s\-_]", "", name.lower())
    for prefix in ("nvidia", "tesla", "geforce"):
        key = key.removeprefix(prefix)
    return key


@functools.cache
def gpu_models() -> dict[str, GpuModel]:
    return {
        gpu_key(name): GpuModel(name, raw["cc"], int(raw["memory_mib"]))
        for name, raw in _data("gpus.toml")["gpus"].items()
    }


def find_gpu_model(name: str) -> GpuModel | None:
    return gpu_models().get(gpu_key(name))


def close_gpu_names(name: str) -> list[str]:
    models = gpu_models()
    keys = difflib.get_close_matches(gpu_key(name), list(models), n=3, cutoff=0.5)
    return [models[k].name for k in keys]


# -- the extension catalog ---------------------------------------------------------------


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
    arch_choices: tuple[str, ...]
    fixed_archs: tuple[str, ...]
    min_cc: str | None
    toolkit_match: str
    skip_cuda_knob: str | None
    #: The exact value the package compares the skip knob with ("TRUE"), or None for any true-ish value.
    skip_cuda_value: str | None
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

    def skips_cuda(self, env: Mapping[str, str]) -> bool:
        """Whether ``env`` turns this package's CUDA build off, as its setup.py reads the knob."""
        if self.skip_cuda_knob is None or self.skip_cuda_knob not in env:
            return False
        value = env[self.skip_cuda_knob]
        if self.skip_cuda_value is not None:
            return value == self.skip_cuda_value
        return value.strip().lower() in {"1", "true", "yes", "on"}


def _entry(name: str, raw: Mapping[str, Any], generic: Mapping[str, Any], known: bool) -> CatalogEntry:
    def get(key: str, default: Any = None) -> Any:
        return raw.get(key, generic.get(key, default))

    # A package that fixes its own archs has no arch knob to inherit.
    arch_knob = None if raw.get("fixed_archs") else get("arch_knob")
    return CatalogEntry(
        name=name,
        known=known,
        import_name=raw.get("import"),
        build_requires=tuple(get("build_requires", [])),
        cuda=get("cuda", "optional"),
        arch_knob=arch_knob,
        arch_format=raw.get("arch_format", "torch") if arch_knob else "torch",
        arch_choices=tuple(raw.get("arch_choices", [])),
        fixed_archs=tuple(raw.get("fixed_archs", [])),
        min_cc=raw.get("min_cc"),
        toolkit_match=get("toolkit_match", "major"),
        skip_cuda_knob=raw.get("skip_cuda_knob"),
        skip_cuda_value=raw.get("skip_cuda_value"),
        env=dict(raw.get("env", {})),
        # An entry's own tables replace the generic ones: torch-scatter's
        # FORCE_CUDA is its own, and apex must not get a generic FORCE_CUDA.
        cuda_env=dict(raw.get("cuda_env", {} if known else generic.get("cuda_env", {}))),
        cpu_env=dict(raw.get("cpu_env", {})),
        jobs_knobs=tuple(get("jobs_knobs", ["MAX_JOBS"])),
        threads_knob=raw.get("threads_knob"),
        job_memory_mib=int(get("job_memory_mib", 2048)),
        cpu_job_memory_mib=int(get("cpu_job_memory_mib", 1536)),
        incompatible=tuple(
            Incompatibility(SpecifierSet(i["extension"]), SpecifierSet(i["torch"]), i["reason"])
            for i in raw.get("incompatible", [])
        ),
        min_nvcc=raw.get("min_nvcc"),
        ignores_jobs=bool(raw.get("ignores_jobs", False)),
        versions=str(raw.get("versions", "")),
    )


#: Keys of an entry that describe the entry itself, not a version of the package.
_NOT_INHERITED = ("older", "versions")


@functools.cache
def _catalog_tables() -> dict[str, list[dict[str, Any]]]:
    """name → its tables, the newest versions first: the entry, then each [[NAME.older]] merged onto it."""
    data = _data("extensions.toml")
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, raw in data.items():
        if name == "generic":
            continue
        base = {k: v for k, v in raw.items() if k not in ("older",)}
        inherited = {k: v for k, v in base.items() if k not in _NOT_INHERITED}
        tables[name] = [base, *({**inherited, **older} for older in raw.get("older", []))]
    return tables


@functools.cache
def catalog() -> dict[str, CatalogEntry]:
    """Every known extension's entry for its newest versions."""
    generic = _data("extensions.toml")["generic"]
    return {name: _entry(name, tables[0], generic, True) for name, tables in _catalog_tables().items()}


def catalog_version_ranges(name: str) -> list[str]:
    """The version ranges the catalog's tables of ``name`` describe, newest first ("" for all)."""
    return [str(table.get("versions", "")) for table in _catalog_tables().get(name, [])]


def catalog_entry(name: str, version: str | None = None) -> CatalogEntry:
    """The catalog's entry for ``name`` (at ``version`` if known), or the generic defaults.

    A version no table of the entry describes gets the generic defaults: the
    catalog says nothing about it. An unknown version gets the newest table.
    """
    generic = _data("extensions.toml")["generic"]
    tables = _catalog_tables().get(name)
    if tables is None:
        return _entry(name, {}, generic, False)
    if version is None:
        return catalog()[name]
    try:
        parsed = Version(version)
    except InvalidVersion:
        return catalog()[name]
    for table in tables:
        if SpecifierSet(str(table.get("versions", ""))).contains(parsed, prereleases=True):
            return _entry(name, table, generic, True)
    return _entry(name, {}, generic, False)


def parse_specifier(text: str) -> SpecifierSet | None:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None
