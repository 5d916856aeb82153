"""Environments gpuenv did not create: which env a command works on, and what gpuenv may change there.

A container's system Python, a conda env, another tool's venv: gpuenv
*adopts* such an env. Its torch is given (planned from what is installed,
never replaced), every install into it pins torch, its paired packages and
the NVIDIA runtime wheels (:func:`pins`), a Python its distribution manages
(PEP 668) is refused unless the user passes the installers' own override,
and gpuenv keeps its logs and state outside it (:func:`adopted_work_dir`).
:mod:`gpuenv.setup.rollback` undoes a setup of it that fails.

An env gpuenv made itself carries its state file or work folder
(:data:`GPUENV_MARKS`); any other is adopted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from gpuenv.env.observed import observe
from gpuenv.env.targetenv import Interpreter, TargetEnv
from gpuenv.errors import CommandError, GpuenvError, InputError
from gpuenv.plan.giventorch import TorchFacts
from gpuenv.runner import Runner
from gpuenv.setup.context import STATE_FILE

#: What an env gpuenv made holds: its state file, its work folder.
GPUENV_MARKS = (STATE_FILE, ".gpuenv")

#: Installers' own override of PEP 668 (pip's and uv's flag of the same name), which gpuenv passes on.
BREAK_SYSTEM_PACKAGES = "--break-system-packages"

#: Distributions of an adopted env no install may replace: torch, what is released with it, its compiler.
_PINNED = frozenset({"torch", "torchvision", "torchaudio", "triton", "pytorch-triton", "pytorch-triton-rocm"})


def made_by_gpuenv(path: Path) -> bool:
    """Whether gpuenv made the env at ``path`` (it holds gpuenv's state file or work folder)."""
    return any((path / mark).exists() for mark in GPUENV_MARKS)


@dataclass(frozen=True)
class Target:
    """The env a command works on, and whether gpuenv adopts it."""

    env: TargetEnv
    #: gpuenv did not make it: its torch is given, what setup changes is undone if setup fails.
    adopted: bool
    #: How it was named, for messages: "--python /usr/bin/python3", "--venv /opt/conda/envs/ml".
    named: str
    #: Only when the env does not exist yet (setup creates it).
    new: bool = False

    @property
    def path(self) -> Path:
        return self.env.path

    @property
    def python(self) -> Path | None:
        """The interpreter to name to setup, where it is not the venv's ``bin/python``."""
        return None if self.env.is_venv or self.new else self.env.python


def find_target(*, venv: Path | None, python: Path | None, existing: bool, runner: Runner,
                default: Path = Path(".venv")) -> Target:
    """The env ``--venv`` / ``--python`` name; else, for a recipe with ``use = "existing"``, the Python
    gpuenv runs in; else ``default`` (``.venv``).

    An interpreter is asked for its ``sys.prefix`` (the env it installs into).
    A directory with a ``pyvenv.cfg`` is a venv; one without, but with
    ``bin/python``, a conda env or a system prefix.
    """
    if python is not None and venv is not None:
        raise InputError("--python and --venv both name the env: give one of them",
                         hint="--python PATH for an interpreter, --venv PATH for a venv or conda env folder")
    if python is not None:
        return _of_interpreter(python, f"--python {python}", runner)
    if venv is None and existing:
        return _of_interpreter(Path(sys.executable), f"the Python gpuenv runs in ({sys.executable})", runner)
    path = Path(venv if venv is not None else default).absolute()
    named = f"--venv {venv}" if venv is not None else str(default)
    if (path / "pyvenv.cfg").is_file():
        return Target(TargetEnv(path), adopted=not made_by_gpuenv(path), named=named)
    interpreter = path / ("python.exe" if os.name == "nt" else "bin/python")
    if interpreter.exists():
        return Target(TargetEnv(path, python=interpreter), adopted=True, named=named)
    return Target(TargetEnv(path), adopted=False, named=named, new=True)


def given_torch(target: Target, runner: Runner, *, existing: bool) -> TorchFacts | None:
    """The torch a plan for ``target`` is made for, as installed there: that of an adopted env (or of
    any env, with ``use = "existing"``); None where gpuenv chooses and installs torch.

    Read from torch's files and its libraries (no import): a plan stays fast.
    """
    if target.new or not (target.adopted or existing):
        if existing:
            raise InputError(f'the recipe takes the torch of an existing env (use = "existing"), and '
                             f"{target.path} does not exist",
                             hint="point gpuenv at the env with torch: --python PATH or --venv PATH")
        return None
    info = target.env.facts(runner)
    if info is None:
        if existing:
            raise InputError(f'the recipe takes the torch of an existing env (use = "existing"); '
                             f"{target.named} ({target.path}) has none",
                             hint="point gpuenv at the env that holds torch with --python PATH or --venv "
                             'PATH, or let gpuenv install one: use = "install" and a version in [torch]')
        return None
    return observe(target.env, runner, info)


def _of_interpreter(python: Path, named: str, runner: Runner) -> Target:
    absolute = Path(python).expanduser().absolute()
    if not absolute.is_file() or not os.access(absolute, os.X_OK):
        raise InputError(f"{named}: no interpreter there ({absolute} is not an executable file)",
                         hint="name a Python interpreter, e.g. --python /opt/conda/bin/python")
    probe = TargetEnv(absolute.parent, python=absolute)
    try:
        prefix = probe.interpreter(runner).prefix
    except GpuenvError as exc:
        raise InputError(f"{named}: {absolute} does not run as a Python interpreter: {_first(exc)}",
                         hint="name a Python interpreter, e.g. --python /opt/conda/bin/python") from None
    root = prefix if prefix is not None else absolute.parent.parent
    env = TargetEnv(root, python=absolute)
    env._interpreter = probe._interpreter  # asked once
    return Target(env, adopted=not made_by_gpuenv(root), named=named)


def _first(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, CommandError) and exc.tail:
        lines = [line for line in exc.tail.splitlines() if line.strip()] or lines
    return lines[-1] if lines else type(exc).__name__


# -- what gpuenv may do in an adopted env -----------------------------------------------------------------


class ExternallyManagedError(InputError):
    """A Python its distribution manages (PEP 668): gpuenv does not install into it unless told to."""

    def __init__(self, python: Path, marker: Path) -> None:
        self.python = python
        self.marker = marker
        super().__init__(
            f"{python} is externally managed (PEP 668: {marker}): its distribution's package manager owns "
            "its packages, and pip and uv refuse to install into it",
            hint=f"set up a venv on top of it instead ({python} -m venv --system-site-packages DIR, then "
            f"--venv DIR: its torch is used as it is), or pass {BREAK_SYSTEM_PACKAGES}, pip's and uv's own "
            "override, which gpuenv hands to them")


def check_externally_managed(env: TargetEnv, interpreter: Interpreter, *, allowed: bool) -> None:
    """Refuse a PEP 668 Python unless ``allowed`` (the user passed --break-system-packages)."""
    if interpreter.externally_managed is not None and not allowed:
        raise ExternallyManagedError(env.python, interpreter.externally_managed)


def pins(installed: Mapping[str, str]) -> tuple[str, ...]:
    """``name==version`` of what no install into an adopted env may replace: torch, torchvision,
    torchaudio, triton and the NVIDIA runtime wheels (``nvidia-*``), as installed."""
    lines = []
    for name, version in sorted(installed.items()):
        canonical = canonicalize_name(name)
        if canonical not in _PINNED and not canonical.startswith("nvidia-"):
            continue
        try:
            Version(version)
        except ValueError:  # InvalidVersion, or more digits than int() converts
            continue  # an installer cannot read such a pin; the env's own record keeps it as it is
        lines.append(f"{canonical}=={version}")
    return tuple(lines)


def adopted_work_dir(path: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """Where setup keeps its logs, sources, state and journal for the adopted env at ``path``:
    outside it, in gpuenv's cache folder (``~/.cache/gpuenv/adopted/NAME-HASH``)."""
    xdg = environ.get("XDG_CACHE_HOME", "")
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".cache"
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", path.name or "root").strip("-") or "root"
    return base / "gpuenv" / "adopted" / f"{slug}-{digest}"


def describe(target: Target, interpreter: Interpreter) -> str:
    """"adopting /opt/conda (Python 3.10, a conda env gpuenv did not create)"."""
    if target.env.is_venv:
        kind = "a venv gpuenv did not create"
    elif (target.path / "conda-meta").is_dir():
        kind = "a conda env"
    else:
        kind = "a Python installation gpuenv did not create"
    managed = ", externally managed: installing with " + BREAK_SYSTEM_PACKAGES \
        if interpreter.externally_managed is not None else ""
    return f"adopting {shlex.quote(str(target.path))} (Python {interpreter.version}, {kind}{managed})"
