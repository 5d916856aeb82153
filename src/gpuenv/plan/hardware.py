"""What a machine has: the :class:`Hardware` record, its JSON form, and overrides.

The JSON form is a contract (README.md, "What does this machine have?"): ``gpuenv probe --json`` writes it and
``--hardware FILE`` reads it back (:mod:`gpuenv.load.hardware` reads the file). ``--gpu`` and
``--arch`` replace the GPUs of a probe so a GPU-less node can plan and build for the compute nodes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gpuenv.errors import HardwareFileError, InputError

#: "9.0", "12.1"; and nvcc's "90", "121" (sm_90): ASCII digits only (re.ASCII: \d takes "٩" too).
_CC_DOTTED = re.compile(r"([1-9][0-9]?)\.([0-9])", re.ASCII)
_CC_NVCC = re.compile(r"([1-9][0-9]?)([0-9])", re.ASCII)


@dataclass(frozen=True, order=True)
class ComputeCapability:
    """A CUDA compute capability such as 9.0 (``sm_90``)."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> ComputeCapability:
        """Parse "9.0", "sm_90" or "90"; raise ValueError otherwise.

        ASCII digits only (Arabic-Indic 9.0 is refused, not read as 9.0), and a minor version: "9"
        could be 9.0 or a typo of 90 (sm_90), so it is refused rather than guessed.
        """
        raw = text.strip().lower()
        raw = raw.removeprefix("sm_").removeprefix("compute_")
        match = _CC_DOTTED.fullmatch(raw) or _CC_NVCC.fullmatch(raw)
        if match is None:
            raise ValueError(f"not a compute capability: {text!r} (expected e.g. 9.0 or 8.6)")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def sm(self) -> str:
        """The nvcc spelling without dot: ``90``."""
        return f"{self.major}{self.minor}"


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    uuid: str
    compute_capability: str
    memory_total_mib: int

    @property
    def cc(self) -> ComputeCapability:
        return ComputeCapability.parse(self.compute_capability)


@dataclass(frozen=True)
class Toolkit:
    """A CUDA toolkit on disk: its nvcc, release ("13.0") and root (``CUDA_HOME``)."""

    nvcc: str
    version: str
    home: str = ""
    #: Where it comes from: "system" (found on disk), "pypi" (gpuenv's toolkit cache),
    #: "path" (--toolkit PATH).
    source: str = "system"
    #: nvcc's full version ("13.0.88", from "V13.0.88"), or "" when not known yet.
    release: str = ""

    @property
    def root(self) -> str:
        """The toolkit root: ``home`` if known, else two levels above nvcc."""
        return self.home or os.path.dirname(os.path.dirname(self.nvcc))

    @property
    def nvcc_version(self) -> str:
        """The compiler's version as precisely as known: "13.0.88", else "13.0"."""
        return self.release or self.version

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, _, minor = self.version.partition(".")
        return int(major), int(minor or 0)


@dataclass(frozen=True)
class Hardware:
    driver_version: str | None
    cuda_driver_version: str | None
    gpus: tuple[Gpu, ...]
    cpu_count: int
    memory_total_mib: int
    memory_available_mib: int
    toolkits: tuple[Toolkit, ...] = ()
    #: Where the GPU facts came from ("nvml", "file FILE", "--gpu H100", …); not in the JSON.
    source: str = field(default="nvml", compare=False)

    @property
    def cuda_driver_tuple(self) -> tuple[int, int] | None:
        if self.cuda_driver_version is None:
            return None
        major, _, minor = self.cuda_driver_version.partition(".")
        return int(major), int(minor or 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "driver_version": self.driver_version,
            "cuda_driver_version": self.cuda_driver_version,
            "gpus": [
                {
                    "index": g.index,
                    "name": g.name,
                    "uuid": g.uuid,
                    "compute_capability": g.compute_capability,
                    "memory_total_mib": g.memory_total_mib,
                }
                for g in self.gpus
            ],
            "cpu_count": self.cpu_count,
            "memory_total_mib": self.memory_total_mib,
            "memory_available_mib": self.memory_available_mib,
            "toolkits": [{"nvcc": t.nvcc, "version": t.version, "home": t.root, "source": t.source,
                          "release": t.release} for t in self.toolkits],
        }

    def with_host(self, host: Hardware) -> Hardware:
        """These GPU and driver facts, with ``host``'s CPUs, memory and toolkits.

        Used by ``setup``: the GPUs may be described from elsewhere, but the
        build runs here, with this machine's compilers and memory.
        """
        return replace(
            self,
            cpu_count=host.cpu_count,
            memory_total_mib=host.memory_total_mib,
            memory_available_mib=host.memory_available_mib,
            toolkits=host.toolkits,
        )


#: Bounds of a probe's values: no machine comes near them; a file beyond them is not a probe's.
_MAX_COUNT = 1 << 40
_MAX_TEXT = 4096
_MAX_GPUS = 1024
_CUDA_VERSION = re.compile(r"[1-9][0-9]?\.[0-9]{1,2}")
_TOOLKIT_VERSION = re.compile(r"[1-9][0-9]?\.[0-9]{1,2}(\.[0-9]{1,4})?")
_DRIVER_VERSION = re.compile(r"[0-9]{1,4}(\.[0-9]{1,4}){1,3}")


def _short(value: object) -> str:
    """A value for an error message, cut short (a hostile file may hold megabytes in one string)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def hardware_from_json(data: Any, *, origin: str = "<json>") -> Hardware:
    """Build :class:`Hardware` from the JSON contract; raise HardwareFileError if malformed."""

    def fail(problem: str) -> HardwareFileError:
        return HardwareFileError(origin, problem)

    if not isinstance(data, Mapping):
        raise fail("expected a JSON object as written by 'gpuenv probe --json'")
    required = ("driver_version", "cuda_driver_version", "gpus", "cpu_count",
                "memory_total_mib", "memory_available_mib")
    missing = [k for k in required if k not in data]
    if missing:
        raise fail(f"missing key(s): {', '.join(missing)}")

    def opt_str(key: str) -> str | None:
        value = data[key]
        if value is not None and not isinstance(value, str):
            raise fail(f"{key}: expected a string or null, got {_short(value)}")
        return value

    def count(container: Mapping[str, Any], key: str, where: str) -> int:
        value = container.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_COUNT:
            raise fail(f"{where}{key}: expected a non-negative integer, got {_short(value)}")
        return value

    def text(container: Mapping[str, Any], key: str, where: str, default: str) -> str:
        value = container.get(key, default)
        if not isinstance(value, str) or "\0" in value or len(value) > _MAX_TEXT:
            raise fail(f"{where}{key}: expected a string, got {_short(value)}")
        return value

    cuda = opt_str("cuda_driver_version")
    if cuda is not None and not _CUDA_VERSION.fullmatch(cuda):
        raise fail(f"cuda_driver_version: expected e.g. \"12.4\", got {_short(cuda)}")
    driver = opt_str("driver_version")
    if driver is not None and not _DRIVER_VERSION.fullmatch(driver):
        raise fail(f"driver_version: expected e.g. \"580.65.06\", got {_short(driver)}")

    raw_gpus = data["gpus"]
    if not isinstance(raw_gpus, list):
        raise fail("gpus: expected a list")
    if len(raw_gpus) > _MAX_GPUS:
        raise fail(f"gpus: {len(raw_gpus)} GPUs, more than one machine holds ({_MAX_GPUS})")
    gpus = []
    for i, raw in enumerate(raw_gpus):
        where = f"gpus[{i}]."
        if not isinstance(raw, Mapping):
            raise fail(f"gpus[{i}]: expected an object")
        cc_text = raw.get("compute_capability")
        if not isinstance(cc_text, str):
            raise fail(f"{where}compute_capability: expected a string such as \"9.0\"")
        try:
            cc = ComputeCapability.parse(cc_text)
        except ValueError as exc:
            raise fail(f"{where}compute_capability: {exc}") from None
        gpus.append(
            Gpu(
                index=count(raw, "index", where) if "index" in raw else i,
                name=text(raw, "name", where, f"GPU {i}"),
                uuid=text(raw, "uuid", where, ""),
                compute_capability=str(cc),
                memory_total_mib=count(raw, "memory_total_mib", where) if "memory_total_mib" in raw else 0,
            )
        )

    raw_toolkits = data.get("toolkits", [])
    if not isinstance(raw_toolkits, list):
        raise fail("toolkits: expected a list")
    toolkits = []
    if len(raw_toolkits) > _MAX_GPUS:
        raise fail(f"toolkits: {len(raw_toolkits)} toolkits, more than a machine holds")
    for i, raw in enumerate(raw_toolkits):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("nvcc"), str) or not isinstance(
            raw.get("version"), str
        ):
            raise fail(f"toolkits[{i}]: expected {{\"nvcc\": PATH, \"version\": \"12.1\"}}")
        where = f"toolkits[{i}]."
        if not _TOOLKIT_VERSION.fullmatch(raw["version"]):
            got = _short(raw["version"])
            raise fail(f"{where}version: expected a CUDA release such as \"13.0\", got {got}")
        nvcc = text(raw, "nvcc", where, "")
        if not nvcc.strip():
            raise fail(f"{where}nvcc: expected the path of an nvcc, got {_short(nvcc)}")
        toolkits.append(Toolkit(nvcc=nvcc, version=raw["version"],
                                home=text(raw, "home", where, ""),
                                source=text(raw, "source", where, "system"),
                                release=text(raw, "release", where, "")))

    return Hardware(
        driver_version=driver,
        cuda_driver_version=cuda,
        gpus=tuple(gpus),
        cpu_count=count(data, "cpu_count", ""),
        memory_total_mib=count(data, "memory_total_mib", ""),
        memory_available_mib=count(data, "memory_available_mib", ""),
        toolkits=tuple(toolkits),
        source=f"file {origin}",
    )


def with_arch_override(hardware: Hardware, archs: str) -> Hardware:
    """Replace the GPUs with one synthetic GPU per compute capability in ``archs`` ("9.0,8.0")."""
    ccs = []
    for part in archs.replace(";", ",").split(","):
        if not part.strip():
            continue
        try:
            ccs.append(ComputeCapability.parse(part))
        except ValueError as exc:
            raise InputError(f"--arch: {exc}", hint="e.g. --arch 9.0 or --arch 8.0,9.0") from None
    if not ccs:
        raise InputError("--arch: no compute capability given", hint="e.g. --arch 9.0 or --arch 8.0,9.0")
    gpus = tuple(
        Gpu(index=i, name=f"sm_{cc.sm}", uuid="", compute_capability=str(cc), memory_total_mib=0)
        for i, cc in enumerate(sorted(set(ccs)))
    )
    return replace(hardware, gpus=gpus, driver_version=None, cuda_driver_version=None,
                   source=f"--arch {archs}")
