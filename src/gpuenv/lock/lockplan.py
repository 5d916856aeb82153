"""``gpuenv setup --locked``: the plan that rebuilds what gpuenv.lock records, on this machine or another.

The same variant, index and archs, every distribution at its locked version
and the same wheels; a machine whose GPUs or driver cannot use the locked env
stops with exit 3 (:func:`check_machine`). A lock whose torch was given (an
adopted env's) is rebuilt only where that very torch is installed.
"""

from __future__ import annotations

from dataclasses import replace

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from gpuenv.errors import UnsatisfiableError
from gpuenv.lock.lockfile import LockedEnv, LockEditedError
from gpuenv.plan.buildplan import ExtensionPlan
from gpuenv.plan.envplan import Plan
from gpuenv.plan.hardware import Hardware
from gpuenv.plan.planner import PlanOptions
from gpuenv.plan.recipespec import Recipe


def check_machine(locked: LockedEnv, hardware: Hardware) -> None:
    """Stop (exit 3) if this machine's GPUs or driver cannot use the locked environment."""
    from gpuenv.plan import knowledge
    from gpuenv.plan.variants import driver_runs

    if locked.cuda is None:
        return
    uncovered = [g for g in hardware.gpus if not knowledge.runs_on(locked.arch_list, g.cc)]
    if uncovered and locked.arch_list:
        names = ", ".join(f"{g.name} ({g.compute_capability})" for g in uncovered)
        raise UnsatisfiableError(
            f"the locked environment {locked.name} was built for {', '.join(locked.arch_list)}; "
            f"it has no code for {names}",
            hint="run 'gpuenv setup' without --locked to plan and build for these GPUs",
        )
    if driver_runs(hardware, locked.cuda) is False:
        raise UnsatisfiableError(
            f"the locked environment {locked.name} is {locked.variant}, and driver "
            f"{hardware.driver_version} (CUDA {hardware.cuda_driver_version or '?'}) "
            f"cannot run CUDA {locked.cuda}",
            hint="upgrade the driver, or run 'gpuenv setup' without --locked to plan for this driver",
        )


def plan_locked(recipe: Recipe, hardware: Hardware, locked: LockedEnv, options: PlanOptions) -> Plan:
    """The plan that rebuilds ``locked``: its variant, index, archs and every exact version."""
    from gpuenv.plan.hardware import with_arch_override
    from gpuenv.plan.planner import plan

    if locked.edited is not None:
        raise LockEditedError(locked)
    check_machine(locked, hardware)
    if locked.torch_given or options.given_torch is not None:
        # A torch gpuenv does not install: the env must hold the locked one.
        return _plan_locked_given(recipe, hardware, locked, options)
    if locked.cuda is not None and locked.arch_list:
        target = with_arch_override(hardware, ",".join(locked.arch_list))
    else:
        target = replace(hardware, gpus=())
    # The locked torch exactly: the resolver must not pick another release of the recipe's range.
    base = plan(recipe, target, replace(options, cuda=locked.variant,
                                        torch_version=Version(locked.abi.torch_version).public))
    pins = dict(locked.distributions)
    # Extensions come from their own step; the lock names them by distribution.
    extension_names = {e.name for e in base.extensions} | {e.name for e in locked.extensions}
    torch_names = [canonicalize_name(Requirement(p).name) for p in base.torch_packages]
    exact_torch_packages = tuple(f"{n}=={pins[n]}" for n in torch_names if n in pins)
    others = {n: v for n, v in pins.items()
              if n not in extension_names and n not in torch_names and n not in ("torch", "pip")}
    return replace(
        base,
        # By the distribution's version: the cu130 wheel of PyPI is "2.14.1", its
        # torch.__version__ (the lock's [torch] version) "2.14.1+cu130".
        torch=f"torch=={pins.get('torch') or locked.abi.torch_version}",
        index_url=locked.index_url,
        torch_packages=exact_torch_packages,
        extensions=tuple(_pin_extension(e, locked) for e in base.extensions),
        packages=tuple(f"{n}=={v}" for n, v in sorted(others.items())),
        reasons=(*base.reasons, f"--locked: {locked.name} as written in the lock"),
    )


def _plan_locked_given(recipe: Recipe, hardware: Hardware, locked: LockedEnv, options: PlanOptions) -> Plan:
    """A lock whose torch was given (an adopted env's): this env must hold that very torch; the rest is
    rebuilt as the lock says."""
    from gpuenv.plan.hardware import with_arch_override
    from gpuenv.plan.planner import plan

    given = options.given_torch
    have = None if given is None else (given.version, given.cuda, given.cxx11_abi)
    if have != (locked.abi.torch_version, locked.abi.torch_cuda, locked.abi.cxx11_abi):
        found = "no torch" if given is None else (
            f"torch {given.version} (CUDA {given.cuda or 'none'}, C++11 ABI {int(bool(given.cxx11_abi))})")
        raise UnsatisfiableError(
            f"the locked environment {locked.name} was built against torch {locked.abi.torch_version} "
            f"(CUDA {locked.abi.torch_cuda or 'none'}, C++11 ABI {int(locked.abi.cxx11_abi)}); "
            f"this env has {found}",
            hint="run --locked in an env that holds that torch (the same container image or conda env), or "
            "run 'gpuenv setup' without --locked to build for this one")
    if locked.cuda is not None and locked.arch_list:
        target = with_arch_override(hardware, ",".join(locked.arch_list))
    else:
        target = replace(hardware, gpus=())
    base = plan(recipe, target, options)
    pins = dict(locked.distributions)
    extension_names = {e.name for e in base.extensions} | {e.name for e in locked.extensions}
    given_names = {canonicalize_name(n) for n in (given.paired if given else {})}
    others = {n: v for n, v in pins.items()
              if n not in extension_names and n not in given_names and n not in ("torch", "pip")}
    return replace(
        base,
        extensions=tuple(_pin_extension(e, locked) for e in base.extensions),
        packages=tuple(f"{n}=={v}" for n, v in sorted(others.items()) if n in _recipe_packages(base)),
        reasons=(*base.reasons, f"--locked: {locked.name} as written in the lock, against its given torch"),
    )


def _recipe_packages(plan: Plan) -> set[str]:
    """The distributions the plan's packages name (an adopted env's other distributions are its own)."""
    names: set[str] = set()
    for text in plan.packages:
        try:
            names.add(canonicalize_name(Requirement(text.removeprefix("-e ").strip()).name))
        except InvalidRequirement:
            continue
    return names


def _pin_extension(ext: ExtensionPlan, locked: LockedEnv) -> ExtensionPlan:
    record = locked.extension(ext.name)
    if record is None or ext.action == "skip":
        return ext
    try:
        requirement = Requirement(ext.requirement)
    except InvalidRequirement:
        return ext  # a local path: its content is checked through the cache key
    if requirement.url:
        return ext
    return replace(ext, requirement=f"{ext.name}=={record.version}")
