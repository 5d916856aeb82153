"""The lock step, and the check that makes a rerun on a matching env a no-op.

A setup that succeeds writes the env's entry in ``gpuenv.lock`` (:func:`lock_step`);
the next one compares the fingerprint of recipe, plan and installed
distributions with it before anything runs (:func:`already_done`). The
fingerprint is made of the plan setup was handed (:func:`plan_signature`), not
of the plan made again once torch landed: a rerun decides before it reads torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpuenv.cache.key import binary_knobs
from gpuenv.env.abi import env_abi
from gpuenv.lock.lockfile import LockedEnv, LockEditedError, env_fingerprint, read_lock, write_lock
from gpuenv.plan.envplan import Plan
from gpuenv.runner import SubprocessRunner
from gpuenv.setup.context import Context, Reporter, SetupOptions, Step


def plan_signature(plan: Plan) -> dict[str, Any]:
    """The plan's decisions that shape the env (not its wording, job counts or warnings)."""
    extra: dict[str, Any] = {}
    if plan.python is not None:
        extra["python"] = plan.python
    if plan.repo is not None:
        extra["repo"] = [str(plan.repo.path), plan.repo.editable, list(plan.repo.extras), plan.repo.isolation]
    # Not the index: the same torch from a mirror or the installer's configuration is the same env,
    # and a rerun that names the index otherwise must not reach for the network to learn that.
    return {
        **extra,
        "variant": plan.variant,
        "torch": plan.torch,
        "torch_packages": list(plan.torch_packages),
        "arch_list": list(plan.arch_list),
        "toolkit": plan.toolkit.version if plan.toolkit else None,
        "packages": list(plan.packages),
        "extensions": [
            [e.name, e.requirement, "skip" if e.action == "skip" else "build",
             dict(binary_knobs(e.env, e.build_options))]
            for e in plan.extensions
        ],
    }


def _lock_run(ctx: Context) -> str:
    lock_file = ctx.options.lock_file
    assert lock_file is not None
    what = (f"write the entry of {ctx.plan.env_name} in {lock_file}: what the env holds, its torch and the "
            "wheels of its extensions")
    return ctx.runner.perform(what, lambda: _write_entry(ctx, lock_file), lambda: "")


def _write_entry(ctx: Context, lock_file: Path) -> str:
    torch, plan = ctx.torch, ctx.plan
    assert torch is not None
    installed = ctx.target.installed(ctx.runner)
    interpreter = ctx.target.interpreter(ctx.runner)
    compiled = any(e.compiles_cuda for e in plan.extensions if e.action != "skip")
    recipe = Path(plan.recipe)
    write_lock(lock_file, LockedEnv(
        name=plan.env_name,
        recipe=recipe.name if recipe.parent == lock_file.parent else str(recipe),
        recipe_sha256=ctx.options.recipe_sha256,
        # Of the plan setup was handed: a rerun compares it before anything is observed.
        fingerprint=env_fingerprint(ctx.options.recipe_sha256, plan_signature(ctx.planned or plan),
                                    installed),
        variant=plan.variant,
        cuda=plan.cuda,
        index_url=plan.index_url,
        torch_requirement=plan.torch,
        arch_list=plan.arch_list,
        toolkit=ctx.build_toolkit.nvcc_version if ctx.build_toolkit is not None and compiled else None,
        abi=env_abi(interpreter, torch),
        torch_given=ctx.options.adopted and plan.given_torch is not None,
        torch_arch_list=ctx.facts.arch_list if ctx.facts is not None else (),
        torch_cxx_standard=ctx.facts.cxx_standard if ctx.facts is not None else None,
        extensions=tuple(ctx.locked),
        distributions=installed,
    ))
    return f"wrote {lock_file} ({len(installed)} distributions){_replaced(ctx.prior, installed)}"


def _replaced(prior: LockedEnv | None, installed: dict[str, str]) -> str:
    """What the new entry changes in the one it replaces (another venv of this recipe, an older run)."""
    if prior is None or dict(prior.distributions) == installed:
        return ""
    before = dict(prior.distributions)
    added = sorted(set(installed) - set(before))
    removed = sorted(set(before) - set(installed))
    changed = sorted(n for n in set(before) & set(installed) if before[n] != installed[n])
    parts = [f"{len(words)} {what}" for words, what in
             ((added, "added"), (removed, "removed"), (changed, "changed")) if words]
    names = ", ".join([*added, *removed, *changed][:5])
    return f"; replaced the entry of {prior.name}, which had {len(before)}: {', '.join(parts)} ({names}…)"


def lock_entry(plan: Plan, options: SetupOptions, reporter: Reporter) -> LockedEnv | None:
    """This env's entry in the lock, if it can be trusted: one edited by hand is said and ignored
    (the run writes a new one)."""
    entry = read_lock(options.lock_file).get(plan.env_name) if options.lock_file is not None else None
    if entry is not None and entry.edited is not None:
        reporter.done(f"warning: {LockEditedError(entry)}; not trusted: this setup writes a new entry")
        return None
    return entry


def already_done(
    plan: Plan, options: SetupOptions, runner: SubprocessRunner, locked: LockedEnv | None
) -> LockedEnv | None:
    """``locked`` if ``options.venv`` already matches it (compares fingerprints only), else None."""
    target = options.target()
    if locked is None or not target.exists():
        return None
    installed = target.installed(runner)
    fingerprint = env_fingerprint(options.recipe_sha256, plan_signature(plan), installed)
    return locked if fingerprint == locked.fingerprint else None


def lock_step() -> Step:
    return Step("lock file", _lock_run)
