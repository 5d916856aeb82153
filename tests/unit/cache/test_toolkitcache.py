"""The toolkit cache: CUDA 13 from PyPI wheels, laid out as a CUDA_HOME, once per release (issue 12).

The slow tests install the real wheels with the pip this machine is
configured with (about 280 MB; a few seconds from its package sources), ask
the provisioned nvcc its version and compile a kernel with it, and kill and
race real processes over one cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from gpuenv.cache.toolkitcache import ToolkitCache, WheelInstaller, pinned_wheels, toolkit_home
from gpuenv.env.targetenv import TargetEnv
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
