"""The slow tests of tests/unit/test_readme.py.

Real venvs, installs and compiles: tests/integration is the slow tier, by folder.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_readme import REPO, SLOW, _main_command, sandbox, with_dry_run


@pytest.mark.parametrize("command", SLOW)
def test_every_nox_and_invoke_command_of_the_readme_runs(command: str, tmp_path: Path) -> None:
    work, env = sandbox(tmp_path)
    words = shlex.split(command)
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if words[0] == "nox":
        session = words[words.index("-s") + 1]
        extra = words[words.index("--") + 1:] if "--" in words else []
        args = [sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"),
                "--envdir", str(tmp_path / "nox"), "-s", session]
        if session == "gpu-env":
            args += ["--", *with_dry_run(extra)]
        elif session.startswith("gpu-"):
            args += ["--", *extra]
    else:
        assert words[0] == "invoke", command
        args = [sys.executable, "-m", "invoke", "--search-root", str(REPO), *with_dry_run(words[1:])]
    done = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_the_main_command_for_real_on_a_machine_without_the_pytorch_index(tmp_path: Path) -> None:
    """The README's first line, as its mirrors section says to run it here: the env imports torch."""
    work, env = sandbox(tmp_path)
    env["GPUENV_TORCH_INDEX"] = "config"
    venv = tmp_path / "venv"
    try:
        _main_command(work, env, venv, tmp_path)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # 5.5 GB
