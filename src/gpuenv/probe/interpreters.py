"""Find a Python on this machine that satisfies a recipe's ``[env] python``.

Looked for, in order: the interpreter gpuenv runs in, ``uv python find`` (uv's
own discovery: managed installs, pyenv, PATH), pyenv's versions directory, and
``pythonX.Y`` / ``python3`` on PATH. Each candidate is asked its version; the
first that satisfies the specifier is used. Nothing is downloaded and never a
different Python than asked for: none found is an error that names what was
found and how to get one.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from gpuenv.errors import GpuenvError, UnsatisfiableError
from gpuenv.runner import Runner, bounded, query_timeout

_VERSION_SCRIPT = "import platform; print(platform.python_version())"


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str


class NoPythonError(UnsatisfiableError):
    """No interpreter on this machine satisfies the recipe's ``python``."""

    def __init__(self, spec: str, found: list[Interpreter]) -> None:
        self.spec = spec
        self.found = found
        seen = ", ".join(f"{i.version} ({i.path})" for i in found) or "none"
        wanted = spec.removeprefix("==").removesuffix(".*") if spec.startswith("==") else spec
        super().__init__(
            f"no Python on this machine satisfies python = {spec!r} of the recipe; found: {seen}",
            hint=f"install one, e.g. 'uv python install {wanted}' or 'pyenv install {wanted}', "
            "then run gpuenv setup again",
        )


def find_python(spec: str, runner: Runner, environ: Mapping[str, str] | None = None) -> Interpreter:
    """The first interpreter satisfying ``spec`` ("==3.10.*", ">=3.10"); raise NoPythonError if none does."""
    wanted = SpecifierSet(spec)
    env = os.environ if environ is None else environ
    found: list[Interpreter] = []
    seen: set[str] = set()
    for candidate in _candidates(spec, runner, env):
        real = os.path.realpath(candidate)
        if real in seen:
            continue
        seen.add(real)
        version = _version_of(candidate, runner)
        if version is None:
            continue
        found.append(Interpreter(candidate, version))
        if wanted.contains(Version(version), prereleases=True):
            return found[-1]
    raise NoPythonError(spec, found)


def python_satisfies(version: str, spec: str | None) -> bool:
    if spec is None:
        return True
    try:
        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return False


def _version_of(python: str, runner: Runner) -> str | None:
    try:
        output = bounded(runner, query_timeout())([python, "-c", _VERSION_SCRIPT]).strip().splitlines()
    except (GpuenvError, OSError):
        return None
    if not output:
        return None
    try:
        return str(Version(output[-1].strip()))
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return None


def _candidates(spec: str, runner: Runner, env: Mapping[str, str]) -> Iterator[str]:
    yield sys.executable
    uv = shutil.which("uv", path=env.get("PATH")) or _uv_beside()
    if uv is not None:
        try:
            ask = bounded(runner, query_timeout())
            found = ask([uv, "python", "find", "--no-python-downloads", spec]).strip().splitlines()
        except (GpuenvError, OSError):
            found = []
        if found:
            yield found[-1].strip()
    root = env.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    yield from sorted(glob.glob(os.path.join(glob.escape(root), "versions", "*", "bin", "python")),
                      key=_version_key, reverse=True)
    for minor in range(20, 5, -1):
        on_path = shutil.which(f"python3.{minor}", path=env.get("PATH"))
        if on_path is not None:
            yield on_path
    for name in ("python3", "python"):
        on_path = shutil.which(name, path=env.get("PATH"))
        if on_path is not None:
            yield on_path


def _version_key(path: str) -> Version:
    """The version a pyenv directory is named after (…/versions/3.10.13/bin/python), newest first."""
    try:
        return Version(Path(path).parents[1].name)
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return Version("0")


def _uv_beside() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.is_file() else None
