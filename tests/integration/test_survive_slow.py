"""What survives a kill and a prune beside a setup (real venvs, real pip, the CPU torch wheel)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from gpuenv.cache.entry import CacheEntry
from gpuenv.cache.wheels import WheelCache
from gpuenv.load.recipe import load_recipe
from gpuenv.lock.lockfile import lock_path_for, read_lock
from gpuenv.plan.hardware import Hardware
from gpuenv.plan.planner import PlanOptions, plan
from gpuenv.runner import SubprocessRunner
from gpuenv.setup.context import SetupOptions
from gpuenv.setup.installer import find_uv
from gpuenv.setup.run import run_setup
from gpuenv.setup.sources import file_sha256
from tests.integration.support import (
    TINY_EXT,
    clean_env,
    make_sdist,
    run_in,
    uninstall,
    with_find_links,
    write_recipe,
)
from tests.unit.setup.test_dryrun import state_of

NO_GPU = Hardware(driver_version=None, cuda_driver_version=None, gpus=(), cpu_count=2,
                  memory_total_mib=8192, memory_available_mib=4096, source="test")


def test_a_kill_while_pip_unpacks_torch_is_repaired_by_the_next_setup(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "cpu", """
        [torch]
        version = "2.13.0"
    """)
    venv = tmp_path / "venv"
    args = [sys.executable, "-m", "gpuenv", "setup", "-r", str(recipe), "--venv", str(venv),
            "--torch-index", "config", "--no-cache"]
    proc = subprocess.Popen(args, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if any(venv.glob("lib/python3*/site-packages/torch/__init__.py")):
                break  # pip is unpacking torch: its files are half there
            time.sleep(0.02)
        assert proc.poll() is None, "setup ended before pip unpacked torch"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    broken = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"],
                            capture_output=True, text=True, check=False)
    assert broken.returncode != 0, "the kill left a torch that does not import (the case under test)"

    rerun = subprocess.run(args, env=clean_env(), capture_output=True, text=True, check=False, timeout=1200)
    assert rerun.returncode == 0, rerun.stderr
    assert "does not import" in rerun.stderr and "reinstalling it" in rerun.stderr
    assert run_in(venv, "import torch; print(torch.__version__)").strip() == "2.13.0+cpu"


class PruneBeforeEachInstall(SubprocessRunner):
    """The real runner, which first prunes the cache to nothing before any command that installs a
    wheel from it: a `gpuenv cache prune --max-size 0` landing at the worst moment."""

    def __init__(self, cache: WheelCache, log_path: Path) -> None:
        super().__init__(log_path=log_path)
        self.cache = cache
        self.pruned: list[CacheEntry] = []
        self.prunes = 0

    def __call__(self, cmd: Sequence[str], cwd: str | None = None,
                 extra_environ: Mapping[str, str] | None = None) -> str:
        if any(str(self.cache.path) in str(c) and str(c).endswith(".whl") for c in cmd):
            self.prunes += 1
            self.pruned += self.cache.prune(max_total_bytes=0)
        return super().__call__(cmd, cwd, extra_environ)


def test_prune_cannot_remove_the_wheel_a_setup_installs_on_the_locks_shortcut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdist = make_sdist(TINY_EXT, "gpuenv-tiny-ext", "1.0", tmp_path / "links")
    for name, value in with_find_links(clean_env(), sdist.parent).items():
        monkeypatch.setenv(name, value)
    recipe_path = write_recipe(tmp_path, "pinned", """
        [torch]
        version = "2.13.0"

        [[extensions]]
        requirement = "gpuenv-tiny-ext==1.0"
        import = "gpuenv_tiny_ext"
    """)
    recipe = load_recipe(recipe_path)
    planned = plan(recipe, NO_GPU, PlanOptions(torch_index="config"))
    cache = WheelCache(tmp_path / "cache")

    def options(venv: Path) -> SetupOptions:
        return SetupOptions(venv=venv, preflight=False, cache_dir=cache.path,
                            lock_file=lock_path_for(recipe_path), recipe_sha256=file_sha256(recipe_path))

    run_setup(planned, options(tmp_path / "one"))
    assert read_lock(lock_path_for(recipe_path))["pinned"].extensions, "the lock records the pin's sdist"

    runner = PruneBeforeEachInstall(cache, tmp_path / "two.log")
    second = run_setup(planned, options(tmp_path / "two"), runner=runner)
    assert second.cached == ("gpuenv-tiny-ext",), "installed from the cache on the lock's shortcut"
    assert runner.prunes == 1 and runner.pruned == [], "the prune met the key lock the install holds"
    assert run_in(tmp_path / "two", "import gpuenv_tiny_ext; print(gpuenv_tiny_ext.answer())").strip() == "42"


def test_locked_rebuilds_a_cuda_env_whose_torch_distribution_has_no_local_tag(tmp_path: Path) -> None:
    # PyPI's cu130 wheel: the distribution is "2.14.1", torch.__version__ "2.14.1+cu130".
    recipe = write_recipe(tmp_path, "cuda", """
        [torch]
        version = "2.14.1"
    """)
    venv = tmp_path / "venv"
    try:
        setup = [sys.executable, "-m", "gpuenv", "setup", "-r", str(recipe), "--venv", str(venv),
                 "--gpu", "H100"]
        first = subprocess.run(setup, env=clean_env(), capture_output=True, text=True, check=False)
        assert first.returncode == 0, first.stderr
        locked = read_lock(tmp_path / "gpuenv.lock")["cuda"]
        build = (locked.abi.torch_version, locked.abi.torch_cuda)
        assert build == ("2.14.1+cu130", "13.0"), "the build, by its own fields"
        assert locked.distributions["torch"] == "2.14.1", "the distribution, by its own version"

        # The env is uv's (the default installer), which puts no pip in it: uv takes torch out.
        python = str(venv / "bin" / "python")
        subprocess.run([str(find_uv()), "pip", "uninstall", "--python", python, "torch"], check=True,
                       capture_output=True)
        again = subprocess.run([*setup, "--locked"], env=clean_env(), capture_output=True, text=True,
                               check=False)
        assert again.returncode == 0, again.stderr
        assert run_in(venv, "import torch; print(torch.__version__)").strip() == "2.14.1+cu130"
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # 5.4 GB


def test_a_matching_env_is_a_noop_whatever_index_is_named_and_dry_run_says_what_the_run_does(
    tmp_path: Path,
) -> None:
    recipe = write_recipe(tmp_path, "cpu", """
        [torch]
        version = "2.13.0"

        [packages]
        requirements = ["six"]
    """)
    venv = tmp_path / "venv"
    setup = [sys.executable, "-m", "gpuenv", "setup", "-r", str(recipe), "--venv", str(venv), "--no-cache"]

    def run(*extra: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*setup, *extra], env=clean_env(**env), capture_output=True, text=True,
                              check=False, timeout=1200)

    first = run("--torch-index", "config")
    assert first.returncode == 0, first.stderr
    # The default index is out of reach here: "nothing to do" must not ask it.
    again = run(GPUENV_TORCH_INDEX="http://gpuenv-unreachable.invalid/{variant}")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr
    dry = run("--dry-run", GPUENV_TORCH_INDEX="http://gpuenv-unreachable.invalid/{variant}")
    lines = dry.stdout.splitlines()
    assert dry.returncode == 0 and lines[0].startswith("# plan: torch 2.13.0"), dry.stdout + dry.stderr
    assert lines[1].startswith("# nothing to do") and len(lines) == 2, dry.stdout

    # Something else lands in the env: the run reinstalls nothing of the base, and dry-run says so first.
    site = next((venv / "lib").glob("python3*/site-packages"))
    extra = site / "hand_installed-1.0.dist-info"
    extra.mkdir()
    (extra / "METADATA").write_text("Metadata-Version: 2.1\nName: hand-installed\nVersion: 1.0\n")
    dry = run("--dry-run", "--torch-index", "config")
    assert dry.returncode == 0, dry.stderr
    assert "# torch 2.13.0+cpu already installed" in dry.stdout
    assert not any("install" in line and "torch==" in line for line in dry.stdout.splitlines()
                   if not line.startswith("#")), dry.stdout
    real = run("--torch-index", "config")
    assert real.returncode == 0, real.stderr
    assert "torch 2.13.0+cpu already installed" in real.stderr
    assert "replaced the entry of cpu" in real.stderr and "1 added (hand-installed" in real.stderr


def test_a_dry_run_decides_on_the_env_as_it_is_writes_nothing_and_the_run_then_does_what_it_said(
    tmp_path: Path,
) -> None:
    """torch is in the env and the extension's wheel in the cache: the dry run asks the env and reads
    the cache (without touching it), and prints the install of that very wheel, no build."""
    recipe = write_recipe(tmp_path / "project", "tiny", f"""
        [torch]
        version = "2.13.0"

        [[extensions]]
        requirement = "gpuenv-tiny-ext @ {TINY_EXT.as_uri()}"
        import = "gpuenv_tiny_ext"
    """)
    venv, cache, scratch = tmp_path / "venv", tmp_path / "cache", tmp_path / "tmp"
    scratch.mkdir()  # where the constraints files go: the dry run writes none
    setup = [sys.executable, "-m", "gpuenv", "setup", "-r", str(recipe), "--venv", str(venv), "--torch-index",
             "config", "--cache-dir", str(cache)]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*setup, *extra], env=clean_env(TMPDIR=str(scratch)), capture_output=True,
                              text=True, check=False, timeout=1200)

    first = run()
    assert first.returncode == 0, first.stderr
    uninstall(venv, "gpuenv-tiny-ext")  # the env no longer matches its lock: the extension's step has work
    [entry] = WheelCache(cache).entries()

    before = state_of(tmp_path)
    dry = run("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert state_of(tmp_path) == before, "the env, its logs, the cache, the lock: all as they were"
    lines = dry.stdout.splitlines()
    assert "# torch 2.13.0+cpu already installed" in dry.stdout, "asked of the env, as the run asks it"
    [install] = [line for line in lines if "pip install" in line and "gpuenv_tiny_ext" in line]
    assert str(entry.wheel) in install, "the cached wheel, found by its key as the run finds it"
    assert not any("build_wheel" in line or "<" in line for line in lines if not line.startswith("#"))

    real = run()
    assert real.returncode == 0, real.stderr
    assert f"{entry.wheel.name}: cached: key {entry.digest[:12]} matched" in real.stderr
    assert "built" not in real.stderr
    assert read_lock(lock_path_for(recipe))["tiny"].extensions[0].cache_key == entry.digest
