"""Helpers of the end-to-end tests: run the real gpuenv command, write recipes, look into envs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CUDA_EXT = REPO / "tests" / "data" / "cuda_ext"
TINY_EXT = REPO / "tests" / "data" / "tiny_ext"


def gpuenv(args: Sequence[str], *, cwd: Path | None = None, timeout: float = 1800,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `gpuenv` command (python -m gpuenv) and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "gpuenv", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def write_recipe(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def env_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def run_in(venv: Path, code: str) -> str:
    done = subprocess.run([str(env_python(venv)), "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any GPUENV_ setting (the tests say what they want)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUENV_")}
    env.update(extra)
    return env
