"""Build into the env people already have (issue 23), for real: a container's Python, layered or not.

A venv with torch 2.13.0 (CPU) stands for a container image's system Python
(gpuenv did not make it); a ``--system-site-packages`` venv whose site sees
the image's packages stands for a layer on top of it. gpuenv adopts them:
builds into them against the torch there, never changes that torch, and puts
the env back as it was when a setup fails, is interrupted or is killed.
The CUDA case builds a CUDA extension into an adopted env with the CUDA torch
(5.4 GB, freed after).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuenv.probe.binaries import read_cuda_code
from tests.fakes import gpuenv
from tests.integration.support import CUDA_EXT, TINY_EXT, clean_env, write_recipe

#: A tree whose build fails after its build requirements went into the env.
FAILING_SETUP = """\
from setuptools import setup
raise SystemExit("gpuenv-test-failing-ext: this build fails on purpose")
"""


def make_image(root: Path, torch: str) -> Path:
    """A "system" Python holding ``torch`` (from pip's configured sources), as a container image has."""
    image = root / "image"
    subprocess.run([sys.executable, "-m", "venv", str(image)], check=True, capture_output=True)
    done = subprocess.run([str(image / "bin" / "python"), "-m", "pip", "install", "-q", torch],
                          capture_output=True, text=True, check=False, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    return image


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image(tmp_path_factory.mktemp("cpu-image"), "torch==2.13.0")


def site_of(env: Path) -> Path:
    return next((env / "lib").glob("python3*/site-packages"))


@pytest.fixture
def layer(image: Path, tmp_path: Path) -> Path:
    """A venv on top of the image: its own site-packages first, then the image's, then the system's.

    A venv's base is the machine's Python, not another venv: a .pth file puts the
    image's site-packages where a container's would be.
    """
    venv = tmp_path / "layer"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   capture_output=True)
    (site_of(venv) / "_image.pth").write_text(f"{site_of(image)}\n")
    return venv


def freeze(env: Path) -> list[str]:
    done = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "freeze", "--all"], capture_output=True,
                          text=True, check=True)
    return sorted(done.stdout.splitlines())


def torch_files(image: Path) -> str:
    """A digest of every file of torch (path, size, modification time): "untouched" means the same."""
    site = site_of(image)
    digest = hashlib.sha256()
    for path in sorted([*(site / "torch").rglob("*"), *site.glob("torch-*.dist-info/*")]):
        if path.is_file():
            info = path.stat()
            digest.update(f"{path.relative_to(site)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def recipe_of(root: Path, name: str, *requirements: str, **env: str) -> Path:
    knobs = ", ".join(f'{k} = "{v}"' for k, v in env.items())
    exts = "".join(f'\n[[extensions]]\nrequirement = "{r}"\n' + (f"env = {{ {knobs} }}\n" if knobs else "")
                   for r in requirements)
    return write_recipe(root, name, '[torch]\nuse = "existing"\n' + exts)


def failing_tree(root: Path) -> Path:
    tree = root / "failing_ext"
    tree.mkdir()
    (tree / "setup.py").write_text(FAILING_SETUP)
    return tree


def setup_args(recipe: Path, python: Path, work: Path, *extra: str) -> list[str]:
    return ["setup", "-r", str(recipe), "--python", str(python), "--work-dir", str(work), "--no-cache",
            *extra]


# -- it builds into the env, against its torch, and changes nothing else ------------------------------------


def test_setup_builds_into_an_adopted_python_and_a_rerun_is_a_noop(layer: Path, image: Path,
                                                                   tmp_path: Path) -> None:
    recipe = recipe_of(tmp_path, "tiny", str(TINY_EXT))
    python = layer / "bin" / "python"
    torch_before = torch_files(image)
    plan = gpuenv(*["plan", "-r", str(recipe), "--python", str(python)], env=clean_env())
    assert plan.returncode == 0, plan.stderr
    assert "torch       2.13.0+cpu given (in " in plan.stdout and "never replaced" in plan.stdout
    args = setup_args(recipe, python, tmp_path / "work")
    done = gpuenv(*args, env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"adopting {layer} (Python" in done.stderr and "a venv gpuenv did not create" in done.stderr
    assert "torch 2.13.0+cpu is given" in done.stderr and "pinned for every install: torch" in done.stderr
    assert "no _gpuenv_runtime.pth written" in done.stderr
    imported = subprocess.run([str(python), "-c", "import gpuenv_tiny_ext, torch; print(torch.__version__)"],
                              capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "2.13.0+cpu"
    assert torch_files(image) == torch_before, "torch: the same files, untouched"
    assert not list(site_of(layer).glob("torch*")), "nothing of torch went into the layer"
    assert list(site_of(layer).glob("gpuenv_tiny_ext*")), "the extension went into the layer"
    assert not (layer / ".gpuenv").exists() and not (layer / "gpuenv-state.json").exists()
    lock = (tmp_path / "gpuenv.lock").read_text()
    assert "given = true" in lock and 'version = "2.13.0+cpu"' in lock
    again = gpuenv(*args, env=clean_env())
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr


# -- it never leaves the env half-changed ---------------------------------------------------------------


def test_a_failed_build_puts_the_image_back_as_it_was(image: Path, tmp_path: Path) -> None:
    recipe = recipe_of(tmp_path, "failing", str(failing_tree(tmp_path)))
    before, torch_before = freeze(image), torch_files(image)
    done = gpuenv(*setup_args(recipe, image / "bin" / "python", tmp_path / "work"), env=clean_env())
    assert done.returncode == 1, done.stderr
    assert "this build fails on purpose" in done.stderr
    assert "setup failed: restoring" in done.stderr and "restored: removed " in done.stderr
    assert freeze(image) == before
    assert torch_files(image) == torch_before


def _wait_for_build(log: Path, proc: subprocess.Popen[str], seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.is_file() and "gpuenv-tiny-ext: building" in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, "setup ended before the build began"
        time.sleep(0.2)
    pytest.fail("the build never began")


def test_an_interrupted_setup_puts_the_image_back_as_it_was(image: Path, tmp_path: Path) -> None:
    recipe = recipe_of(tmp_path, "slow", str(TINY_EXT), GPUENV_TEST_BUILD_SECONDS="120")
    work = tmp_path / "work"
    before, torch_before = freeze(image), torch_files(image)
    args = setup_args(recipe, image / "bin" / "python", work)
    proc = subprocess.Popen([sys.executable, "-m", "gpuenv", *args], env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for_build(work / "logs" / "tiny-ext.log", proc)
        assert freeze(image) != before, "the build requirements went in (what is to be undone)"
        os.killpg(proc.pid, signal.SIGTERM)  # as a scheduler cancels a job
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "setup interrupted: restoring" in stderr and "restored: removed " in stderr
    assert freeze(image) == before
    assert torch_files(image) == torch_before
    assert not (work / "adopted-env-journal.json").exists()


def test_a_setup_killed_outright_is_put_back_by_the_next_one(layer: Path, tmp_path: Path) -> None:
    python, work = layer / "bin" / "python", tmp_path / "work"
    before = freeze(layer)
    slow = recipe_of(tmp_path, "slow", str(TINY_EXT), GPUENV_TEST_BUILD_SECONDS="120")
    proc = subprocess.Popen([sys.executable, "-m", "gpuenv", *setup_args(slow, python, work)],
                            env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        _wait_for_build(work / "logs" / "tiny-ext.log", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up
        proc.wait()
    assert freeze(layer) != before and (work / "adopted-env-journal.json").is_file()
    # The next setup (whose own build fails) first restores what the killed one left, then its own changes.
    failing = recipe_of(tmp_path, "failing", str(failing_tree(tmp_path)))
    done = gpuenv(*setup_args(failing, python, work), env=clean_env())
    assert done.returncode == 1, done.stderr
    assert "was stopped before it finished: restoring what it changed" in done.stderr
    assert "restored after an unfinished setup: removed " in done.stderr
    assert freeze(layer) == before


# -- a CUDA extension into an adopted env with the CUDA torch ------------------------------------------------


@pytest.fixture(scope="module")
def cuda_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("cuda-image")
    yield make_image(root, "torch==2.14.1")
    shutil.rmtree(root, ignore_errors=True)  # 5.4 GB


def test_a_cuda_extension_is_built_into_an_adopted_env_for_the_given_arch(cuda_image: Path,
                                                                          tmp_path: Path) -> None:
    recipe = recipe_of(tmp_path, "cudaext", str(CUDA_EXT))
    torch_before = torch_files(cuda_image)
    done = gpuenv(*[*setup_args(recipe, cuda_image / "bin" / "python", tmp_path / "work"), "--arch", "9.0"],
                  env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "torch 2.14.1+cu130 is given (CUDA 13.0)" in done.stderr
    sos = sorted(site_of(cuda_image).glob("gpuenv_test_cuda_ext*/**/*.so"))
    assert sos and read_cuda_code(sos[0]).sass == frozenset({"sm_90"})
    out = subprocess.run([str(cuda_image / "bin" / "python"), "-c",
                          "import torch, gpuenv_test_cuda_ext as e; print(e.arch_list(), torch.__version__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["900", "2.14.1+cu130"]
    assert torch_files(cuda_image) == torch_before
