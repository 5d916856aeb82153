"""Carry out a Plan: target env, index preflight, base, extensions, packages, verify, lock.

:func:`setup_steps` turns a Plan into an ordered list of :class:`~gpuenv.steps.Step`
objects; :func:`run_setup` runs them (or, for ``--dry-run``, only lists their
commands). Each step says what it does, and reports progress through a
:class:`~gpuenv.steps.Reporter` the front end chooses; the library never prints.

The extension step (:mod:`gpuenv.extension_step`) takes every wheel through
the ABI-keyed wheel cache. A failed extension leaves the environment as it was
before that extension: the base and the extensions already built stay
installed, and the state file ``<venv>/gpuenv-state.json`` lets the next run
skip what is already done. A run that succeeds writes the lock file; a run on
an env that already matches it does nothing.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from gpuenv.cache import binary_knobs
from gpuenv.errors import GpuenvError, StepError, VerifyError
from gpuenv.installer import choose_installer, preflight
from gpuenv.lock import LockedEnv, env_fingerprint, read_lock, write_lock
from gpuenv.plan import ExtensionPlan, Plan
from gpuenv.runner import SubprocessRunner
from gpuenv.steps import Context, Reporter, SetupOptions, SilentReporter, Step, load_state
from gpuenv.targetenv import TargetEnv, TorchInfo


@dataclass(frozen=True)
class SetupResult:
    venv: Path
    torch: TorchInfo | None
    built: tuple[str, ...]
    reused: tuple[str, ...]
    skipped: tuple[str, ...]
    commands: tuple[str, ...] = ()
    #: Extensions installed from the wheel cache without building.
    cached: tuple[str, ...] = ()
    #: True when the env already matched the lock and nothing was run.
    noop: bool = False
    lock_file: Path | None = None


# -- the steps --------------------------------------------------------------------


def _env_describe(ctx: Context) -> list[str]:
    venv = ctx.options.venv
    if (venv / "pyvenv.cfg").exists():
        return [f"# reuse the virtual environment {venv}"]
    return [" ".join(ctx.installer.venv_command(venv, sys.executable))]


def _env_run(ctx: Context) -> str:
    create = ctx.installer.venv_command(ctx.options.venv, sys.executable)
    ctx.env, ctx.created = TargetEnv.ensure(ctx.options.venv, ctx.runner, command=create)
    ctx.state = load_state(ctx.options.venv)
    how = f" with {ctx.installer.name}" if ctx.created else ""
    return f"created {ctx.options.venv}{how}" if ctx.created else f"reusing {ctx.options.venv}"


def _preflight_describe(ctx: Context) -> list[str]:
    return [f"# check that {u} answers" for u in _indexes(ctx)]


def _indexes(ctx: Context) -> list[str]:
    if not ctx.options.preflight or ctx.plan.index_url is None:
        return []
    return [ctx.plan.index_url]


def _preflight_run(ctx: Context) -> str:
    urls = _indexes(ctx)
    if not urls:
        return "no extra index to check"
    preflight(urls, timeout=ctx.options.preflight_timeout, project="torch")
    return f"{', '.join(urls)} answers"


def _base_requirements(plan: Plan) -> list[str]:
    return [plan.torch, *plan.torch_packages]


def _base_describe(ctx: Context) -> list[str]:
    return [" ".join(c) for c in ctx.installer.commands(
        _python_placeholder(ctx), _base_requirements(ctx.plan), index_url=ctx.plan.index_url)]


def _python_placeholder(ctx: Context) -> TargetEnv:
    return ctx.env or TargetEnv.at(ctx.options.venv)


def torch_matches(plan: Plan, info: TorchInfo) -> str | None:
    """Why ``info`` is not the torch the plan asked for, or None if it is."""
    spec = SpecifierSet(plan.torch.removeprefix("torch"))
    if not spec.contains(Version(info.version), prereleases=True):
        return f"torch {info.version} does not satisfy {plan.torch}"
    # A CUDA build runs on the CPU too: what the installer's own configuration
    # serves for a cpu plan is accepted (and said in the step's outcome).
    if info.variant != plan.variant and plan.variant != "cpu":
        built = f"a {info.variant} build" if info.cuda else "a CPU build"
        return f"torch {info.version} is {built}, the plan is {plan.variant}"
    return None


def _base_run(ctx: Context) -> str:
    env = ctx.target
    # An env made a moment ago holds no torch: no interpreter needs to say so.
    current = None if ctx.created else env.torch_info(ctx.runner)
    if current is not None and torch_matches(ctx.plan, current) is None and not ctx.plan.torch_packages:
        ctx.torch = current
        return f"torch {current.version} already installed"
    ctx.installer.install(env, _base_requirements(ctx.plan), index_url=ctx.plan.index_url)
    # What landed, from torch's files (verify imports it, once, and checks these facts).
    info = env.facts(ctx.runner)
    if info is None:
        raise VerifyError("torch is not importable in the environment after installing it")
    problem = torch_matches(ctx.plan, info)
    if problem is not None:
        raise VerifyError(
            f"the installer put the wrong torch in {ctx.options.venv}: {problem}",
            hint="the index served another build: check --torch-index / GPUENV_TORCH_INDEX and your "
            "installer's configuration, or force the variant you want with --cuda",
        )
    ctx.torch = info
    cpu_but_cuda = plan_is_cpu_but_cuda(ctx.plan, info)
    note = " (a CUDA build for a cpu plan: it runs on the CPU too)" if cpu_but_cuda else ""
    return f"torch {info.version} (CUDA {info.cuda or 'none'}, C++11 ABI {int(info.cxx11_abi)}){note}"


def plan_is_cpu_but_cuda(plan: Plan, info: TorchInfo) -> bool:
    return plan.variant == "cpu" and info.cuda is not None


def _packages_describe(ctx: Context) -> list[str]:
    return [" ".join(c) for c in ctx.installer.commands(
        _python_placeholder(ctx), list(ctx.plan.packages), constraints=["torch==<installed version>"])]


def _packages_run(ctx: Context) -> str:
    assert ctx.torch is not None
    ctx.installer.install(ctx.target, list(ctx.plan.packages), constraints=[f"torch=={ctx.torch.version}"])
    return f"installed {', '.join(ctx.plan.packages)}"


def _verify_describe(ctx: Context) -> list[str]:
    names = [e.import_name for e in ctx.plan.extensions if e.action != "skip" and e.import_name]
    return [f"# verify: torch is {ctx.plan.variant}; import {', '.join(['torch', *names])}"]


def _verify_run(ctx: Context) -> str:
    imports = {e.name: e.import_name for e in ctx.plan.extensions
               if e.action != "skip" and e.import_name and not _built_without_its_module(e)}
    # One interpreter for all of it: each import of torch costs a second or more.
    found = ctx.target.check(ctx.runner, list(imports.values()))
    info = found.torch
    if info is None or torch_matches(ctx.plan, info) is not None:
        problem = "no torch" if info is None else torch_matches(ctx.plan, info)
        raise VerifyError(f"torch changed during setup: {problem}",
                          hint="a package requirement replaced torch; pin it in the recipe")
    assumed = ctx.torch
    if assumed is not None and (info.version, info.cuda, info.cxx11_abi) != (
            assumed.version, assumed.cuda, assumed.cxx11_abi):
        raise VerifyError(
            f"the imported torch is {info.version} (CUDA {info.cuda}, C++11 ABI {int(info.cxx11_abi)}), "
            f"but the steps took it for {assumed.version} (CUDA {assumed.cuda}, C++11 ABI "
            f"{int(assumed.cxx11_abi)}) and chose its extension wheels for that",
            hint="torch's files disagree with the torch that imports: reinstall torch and run setup again")
    ctx.torch = info
    logs = ctx.options.work / "logs"
    if found.failures:
        failed = "\n".join(f"import {module} fails in {ctx.options.venv}:\n{error.rstrip()}"
                           for module, error in found.failures.items())
        raise VerifyError(failed, hint=f"see the build log of that extension under {logs}")
    for ext in ctx.plan.extensions:
        if ext.action == "skip" or ext.name in imports:
            continue
        if _distribution(ctx, ext) not in found.installed:
            raise VerifyError(f"{_distribution(ctx, ext)} is not installed in {ctx.options.venv}")
    build = f"CUDA {info.cuda}" if info.cuda else "CPU"
    imported = ", ".join(["torch", *imports.values()])
    return f"torch {info.version} ({build} build) for the {ctx.plan.variant} plan; imported {imported}"


def _distribution(ctx: Context, ext: ExtensionPlan) -> str:
    """What the extension installed: a local tree's directory name need not be its project name."""
    done = ctx.state.get("extensions", {}).get(ext.name, {})
    return str(done.get("name", ext.name))


def _built_without_its_module(ext: ExtensionPlan) -> bool:
    """flash-attn & co. built with their SKIP_CUDA_BUILD flag have no compiled module to import."""
    from gpuenv.knowledge import catalog_entry

    return catalog_entry(ext.name).skips_cuda(ext.env)


def plan_signature(plan: Plan) -> dict[str, Any]:
    """The plan's decisions that shape the env (not its wording, job counts or warnings)."""
    return {
        "variant": plan.variant,
        "index_url": plan.index_url,
        "torch": plan.torch,
        "torch_packages": list(plan.torch_packages),
        "arch_list": list(plan.arch_list),
        "toolkit": plan.toolkit.version if plan.toolkit else None,
        "packages": list(plan.packages),
        "extensions": [
            [e.name, e.requirement, "skip" if e.action == "skip" else "build", dict(binary_knobs(e.env))]
            for e in plan.extensions
        ],
    }


def _lock_describe(ctx: Context) -> list[str]:
    return [f"# write {ctx.options.lock_file}"] if ctx.options.lock_file else []


def _lock_run(ctx: Context) -> str:
    lock_file, torch, plan = ctx.options.lock_file, ctx.torch, ctx.plan
    assert lock_file is not None and torch is not None
    installed = ctx.target.installed(ctx.runner)
    interpreter = ctx.target.interpreter(ctx.runner)
    compiled = any(e.compiles_cuda for e in plan.extensions if e.action != "skip")
    recipe = Path(plan.recipe)
    write_lock(lock_file, LockedEnv(
        name=plan.env_name,
        recipe=recipe.name if recipe.parent == lock_file.parent else str(recipe),
        recipe_sha256=ctx.options.recipe_sha256,
        fingerprint=env_fingerprint(ctx.options.recipe_sha256, plan_signature(plan), installed),
        variant=plan.variant,
        cuda=plan.cuda,
        index_url=plan.index_url,
        torch_requirement=plan.torch,
        arch_list=plan.arch_list,
        toolkit=plan.toolkit.version if plan.toolkit is not None and compiled else None,
        python_tag=interpreter.abi_tag,
        platform=interpreter.platform_tag,
        torch_version=torch.version,
        torch_cuda=torch.cuda,
        cxx11_abi=torch.cxx11_abi,
        extensions=tuple(ctx.locked),
        distributions=installed,
    ))
    return f"wrote {lock_file} ({len(installed)} distributions)"


def _lock_entry(plan: Plan, options: SetupOptions) -> LockedEnv | None:
    return read_lock(options.lock_file).get(plan.env_name) if options.lock_file is not None else None


def already_done(
    plan: Plan, options: SetupOptions, runner: SubprocessRunner, locked: LockedEnv | None
) -> LockedEnv | None:
    """``locked`` if ``options.venv`` already matches it (compares fingerprints only), else None."""
    if locked is None or not (options.venv / "pyvenv.cfg").exists():
        return None
    installed = TargetEnv.at(options.venv).installed(runner)
    fingerprint = env_fingerprint(options.recipe_sha256, plan_signature(plan), installed)
    return locked if fingerprint == locked.fingerprint else None


def setup_steps(plan: Plan, options: SetupOptions | None = None) -> list[Step]:
    # Here, not at the top: a no-op run never gets this far, and the builder, the sources
    # and their imports are a tenth of its time.
    from gpuenv.extension_step import extension_step

    steps = [
        Step("index preflight", _preflight_describe, _preflight_run),
        Step("target environment", _env_describe, _env_run),
        Step("base: " + " ".join(_base_requirements(plan)), _base_describe, _base_run),
    ]
    steps += [extension_step(e) for e in plan.extensions if e.action != "skip"]
    if plan.packages:
        steps.append(Step("packages: " + " ".join(plan.packages), _packages_describe, _packages_run))
    steps.append(Step("verify", _verify_describe, _verify_run))
    if options is not None and options.lock_file is not None:
        steps.append(Step("lock file", _lock_describe, _lock_run))
    return steps


def run_setup(
    plan: Plan,
    options: SetupOptions,
    *,
    reporter: Reporter | None = None,
    runner: SubprocessRunner | None = None,
    dry_run: bool = False,
) -> SetupResult:
    """Run (or with ``dry_run`` only list) every step of ``plan``."""
    reporter = reporter or SilentReporter()
    # A dry run writes nothing, not even a log (uv's commands ask pip for its configuration).
    runner = runner or SubprocessRunner(log_path=None if dry_run else options.work / "logs" / "setup.log")
    installer, note = choose_installer(options.installer, runner)
    ctx = Context(plan, options, reporter, runner, installer)
    steps = setup_steps(plan, options)
    if dry_run:
        commands = [line for s in steps for line in s.describe(ctx)]
        return SetupResult(options.venv, None, (), (), _skipped(plan), tuple(commands))
    ctx.prior = _lock_entry(plan, options)
    matched = already_done(plan, options, runner, ctx.prior)
    if matched is not None:
        reporter.done(f"nothing to do: {options.venv} already matches {options.lock_file} "
                      f"(torch {matched.torch_version}, fingerprint {matched.fingerprint[:12]})")
        return SetupResult(options.venv, None, (), (), _skipped(plan), noop=True, lock_file=options.lock_file)
    if note is not None:
        reporter.done(note)
    for number, step in enumerate(steps, 1):
        reporter.step(f"[{number}/{len(steps)}] {step.title}")
        started = time.monotonic()
        try:
            outcome = step.run(ctx)
        except GpuenvError:
            raise
        except OSError as exc:
            raise StepError(f"{step.title}: {exc}") from exc
        reporter.done(f"{outcome} ({time.monotonic() - started:.1f} s)")
    return SetupResult(options.venv, ctx.torch, tuple(ctx.built), tuple(ctx.reused), _skipped(plan),
                       cached=tuple(ctx.cached), lock_file=options.lock_file)


def _skipped(plan: Plan) -> tuple[str, ...]:
    return tuple(f"{e.name}: {e.reason}" for e in plan.extensions if e.action == "skip")
