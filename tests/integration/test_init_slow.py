"""The slow tests of tests/unit/init/test_init.py.

Real venvs, installs and compiles: tests/integration is the slow tier, by folder.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from gpuenv.init.writer import init_repo
from tests.fakes import clean_env
from tests.unit.init.test_init import FILES, REPO, written


def test_a_fresh_repository_is_bootstrapped_and_its_env_set_up_through_nox(tmp_path: Path) -> None:
    repo = tmp_path / "research"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README.md").write_text("# research\n\nSome experiments.\n")
    result = init_repo(repo, torch_version="2.13.0")
    assert written(result.written, repo) == list(FILES)
    venv = tmp_path / "venv"
    env = clean_env(GPUENV_REQUIREMENT=str(REPO))
    # No route to the PyTorch index here: pip's own configured sources give the CPU wheel.
    done = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(repo / "noxfile.py"), "-s", "gpu-env", "--",
         "--torch-index", "config", "--venv", str(venv)],
        capture_output=True, text=True, check=False, env=env, timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"pip install {REPO}" in done.stderr  # the session installed gpuenv from $GPUENV_REQUIREMENT
    torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True, check=False)
    assert torch.returncode == 0 and torch.stdout.strip() == "2.13.0+cpu", torch.stderr
    assert textwrap.dedent("""\
        [envs.default.torch]
        version = "2.13.0+cpu"
    """) in (repo / "envs" / "gpuenv.lock").read_text()
