"""`gpuenv setup` failures that must happen before anything is installed (seconds, no torch)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from gpuenv.lock.lockfile import read_lock, write_lock
from tests.fakes import gpuenv
from tests.integration.support import CUDA_EXT, clean_env, write_recipe


def test_mismatched_toolkit_stops_before_any_build_with_exit_3(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "cu12", f"""
        [torch]
        version = "2.13.*"

        [[extensions]]
        requirement = "{CUDA_EXT}"
    """)
    venv = tmp_path / "venv"
    # This machine has only nvcc 13.0; a cu126 plan needs nvcc 12.x.
    done = gpuenv(*["setup", "-r", str(recipe), "--venv", str(venv), "--gpu", "H100", "--cuda", "12.6"],
                  env=clean_env())
    assert done.returncode == 3, done.stderr
    assert "needs nvcc 12.x" in done.stderr
    assert "found: nvcc 13.0" in done.stderr
    assert "hint:" in done.stderr
    assert "Traceback" not in done.stderr
    assert not venv.exists(), "nothing may be created before the plan holds"


def test_unreachable_index_fails_fast_with_the_mirror_hint(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "cpu", """
        [torch]
        version = "2.13.0"
    """)
    venv = tmp_path / "venv"
    template = "http://gpuenv-unreachable.invalid/whl/{variant}"
    started = time.monotonic()
    done = gpuenv(*["setup", "-r", str(recipe), "--venv", str(venv), "--torch-index", template],
                  env=clean_env())
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "http://gpuenv-unreachable.invalid/whl/cpu" in done.stderr
    assert "--torch-index" in done.stderr and "GPUENV_TORCH_INDEX" in done.stderr
    assert "Traceback" not in done.stderr
    assert elapsed < 30, f"took {elapsed:.0f} s: the preflight must not retry for minutes"
    assert not venv.exists(), "the preflight runs before the env is created"


def test_the_index_variable_is_the_same_as_the_option(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "cpu", """
        [torch]
        version = "2.13.0"
    """)
    done = gpuenv(*["setup", "-r", str(recipe), "--venv", str(tmp_path / "venv")],
                  env=clean_env(GPUENV_TORCH_INDEX="http://gpuenv-unreachable.invalid/{variant}"))
    assert done.returncode == 1
    assert "http://gpuenv-unreachable.invalid/cpu" in done.stderr


def test_dry_run_lists_the_commands_in_order_and_changes_nothing(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "graph", """
        [torch]
        version = "2.13.0"
        packages = ["numpy"]

        [[extensions]]
        requirement = "torch-scatter==2.1.2"

        [packages]
        requirements = ["einops"]
    """)
    venv = tmp_path / "venv"
    done = gpuenv(*["setup", "-r", str(recipe), "--venv", str(venv), "--dry-run"], env=clean_env())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    text = done.stdout

    def first(fragment: str) -> int:
        return next(i for i, line in enumerate(lines) if fragment in line)

    # The env is made by the installer: uv here (the test extra installs it), else python -m venv.
    assert first("https://download.pytorch.org/whl/cpu") < first(" venv ") < first("torch==2.13.0")
    assert first("torch==2.13.0") < first("torch-scatter") < first("einops")
    assert "FORCE_ONLY_CPU=1" in text
    assert not venv.exists()


def test_locked_refuses_gpus_the_lock_was_not_built_for(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "llm", """
        [torch]
        version = "2.14.1"
    """)
    (tmp_path / "gpuenv.lock").write_text("""
lock-version = 1

[envs.llm]
recipe = "llm.toml"
recipe-sha256 = "0"
fingerprint = "0"
variant = "cu130"
cuda = "13.0"
index-url = ""
torch-requirement = "torch==2.14.*"
arch-list = ["9.0"]
toolkit = "13.0"
python = "cp311"
platform = "linux_x86_64"

[envs.llm.torch]
version = "2.14.1"
cuda = "13.0"
cxx11-abi = true

[envs.llm.distributions]
torch = "2.14.1"
""")
    # Written as gpuenv writes it (with its digest): a hand-made lock would be refused as edited.
    write_lock(tmp_path / "gpuenv.lock", read_lock(tmp_path / "gpuenv.lock")["llm"])
    venv = tmp_path / "venv"
    done = gpuenv(*["setup", "-r", str(recipe), "--venv", str(venv), "--locked", "--gpu", "A100"],
                  env=clean_env())
    assert done.returncode == 3, done.stderr
    assert "built for 9.0" in done.stderr and "A100 (8.0)" in done.stderr
    assert not venv.exists()


def test_the_installer_makes_the_env_and_uv_gets_pips_sources(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "cpu", """
        [torch]
        version = "2.13.0"
    """)
    venv = tmp_path / "venv"
    args = ["setup", "-r", str(recipe), "--venv", str(venv), "--torch-index", "config", "--dry-run"]
    by_pip = gpuenv(*[*args, "--installer", "pip"], env=clean_env())
    by_uv = gpuenv(*[*args, "--installer", "uv"], env=clean_env())
    by_default = gpuenv(*args, env=clean_env())
    assert by_pip.returncode == by_uv.returncode == by_default.returncode == 0, by_uv.stderr
    assert f"-m venv {venv}" in by_pip.stdout and " venv " not in by_pip.stdout.replace("-m venv", "")
    assert f"{venv}/bin/python -m pip install torch==2.13.0" in by_pip.stdout
    uv_lines = by_uv.stdout.splitlines()
    assert any(line.split()[1:3] == ["venv", "--quiet"] for line in uv_lines), by_uv.stdout
    [install] = [line for line in uv_lines if "pip install" in line]
    assert f"pip install --python {venv}/bin/python" in install
    sources = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             env=clean_env(), check=True).stdout
    for line in sources.splitlines():  # every index and find-links pip is configured with, given to uv
        key, _, value = line.partition("=")
        if key.endswith((".extra-index-url", ".find-links", ".index-url")):
            for url in value.strip("'\"").split():
                assert url in install, (url, install)
    # uv is installed next to the tests' interpreter: auto picks it.
    assert by_default.stdout == by_uv.stdout
