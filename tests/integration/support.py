"""Helpers of the end-to-end tests: write recipes, look into envs (the command itself: tests.fakes.gpuenv)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fakes import clean_env

__all__ = ["clean_env"]

REPO = Path(__file__).resolve().parents[2]
CUDA_EXT = REPO / "tests" / "data" / "cuda_ext"
TINY_EXT = REPO / "tests" / "data" / "tiny_ext"


def write_recipe(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def env_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def run_in(venv: Path, code: str) -> str:
    done = subprocess.run([str(env_python(venv)), "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def with_find_links(env: dict[str, str], directory: Path) -> dict[str, str]:
    """``env`` where pip also looks in ``directory``, next to every find-links it is configured with.

    PIP_FIND_LINKS replaces the configured value rather than adding to it, so
    the configured ones (pip config list: files and environment) are kept in it.
    """
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                            text=True, env=env, check=True).stdout
    links: list[str] = []
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".find-links"):
            links += [v for v in value.strip("'\"").split() if v not in links]
    return {**env, "PIP_FIND_LINKS": " ".join([*links, str(directory)])}


def make_sdist(tree: Path, name: str, version: str, out_dir: Path) -> Path:
    """A source distribution of ``tree`` as an index serves it: ``name-version.tar.gz`` with PKG-INFO."""
    import tarfile

    out_dir.mkdir(parents=True, exist_ok=True)
    base = f"{name.replace('-', '_')}-{version}"
    archive = out_dir / f"{base}.tar.gz"
    pkg_info = out_dir / "PKG-INFO"
    pkg_info.write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(pkg_info, arcname=f"{base}/PKG-INFO")
        for file in sorted(tree.iterdir()):
            if file.is_file():
                tar.add(file, arcname=f"{base}/{file.name}")
    pkg_info.unlink()
    return archive


def uninstall(venv: Path, name: str) -> None:
    """Remove ``name`` from ``venv`` with uv: an env uv made has no pip."""
    from gpuenv.setup.installer import find_uv

    subprocess.run([str(find_uv()), "pip", "uninstall", "--python", str(env_python(venv)), name], check=True,
                   capture_output=True)


def made_by_uv(venv: Path) -> bool:
    """uv writes its version into the pyvenv.cfg of an env it makes; python -m venv does not."""
    return any(line.startswith("uv =") for line in (venv / "pyvenv.cfg").read_text().splitlines())
