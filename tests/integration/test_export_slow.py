"""The exports for real: a set-up env's pylock, its cache as a wheelhouse, its plan as a uv project.

One env (torch 2.13.0 CPU + the tests' tiny C extension, from a local tree)
is set up by gpuenv once; each export is then installed by the tool it is for:
uv from the pylock, pip from the wheelhouse alone, uv sync from the exported
[tool.uv]. No PyTorch index here: torch comes from the sources pip is
configured with (--torch-index config), and uv gets the same sources.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuenv.env.targetenv import TargetEnv
from gpuenv.runner import SubprocessRunner
from gpuenv.setup.installer import find_uv
from tests.fakes import gpuenv
from tests.integration.support import TINY_EXT, clean_env, run_in, write_recipe

ANSWER = "import gpuenv_tiny_ext; print(gpuenv_tiny_ext.answer())"


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """(recipe, venv, cache) of `gpuenv setup` of torch 2.13.0 (CPU) + the tiny extension."""
    root = tmp_path_factory.mktemp("export")
    recipe = write_recipe(root, "tiny", f"""
        [torch]
        version = "2.13.0"

        [[extensions]]
        requirement = "gpuenv-tiny-ext @ {TINY_EXT.as_uri()}"
        import = "gpuenv_tiny_ext"
    """)
    venv, cache = root / "venv", root / "cache"
    done = gpuenv(*["setup", "-r", str(recipe), "--venv", str(venv), "--torch-index", "config",
                   "--cache-dir", str(cache)], env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    yield recipe, venv, cache
    shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """uv's cache for these tests, never the user's; it holds an unpacked torch: removed after."""
    path = tmp_path_factory.mktemp("uv-cache")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def uv(cache: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(find_uv()), *args], cwd=cwd, capture_output=True, text=True, timeout=900,
                          env=clean_env(UV_CACHE_DIR=str(cache)))


def installed(venv: Path) -> dict[str, str]:
    return TargetEnv.at(venv).installed(SubprocessRunner())


def test_the_pylock_installs_the_same_distributions_with_uv_and_no_build(
    tiny_env: tuple[Path, Path, Path], uv_cache: Path, tmp_path: Path
) -> None:
    recipe, venv, cache = tiny_env
    lock = tmp_path / "pylock.toml"
    done = gpuenv(*["export", "pylock", "--venv", str(venv), "-r", str(recipe), "--cache-dir", str(cache),
                   "-o", str(lock)], env=clean_env())
    assert done.returncode == 0, done.stderr
    assert "not locked" not in done.stdout
    text = lock.read_text()
    assert str(cache) in text, "the extension is its cached wheel"
    fresh = tmp_path / "fresh"
    assert uv(uv_cache, "venv", "--python", sys.executable, str(fresh), cwd=tmp_path).returncode == 0
    put = uv(uv_cache, "pip", "install", "--python", str(fresh / "bin" / "python"), "-r", str(lock),
             cwd=tmp_path)
    assert put.returncode == 0, put.stderr
    assert "Building" not in put.stderr and "Built" not in put.stderr
    assert installed(fresh) == installed(venv)
    assert run_in(fresh, ANSWER).strip() == "42"
    shutil.rmtree(fresh)


def test_a_cache_export_installs_with_pip_from_the_wheelhouse_alone(
    tiny_env: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    recipe, _, cache = tiny_env
    plan = gpuenv(*["plan", "-r", str(recipe), "--torch-index", "config", "--cache-dir", str(cache)],
                  env=clean_env())
    group = next(line.split()[1] for line in plan.stdout.splitlines() if line.startswith("wheelhouse"))
    assert group == "torch-2.13.0-cpu"
    house = tmp_path / "house"
    done = gpuenv(*["cache", "export", str(house), "--cache-dir", str(cache)], env=clean_env())
    assert done.returncode == 0, done.stderr
    node = tmp_path / "node"
    subprocess.run([sys.executable, "-m", "venv", str(node)], check=True)
    # --isolated: not even the find-links and indexes pip is configured with here.
    put = subprocess.run([str(node / "bin" / "python"), "-m", "pip", "install", "--isolated", "--no-index",
                          "--find-links", str(house / group), "gpuenv-tiny-ext"],
                         capture_output=True, text=True, timeout=300)
    assert put.returncode == 0, put.stdout + put.stderr
    assert run_in(node, ANSWER).strip() == "42"


def simple_index_of_find_links(links: list[str], root: Path) -> str:
    """The torch wheels of find-links directories as a PEP 503 index (uv builds against an index's torch)."""
    (root / "torch").mkdir(parents=True)
    wheels = [w for d in links for w in sorted(Path(d).glob("torch-*.whl"))]
    anchors = [f'<a href="{w.as_uri()}">{w.name}</a>' for w in wheels]
    (root / "torch" / "index.html").write_text("<html><body>" + "\n".join(anchors) + "</body></html>")
    return root.as_uri()


def test_an_exported_uv_project_syncs_into_an_env_where_the_extension_computes(
    tiny_env: tuple[Path, Path, Path], uv_cache: Path, tmp_path: Path
) -> None:
    recipe = tiny_env[0]
    project = tmp_path / "research"
    project.mkdir()
    original = ('[project]\nname = "research"\nversion = "0.1"\nrequires-python = "==3.11.*"\n'
                "dependencies = []\n\n[tool.uv]\npackage = false   # the user's own setting\n")
    (project / "pyproject.toml").write_text(original)
    done = gpuenv(*["export", "uv", "-r", str(recipe), "--torch-index", "config", "--write"], cwd=project,
                  env=clean_env())
    assert done.returncode == 0, done.stderr
    written = (project / "pyproject.toml").read_text()
    assert written.startswith(original)
    note = next(line for line in done.stdout.splitlines() if "uv sync --" in line)
    options = note.rsplit("uv sync ", 1)[1].split()
    # The find-links of pip's configuration carry torch: give them to uv as an index (the export says why).
    links = [options[i + 1] for i, o in enumerate(options) if o == "--find-links"]
    options = [o for i, o in enumerate(options)
               if o != "--find-links" and (i == 0 or options[i - 1] != "--find-links")]
    # First: uv takes torch's hashes from the first index that has it.
    options = ["--index", simple_index_of_find_links(links, tmp_path / "simple"), *options]
    synced = uv(uv_cache, "sync", "--python", sys.executable, *options, cwd=project)
    assert synced.returncode == 0, synced.stderr
    env = project / ".venv"
    assert run_in(env, "import torch; print(torch.__version__)").strip() == "2.13.0+cpu"
    assert run_in(env, ANSWER).strip() == "42"
    shutil.rmtree(env)
