"""Carry out a Plan: target env, index preflight, base, extensions, packages, verify.

:func:`setup_steps` turns a Plan into an ordered list of :class:`Step` objects;
:func:`run_setup` runs them (or, for ``--dry-run``, only lists their commands).
Each step says what it does, and reports progress through a
:class:`Reporter` the front end chooses; the library never prints.

A failed extension leaves the environment as it was before that extension:
the base and the extensions already built stay installed, and the state file
``<venv>/gpuenv-state.json`` lets the next run skip what is already done.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from gpuenv.builder import build_wheel, install_build_requirements
from gpuenv.errors import GpuenvError, StepError, VerifyError
from gpuenv.installer import Installer, make_installer, preflight
from gpuenv.plan import ExtensionPlan, Plan
from gpuenv.runner import SubprocessRunner
from gpuenv.sources import fetch_source
from gpuenv.targetenv import TargetEnv, TorchInfo

STATE_FILE = "gpuenv-state.json"


class Reporter(Protocol):
    """How setup talks to whoever runs it."""

    def step(self, text: str) -> None:
        """A new step begins (one line)."""

    def status(self, text: str) -> None:
        """Progress inside a long step: the current phase or last output line."""

    def done(self, text: str) -> None:
        """A step finished (one line)."""


class SilentReporter:
    def step(self, text: str) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def done(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class SetupOptions:
    venv: Path
    installer: str = "pip"
    #: Where logs, sources and built wheels go (default: <venv>/.gpuenv).
    work_dir: Path | None = None
    #: Check the plan's indexes answer before installing (off for --torch-index config).
    preflight: bool = True
    preflight_timeout: float = 5.0

    @property
    def work(self) -> Path:
        return self.work_dir or self.venv / ".gpuenv"


@dataclass
class Context:
    """What the steps share while they run."""

    plan: Plan
    options: SetupOptions
    reporter: Reporter
    runner: SubprocessRunner
    installer: Installer
    env: TargetEnv | None = None
    torch: TorchInfo | None = None
    state: dict[str, Any] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)

    @property
    def target(self) -> TargetEnv:
        assert self.env is not None, "the target env step runs first"
        return self.env

    def log(self, name: str) -> Path:
        return self.options.work / "logs" / f"{name}.log"

    def save_state(self) -> None:
        path = self.options.venv / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(path)


@dataclass(frozen=True)
class Step:
    title: str
    describe: Callable[[Context], list[str]]
    run: Callable[[Context], str]


@dataclass(frozen=True)
class SetupResult:
    venv: Path
    torch: TorchInfo | None
    built: tuple[str, ...]
    reused: tuple[str, ...]
    skipped: tuple[str, ...]
    commands: tuple[str, ...] = ()


# -- the steps --------------------------------------------------------------------


def _env_describe(ctx: Context) -> list[str]:
    venv = ctx.options.venv
    if (venv / "pyvenv.cfg").exists():
        return [f"# reuse the virtual environment {venv}"]
    return [f"python -m venv {venv}"]


def _env_run(ctx: Context) -> str:
    ctx.env, created = TargetEnv.ensure(ctx.options.venv, ctx.runner)
    ctx.state = _load_state(ctx.options.venv)
    return f"created {ctx.options.venv}" if created else f"reusing {ctx.options.venv}"


def _load_state(venv: Path) -> dict[str, Any]:
    try:
        data = json.loads((venv / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
    current = env.torch_info(ctx.runner)
    if current is not None and torch_matches(ctx.plan, current) is None and not ctx.plan.torch_packages:
        ctx.torch = current
        return f"torch {current.version} already installed"
    ctx.installer.install(env, _base_requirements(ctx.plan), index_url=ctx.plan.index_url)
    info = env.torch_info(ctx.runner)
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


def _ext_fingerprint(ext: ExtensionPlan, torch: TorchInfo) -> str:
    """What the built wheel depends on; the state file compares it to resume."""
    payload = json.dumps(
        {"requirement": ext.requirement, "env": dict(sorted(ext.env.items())), "torch": torch.version,
         "cuda": torch.cuda, "abi": torch.cxx11_abi},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _extension_step(ext: ExtensionPlan) -> Step:
    def describe(ctx: Context) -> list[str]:
        env = " ".join(f"{k}={v}" for k, v in ext.env.items())
        return [
            f"# fetch the source of {ext.requirement} with the target env's pip (--no-build-isolation)",
            f"# install build requirements: {' '.join(ext.build_requires)} (torch untouched)",
            f"{env} <build wheel of {ext.name} with pyproject-hooks in {ctx.options.venv}/bin/python>",
            "# install the wheel with torch pinned to the installed version",
        ]

    def run(ctx: Context) -> str:
        return _build_extension(ctx, ext)

    return Step(f"extension {ext.name}", describe, run)


def _build_extension(ctx: Context, ext: ExtensionPlan) -> str:
    env, torch = ctx.target, ctx.torch
    assert torch is not None
    fingerprint = _ext_fingerprint(ext, torch)
    installed = env.installed(ctx.runner)
    done = ctx.state.get("extensions", {}).get(ext.name, {})
    if done.get("fingerprint") == fingerprint and ext.name in installed:
        ctx.reused.append(ext.name)
        return f"{ext.name} {installed[ext.name]} already built for torch {torch.version}: nothing to do"
    log = ctx.log(ext.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("", encoding="utf-8")
    runner = ctx.runner.with_log(log, on_line=ctx.reporter.status)
    workdir = ctx.options.work / "src" / ext.name
    # pip prepares the sdist's metadata even to download it, in the target env
    # and without isolation: the build requirements must be there first.
    ctx.reporter.status(f"installing build requirements of {ext.name}")
    install_build_requirements(env, ext.build_requires, installer=ctx.installer.with_runner(runner),
                               runner=runner)
    ctx.reporter.status(f"fetching {ext.requirement}")
    source = fetch_source(ext.requirement, env=env, runner=runner, workdir=workdir, path=_local_path(ext),
                          build_env=ext.env)
    wheel = build_wheel(
        source.directory,
        env=env,
        installer=ctx.installer,
        runner=runner,
        build_env=ext.env,
        out_dir=ctx.options.work / "wheels",
        extra_requires=ext.build_requires,
        name=ext.name,
        log_path=log,
        on_phase=ctx.reporter.status,
    )
    ctx.reporter.status(f"installing {wheel.name}")
    ctx.installer.install(env, [str(wheel)], constraints=[f"torch=={torch.version}"])
    ctx.state.setdefault("extensions", {})[ext.name] = {
        "fingerprint": fingerprint, "wheel": str(wheel), "requirement": ext.requirement,
        "torch": torch.version,
    }
    ctx.save_state()
    ctx.built.append(ext.name)
    return f"built and installed {wheel.name} (log: {log})"


def _local_path(ext: ExtensionPlan) -> Path | None:
    candidate = Path(ext.requirement)
    if ext.requirement.startswith((".", "/", "~")) and candidate.expanduser().exists():
        return candidate.expanduser().resolve()
    return None


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
    env = ctx.target
    info = env.torch_info(ctx.runner)
    if info is None or torch_matches(ctx.plan, info) is not None:
        found = "no torch" if info is None else torch_matches(ctx.plan, info)
        raise VerifyError(f"torch changed during setup: {found}",
                          hint="a package requirement replaced torch; pin it in the recipe")
    checked = ["torch"]
    for ext in ctx.plan.extensions:
        if ext.action == "skip":
            continue
        if ext.import_name and not _built_without_its_module(ext):
            _check_import(ctx, ext.import_name)
            checked.append(ext.import_name)
        elif ext.name not in env.installed(ctx.runner):
            raise VerifyError(f"{ext.name} is not installed in {ctx.options.venv}")
    return f"torch {info.version} is {ctx.plan.variant}; imported {', '.join(checked)}"


def _built_without_its_module(ext: ExtensionPlan) -> bool:
    """flash-attn & co. built with their SKIP_CUDA_BUILD flag have no compiled module to import."""
    from gpuenv.knowledge import catalog_entry

    return catalog_entry(ext.name).skips_cuda(ext.env)


def _check_import(ctx: Context, module: str) -> None:
    try:
        ctx.runner([str(ctx.target.python), "-c", f"import {module}"])
    except GpuenvError as exc:
        logs = ctx.options.work / "logs"
        raise VerifyError(f"import {module} fails in {ctx.options.venv}:\n{exc}",
                          hint=f"see the build log of that extension under {logs}") from None


def setup_steps(plan: Plan) -> list[Step]:
    steps = [
        Step("index preflight", _preflight_describe, _preflight_run),
        Step("target environment", _env_describe, _env_run),
        Step("base: " + " ".join(_base_requirements(plan)), _base_describe, _base_run),
    ]
    steps += [_extension_step(e) for e in plan.extensions if e.action != "skip"]
    if plan.packages:
        steps.append(Step("packages: " + " ".join(plan.packages), _packages_describe, _packages_run))
    steps.append(Step("verify", _verify_describe, _verify_run))
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
    runner = runner or SubprocessRunner(log_path=options.work / "logs" / "setup.log")
    ctx = Context(plan, options, reporter, runner, make_installer(options.installer, runner=runner))
    steps = setup_steps(plan)
    if dry_run:
        commands = [line for s in steps for line in s.describe(ctx)]
        return SetupResult(options.venv, None, (), (), _skipped(plan), tuple(commands))
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
    return SetupResult(options.venv, ctx.torch, tuple(ctx.built), tuple(ctx.reused), _skipped(plan))


def _skipped(plan: Plan) -> tuple[str, ...]:
    return tuple(f"{e.name}: {e.reason}" for e in plan.extensions if e.action == "skip")
