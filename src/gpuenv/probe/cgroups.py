"""What the cgroups this process runs in allow it: memory and CPU time.

A container (Docker, Kubernetes) or a batch job (Slurm, systemd) is held to
its cgroup's limits, which neither /proc/meminfo nor the CPU affinity show: a
Slurm job given 64 GiB on a 1 TiB node sees the node's memory, and a pod given
4 CPUs of a 128-core node sees 128. Builds sized from those numbers are killed
by the OOM killer or throttled, so the probe caps its numbers with these.

Every cgroup from this process's own (``/proc/self/cgroup``) up to the root
bounds it, and the tightest one wins. A folder of that path missing under the
mount (a container whose cgroup namespace makes its own cgroup the root) is
passed over. Both hierarchies are read: v2 (``memory.max``, ``memory.current``,
``cpu.max``) and v1 (``memory.limit_in_bytes``, ``memory.usage_in_bytes``,
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gpuenv.inputs import UnreadableInput, read_input

MIB = 1024 * 1024
#: Where the cgroup file systems are mounted.
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
#: v1's "no limit" is a page-rounded 2^63; anything this large is no limit.
_UNLIMITED = 1 << 60
#: The controllers' folders under a v1 mount (cpu is often joined with cpuacct).
_V1_FOLDERS = {"memory": ("memory",), "cpu": ("cpu", "cpu,cpuacct", "cpuacct,cpu")}


@dataclass(frozen=True)
class CgroupLimits:
    """The tightest limits of this process's cgroups; None where none is set."""

    #: The memory limit, MiB.
    memory_max_mib: int | None = None
    #: What the limit leaves: the limit less what the cgroup uses, its reclaimable file cache not counted.
    memory_available_mib: int | None = None
    #: CPUs' worth of time per period (a quota of 150 ms per 100 ms is 2), rounded up.
    cpus: int | None = None


def cgroup_limits(proc_cgroup: Path = PROC_SELF_CGROUP, root: Path = CGROUP_ROOT) -> CgroupLimits:
    """The limits of the cgroups ``proc_cgroup`` names, read under ``root``."""
    text = _text(proc_cgroup, 64 * 1024) or ""
    # No /proc/self/cgroup to follow: the mount's own files (a container's view) still bound it.
    folders = cgroup_folders(text, root) if text else [(root, "2"), (root / "memory", "1"),
                                                       (root / "cpu", "1")]
    memory: list[tuple[int, int | None]] = []
    cpus: list[int] = []
    for folder, version in folders:
        limit = _memory_limit(folder, version)
        if limit is not None:
            memory.append((limit, _memory_available(folder, version, limit)))
        quota = _cpu_quota(folder, version)
        if quota is not None:
            cpus.append(quota)
    availables = [a for _, a in memory if a is not None]
    return CgroupLimits(
        memory_max_mib=min(m for m, _ in memory) // MIB if memory else None,
        memory_available_mib=min(availables) // MIB if availables else None,
        cpus=min(cpus) if cpus else None,
    )


def cgroup_folders(proc_cgroup: str, root: Path) -> list[tuple[Path, str]]:
    """Each existing cgroup folder that bounds the process ``proc_cgroup`` describes, innermost first,
    with its hierarchy's version ("2" or "1")."""
    found: list[tuple[Path, str]] = []
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[2].startswith("/"):
            continue
        _, controllers, path = parts
        if controllers == "":
            bases = [(root, "2")]
        else:
            names = set(controllers.split(","))
            bases = [(root / folder, "1") for key, folders in _V1_FOLDERS.items() if key in names
                     for folder in folders]
        for base, version in bases:
            if not base.is_dir():
                continue
            for folder in _ancestors(base, path):
                if folder.is_dir() and (folder, version) not in found:
                    found.append((folder, version))
    return found


def _ancestors(base: Path, path: str) -> list[Path]:
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    return [base.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _text(path: Path, limit: int = 4096) -> str | None:
    try:
        return read_input(path, limit=limit, errors="replace")
    except UnreadableInput:
        return None


def _integer(path: Path) -> int | None:
    """The integer a cgroup file holds (``-1`` is v1's "no quota"); None for "max" or anything else."""
    try:
        return int((_text(path) or "").strip())
    except ValueError:
        return None


def _memory_limit(folder: Path, version: str) -> int | None:
    limit = _integer(folder / ("memory.max" if version == "2" else "memory.limit_in_bytes"))
    return limit if limit is not None and 0 < limit < _UNLIMITED else None


def _memory_available(folder: Path, version: str, limit: int) -> int | None:
    used = _integer(folder / ("memory.current" if version == "2" else "memory.usage_in_bytes"))
    if used is None or used < 0:
        return None
    stat = _stat(folder / "memory.stat")
    inactive = stat.get("inactive_file" if version == "2" else "total_inactive_file", 0)
    return max(limit - max(used - inactive, 0), 0)


def _stat(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in (_text(path, 256 * 1024) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            values[key] = int(value.strip())
    return values


def _cpu_quota(folder: Path, version: str) -> int | None:
    if version == "2":
        fields = (_text(folder / "cpu.max") or "").split()
        if len(fields) != 2 or not fields[0].isdigit() or not fields[1].isdigit():
            return None  # "max 100000": no quota
        quota, period = int(fields[0]), int(fields[1])
    else:
        quota_us, period_us = _integer(folder / "cpu.cfs_quota_us"), _integer(folder / "cpu.cfs_period_us")
        if quota_us is None or period_us is None:
            return None
        quota, period = quota_us, period_us
    if quota <= 0 or period <= 0:
        return None
    return max(math.ceil(quota / period), 1)
