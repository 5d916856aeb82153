"""Shared fixtures of the setup-step tests: a real torch venv (the fake runner is tests.fakes').

The slow tier shares ONE real venv with the CPU torch (installed through
PipInstaller into a venv TargetEnv.ensure made) for the whole session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gpuenv.env.targetenv import TargetEnv
from gpuenv.runner import SubprocessRunner
from gpuenv.setup.installer import PipInstaller

TORCH = "torch==2.13.0"
TORCH_VERSION = "2.13.0+cpu"


@dataclass(frozen=True)
class TorchEnv:
    env: TargetEnv
    runner: SubprocessRunner
    root: Path


@pytest.fixture(scope="session")
def torch_env(tmp_path_factory: pytest.TempPathFactory) -> TorchEnv:
    """A venv holding the CPU torch 2.13.0, shared by the slow tests (about 25 s)."""
    root = tmp_path_factory.mktemp("torch-env")
    runner = SubprocessRunner(log_path=root / "setup.log")
    env, created = TargetEnv.ensure(root / "venv", runner)
    assert created
    PipInstaller(runner).install(env, [TORCH])
    return TorchEnv(env, runner, root)
