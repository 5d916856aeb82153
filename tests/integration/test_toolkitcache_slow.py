"""The slow tests of tests/unit/cache/test_toolkitcache.py.

Real venvs, installs and compiles: tests/integration is the slow tier, by folder.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from gpuenv.cache.toolkitcache import ToolkitCache
from gpuenv.probe.binaries import read_cuda_code
from gpuenv.probe.toolkitroots import is_toolkit_root
from tests.unit.cache.test_toolkitcache import KERNEL, USE_SCRIPT, installer, refuse, use_in_process


def test_provisioned_toolkit_is_a_cuda_home_nvcc_builds_with(tmp_path: Path) -> None:
    cache = ToolkitCache(tmp_path / "toolkits")
    with cache.use("13.0", installer()) as got:
        assert got.downloaded and not got.waited
        home = Path(got.toolkit.root)
        assert home == cache.home("13.0") and got.toolkit.source == "pypi"
        assert got.toolkit.version == "13.0" and got.toolkit.release.startswith("13.0.")
        assert is_toolkit_root(str(home))
        # What torch.utils.cpp_extension and the linker look for.
        assert (home / "lib64").resolve() == (home / "lib").resolve()
        assert (home / "lib" / "libcudart.so").resolve().name.startswith("libcudart.so.13")
        assert (home / "include" / "crt" / "host_defines.h").is_file()
        assert (home / "include" / "cccl" / "thrust").is_dir()
        assert (home / "targets" / "x86_64-linux" / "include" / "cuda_runtime.h").is_file()
        source = tmp_path / "twice.cu"
        source.write_text(KERNEL, encoding="utf-8")
        binary = tmp_path / "twice"
        # No PATH to another toolkit, no CUDA_HOME: the provisioned nvcc finds its own parts.
        done = subprocess.run([got.toolkit.nvcc, "-arch=sm_80", "-cudart", "shared", str(source), "-o",
                               str(binary)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr
        assert read_cuda_code(binary).sass == frozenset({"sm_80"})
    (listed,) = cache.toolkits()
    assert listed.toolkit == got.toolkit and "CUDA 13.0" in listed.summary()
    meta = json.loads((home / "gpuenv-toolkit.json").read_text(encoding="utf-8"))
    assert meta["wheels"]["nvidia-cuda-nvcc"] == got.toolkit.release

    with cache.use("13.0", refuse) as again:
        assert not again.downloaded and again.toolkit == got.toolkit


def test_a_provisioning_killed_half_way_leaves_nothing_usable(tmp_path: Path) -> None:
    script = tmp_path / "use.py"
    script.write_text(textwrap.dedent(USE_SCRIPT), encoding="utf-8")
    cache_dir = tmp_path / "toolkits"
    # Killed with the toolkit laid out and its record written, just before the rename publishes it.
    killed = use_in_process(cache_dir, script, "before-publish")
    killed.communicate(timeout=600)
    assert killed.returncode == -9
    cache = ToolkitCache(cache_dir)
    assert cache.find("13.0") is None and cache.toolkits() == []
    assert not cache.home("13.0").exists()
    assert list((cache_dir / "v1" / ".tmp").iterdir()), "the dead process's temporary directory is left"

    with cache.use("13.0", installer()) as got:
        assert got.downloaded and got.toolkit.release.startswith("13.0.")


def test_concurrent_setups_download_once(tmp_path: Path) -> None:
    script = tmp_path / "use.py"
    script.write_text(textwrap.dedent(USE_SCRIPT), encoding="utf-8")
    cache_dir = tmp_path / "toolkits"
    racers = [use_in_process(cache_dir, script) for _ in range(2)]
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=600)
        assert racer.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["downloaded"] for r in results) == [False, True]
    assert any(r["waited"] for r in results), "the second waited for the first instead of downloading"
    assert results[0]["release"] == results[1]["release"]


def test_prune_keeps_a_toolkit_in_use_and_removes_it_after(tmp_path: Path) -> None:
    from datetime import timedelta

    cache = ToolkitCache(tmp_path / "toolkits")
    with cache.use("13.0", installer()):
        assert cache.prune(older_than=timedelta(0)) == [], "a setup builds with it"
        assert cache.find("13.0") is not None
    (removed,) = cache.prune(older_than=timedelta(0))
    assert removed.toolkit.version == "13.0"
    assert cache.find("13.0") is None and not cache.home("13.0").exists()


def test_uv_provisions_the_same_toolkit_from_the_sources_pip_is_configured_with(tmp_path: Path) -> None:
    cache = ToolkitCache(tmp_path / "toolkits")
    with cache.use("13.0", installer(name="uv")) as got:
        assert got.downloaded and got.toolkit.version == "13.0" and got.toolkit.release.startswith("13.0.")
        assert (Path(got.toolkit.root) / "lib" / "libcudart.so").exists()
