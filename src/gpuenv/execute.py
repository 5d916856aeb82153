"""Carry out a Plan: target env, index preflight, base, extensions, packages, verify.

:func:`setup_steps` turns a Plan into an ordered list of :class:`Step` objects;
:func:`run_setup` runs them (or, for ``--dry-run``, only lists their commands).
Each step says what it does, and reports progress through a
:class:`Reporter` the front end chooses; the library never prints.

Every extension wheel goes through the ABI-keyed :class:`~gpuenv.cache.WheelCache`:
a hit installs without building, a miss says which part of the key differs
from the nearest entry, and a key is built once even by concurrent setups.
A failed extension leaves the environment as it was before that extension:
the base and the extensions already built stay installed, and the state file
``<venv>/gpuenv-state.json`` lets the next run skip what is already done. A
run that succeeds writes the lock file; a run on an env that already matches
it does nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from gpuenv.builder import build_wheel, install_build_requirements
from gpuenv.cache import CacheKey, WheelCache, binary_knobs
from gpuenv.errors import GpuenvError, StepError, VerifyError
from gpuenv.installer import Installer, make_installer, preflight
from gpuenv.lock import LockedEnv, LockedExtension, env_fingerprint, read_lock, write_lock
from gpuenv.plan import ExtensionPlan, Plan
from gpuenv.runner import SubprocessRunner
from gpuenv.sources import Source, fetch_source, file_sha256
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
    #: The wheel cache; None builds every extension (--no-cache).
    cache_dir: Path | None = None
    #: Where the lock file is written (and read for the no-op check); None: no lock.
    lock_file: Path | None = None
    #: sha256 of the recipe file, part of the lock's fingerprint.
    recipe_sha256: str = ""

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
    cached: list[str] = field(default_factory=list)
    locked: list[LockedExtension] = field(default_factory=list)
    #: This env's entry in the lock file as the run found it (None: no lock, or no entry yet).
    prior: LockedEnv | None = None

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


def _extension_step(ext: ExtensionPlan) -> Step:
    def describe(ctx: Context) -> list[str]:
        env = " ".join(f"{k}={v}" for k, v in ext.env.items())
        return [
            "# an exact pin the lock records: look up the wheel cache with the locked sdist sha256; if not:",
            f"# install build requirements: {' '.join(ext.build_requires)} (torch untouched)",
            f"# fetch the source of {ext.requirement} with the target env's pip (--no-build-isolation)",
            "# look up the wheel cache by ABI key; on a miss:",
            f"{env} <build wheel of {ext.name} with pyproject-hooks in {ctx.options.venv}/bin/python>",
            "# install the wheel with torch pinned to the installed version",
        ]

    def run(ctx: Context) -> str:
        return _build_extension(ctx, ext)

    return Step(f"extension {ext.name}", describe, run)


def cache_key(ctx: Context, ext: ExtensionPlan, *, version: str | None, source_digest: str) -> CacheKey:
    """Everything that changes the binary of ``ext`` built from its source in this env."""
    torch = ctx.torch
    assert torch is not None
    interpreter = ctx.target.interpreter(ctx.runner)
    toolkit = ctx.plan.toolkit
    return CacheKey(
        name=ext.name,
        version=version or "",
        source_sha256=source_digest,
        python_tag=interpreter.abi_tag,
        platform=interpreter.platform_tag,
        torch_version=torch.version,
        torch_cuda=torch.cuda,
        cxx11_abi=torch.cxx11_abi,
        arch_list=ext.arch_list if ext.compiles_cuda else (),
        nvcc_version=toolkit.version if ext.compiles_cuda and toolkit is not None else None,
        knobs=binary_knobs(ext.env),
    )


def _build_extension(ctx: Context, ext: ExtensionPlan) -> str:
    env, torch = ctx.target, ctx.torch
    assert torch is not None
    log = ctx.log(ext.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    # Appended, run after run: a resumed setup must not wipe the log of the build it reuses.
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n=== gpuenv setup {time.strftime('%Y-%m-%d %H:%M:%S')}: {ext.requirement} ===\n")
    runner = ctx.runner.with_log(log, on_line=ctx.reporter.status)
    installed = env.installed(ctx.runner)
    known = ctx.prior.source_of(ext.requirement) if ctx.prior is not None and ext.path is None else None
    if known is not None:
        # The lock names the sdist by its sha256: a hit needs neither the fetch nor the build requirements.
        key = cache_key(ctx, ext, version=known.version, source_digest=known.digest)
        outcome = _already_there(ctx, ext, key, installed) or _cached(ctx, ext, key, installed, wait=None)
        if outcome is not None:
            return outcome + "; source sha256 from the lock, not fetched"
    # pip prepares the sdist's metadata even to download it, in the target env
    # and without isolation: the build requirements must be there first.
    ctx.reporter.status(f"installing build requirements of {ext.name}")
    install_build_requirements(env, ext.build_requires, installer=ctx.installer.with_runner(runner),
                               runner=runner)
    ctx.reporter.status(f"fetching {ext.requirement}")
    workdir = ctx.options.work / "src" / ext.name
    source = fetch_source(ext.requirement, env=env, runner=runner, workdir=workdir, path=_local_path(ext),
                          build_env=ext.env)
    key = cache_key(ctx, ext, version=source.version, source_digest=source.digest)
    installed = env.installed(ctx.runner)
    outcome = _already_there(ctx, ext, key, installed)
    if outcome is not None:
        return outcome
    if ctx.options.cache_dir is None:
        wheel = _build(ctx, ext, source, runner, log)
        return _install_built(ctx, ext, key, wheel, installed, wheel_sha256=file_sha256(wheel),
                              how=f"built (no cache; log: {log})")
    cache = WheelCache(ctx.options.cache_dir)
    with cache.lock(key, on_wait=lambda wait: ctx.reporter.status(wait.describe())) as held:
        outcome = _cached(ctx, ext, key, installed, wait=held.waited)
        if outcome is not None:
            return outcome
        ctx.reporter.done(_miss_text(cache, key))
        wheel = _build(ctx, ext, source, runner, log)
        entry = cache.store(key, wheel)
        return _install_built(ctx, ext, key, entry.wheel, installed, wheel_sha256=entry.sha256,
                              how=f"built and cached as {key.digest[:12]} (log: {log})")


def _already_there(ctx: Context, ext: ExtensionPlan, key: CacheKey, installed: dict[str, str]) -> str | None:
    """A resumed run: the wheel of ``key`` is what an earlier run installed here."""
    done = ctx.state.get("extensions", {}).get(ext.name, {})
    if done.get("cache-key") != key.digest or done.get("name") not in installed:
        return None
    ctx.reused.append(ext.name)
    ctx.locked.append(_locked_from_state(done))
    assert ctx.torch is not None
    return f"{done['name']} {installed[done['name']]} already installed, built for torch {ctx.torch.version}"


def _cached(
    ctx: Context, ext: ExtensionPlan, key: CacheKey, installed: dict[str, str], *, wait: bool | None
) -> str | None:
    """Install the cached wheel of ``key``, if the cache holds a sound one.

    ``wait`` is None when the caller does not hold the key's lock: a miss or a
    refused entry then says nothing (the caller fetches, locks and looks again).
    """
    if ctx.options.cache_dir is None:
        return None
    cache = WheelCache(ctx.options.cache_dir)
    looked = cache.lookup(key)
    if looked.refused and wait is not None:
        ctx.reporter.done(f"refused the cached wheel of {ext.name}: {looked.refused}; rebuilding it")
    if looked.entry is None:
        return None
    assert ctx.torch is not None
    waited = " after waiting for another process that built it" if wait else ""
    ctx.cached.append(ext.name)
    return _install_built(ctx, ext, key, looked.entry.wheel, installed, wheel_sha256=looked.entry.sha256,
                          how=f"cached{waited}: key {key.digest[:12]} matched "
                              f"(torch {ctx.torch.version}, {_archs_text(key)})")


def _archs_text(key: CacheKey) -> str:
    return f"archs {';'.join(key.arch_list)}" if key.arch_list else "no CUDA code"


def _miss_text(cache: WheelCache, key: CacheKey) -> str:
    nearest = cache.nearest(key)
    if nearest is None:
        return f"cache miss: no wheel of {key.name} in {cache.path}; building"
    _, differences = nearest
    return f"cache miss: the nearest {key.name} wheel differs in {'; '.join(differences)}; building"


def _build(ctx: Context, ext: ExtensionPlan, source: Source, runner: SubprocessRunner, log: Path) -> Path:
    return build_wheel(
        source.directory,
        env=ctx.target,
        installer=ctx.installer,
        runner=runner,
        build_env=ext.env,
        out_dir=ctx.options.work / "wheels",
        extra_requires=ext.build_requires,
        name=ext.name,
        log_path=log,
        on_phase=ctx.reporter.status,
    )


def _install_built(
    ctx: Context, ext: ExtensionPlan, key: CacheKey, wheel: Path, installed: dict[str, str], *,
    wheel_sha256: str, how: str,
) -> str:
    torch = ctx.torch
    assert torch is not None
    ctx.reporter.status(f"installing {wheel.name}")
    pin = [f"torch=={torch.version}"]
    ctx.installer.install(ctx.target, [str(wheel)], constraints=pin)
    if _wheel_name(wheel) in installed:
        # A rebuild for other archs has the version already installed, which an
        # installer leaves alone: put the wheel itself in again.
        ctx.installer.install(ctx.target, [str(wheel)], constraints=pin, no_deps=True, force_reinstall=True)
    record = LockedExtension(
        name=_wheel_name(wheel), version=_wheel_version(wheel), requirement=ext.requirement,
        cache_key=key.digest, wheel=wheel.name, wheel_sha256=wheel_sha256, source=key.source_sha256,
        arch_list=key.arch_list, knobs=dict(key.knobs),
    )
    ctx.locked.append(record)
    ctx.state.setdefault("extensions", {})[ext.name] = _state_from_locked(record)
    ctx.save_state()
    if not how.startswith("cached"):
        ctx.built.append(ext.name)
    return f"{wheel.name}: {how}"


def _wheel_name(wheel: Path) -> str:
    """The distribution a wheel installs (a local tree's directory name may differ)."""
    return canonicalize_name(wheel.name.split("-")[0])


def _wheel_version(wheel: Path) -> str:
    parts = wheel.name.split("-")
    return parts[1] if len(parts) > 2 else ""


def _state_from_locked(record: LockedExtension) -> dict[str, Any]:
    return {"cache-key": record.cache_key, "name": record.name, "version": record.version,
            "requirement": record.requirement, "wheel": record.wheel, "wheel-sha256": record.wheel_sha256,
            "source": record.source, "arch-list": list(record.arch_list), "knobs": dict(record.knobs)}


def _locked_from_state(done: dict[str, Any]) -> LockedExtension:
    return LockedExtension(
        name=done["name"], version=done["version"], requirement=done["requirement"],
        cache_key=done["cache-key"], wheel=done["wheel"], wheel_sha256=done["wheel-sha256"],
        source=done["source"], arch_list=tuple(done["arch-list"]), knobs=dict(done["knobs"]),
    )


def _local_path(ext: ExtensionPlan) -> Path | None:
    return Path(ext.path) if ext.path is not None else None


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
    steps = [
        Step("index preflight", _preflight_describe, _preflight_run),
        Step("target environment", _env_describe, _env_run),
        Step("base: " + " ".join(_base_requirements(plan)), _base_describe, _base_run),
    ]
    steps += [_extension_step(e) for e in plan.extensions if e.action != "skip"]
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
    runner = runner or SubprocessRunner(log_path=options.work / "logs" / "setup.log")
    ctx = Context(plan, options, reporter, runner, make_installer(options.installer, runner=runner))
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
