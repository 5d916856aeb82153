"""The slow tests of tests/unit/setup/test_installer.py.

Real venvs, installs and compiles: tests/integration is the slow tier, by folder.
"""

from __future__ import annotations

from pathlib import Path

from gpuenv.env.pipconfig import parse_config_list, pip_sources
from gpuenv.env.targetenv import TargetEnv
from gpuenv.errors import StepError
from gpuenv.setup.installer import (
    InstallOptions,
    PipInstaller,
    UvInstaller,
    find_uv,
)
from tests.unit.setup.conftest import TorchEnv


def test_uv_installs_with_the_sources_pip_is_configured_with(torch_env: TorchEnv, tmp_path: Path) -> None:
    runner = torch_env.runner
    try:
        uv_bin = find_uv()
    except StepError:
        PipInstaller(runner).install(torch_env.env, ["uv"])
        uv_bin = torch_env.env.bin_dir / "uv"
    env, _ = TargetEnv.ensure(tmp_path / "venv", runner)
    uv = UvInstaller(runner, uv=uv_bin)
    [cmd] = uv.commands(env, ["six"])
    configured = pip_sources(parse_config_list(runner([str(env.python), "-m", "pip", "config", "list"])))
    for url in configured.extra_index_urls:
        assert url in cmd
    uv.install(env, ["six"], InstallOptions(constraints=["six>=1.16"]))
    assert "six" in env.installed(runner)
