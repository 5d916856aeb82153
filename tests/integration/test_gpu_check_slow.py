"""benchmarks/gpu_check.py for real, slow: made offline from --prepare's wheels, and its CUDA build.

- The offline path the README gives: the wheels --prepare downloads, a venv made from them alone
  (no index, no configured sources), and `nox -s gpu-check` run from it.
- The build and .so checks of a GPU node, here with --arch 9.0 against a CUDA torch: the test
  extension built through gpuenv's builder, its fatbin and cuobjdump's view of it, a kernel
  compiled at run time under gpuenv's runtime .pth, doctor; the kernels themselves need a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpuenv.probe.toolkitroots import find_toolkits

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
TORCH_CUDA = "2.14.1"  # the cu130 build PyPI serves; the toolkit on this machine is 13.0


def offline_environ() -> dict[str, str]:
    """No configured package source at all: pip sees only what a command line gives it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "GPUENV_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def tree_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def checks_of(out: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {c["name"]: c for c in data["checks"]}


def test_prepared_wheels_make_a_small_venv_that_runs_the_check_offline(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prepared = subprocess.run([sys.executable, str(SCRIPT), "--prepare", str(wheels),
                               "--python-versions", version], capture_output=True, text=True, timeout=900,
                              check=False)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    assert "--no-index --find-links" in prepared.stdout

    venv = tmp_path / "venv"
    env = offline_environ()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=env)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-index", "--find-links", str(wheels),
                              "-e", str(REPO), "nox"], capture_output=True, text=True, env=env, timeout=600,
                             check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    assert tree_mib(venv) < 64, f"the venv is {tree_mib(venv):.0f} MiB"

    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run([str(venv / "bin" / "nox"), "-f", str(REPO / "noxfile.py"), "-s", "gpu-check", "--",
                           "--python", str(venv / "bin" / "python")],
                          capture_output=True, text=True, env=env, cwd=work, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    reports = list(work.glob("benchmarks/gpu/*/report.json"))
    assert len(reports) == 1, "the report goes under the directory nox was started from"
    data = json.loads(reports[0].read_text(encoding="utf-8"))
    assert data["gpuenv"]["python"].startswith(str(venv)), "the check ran in nox's own Python"
    assert {c["name"]: c["verdict"] for c in data["checks"]}["probe"] == "pass"


@pytest.fixture
def cuda_torch_env(tmp_path: Path) -> Iterator[Path]:
    if not any(t.version.startswith("13.") for t in find_toolkits()):
        pytest.skip("no CUDA 13 toolkit to build against torch's CUDA 13.0")
    venv = tmp_path / "torch-env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"torch=={TORCH_CUDA}", "setuptools",
                    "ninja"], check=True, timeout=1800)
    yield venv
    shutil.rmtree(venv, ignore_errors=True)  # 5.5 GB


def test_the_extension_is_built_for_exactly_the_given_arch_and_the_torch_env_is_unchanged(
    cuda_torch_env: Path, tmp_path: Path
) -> None:
    site = next(cuda_torch_env.glob("lib/python3*/site-packages"))
    before = sorted(p.name for p in site.iterdir())
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--arch", "9.0",
                           "--python", str(cuda_torch_env / "bin" / "python")],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    found = checks_of(out)
    assert found["torch env"]["verdict"] == "pass" and "CUDA 13.0" in found["torch env"]["seen"]
    assert found["cuda_ext: build"]["verdict"] == "pass"
    assert "TORCH_CUDA_ARCH_LIST=9.0" in found["cuda_ext: build"]["expected"]
    assert found["cuda_ext: .so archs (fatbin)"]["seen"] == "SASS sm_90; PTX -; LTO -"
    # The CUDA torch wheel brings triton, and triton brings cuobjdump.
    cuobjdump = found["cuda_ext: .so archs (cuobjdump)"]
    assert (cuobjdump["verdict"], cuobjdump["seen"]) == ("pass", "sm_90")
    runtime = found["runtime .pth: cpp_extension.load"]
    assert runtime["verdict"] == "pass" and "TORCH_CUDA_ARCH_LIST=9.0" in runtime["seen"], runtime
    assert "arch_list() 900" in runtime["seen"]
    for name in ("cuda_ext: kernels vs torch", "runtime .pth: kernel vs torch"):
        assert found[name]["verdict"] == "skip" and "no GPU here" in found[name]["reason"]
    for name in ("doctor: torch env", "doctor: scratch env"):
        assert found[name]["verdict"] == "pass", found[name]
    assert "fail" not in {c["verdict"] for c in found.values()}
    assert sorted(p.name for p in site.iterdir()) == before, "the check installs nothing into the torch env"
    assert (out / "logs" / "build.log").stat().st_size > 0
