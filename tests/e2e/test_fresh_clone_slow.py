"""The commands this project is known by, typed on a fresh clone: `invoke setup --cuda 12.1` and nox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.support import REPO, clean_env

WANTED = ("torch 2.5.1+cu121 (cu121) with torchvision==0.20.1", "https://download.pytorch.org/whl/cu121",
          "torchvision==0.20.1")


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("fresh") / "gpuenv"
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True, timeout=120)
    return target


@pytest.mark.slow
def test_invoke_setup_cuda_12_1_plans_torch_2_5_1_with_torchvision_0_20_1(clone: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "invoke", "setup", "--cuda", "12.1", "--dry-run"],
                          cwd=clone, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for phrase in WANTED:
        assert phrase in done.stdout, done.stdout


@pytest.mark.slow
def test_nox_gpu_env_cuda_12_1_plans_torch_2_5_1_with_torchvision_0_20_1(clone: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nox", "--envdir", str(tmp_path / "nox"), "-s", "gpu-env", "--",
         "--cuda", "12.1", "--dry-run"],
        cwd=clone, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = done.stdout + done.stderr
    for phrase in WANTED:
        assert phrase in output, output[-3000:]
