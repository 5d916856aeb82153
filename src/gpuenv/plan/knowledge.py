"""The compatibility knowledge, read lazily from the data files in ``gpuenv/plan/data``.

torch.toml (releases, variants, wheel archs), cuda.toml (driver minimums, nvcc
and torch arch support) and gpus.toml (``--gpu`` names); the extension catalog
(extensions.toml) is :mod:`gpuenv.plan.catalog`. Nothing is read at import;
each file is parsed once, on first use, into the typed records below.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet

from gpuenv.plan.hardware import ComputeCapability
from gpuenv.plan.packagedata import data_file
from gpuenv.plan.releases import TorchRelease, release_of_spec, shipped_releases

__all__ = ["TorchRelease", "release_of_spec"]

# -- variants ------------------------------------------------------------------

_VARIANT_RE = re.compile(r"^cu([0-9]{2,3})$", re.ASCII)


def normalize_variant(text: str) -> str | None:
    """"12.1" / "cu121" / "CU121" → "cu121"; "cpu" → "cpu"; anything else → None."""
    raw = text.strip().lower()
    if raw == "cpu":
        return "cpu"
    if _VARIANT_RE.match(raw):
        return raw
    match = re.fullmatch(r"([0-9]{2})\.([0-9])", raw, re.ASCII)
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
    return tuple(int(p) for p in re.findall(r"[0-9]+", text))


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
    #: Whether any torch release accepts it in TORCH_CUDA_ARCH_LIST at all.
    torch_any: bool = True

    def nvcc_can_compile(self, nvcc_version: str) -> bool:
        return _within(nvcc_version, self.nvcc_first, self.nvcc_last)

    def torch_accepts(self, torch_release: str) -> bool:
        return self.torch_any and _within(torch_release, self.torch_first, self.torch_last)


def _within(version: str, first: str, last: str) -> bool:
    v = version_tuple(version)[:2]
    if first and v < version_tuple(first)[:2]:
        return False
    return not (last and v > version_tuple(last)[:2])


#: Keys of a data table that say where its facts come from, not facts.
PROVENANCE = frozenset({"sources", "source", "unverified"})


def facts(table: Mapping[str, Any]) -> dict[str, Any]:
    """A data table without its provenance keys (``sources``, ``unverified``)."""
    return {k: v for k, v in table.items() if k not in PROVENANCE}


@functools.cache
def _arch_table() -> dict[str, ArchSupport]:
    table = {}
    for cc, raw in facts(data_file("cuda.toml")["archs"]).items():
        nvcc, torch = list(raw["nvcc"]), list(raw["torch"])
        first, last = torch or ["", ""]
        table[cc] = ArchSupport(cc, nvcc[0], nvcc[1], first, last, torch_any=bool(torch))
    return table


def arch_support(cc: str) -> ArchSupport | None:
    return _arch_table().get(cc)


def known_archs() -> list[str]:
    """Every compute capability NVIDIA's compilers know (the only ones a GPU can have)."""
    return sorted(_arch_table(), key=lambda c: ComputeCapability.parse(c))


def torch_archs(torch_release: str) -> list[str]:
    """The archs ``torch_release``'s TORCH_CUDA_ARCH_LIST accepts, oldest first."""
    return [cc for cc in known_archs() if _arch_table()[cc].torch_accepts(torch_release)]


def driver_minimum(cuda_major: int) -> str | None:
    """The oldest driver that runs CUDA ``cuda_major``.x under minor-version compatibility."""
    value = facts(data_file("cuda.toml")["driver_minimum"]).get(str(cuda_major))
    return str(value) if value is not None else None


def pypi_toolkit_versions() -> tuple[str, ...]:
    """The CUDA releases ("13.0") whose compiler PyPI holds, so gpuenv can provision them."""
    return tuple(str(v) for v in data_file("cuda.toml")["pypi_toolkit"]["versions"])


def pypi_toolkit_requirement(cuda: str) -> str:
    """The requirement that installs CUDA ``cuda``'s compiler ("13.0"): NVIDIA's meta-package with the
    extras that make a CUDA_HOME, which pins every component wheel to that release."""
    table = data_file("cuda.toml")["pypi_toolkit"]
    return f"{table['meta']}[{','.join(table['extras'])}]=={cuda}.*"


def toolkit_driver(cuda: str) -> str | None:
    """The driver CUDA ``cuda`` ships with."""
    value = facts(data_file("cuda.toml")["toolkit_driver"]).get(cuda)
    return str(value) if value is not None else None


def cuda_for_driver(driver_version: str) -> str | None:
    """The newest CUDA release whose bundled driver is not newer than ``driver_version``."""
    driver = version_tuple(driver_version)
    best = None
    for cuda, bundled in facts(data_file("cuda.toml")["toolkit_driver"]).items():
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
        for name, raw in facts(data_file("gpus.toml")["gpus"]).items()
    }


def find_gpu_model(name: str) -> GpuModel | None:
    return gpu_models().get(gpu_key(name))


def close_gpu_names(name: str) -> list[str]:
    models = gpu_models()
    keys = difflib.get_close_matches(gpu_key(name), list(models), n=3, cutoff=0.5)
    return [models[k].name for k in keys]
