"""Probe this machine: GPUs and driver through NVML, CPUs, memory and CUDA toolkits.

NVML (through nvidia-ml-py's ``pynvml``) is imported and initialised only when
a probe is asked for. No NVML library and no loaded driver are the normal
answer of a GPU-less machine: no driver, no CUDA, no GPUs. Any other NVML error
means a GPU is there but unusable, and becomes a :class:`ProbeError` naming the
call, the GPU and what to do about it.

A GPU in MIG mode is reported as its MIG devices (name, UUID and memory of
each slice) with the parent's compute capability and index: MIG device
handles do not answer the compute capability reliably, and a slice runs the
parent's architecture.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from gpuenv.errors import ProbeError
from gpuenv.plan.hardware import Gpu, Hardware, Toolkit
from gpuenv.probe.cgroups import cgroup_limits
from gpuenv.probe.toolkitroots import find_toolkits
from gpuenv.runner import Runner

MIB = 1024 * 1024

# NVML return codes (nvml.h); pynvml raises NVMLError subclasses carrying them in ``.value``.
_INVALID_ARGUMENT = 2
_NOT_SUPPORTED = 3
_NOT_FOUND = 6
_DRIVER_NOT_LOADED = 9
_LIBRARY_NOT_FOUND = 12
_FUNCTION_NOT_FOUND = 13
_MIG_ENABLED = 1

_GENERIC_HINT = (
    "check that 'nvidia-smi' works on this machine; to plan without probing it, "
    "pass --hardware FILE, --gpu NAME or --arch X.Y"
)

#: What an NVML error code means here, and what to do about it.
_EXPLANATIONS: dict[int, tuple[str, str]] = {
    4: (
        "no permission to talk to the NVIDIA driver",
        "check that this user can open /dev/nvidia* ('ls -l /dev/nvidia*'; usually that "
        "means membership in the 'video' group), or in a container that the GPU devices "
        "are passed in",
    ),
    13: (
        "the NVIDIA driver is too old for this call",
        "upgrade the NVIDIA driver, or describe the GPUs with --hardware FILE / --gpu NAME",
    ),
    14: (
        "the GPU's infoROM is corrupted",
        "run 'nvidia-smi -q' and contact the machine's administrator or the vendor",
    ),
    15: (
        "the GPU has fallen off the bus and no longer answers",
        "look for Xid errors in 'dmesg' (or 'journalctl -k'); reset the GPU with "
        "'nvidia-smi --gpu-reset -i N' or reboot the node",
    ),
    16: (
        "the GPU needs a reset",
        "reset it with 'nvidia-smi --gpu-reset -i N' or reboot the node",
    ),
    17: (
        "the operating system blocked the request",
        "check the container's device policy or SELinux/AppArmor rules for /dev/nvidia*",
    ),
    18: (
        "the NVML library and the loaded NVIDIA kernel module are different versions",
        "the driver was upgraded without a reboot: reboot the machine, or unload and "
        "reload the nvidia kernel modules",
    ),
    999: (
        "NVML reported an unknown error",
        "check that 'nvidia-smi' works and look for driver errors in 'dmesg'",
    ),
}


def probe(environ: Mapping[str, str] | None = None, runner: Runner | None = None, *,
          provisioned: Sequence[Toolkit] = ()) -> Hardware:
    """Everything :class:`Hardware` holds, measured on this machine.

    The toolkits are those on disk and ``provisioned``: those gpuenv put into
    its toolkit cache, which the caller reads (the cache is a layer above the
    probe: :meth:`gpuenv.cache.toolkitcache.ToolkitCache.toolkits`).
    """
    driver, cuda, gpus = probe_gpus()
    cpu_count, memory_total, memory_available = probe_host()
    return Hardware(
        driver_version=driver,
        cuda_driver_version=cuda,
        gpus=gpus,
        cpu_count=cpu_count,
        memory_total_mib=memory_total,
        memory_available_mib=memory_available,
        toolkits=probe_toolkits(environ, runner, provisioned=provisioned),
        source="nvml",
    )


def probe_toolkits(environ: Mapping[str, str] | None = None, runner: Runner | None = None, *,
                   provisioned: Sequence[Toolkit] = ()) -> tuple[Toolkit, ...]:
    """The toolkits on disk, then the ``provisioned`` ones (each root once)."""
    mine = {os.path.realpath(t.root) for t in provisioned}
    system = [t for t in find_toolkits(environ, runner) if os.path.realpath(t.root) not in mine]
    return (*system, *provisioned)


# -- GPUs (NVML) ---------------------------------------------------------------


def probe_gpus() -> tuple[str | None, str | None, tuple[Gpu, ...]]:
    """(driver version, CUDA version the driver supports as "12.4", GPUs) from NVML.

    ``(None, None, ())`` when there is no NVML library or no loaded driver;
    :class:`ProbeError` for any other NVML error.
    """
    nvml = _nvml()
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        if exc.value in (_LIBRARY_NOT_FOUND, _DRIVER_NOT_LOADED):
            return None, None, ()
        raise _probe_error("nvmlInit", exc) from exc
    try:
        driver = _text(_call("nvmlSystemGetDriverVersion"))
        return driver, _cuda_driver_version(), _gpus()
    finally:
        # The answer (or the error on its way out) matters more than a failed shutdown.
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def cuda_version_text(version: int) -> str:
    """NVML's 1000·major + 10·minor (12040) as "12.4"."""
    return f"{version // 1000}.{version % 1000 // 10}"


def _nvml() -> Any:
    try:
        import pynvml  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ProbeError(
            "import pynvml", f"nvidia-ml-py is not installed ({exc})",
            hint="install it with 'pip install nvidia-ml-py'",
        ) from exc
    return pynvml


def _call(name: str, *args: Any, gpu: str | None = None, absent: Collection[int] = ()) -> Any:
    """``pynvml.<name>(*args)``; None for an error code in ``absent``, else ProbeError."""
    nvml = _nvml()
    try:
        return getattr(nvml, name)(*args)
    except nvml.NVMLError as exc:
        if exc.value in absent:
            return None
        raise _probe_error(name if gpu is None else f"{name} on GPU {gpu}", exc) from exc


def _probe_error(call: str, exc: Any) -> ProbeError:
    code = int(exc.value)
    explanation, hint = _EXPLANATIONS.get(code, ("", _GENERIC_HINT))
    problem = f"{explanation} ({exc}, NVML error {code})" if explanation else f"{exc} (NVML error {code})"
    return ProbeError(call, problem, code=code, hint=hint)


def _text(value: Any) -> str:
    # nvidia-ml-py decodes since 11.515.48; older bindings return bytes.
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _cuda_driver_version() -> str | None:
    # _v2 asks libcuda and fails without it (LibraryNotFound) or on old drivers
    # (FunctionNotFound); v1 then answers from NVML's own table.
    missing = (_LIBRARY_NOT_FOUND, _FUNCTION_NOT_FOUND)
    version = _call("nvmlSystemGetCudaDriverVersion_v2", absent=missing)
    if version is None:
        version = _call("nvmlSystemGetCudaDriverVersion", absent=missing)
    return None if version is None else cuda_version_text(int(version))


def _gpus() -> tuple[Gpu, ...]:
    gpus: list[Gpu] = []
    for index in range(int(_call("nvmlDeviceGetCount"))):
        handle = _call("nvmlDeviceGetHandleByIndex", index, gpu=str(index))
        gpus.extend(_devices_of(index, handle))
    return tuple(gpus)


def _devices_of(index: int, handle: Any) -> list[Gpu]:
    """The GPU at ``index``, or its MIG devices when it is in MIG mode and has any."""
    major, minor = _call("nvmlDeviceGetCudaComputeCapability", handle, gpu=str(index))
    cc = f"{major}.{minor}"
    mig_devices = _mig_devices(index, handle, cc) if _mig_enabled(index, handle) else []
    return mig_devices or [_gpu(index, handle, cc, str(index))]


def _mig_enabled(index: int, handle: Any) -> bool:
    absent = (_NOT_SUPPORTED, _FUNCTION_NOT_FOUND)
    mode = _call("nvmlDeviceGetMigMode", handle, gpu=str(index), absent=absent)
    return mode is not None and int(mode[0]) == _MIG_ENABLED


def _mig_devices(index: int, handle: Any, cc: str) -> list[Gpu]:
    slots = int(_call("nvmlDeviceGetMaxMigDeviceCount", handle, gpu=str(index)))
    devices: list[Gpu] = []
    for slot in range(slots):
        where = f"{index} MIG slot {slot}"
        mig = _call("nvmlDeviceGetMigDeviceHandleByIndex", handle, slot, gpu=where,
                    absent=(_NOT_FOUND, _INVALID_ARGUMENT))
        if mig is not None:
            devices.append(_gpu(index, mig, cc, where))
    return devices


def _gpu(index: int, handle: Any, cc: str, where: str) -> Gpu:
    memory = _call("nvmlDeviceGetMemoryInfo", handle, gpu=where)
    return Gpu(
        index=index,
        name=_text(_call("nvmlDeviceGetName", handle, gpu=where)),
        uuid=_text(_call("nvmlDeviceGetUUID", handle, gpu=where)),
        compute_capability=cc,
        memory_total_mib=int(memory.total) // MIB,
    )


# -- host ----------------------------------------------------------------------


def probe_host() -> tuple[int, int, int]:
    """(CPUs this process may use, memory total MiB, memory available MiB).

    Memory comes from /proc/meminfo and CPUs from the affinity mask, each capped
    by the cgroups this process runs in (a container's, a batch job's): builds
    are sized from them, and the limits are what the OOM killer and the CPU
    throttle enforce (:mod:`gpuenv.probe.cgroups`).
    """
    total, available = _meminfo_mib(Path("/proc/meminfo")) or _sysconf_memory_mib()
    limits = cgroup_limits()
    if limits.memory_max_mib is not None:
        total, available = min(total, limits.memory_max_mib), min(available, limits.memory_max_mib)
    if limits.memory_available_mib is not None:
        available = min(available, limits.memory_available_mib)
    cpus = _cpu_count()
    if limits.cpus is not None:
        cpus = min(cpus, limits.cpus)
    return cpus, total, available


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _meminfo_mib(path: Path) -> tuple[int, int] | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return parse_meminfo(text)


def parse_meminfo(text: str) -> tuple[int, int] | None:
    """(MemTotal, MemAvailable) in MiB from /proc/meminfo text; None without MemTotal.

    Kernels before 3.14 have no MemAvailable: MemFree + Buffers + Cached stands in.
    """
    kib: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            kib[key.strip()] = int(fields[0])
    if "MemTotal" not in kib:
        return None
    available = kib.get("MemAvailable")
    if available is None:
        available = kib.get("MemFree", 0) + kib.get("Buffers", 0) + kib.get("Cached", 0)
    return kib["MemTotal"] // 1024, min(available, kib["MemTotal"]) // 1024


def _sysconf_memory_mib() -> tuple[int, int]:
    def pages(name: str) -> int:
        try:
            return max(int(os.sysconf(name)), 0)
        except (ValueError, OSError, AttributeError):
            return 0

    page = pages("SC_PAGE_SIZE")
    total = pages("SC_PHYS_PAGES") * page // MIB
    available = pages("SC_AVPHYS_PAGES") * page // MIB
    return total, (available or total)
