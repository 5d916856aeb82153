"""``gpuenv doctor``: will this environment really run on these GPUs?

:func:`diagnose` asks the environment's own interpreter what it holds (through
the runner), reads the GPU code of the compiled files on disk (the fat binary
reader of :mod:`gpuenv.probe.binaries`, ``cuobjdump`` as a second opinion when one is
found) and compares both with the hardware, the recipe and the lock. Each
finding is a :class:`~gpuenv.doctor.report.Check` with a verdict and, where one
is known, a fix. The checks themselves are pure functions of those facts, so they
are tested with synthetic hardware, torch builds and binaries; they live by
subject next to this module (``machine``, ``torch``, ``toolkit``, ``lock``,
``extensions``).

It runs on a machine without a GPU (it says so, skips what needs one and checks
the rest) and on an environment gpuenv did not make (no lock: what was built
against which torch cannot be told, everything else can).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from packaging.utils import canonicalize_name

from gpuenv.doctor.extensions import (
    ExtensionTarget,
    extension_checks,
    extension_targets,
    import_errors,
    module_of,
)
from gpuenv.doctor.lock import lock_check
from gpuenv.doctor.machine import machine_checks
from gpuenv.doctor.report import Check, Report
from gpuenv.doctor.toolkit import built_with_check, runtime_check, toolkit_check
from gpuenv.doctor.torchwheel import torch_checks, torch_of
from gpuenv.doctor.wording import last_error
from gpuenv.env.targetenv import TargetEnv, TorchInfo
from gpuenv.errors import GpuenvError, RecipeError
from gpuenv.load.recipe import find_recipe, load_recipe
from gpuenv.lock.lockfile import LockedEnv, lock_path_for, read_lock
from gpuenv.plan import catalog
from gpuenv.plan.hardware import Hardware
from gpuenv.plan.recipespec import Recipe
from gpuenv.probe.binaries import find_cuobjdump
from gpuenv.runner import Runner, SubprocessRunner
from gpuenv.setup.adopt import made_by_gpuenv
from gpuenv.setup.runtime import read_runtime_env

# -- finding the recipe and the lock (for the front ends) ------------------------------------


def recipe_and_lock(recipe: Path | None, *, start: Path) -> tuple[Recipe | None, LockedEnv | None]:
    """The recipe (``recipe``, else the one the project at ``start`` has) and its lock entry.

    A recipe given explicitly must load (its errors propagate); none found is
    ``(None, None)``: doctor then checks the env without them.
    """
    if recipe is None:
        try:
            recipe = find_recipe(start)
        except RecipeError:
            return None, None
    loaded = load_recipe(recipe)
    return loaded, read_lock(lock_path_for(loaded.path)).get(loaded.name)


# -- the diagnosis ---------------------------------------------------------------------


def diagnose(
    venv: Path,
    *,
    hardware: Hardware,
    recipe: Recipe | None = None,
    locked: LockedEnv | None = None,
    runner: Runner | None = None,
    cuobjdump: bool = True,
    python: Path | None = None,
) -> Report:
    """Check the env at ``venv`` against ``hardware`` (and the recipe's extensions and the lock).

    ``python`` is its interpreter where that is not ``venv/bin/python`` (a container's
    system Python); ``cuobjdump=False`` skips the cuobjdump cross-check of the
    extensions' binaries.
    """
    run = runner or SubprocessRunner()
    env = TargetEnv.at(venv, python)
    checks: list[Check] = []
    site = _env_check(env, run, checks)
    torch = torch_of(env, run, checks) if site is not None else None
    checks[:0] = machine_checks(hardware, torch)
    if site is not None:
        checks += _env_checks(env, run, site, torch, hardware, extension_targets(recipe, locked), locked,
                              cuobjdump=cuobjdump)
    return Report(env.path, _with_setup_command(checks, setup_command(venv, recipe, python)))


def _env_checks(
    env: TargetEnv, run: Runner, site: Path, torch: TorchInfo | None, hardware: Hardware,
    targets: Sequence[ExtensionTarget], locked: LockedEnv | None, *, cuobjdump: bool,
) -> list[Check]:
    """Everything after the env itself: torch, the toolkit, the lock, each extension."""
    checks: list[Check] = []
    if torch is not None:
        checks += torch_checks(env, run, site, torch, hardware)
        toolkit = toolkit_check(torch, hardware, exact_for=_exact_toolkit_names(targets))
        checks += [toolkit] if toolkit is not None else []
        checks.append(runtime_check(read_runtime_env(site), torch, ours=made_by_gpuenv(env.path)))
    checks.append(lock_check(locked, torch, bool(targets)))
    built_with = built_with_check(env.path)
    checks += [built_with] if built_with is not None else []
    if not targets:
        return checks
    installed = env.installed(run)
    modules = {t.name: module_of(site, t) for t in targets}
    importable = [modules[t.name] for t in targets
                  if t.skip_cuda_knob is None and canonicalize_name(t.installs) in installed]
    errors = import_errors(env, run, importable)
    tool = _cuobjdump(site, hardware) if cuobjdump else None
    for target in targets:
        checks += extension_checks(env, run, site, target, installed, torch, locked, hardware, tool,
                                   module=modules[target.name],
                                   import_error=errors.get(modules[target.name]))
    return checks


#: How a fix names the setup command; :func:`diagnose` spells out its -r and --venv.
SETUP = "'gpuenv setup"


def setup_command(venv: Path, recipe: Recipe | None, python: Path | None = None) -> str:
    """"gpuenv setup -r envs/llm.toml --venv .venv": the command that (re)makes this env."""
    parts = ["gpuenv setup"]
    if recipe is not None:
        parts += ["-r", shlex.quote(str(recipe.path))]
    where = ("--python", python) if python is not None else ("--venv", venv)
    return " ".join([*parts, where[0], shlex.quote(str(where[1]))])


def _with_setup_command(checks: Sequence[Check], command: str) -> tuple[Check, ...]:
    return tuple(
        replace(c, fix=c.fix.replace(SETUP, "'" + command)) if c.fix and SETUP in c.fix else c
        for c in checks
    )


def _env_check(env: TargetEnv, run: Runner, checks: list[Check]) -> Path | None:
    """The env's site-packages, with an "env" check; None (and a failed check) if it has no Python."""
    if not env.python.exists():
        checks.append(Check(
            "env", "fail", f"{env.path} is not a Python environment: it has no {env.python}",
            fix="create it with 'gpuenv setup'",
        ))
        return None
    try:
        interpreter = env.interpreter(run)
    except GpuenvError as exc:
        # What the interpreter ended with (a .pth that is not UTF-8 stops it before any script runs).
        tail = getattr(exc, "tail", "")
        said = last_error(tail) if tail else _first_line(str(exc))
        checks.append(Check("env", "fail", f"{env.python} does not run: {said}",
                            fix="recreate the virtual environment"))
        return None
    checks.append(Check("env", "ok", f"{env.path}: Python {interpreter.version}"))
    return interpreter.site_packages


def _exact_toolkit_names(targets: Sequence[ExtensionTarget]) -> list[str]:
    return [t.name for t in targets if catalog.catalog_entry(t.name).toolkit_match == "minor"]


def _cuobjdump(site: Path, hardware: Hardware) -> Path | None:
    dirs: list[Path | str] = [site, *(Path(t.nvcc).parent for t in hardware.toolkits)]
    return find_cuobjdump(dirs)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else text
