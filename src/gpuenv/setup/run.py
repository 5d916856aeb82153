"""Carry out a Plan: target env, index preflight, base, extensions, packages, verify, lock.

:func:`setup_steps` turns a Plan into an ordered list of :class:`~gpuenv.setup.context.Step`
objects; :func:`run_setup` runs them. Each step reports progress through a
:class:`~gpuenv.setup.context.Reporter` the front end chooses; the library never prints.
``--dry-run`` runs the very same steps with a recording runner and installer
(:mod:`gpuenv.setup.dryrun`): the commands they would run come back in order,
and nothing is changed.

The extension step (:mod:`gpuenv.setup.extension`) takes every wheel through
the ABI-keyed wheel cache. A failed extension leaves the environment as it was
before that extension: the base and the extensions already built stay
installed, and the state file ``<venv>/gpuenv-state.json`` lets the next run
skip what is already done. A run that succeeds writes the lock file; a run on
an env that already matches it does nothing.
"""

from __future__ import annotations

import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from gpuenv.env.targetenv import BrokenTorchError, TargetEnv, TorchInfo
from gpuenv.errors import GpuenvError, StepError, UnsatisfiableError, VerifyError
from gpuenv.plan.buildplan import ExtensionPlan
from gpuenv.plan.envplan import Plan
from gpuenv.plan.giventorch import TorchFacts
from gpuenv.plan.recipespec import RepoSpec
from gpuenv.probe.interpreters import Interpreter, find_python, python_satisfies
from gpuenv.runner import RecordingRunner, SubprocessRunner
from gpuenv.setup.adoptsteps import adopt_step, done, given_torch_step, roll_back, runtime_note_step
from gpuenv.setup.context import Context, Reporter, SetupOptions, SilentReporter, Step, load_state
from gpuenv.setup.dryrun import RecordingInstaller, RecordingReporter, torch_expected
from gpuenv.setup.installer import InstallOptions, choose_installer, preflight
from gpuenv.setup.landed import arch_list_note, observe_landed
from gpuenv.setup.lockstep import already_done, lock_entry, lock_step
from gpuenv.setup.runtime import RUNTIME_PTH, write_runtime_env
from gpuenv.setup.toolkit import needs_toolkit_step, toolkit_step


@dataclass(frozen=True)
class SetupResult:
    venv: Path
    torch: TorchInfo | None
    built: tuple[str, ...]
    reused: tuple[str, ...]
    skipped: tuple[str, ...]
    #: What a dry run recorded, as lines to print (commands shell-quoted, words as ``#`` lines).
    commands: tuple[str, ...] = ()
    #: Extensions installed from the wheel cache without building.
    cached: tuple[str, ...] = ()
    #: True when the env already matched the lock and nothing was run.
    noop: bool = False
    lock_file: Path | None = None


# -- the steps --------------------------------------------------------------------


def _python_for(ctx: Context) -> Interpreter:
    """The interpreter the env is made with: gpuenv's own, or one that satisfies the recipe's python."""
    if ctx.plan.python is None:
        return Interpreter(sys.executable, platform.python_version())
    return find_python(ctx.plan.python, ctx.runner)


def _env_run(ctx: Context) -> str:
    venv = ctx.options.venv
    exists = (venv / "pyvenv.cfg").is_file()
    python = sys.executable if exists or ctx.plan.python is None else _python_for(ctx).path
    create = ctx.installer.venv_command(venv, python)
    env, ctx.created = TargetEnv.ensure(venv, ctx.runner, python=python, command=create)
    ctx.env = ctx.view(env, made_with=python if ctx.created else None)
    made = f"created {venv} with {ctx.installer.name}" if ctx.created else f"reusing {venv}"
    if ctx.plan.python is not None:
        version = ctx.env.interpreter(ctx.runner).version
        if not python_satisfies(version, ctx.plan.python):
            # Never a silently different Python: an existing env made with another one stays as it is.
            raise UnsatisfiableError(
                f"{venv} has Python {version}; the recipe asks for python = {ctx.plan.python!r}",
                hint=f"set up another env with --venv PATH, or remove {shlex.quote(str(venv))} yourself",
            )
        made += f" (Python {version})"
    ctx.state = load_state(venv)
    if ctx.created:  # the state file marks an env gpuenv made (adopt.made_by_gpuenv), whatever --work-dir
        ctx.save_state()
    return made


def _indexes(ctx: Context) -> list[str]:
    if not ctx.options.preflight or ctx.plan.index_url is None:
        return []
    return [ctx.plan.index_url]


def _preflight_run(ctx: Context) -> str:
    urls = _indexes(ctx)
    if not urls:
        return "no extra index to check"
    ctx.runner.perform(f"check that {', '.join(urls)} answers, with torch's page (a dry run asks no index)",
                       lambda: preflight(urls, timeout=ctx.options.preflight_timeout, project="torch"),
                       lambda: None)
    return f"{', '.join(urls)} answers"


def _base_requirements(plan: Plan) -> list[str]:
    return [plan.torch, *plan.torch_packages]


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
    current = None
    if not ctx.created:
        try:
            current = env.torch_info(ctx.runner)
        except BrokenTorchError as exc:
            # An install killed while it unpacked torch: the files are half there, so
            # reinstall it (and what it depends on) over them instead of trusting pip's record.
            ctx.reporter.done(f"torch in {ctx.options.venv} does not import ({_last_line(exc.tail)}); "
                              "reinstalling it")
            ctx.installer.install(env, _base_requirements(ctx.plan),
                                  InstallOptions(index_url=ctx.plan.index_url, force_reinstall=True))
            return _base_landed(ctx, note=" (reinstalled: the one found did not import)")
    if current is not None and torch_matches(ctx.plan, current) is None and not ctx.plan.torch_packages:
        ctx.torch = current
        return f"torch {current.version} already installed" + observe_landed(ctx, current)
    ctx.installer.install(env, _base_requirements(ctx.plan), InstallOptions(index_url=ctx.plan.index_url))
    return _base_landed(ctx)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _base_landed(ctx: Context, *, note: str = "") -> str:
    """Check the torch the installer just put in the env is the planned one."""
    env = ctx.target
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
    if torch_expected(env):
        # A dry run: nothing landed. The steps below use the torch the plan expects.
        build = f"CUDA {info.cuda}" if info.cuda else "CPU"
        ctx.reporter.done(f"a dry run installs nothing: the steps below take torch to be {info.version} "
                          f"({build}), the build the plan expects; the real run reads what landed from its "
                          "files and plans the rest for it")
        return f"torch {info.version} (as planned)"
    if plan_is_cpu_but_cuda(ctx.plan, info):
        note += " (a CUDA build for a cpu plan: it runs on the CPU too)"
    return f"torch {info.version} (CUDA {info.cuda or 'none'}, C++11 ABI {int(info.cxx11_abi)}){note}" + \
        observe_landed(ctx, info)


def plan_is_cpu_but_cuda(plan: Plan, info: TorchInfo) -> bool:
    return plan.variant == "cpu" and info.cuda is not None


def _package_args(packages: tuple[str, ...]) -> list[str]:
    """Requirement lines as installer arguments: "-e ./lib" is two of them."""
    args: list[str] = []
    for text in packages:
        args += ["-e", text[3:].strip()] if text.startswith("-e ") else [text]
    return args


def _packages_options(ctx: Context, torch_requirement: str) -> InstallOptions:
    sources = ctx.plan.package_sources
    # A requirements file's --index-url adds to where packages come from: it must not hide the
    # sources the installer is configured with (nor torch's index).
    extra = [u for u in (sources.index_url, *sources.extra_index_urls) if u]
    return InstallOptions(extra_index_urls=extra, find_links=sources.find_links,
                          constraints=[torch_requirement])


def _packages_run(ctx: Context) -> str:
    assert ctx.torch is not None
    ctx.installer.install(ctx.target, _package_args(ctx.plan.packages),
                          _packages_options(ctx, ctx.torch.requirement))
    return f"installed {', '.join(ctx.plan.packages)}"


def _repo_args(repo: RepoSpec) -> list[str]:
    return ["-e", repo.requirement] if repo.editable else [repo.requirement]


def _repo_options(repo: RepoSpec, torch_requirement: str) -> InstallOptions:
    return InstallOptions(constraints=[torch_requirement], no_build_isolation=not repo.isolation)


def _repo_build_env(plan: Plan) -> dict[str, str]:
    """A repository whose setup.py compiles CUDA gets what runtime builds get, the plan's build env, and
    what its own build needs (its toolkit, its switches: :mod:`gpuenv.plan.repobuild`)."""
    own = dict(plan.repo_build.env) if plan.repo_build is not None else {}
    return {**plan.runtime_env, **plan.build_env, **own}


def _repo_run(ctx: Context) -> str:
    """The repository itself, last: against the env's torch, with the plan's build environment."""
    repo, torch = ctx.plan.repo, ctx.torch
    assert repo is not None and torch is not None
    log = ctx.log("repo")
    runner = ctx.runner.with_log(log, on_line=ctx.reporter.status)
    build_env = _repo_build_env(ctx.plan)

    def with_build_env(cmd: Any, cwd: str | None = None, extra_environ: Any = None) -> str:
        return runner(cmd, cwd, {**build_env, **(extra_environ or {})})

    installer = ctx.installer.with_runner(with_build_env)
    if not repo.isolation:
        from gpuenv.setup.builder import install_build_requirements, read_build_system

        install_build_requirements(ctx.target, read_build_system(repo.path).requires, installer=installer,
                                   runner=runner)
    installer.install(ctx.target, _repo_args(repo), _repo_options(repo, torch.requirement))
    how = "editable" if repo.editable else "installed"
    return f"{repo.requirement} {how} (log: {log})"


def _runtime_run(ctx: Context) -> str:
    site = ctx.target.site_packages(ctx.runner)
    env = ctx.plan.runtime_env
    values = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    pth = site / RUNTIME_PTH
    what = (f"write {pth}: code that compiles kernels in this env gets {values} where they are not set"
            if env else f"remove {pth} if it is there: the plan sets nothing")
    path = ctx.runner.perform(what, lambda: write_runtime_env(site, env, inside=ctx.target.path),
                              lambda: pth)
    return f"{path.name}: code that compiles kernels in this env gets {values} where they are not set"


def _verify_run(ctx: Context) -> str:
    imports = {e.name: e.import_name for e in ctx.plan.extensions
               if e.action != "skip" and e.import_name and not _built_without_its_module(e)}
    modules = list(imports.values())
    # One interpreter for all of it: each import of torch costs a second or more.
    what = (f"verify in one interpreter of {ctx.options.venv}: import {', '.join(['torch', *modules])}; "
            f"torch is still the {ctx.plan.variant} build the steps used")
    found = ctx.runner.perform(what, lambda: ctx.target.check(ctx.runner, modules), lambda: None)
    if found is None:
        return "verify recorded"
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
    reported = arch_list_note(ctx, info)
    logs = ctx.options.work / "logs"
    if found.failures:
        failed = "\n".join(f"import {module} fails in {ctx.options.venv}:\n{error.rstrip()}"
                           for module, error in found.failures.items())
        raise VerifyError(failed, hint=f"see the build log of that extension under {shlex.quote(str(logs))}")
    for ext in ctx.plan.extensions:
        if ext.action == "skip" or ext.name in imports:
            continue
        if _distribution(ctx, ext) not in found.installed:
            raise VerifyError(f"{_distribution(ctx, ext)} is not installed in {ctx.options.venv}")
    build = f"CUDA {info.cuda}" if info.cuda else "CPU"
    imported = ", ".join(["torch", *imports.values()])
    return (f"torch {info.version} ({build} build) for the {ctx.plan.variant} plan; imported {imported}"
            + reported)


def _distribution(ctx: Context, ext: ExtensionPlan) -> str:
    """What the extension installed: a local tree's directory name need not be its project name."""
    done = ctx.state.get("extensions", {}).get(ext.name, {})
    return str(done.get("name", ext.name))


def _built_without_its_module(ext: ExtensionPlan) -> bool:
    """flash-attn & co. built with their SKIP_CUDA_BUILD flag have no compiled module to import."""
    from gpuenv.plan.catalog import catalog_entry

    return catalog_entry(ext.name).skips_cuda(ext.env)


def setup_steps(plan: Plan, options: SetupOptions | None = None) -> list[Step]:
    # Here, not at the top: a no-op run never gets this far, and the builder, the sources
    # and their imports are a tenth of its time.
    from gpuenv.setup.extension import extension_step

    adopted = options is not None and options.adopted
    steps = [
        Step("index preflight", _preflight_run),
        adopt_step() if adopted else Step("target environment", _env_run),
        given_torch_step(plan) if adopted and plan.given_torch is not None
        else Step("base: " + " ".join(_base_requirements(plan)), _base_run),
    ]
    if needs_toolkit_step(plan):
        steps.append(toolkit_step(plan))
    steps += [extension_step(e) for e in plan.extensions if e.action != "skip"]
    if plan.packages:
        steps.append(Step("packages: " + " ".join(plan.packages), _packages_run))
    if plan.repo is not None:
        steps.append(Step(f"the repository: {plan.repo.requirement}", _repo_run))
    steps.append(runtime_note_step() if adopted else Step("runtime builds", _runtime_run))
    steps.append(Step("verify", _verify_run))
    if options is not None and options.lock_file is not None:
        steps.append(lock_step())
    return steps


def run_setup(
    plan: Plan,
    options: SetupOptions,
    *,
    reporter: Reporter | None = None,
    runner: SubprocessRunner | None = None,
    dry_run: bool = False,
    replan: Callable[[TorchFacts], Plan] | None = None,
) -> SetupResult:
    """Run every step of ``plan``; with ``dry_run``, the same steps record what they would do instead.

    ``replan`` makes the plan again for the torch that landed, as its files
    describe it (``make_plan`` with ``PlanOptions.given_torch``): the steps
    after the base are then those of that plan. A dry run returns the lines
    it recorded in :attr:`SetupResult.commands`: the commands, shell-quoted,
    in order, with each step's title and words as ``#`` lines.
    """
    recorder: RecordingRunner | None = None
    if dry_run:
        # The steps themselves, with a runner that records what would change something and asks the
        # rest for real; nothing is written, not even a log.
        recorder = runner if isinstance(runner, RecordingRunner) else RecordingRunner(
            env=runner.env if runner is not None else None)
        runner, reporter = recorder, RecordingReporter(recorder)
    reporter = reporter or SilentReporter()
    # Every installer line reaches the reporter, which condenses it into live progress.
    runner = runner or SubprocessRunner(log_path=options.work / "logs" / "setup.log", on_line=reporter.status)
    installer, note = choose_installer(options.installer, runner)
    if recorder is not None:
        installer = RecordingInstaller(installer, recorder)
    ctx = Context(plan, options, reporter, runner, installer, replan=replan, planned=plan)
    steps = setup_steps(plan, options)
    # The same decisions for --dry-run as for the run (they only read the lock and ask the env).
    ctx.prior = lock_entry(plan, options, reporter)
    matched = already_done(plan, options, runner, ctx.prior)
    if matched is not None:
        nothing = (f"nothing to do: {options.venv} already matches {options.lock_file} "
                   f"(torch {matched.abi.torch_version}, fingerprint {matched.fingerprint[:12]})")
        if recorder is not None:
            return SetupResult(options.venv, None, (), (), _skipped(plan), (f"# {nothing}",), noop=True)
        reporter.done(nothing)
        return SetupResult(options.venv, None, (), (), _skipped(plan), noop=True, lock_file=options.lock_file)
    if note is not None:
        reporter.done(note)
    if recorder is not None:
        _run_steps(ctx, steps)
        return SetupResult(options.venv, None, (), (), _skipped(plan), tuple(recorder.lines()))
    try:
        _run_steps(ctx, steps)
    except BaseException as exc:
        roll_back(ctx, reporter, exc)  # an adopted env is put back as it was
        raise
    done(ctx)
    return SetupResult(options.venv, ctx.torch, tuple(ctx.built), tuple(ctx.reused), _skipped(plan),
                       cached=tuple(ctx.cached), lock_file=options.lock_file)


def _run_steps(ctx: Context, steps: list[Step]) -> None:
    options, reporter = ctx.options, ctx.reporter
    recorder = ctx.runner if isinstance(ctx.runner, RecordingRunner) else None
    with ctx.resources:  # the toolkit step's lock, held until the builds are done
        number = 0
        while number < len(steps):
            step, planned = steps[number], ctx.plan
            number += 1
            reporter.step(f"[{number}/{len(steps)}] {step.title}")
            started = time.monotonic()
            changes = recorder.changes() if recorder is not None else 0
            try:
                outcome = step.run(ctx)
            except GpuenvError:
                raise
            except OSError as exc:
                raise StepError(f"{step.title}: {exc}") from exc
            if recorder is None:
                reporter.done(f"{outcome} ({time.monotonic() - started:.1f} s)")
            elif recorder.changes() == changes:
                reporter.done(outcome)  # a step that would change nothing says what it found
            if ctx.plan is not planned:  # made again for the torch that landed: its steps from here on
                steps = steps[:number] + setup_steps(ctx.plan, options)[number:]


def _skipped(plan: Plan) -> tuple[str, ...]:
    return tuple(f"{e.name}: {e.reason}" for e in plan.extensions if e.action == "skip")
