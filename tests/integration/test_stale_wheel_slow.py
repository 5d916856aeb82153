"""The stale-wheel trap, shown against the real installers.

pip caches a wheel it built from an sdist under a key that knows nothing of
the torch it was compiled against; after a torch change it hands the old
wheel back. gpuenv's key holds torch's full version, so it rebuilds, and says
why. Both builds of torch-scatter run at once (one core each) to keep CI short.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.fakes import gpuenv
from tests.integration.support import clean_env, env_python, run_in, write_recipe

SCATTER_SUM = (
    "import torch, torch_scatter\n"
    "print(torch_scatter.scatter_sum(torch.tensor([1., 2., 3.]), torch.tensor([0, 1, 0])).tolist())\n"
)


def test_gpuenv_rebuilds_after_a_torch_change_where_pip_hands_back_its_stale_wheel(
    cpu_setup: tuple[Path, object], session_cache: Path, tmp_path: Path
) -> None:
    try:
        _stale_wheel_trap(cpu_setup, session_cache, tmp_path)
    finally:  # two 5 GB CUDA-torch envs
        shutil.rmtree(tmp_path / "gpuenv-214", ignore_errors=True)
        shutil.rmtree(tmp_path / "pip-214", ignore_errors=True)


def _stale_wheel_trap(cpu_setup: tuple[Path, object], session_cache: Path, tmp_path: Path) -> None:
    built_against_213, _ = cpu_setup  # torch 2.13.0+cpu with torch-scatter built by gpuenv
    pip_cache = tmp_path / "pip-cache"
    pip_env = clean_env(PIP_CACHE_DIR=str(pip_cache))

    # What users do today, step 1: build torch-scatter against torch 2.13 with pip (fills pip's cache).
    pip_build = subprocess.Popen(
        [str(env_python(built_against_213)), "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "pip-wheels"), "torch-scatter==2.1.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=pip_env,
    )
    # Meanwhile gpuenv sets up an env with another torch (2.14.1) and the same torch-scatter.
    recipe = write_recipe(tmp_path / "recipe", "scatter214", """
        [torch]
        version = "2.14.1"

        [[extensions]]
        requirement = "torch-scatter==2.1.2"
    """)
    gpuenv_venv = tmp_path / "gpuenv-214"
    done = gpuenv(*["setup", "-r", str(recipe), "--venv", str(gpuenv_venv), "--torch-index", "config",
                   "--cache-dir", str(session_cache)], env=clean_env())
    pip_out, _ = pip_build.communicate(timeout=1800)
    assert pip_build.returncode == 0, pip_out

    assert done.returncode == 0, done.stderr
    assert "cache miss" in done.stderr
    assert "torch 2.13.0+cpu → 2.14.1" in done.stderr, "the miss names torch as the difference"
    assert "built and cached" in done.stderr
    assert run_in(gpuenv_venv, SCATTER_SUM).strip() == "[4.0, 2.0]"

    # What users do today, step 2: the torch 2.14.1 env, then pip install --no-build-isolation.
    pip_venv = tmp_path / "pip-214"
    subprocess.run([sys.executable, "-m", "venv", str(pip_venv)], check=True)
    subprocess.run([str(env_python(pip_venv)), "-m", "pip", "install", "-q", "torch==2.14.1", "setuptools"],
                   check=True, env=pip_env)
    reuse = subprocess.run(
        [str(env_python(pip_venv)), "-m", "pip", "install", "--no-build-isolation", "torch-scatter==2.1.2"],
        capture_output=True, text=True, env=pip_env, check=False,
    )
    assert reuse.returncode == 0, reuse.stdout + reuse.stderr
    # The evidence: pip did not build for torch 2.14.1; it installed the wheel it built for 2.13.0.
    assert "Building wheel for torch-scatter" not in reuse.stdout
    assert str(pip_cache) in reuse.stdout or "cached" in reuse.stdout.lower(), reuse.stdout
