"""The limits of a container's or a batch job's cgroups, read from cgroup trees made in the test's folder
(the machine's own /sys/fs/cgroup holds whatever this CI runs under)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpuenv.probe import host
from gpuenv.probe.cgroups import CgroupLimits, cgroup_folders, cgroup_limits

GIB = 1 << 30


def _files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _limits(tmp_path: Path, proc: str, files: dict[str, str]) -> CgroupLimits:
    root = tmp_path / "cgroup"
    root.mkdir()
    _files(root, files)
    (tmp_path / "proc-cgroup").write_text(proc)
    return cgroup_limits(tmp_path / "proc-cgroup", root)


def test_a_slurm_jobs_limit_bounds_its_steps_though_the_node_has_more(tmp_path: Path) -> None:
    job = "system.slice/slurmstepd.scope/job_42"
    limits = _limits(tmp_path, f"0::/{job}/step_0/user/task_0\n", {
        f"{job}/memory.max": f"{64 * GIB}\n",
        f"{job}/memory.current": f"{10 * GIB}\n",
        f"{job}/memory.stat": f"anon {6 * GIB}\nfile {4 * GIB}\ninactive_file {4 * GIB}\n",
        f"{job}/step_0/user/task_0/memory.max": "max\n",
        f"{job}/step_0/user/task_0/cpu.max": "max 100000\n",
    })
    # The page cache the job's files fill is reclaimable: what the limit leaves does not count it.
    assert limits == CgroupLimits(memory_max_mib=64 * 1024, memory_available_mib=(64 - 6) * 1024, cpus=None)


def test_a_containers_own_cgroup_is_the_root_of_its_namespace(tmp_path: Path) -> None:
    limits = _limits(tmp_path, "0::/\n", {"memory.max": f"{8 * GIB}\n", "cpu.max": "400000 100000\n"})
    assert limits.memory_max_mib == 8 * 1024 and limits.cpus == 4


def test_cgroup_v1_reads_the_controllers_folders_and_passes_over_paths_not_mounted(tmp_path: Path) -> None:
    # Docker on cgroup v1: /proc/self/cgroup names the host's path, the container sees its own at the mount.
    proc = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"
    limits = _limits(tmp_path, proc, {
        "memory/memory.limit_in_bytes": f"{2 * GIB}\n",
        "memory/memory.usage_in_bytes": f"{GIB}\n",
        "memory/memory.stat": f"cache {GIB // 2}\ntotal_inactive_file {GIB // 4}\n",
        "cpu,cpuacct/cpu.cfs_quota_us": "150000\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    })
    assert limits == CgroupLimits(memory_max_mib=2048, memory_available_mib=2048 - 768, cpus=2)


def test_the_tightest_of_nested_limits_wins(tmp_path: Path) -> None:
    limits = _limits(tmp_path, "0::/outer/inner\n", {
        "outer/memory.max": f"{4 * GIB}\n", "outer/cpu.max": "200000 100000\n",
        "outer/inner/memory.max": f"{16 * GIB}\n", "outer/inner/cpu.max": "800000 100000\n",
    })
    assert limits.memory_max_mib == 4 * 1024 and limits.cpus == 2


@pytest.mark.parametrize("proc", ["", "garbage\n", "0::relative/path\n", "0::/../../etc\n"])
def test_no_limit_and_unreadable_answers_are_no_limit(tmp_path: Path, proc: str) -> None:
    limits = _limits(tmp_path, proc, {
        "memory/memory.limit_in_bytes": "9223372036854771712\n",  # v1's "unlimited"
        "cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n",
        "memory.max": "max\n", "cpu.max": "max 100000\n",
    })
    assert limits == CgroupLimits()


def test_a_limit_file_that_is_not_a_regular_file_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    os.mkfifo(root / "memory.max")  # reading it would wait forever
    (tmp_path / "proc-cgroup").write_text("0::/\n")
    assert cgroup_limits(tmp_path / "proc-cgroup", root) == CgroupLimits()


def test_folders_are_listed_innermost_first_once_each(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert cgroup_folders("0::/a/b\n0::/a/b\n", tmp_path) == [
        (tmp_path / "a" / "b", "2"), (tmp_path / "a", "2"), (tmp_path, "2")]


def test_the_probe_caps_memory_and_cpus_by_the_cgroups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "_meminfo_mib", lambda path: (1024 * 1024, 900 * 1024))
    monkeypatch.setattr(host, "_cpu_count", lambda: 128)
    monkeypatch.setattr(host, "cgroup_limits",
                        lambda: CgroupLimits(memory_max_mib=65536, memory_available_mib=40000, cpus=8))
    assert host.probe_host() == (8, 65536, 40000)
    monkeypatch.setattr(host, "cgroup_limits", lambda: CgroupLimits())
    assert host.probe_host() == (128, 1024 * 1024, 900 * 1024)
