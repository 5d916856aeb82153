"""The seed failure and its fix, for real: flash-attn 2.8.3.post2 from its sdist, in a venv with torch.

Its setup.py imports torch (and packaging) and it has no pyproject.toml. Under
build isolation the backend runs in a fresh env without torch and fails; built
by gpuenv, in the target env's interpreter, it builds and installs. With the CUDA
build skipped (no GPU needed) the wheel holds no compiled module, so the check is
the installed distribution, not ``import flash_attn``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuenv.errors import CommandError
from gpuenv.hints import hint_for
from gpuenv.setup.builder import build_wheel, read_build_system
from gpuenv.setup.installer import InstallOptions, PipInstaller
from gpuenv.setup.sources import fetch_source
from tests.unit.setup.conftest import TORCH_VERSION, TorchEnv

FLASH_ATTN = "flash-attn==2.8.3.post2"
#: Skip the CUDA kernels (no GPU, CPU torch) and never download a prebuilt wheel.
BUILD_ENV = {"FLASH_ATTENTION_SKIP_CUDA_BUILD": "TRUE", "FLASH_ATTENTION_FORCE_BUILD": "TRUE"}


def test_flash_attn_fails_under_isolation_and_builds_without_it(torch_env: TorchEnv, tmp_path: Path) -> None:
    env, runner = torch_env.env, torch_env.runner.with_log(tmp_path / "seed.log")

    source = fetch_source(FLASH_ATTN, env=env, runner=runner, workdir=tmp_path / "work", build_env=BUILD_ENV)
    assert (source.name, source.version, source.kind) == ("flash-attn", "2.8.3.post2", "index")
    assert source.archive is not None and source.archive.name == "flash_attn-2.8.3.post2.tar.gz"
    assert read_build_system(source.directory).legacy  # no pyproject.toml

    # The seed failure: the same sdist under build isolation.
    isolated = [str(env.python), "-m", "pip", "wheel", "--no-deps", "--use-pep517",
                "-w", str(tmp_path / "isolated"), str(source.archive)]
    with pytest.raises(CommandError) as failed:
        runner(isolated, extra_environ=BUILD_ENV)
    log = (tmp_path / "seed.log").read_text()
    assert "No module named 'torch'" in log or "No module named 'packaging'" in log
    hint = hint_for(log)
    assert hint is not None and "isolation" in hint
    assert failed.value.returncode != 0

    # The fix: built in the target env's interpreter through pyproject-hooks.
    phases: list[str] = []
    wheel = build_wheel(
        source.directory, env=env, installer=PipInstaller(runner), runner=runner, build_env=BUILD_ENV,
        out_dir=tmp_path / "wheels", name="flash-attn", log_path=tmp_path / "flash-attn.log",
        on_phase=phases.append,
    )
    assert wheel.name.startswith("flash_attn-2.8.3.post2-") and wheel.suffix == ".whl"
    assert "compiling" in phases

    torch_pin = [f"torch=={TORCH_VERSION}"]
    PipInstaller(runner).install(env, [str(wheel)], InstallOptions(no_deps=True, constraints=torch_pin))
    installed = env.installed(runner)
    assert installed["flash-attn"] == "2.8.3.post2"
    assert installed["torch"] == TORCH_VERSION  # untouched
