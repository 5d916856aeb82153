"""Session-scoped envs shared by every slow test (all of tests/integration, one conftest: one of each).

One CPU-torch env (torch 2.13.0 + a real torch-scatter sdist build + flash-attn)
and one CUDA-torch env (torch 2.14.1 cu130 + the tests' own CUDA extension),
each made once by `gpuenv setup`; and the fixtures of the unit folders whose
slow tests live here (a CPU-torch venv made by the installer, the doctor's
probe envs and its sm_90 library), made once per session too.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import gpuenv
from tests.integration.support import CUDA_EXT, clean_env, write_recipe
from tests.unit.doctor.conftest import bare_venv, nvcc, sm90_so, torch_venv  # noqa: F401 (fixtures)
from tests.unit.setup.conftest import torch_env  # noqa: F401 (a fixture)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel cache the session's setups share (never the user's own)."""
    return tmp_path_factory.mktemp("wheel-cache")


@pytest.fixture(scope="session")
def cpu_setup(
    tmp_path_factory: pytest.TempPathFactory, session_cache: Path
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`gpuenv setup` of torch 2.13.0 (CPU) + torch-scatter 2.1.2 and flash-attn from their sdists."""
    root = tmp_path_factory.mktemp("cpu-setup")
    recipe = write_recipe(root, "graph", """
        [torch]
        version = "2.13.0"

        [[extensions]]
        requirement = "torch-scatter==2.1.2"

        [[extensions]]
        requirement = "flash-attn==2.8.3.post2"
        env = { FLASH_ATTENTION_SKIP_CUDA_BUILD = "TRUE" }
    """)
    venv = root / "venv"
    # No route to the PyTorch index here: use the installer's own sources (README, "Mirrors").
    done = gpuenv(*["setup", "-r", str(recipe), "--venv", str(venv), "--torch-index", "config",
                   "--cache-dir", str(session_cache)], env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return venv, done


@pytest.fixture(scope="session")
def cuda_recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cuda-recipe")
    return write_recipe(root, "cudaext", f"""
        [torch]
        version = "2.14.1"

        [[extensions]]
        requirement = "{CUDA_EXT}"
    """)


@pytest.fixture(scope="session")
def cuda_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    venv = tmp_path_factory.mktemp("cuda-setup") / "venv"
    yield venv
    shutil.rmtree(venv, ignore_errors=True)  # 5.4 GB: the disk of a CI machine is not endless
