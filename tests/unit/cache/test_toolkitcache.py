"""The toolkit cache: CUDA 13 from PyPI wheels, laid out as a CUDA_HOME, once per release (issue 12).

The slow tests install the real wheels with the pip this machine is
configured with (about 280 MB; a few seconds from its package sources), ask
the provisioned nvcc its version and compile a kernel with it, and kill and
race real processes over one cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from gpuenv.cache.toolkitcache import ToolkitCache, WheelInstaller, pinned_wheels, toolkit_home
from gpuenv.env.targetenv import TargetEnv
from gpuenv.probe.binaries import read_cuda_code
from gpuenv.probe.toolkitroots import is_toolkit_root
from gpuenv.runner import SubprocessRunner
from gpuenv.setup.installer import make_installer
from gpuenv.setup.toolkit import wheel_installer

KERNEL = """
#include <cstdio>
#include <thrust/device_vector.h>
__global__ void twice(float* x) { x[threadIdx.x] *= 2.0f; }
int main() { float* d = nullptr; cudaMalloc(&d, 4); twice<<<1, 1>>>(d); std::printf("ok\\n"); return 0; }
"""

#: Provision CUDA 13.0 into the cache given as argv[1]; print what happened as JSON.
#: With argv[2], SIGKILL this process at that stage of the provisioning.
USE_SCRIPT = """
import json, os, signal, sys
from gpuenv.setup.installer import make_installer
from gpuenv.runner import SubprocessRunner
from gpuenv.env.targetenv import TargetEnv
from gpuenv.setup.toolkit import wheel_installer
from gpuenv.cache.toolkitcache import ToolkitCache

def checkpoint(stage):
    if len(sys.argv) > 2 and stage == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)

runner = SubprocessRunner()
cache = ToolkitCache(sys.argv[1], runner)
install = wheel_installer(make_installer("pip", runner), TargetEnv.at(sys.prefix))
with cache.use("13.0", install, checkpoint=checkpoint) as got:
    print(json.dumps({"downloaded": got.downloaded, "waited": got.waited, "release": got.toolkit.release}))
"""


#: The environment running these tests, as the target env whose installer provisions.
THIS_ENV = TargetEnv.at(sys.prefix)


def installer(runner: SubprocessRunner | None = None, name: str = "pip") -> WheelInstaller:
    return wheel_installer(make_installer(name, runner or SubprocessRunner()), THIS_ENV)


def refuse(requirements: Sequence[str], target: Path) -> None:
    raise AssertionError(f"downloaded {requirements} again")


def use_in_process(cache_dir: Path, script: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(script), str(cache_dir), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# -- fast: the layout and the pins ---------------------------------------------------------------


def test_the_toolkit_comes_from_nvidias_meta_package_pinned_to_the_release() -> None:
    # nvidia-cuda-nvcc requires crt, runtime and nvvm unpinned (pip alone would bring 13.5's), and
    # nvidia-cuda-cccl of CUDA 13.3 is 13.3.3.3.1: "==13.4.*" of cccl matches nothing. The meta-package
    # cuda-toolkit pins every component of its release (tests/integration/test_toolkit_slow.py installs it).
    (requirement,) = pinned_wheels("13.4")
    req = Requirement(requirement)
    assert req.name == "cuda-toolkit"
    assert {"nvcc", "crt", "cudart", "cccl", "nvvm"} <= req.extras
    assert str(req.specifier) == "==13.4.*"


def test_a_release_lives_at_one_place() -> None:
    assert toolkit_home("/c/toolkits", "13.0") == "/c/toolkits/v1/cuda-13.0"
    assert ToolkitCache("/c/toolkits").home("13.1") == Path("/c/toolkits/v1/cuda-13.1")


def test_an_empty_cache_has_no_toolkits(tmp_path: Path) -> None:
    cache = ToolkitCache(tmp_path / "none")
    assert cache.toolkits() == [] and cache.find("13.0") is None
    assert not (tmp_path / "none").exists(), "looking creates nothing"


# -- slow: the real wheels -----------------------------------------------------------------------------


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_prune_keeps_a_toolkit_in_use_and_removes_it_after(tmp_path: Path) -> None:
    from datetime import timedelta

    cache = ToolkitCache(tmp_path / "toolkits")
    with cache.use("13.0", installer()):
        assert cache.prune(older_than=timedelta(0)) == [], "a setup builds with it"
        assert cache.find("13.0") is not None
    (removed,) = cache.prune(older_than=timedelta(0))
    assert removed.toolkit.version == "13.0"
    assert cache.find("13.0") is None and not cache.home("13.0").exists()


def test_a_cached_wheel_matches_a_toolkit_to_provision_by_its_release() -> None:
    from gpuenv.cache.hits import _same_nvcc
    from gpuenv.plan.hardware import Toolkit

    pending = Toolkit(nvcc="/c/v1/cuda-13.0/bin/nvcc", version="13.0", home="/c/v1/cuda-13.0", source="pypi")
    assert _same_nvcc("13.0.88", pending) and not _same_nvcc("13.1.80", pending)
    system = Toolkit(nvcc="/usr/local/cuda-13.0/bin/nvcc", version="13.0", release="13.0.88")
    assert _same_nvcc("13.0.88", system) and not _same_nvcc("13.0.48", system)
    assert system.nvcc_version == "13.0.88" and pending.nvcc_version == "13.0"


def test_an_offline_machine_gets_exit_3_and_where_a_toolkit_comes_from(tmp_path: Path) -> None:
    from gpuenv.errors import ToolkitError

    # pip with no configuration and no index: what an offline machine's pip finds is nothing.
    offline = SubprocessRunner(env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"})
    cache = ToolkitCache(tmp_path / "toolkits")
    install = installer(offline)
    with pytest.raises(ToolkitError) as info, cache.use("13.0", install):
        pass
    assert info.value.exit_code == 3 and "cuda-toolkit[nvcc,crt,cudart,cccl,nvvm]==13.0.*" in str(info.value)
    assert "cuda-nvcc" in (info.value.hint or "") and "--toolkit PATH" in (info.value.hint or "")
    assert cache.toolkits() == [] and not list((tmp_path / "toolkits" / "v1" / ".tmp").iterdir())


@pytest.mark.slow
def test_uv_provisions_the_same_toolkit_from_the_sources_pip_is_configured_with(tmp_path: Path) -> None:
    cache = ToolkitCache(tmp_path / "toolkits")
    with cache.use("13.0", installer(name="uv")) as got:
        assert got.downloaded and got.toolkit.version == "13.0" and got.toolkit.release.startswith("13.0.")
        assert (Path(got.toolkit.root) / "lib" / "libcudart.so").exists()
