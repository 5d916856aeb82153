"""The commands this project is known by, typed on a fresh clone: `invoke setup --cuda 12.1` and nox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.support import REPO, clean_env

WANTED = ("torch 2.5.1+cu121 (cu121) with torchvision==0.20.1", "https://download.pytorch.org/whl/cu121",
          "torchvision==0.20.1")


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("fresh") / "gpuenv"
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True, timeout=120)
    return target


def test_invoke_setup_cuda_12_1_plans_torch_2_5_1_with_torchvision_0_20_1(clone: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "invoke", "setup", "--cuda", "12.1", "--dry-run"],
                          cwd=clone, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for phrase in WANTED:
        assert phrase in done.stdout, done.stdout


def test_nox_gpu_env_cuda_12_1_plans_torch_2_5_1_with_torchvision_0_20_1(clone: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nox", "--envdir", str(tmp_path / "nox"), "-s", "gpu-env", "--",
         "--cuda", "12.1", "--dry-run"],
        cwd=clone, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = done.stdout + done.stderr
    for phrase in WANTED:
        assert phrase in output, output[-3000:]


def _venv(where: Path, *packages: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    if packages:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True, timeout=600,
                       env=clean_env())
    return python


def _dependencies() -> list[str]:
    """gpuenv's own runtime requirements, as its pyproject.toml declares them."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with (REPO / "pyproject.toml").open("rb") as file:
        return list(tomllib.load(file)["project"]["dependencies"])


def test_invoke_in_a_python_without_gpuenv_runs_the_checkouts_gpuenv_in_process(
    clone: Path, tmp_path: Path
) -> None:
    """invoke and gpuenv's dependencies, not gpuenv: the tasks run the clone's src/ in invoke's process."""
    python = _venv(tmp_path / "tasks-env", "invoke", *_dependencies())
    assert subprocess.run([str(python), "-c", "import gpuenv"], capture_output=True).returncode != 0
    done = subprocess.run([str(python), "-m", "invoke", "setup", "--cuda", "12.1", "--dry-run"],
                          cwd=clone, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for phrase in WANTED:
        assert phrase in done.stdout, done.stdout


def test_invoke_alone_says_what_to_install(clone: Path, tmp_path: Path) -> None:
    python = _venv(tmp_path / "invoke-only", "invoke")
    done = subprocess.run([str(python), "-m", "invoke", "setup", "--cuda", "12.1", "--dry-run"],
                          cwd=clone, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: gpuenv needs the module 'packaging'" in done.stderr, done.stderr
    install = f"{python} -m pip install -e {clone}"
    assert f"hint: install gpuenv with its dependencies into that Python: {install}" in done.stderr
    assert not (clone / ".venv").exists()
