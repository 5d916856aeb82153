"""Shared fixtures of the setup-step tests: a hand-written fake runner and a real torch venv.

The fake runner subclasses nothing and runs nothing: it records each command and
answers from a table, for the tests of command lines and of output parsing. The
slow tier shares ONE real venv with the CPU torch (installed through
PipInstaller into a venv TargetEnv.ensure made) for the whole session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gpuenv.env.targetenv import TargetEnv
from gpuenv.runner import SubprocessRunner
from gpuenv.setup.installer import PipInstaller

TORCH = "torch==2.13.0"
TORCH_VERSION = "2.13.0+cpu"


@dataclass
class Call:
    cmd: list[str]
    cwd: str | None
    extra_environ: dict[str, str]


@dataclass
class FakeRunner:
    """Records commands; ``answer`` maps a command to its output (default: "")."""

    answer: Callable[[list[str]], str] = lambda cmd: ""
    calls: list[Call] = field(default_factory=list)

    def __call__(
        self, cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
    ) -> str:
        self.calls.append(Call([str(c) for c in cmd], cwd, dict(extra_environ or {})))
        return self.answer([str(c) for c in cmd])


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
