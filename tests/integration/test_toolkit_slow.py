"""`gpuenv setup` on a machine without a CUDA toolkit: CUDA 13.0 from PyPI, provisioned once (issue 12).

The system toolkit is hidden from gpuenv, as on a container without one: a
private mount namespace (``unshare -m``, root only) with an empty tmpfs over
every ``/usr/local/cuda-*`` and ``/opt/cuda*``, no CUDA_HOME or CUDA_PATH (the
``/usr/local/bin/nvcc`` wrapper on PATH then points at nothing). Then the
tests' CUDA extension is set up against the cu130 torch (5.4 GB) for 8.0:
the first setup is killed while it provisions the toolkit, the next one
completes, and a setup of a fresh env downloads nothing.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuenv.cache.toolkitcache import ToolkitCache
from gpuenv.probe.binaries import find_cuobjdump, list_elf, read_cuda_code
from tests.integration.support import CUDA_EXT, REPO, clean_env, run_in, write_recipe

HIDDEN = sorted({*glob.glob("/usr/local/cuda-*"), *glob.glob("/opt/cuda*")})


def _can_hide_toolkits() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or not HIDDEN:
        return False
    done = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {shlex.quote(HIDDEN[0])}"],
                          capture_output=True, check=False)
    return done.returncode == 0


needs_unshare = pytest.mark.skipif(not _can_hide_toolkits(),
                                   reason="hiding the system toolkit needs root, unshare -m and a toolkit")


def without_toolkit(args: list[str]) -> list[str]:
    """``gpuenv ARGS`` in a mount namespace where every system toolkit directory is empty."""
    mounts = " && ".join(f"mount -t tmpfs none {shlex.quote(d)}" for d in HIDDEN if os.path.isdir(d))
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "gpuenv", *args])
    return ["unshare", "-m", "sh", "-c", f"{mounts} && exec {command}"]


def setup_env() -> dict[str, str]:
    env = clean_env()
    for key in ("CUDA_HOME", "CUDA_PATH"):
        env.pop(key, None)
    return env


def extension_sos(venv: Path) -> list[Path]:
    site = next((venv / "lib").glob("python3*/site-packages"))
    return sorted(site.glob("gpuenv_test_cuda_ext*/**/*.so")) + sorted(site.glob("gpuenv_test_cuda_ext*.so"))


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(without_toolkit(args), capture_output=True, text=True, env=setup_env(),
                          cwd=REPO, timeout=1800, stdin=subprocess.DEVNULL)


@needs_unshare
def test_setup_without_a_toolkit_provisions_cuda_13_from_pypi(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "cudaext", f"""
        [torch]
        version = "2.14.1"

        [[extensions]]
        requirement = "{CUDA_EXT}"
    """)
    cache_dir = tmp_path / "cache"
    toolkits = ToolkitCache(cache_dir / "toolkits")
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["-r", str(recipe), "--arch", "8.0", "--cache-dir", str(cache_dir)]
    try:
        planned = run(["plan", *common])
        assert planned.returncode == 0, planned.stdout + planned.stderr
        assert "CUDA 13.0 from PyPI (provisioned into the toolkit cache)" in planned.stdout
        assert "/usr/local/cuda" not in planned.stdout, "the system toolkit is hidden"

        # Killed while provisioning: the toolkit step has made its temporary directory.
        # With pip: uv installs the toolkit's wheels from its cache in well under a second.
        with_pip = ["setup", *common, "--venv", str(first), "--installer", "pip"]
        killed = subprocess.Popen(without_toolkit(with_pip), env=setup_env(), cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        temps = cache_dir / "toolkits" / "v1" / ".tmp"
        deadline = time.monotonic() + 900
        while not list(temps.glob("cuda-13.0-*")) and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert killed.poll() is None, "setup ended before it provisioned the toolkit"
        time.sleep(0.3)  # pip is under way
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        assert toolkits.find("13.0") is None and not toolkits.home("13.0").exists()

        done = run(["setup", *common, "--venv", str(first)])
        assert done.returncode == 0, done.stdout + done.stderr
        assert "downloaded and provisioned" in done.stderr
        provisioned = toolkits.find("13.0")
        assert provisioned is not None
        sos = extension_sos(first)
        assert sos, "the extension's compiled module is installed"
        site = next((first / "lib").glob("python3*/site-packages"))
        cuobjdump = find_cuobjdump(extra_dirs=[site])
        assert cuobjdump is not None, "triton in the CUDA torch env ships cuobjdump"
        assert {str(s) for so in sos for s in list_elf(so, cuobjdump)} == {"sm_80"}
        assert read_cuda_code(sos[0]).sass == frozenset({"sm_80"})
        cuda = run_in(first, "import torch, gpuenv_test_cuda_ext; print(torch.version.cuda)")
        assert cuda.strip() == "13.0"
        shutil.rmtree(first)  # 5.4 GB

        again = run(["setup", *common, "--venv", str(second)])
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already in the toolkit cache" in again.stderr
        assert "downloaded and provisioned" not in again.stderr
        assert "cached" in again.stderr and "built and cached" not in again.stderr
        again_found = toolkits.find("13.0")
        assert again_found is not None
        assert (again_found.toolkit, again_found.created) == (provisioned.toolkit, provisioned.created), \
            "the same toolkit, not a new one"
    finally:
        for venv in (first, second):
            shutil.rmtree(venv, ignore_errors=True)
