"""The ``gpuenv`` command: a handler per command and one error boundary, nothing else.

:mod:`gpuenv.cli_parser` parses the arguments; every handler translates them
and calls the library. A
:class:`~gpuenv.errors.GpuenvError` becomes an ``error:`` line, an optional
``hint:`` line and its exit code; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuenv.cli_output import Output, os_error, show_warnings, tolerant_streams
from gpuenv.cli_parser import TOOLKIT_ENV, build_parser
from gpuenv.errors import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_STEP_FAILED,
    EXIT_UNSATISFIABLE,
    GpuenvError,
    InputError,
)
from gpuenv.inputs import index_template
from gpuenv.plan.hardware import Hardware
from gpuenv.plan.recipespec import Recipe
from gpuenv.printable import printable
from gpuenv.progress import QUIET, Style, use_color

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from gpuenv.cache.toolkitcache import ProvisionedToolkit
    from gpuenv.plan.giventorch import TorchFacts
    from gpuenv.plan.planner import PlanOptions
    from gpuenv.plan.toolkitchoice import ToolkitPolicy
    from gpuenv.setup.adopt import Target


def _cache_dir(args: argparse.Namespace) -> Path:
    from gpuenv.cache.wheels import default_cache_dir

    given = getattr(args, "cache_dir", None)  # not every command has --cache-dir; the probe reads the cache
    return Path(given) if given is not None else default_cache_dir()


def _toolkit_dir(args: argparse.Namespace) -> Path:
    from gpuenv.cache.toolkitcache import default_toolkit_dir

    return default_toolkit_dir(_cache_dir(args))


def _probe(args: argparse.Namespace) -> Hardware:
    """This machine, its toolkits including those in gpuenv's toolkit cache."""
    from gpuenv.cache.toolkitcache import ToolkitCache
    from gpuenv.probe.host import probe

    return probe(provisioned=[p.toolkit for p in ToolkitCache(_toolkit_dir(args)).toolkits()])


def _hardware(args: argparse.Namespace, *, local_host: bool = False) -> Hardware:
    from gpuenv.probe.machine import describe_machine

    return describe_machine(hardware_file=args.hardware, gpu=args.gpu, arch=args.arch, local_host=local_host,
                            prober=lambda: _probe(args))


def _style(args: argparse.Namespace, stream: Any = None) -> Style:
    return Style(use_color(args.color, stream or sys.stdout))


def _cmd_gpus(args: argparse.Namespace) -> int:
    from gpuenv.probe.machine import gpu_models_matching

    models = gpu_models_matching(args.substring)
    if args.json:
        print(json.dumps([{"name": m.name, "compute_capability": m.cc, "memory_mib": m.memory_mib}
                          for m in models], indent=2))
        return EXIT_OK
    if not models:
        raise InputError(f"no GPU name contains {args.substring!r}",
                         hint="'gpuenv gpus' lists them all; for a GPU not listed, give its compute "
                              "capability: --arch X.Y")
    style = _style(args)
    if args.verbosity > QUIET:
        width = max(len(m.name) for m in models)
        for m in models:
            print(f"{style(f'{m.name:<{width}}', 'bold')}  compute capability {m.cc:<5} "
                  f"{m.memory_mib // 1024} GiB")
    print(f"{len(models)} GPU name(s); use them as --gpu NAME, NAME,NAME or 8xNAME")
    return EXIT_OK


def _cmd_probe(args: argparse.Namespace) -> int:
    from gpuenv.render import hardware_text

    hardware = _probe(args)
    _show(json.dumps(hardware.to_json(), indent=2) if args.json else hardware_text(hardware))
    return EXIT_OK


def _load_recipe(args: argparse.Namespace) -> Recipe:
    from gpuenv.load.recipe import find_recipe, load_recipe

    return load_recipe(args.recipe if args.recipe is not None else find_recipe(Path.cwd()))


def _plan_options(args: argparse.Namespace, recipe: Recipe) -> PlanOptions:
    from gpuenv.load.treefacts import recipe_tree
    from gpuenv.load.treemeta import recipe_sources
    from gpuenv.plan.planner import PlanOptions
    from gpuenv.setup.indexquery import env_python, host_platform, installer_constraints, plan_releases

    releases = plan_releases(recipe, cache_dir=_cache_dir(args), torch_index=_torch_index(args),
                             cuda=args.cuda, refresh=args.refresh, offline=args.offline,
                             progress=_progress(args))
    return PlanOptions(cuda=args.cuda, torch_index=_torch_index(args), sources=recipe_sources(recipe),
                       toolkit=_toolkit_policy(args, recipe), releases=releases,
                       python_version=env_python(recipe), platform=host_platform(),
                       constraints=installer_constraints(), tree=recipe_tree(recipe),
                       cache_from=_cache_from(args), push=getattr(args, "push", False),
                       prebuilt=getattr(args, "prebuilt", None))


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    """Progress lines on stderr (the plan may be JSON on stdout), unless -q."""
    if args.verbosity <= QUIET:
        return None
    return lambda text: print(f"{printable(text)}...", file=sys.stderr, flush=True)


def _cache_from(args: argparse.Namespace) -> tuple[str, ...] | None:
    """--cache-from, else GPUENV_CACHE_FROM (space-separated), else None (the recipe's [cache] from)."""
    from gpuenv.cache.shared import ENV_VAR, cache_source

    given = getattr(args, "cache_from", None) or os.environ.get(ENV_VAR, "").split() or None
    for text in given or ():
        cache_source(text)  # bad input is an error now, not at the first extension
    return tuple(given) if given else None


def _toolkit_policy(args: argparse.Namespace, recipe: Recipe) -> ToolkitPolicy:
    from gpuenv.cache.toolkitcache import toolkit_policy

    if args.toolkit:
        choice, by = args.toolkit, f"--toolkit {args.toolkit}"
    elif os.environ.get(TOOLKIT_ENV):
        choice, by = os.environ[TOOLKIT_ENV], f"{TOOLKIT_ENV}={os.environ[TOOLKIT_ENV]}"
    else:
        choice, by = recipe.torch.toolkit, f"toolkit in {recipe.path.name}"
    return toolkit_policy(choice, chosen_by=by, cache_dir=str(_toolkit_dir(args)))


def _torch_index(args: argparse.Namespace) -> str | None:
    return index_template(args.torch_index) if args.torch_index is not None else None


def _target(args: argparse.Namespace, recipe: Recipe | None) -> Target:
    """The env --venv or --python names (a recipe with use = "existing": the Python gpuenv runs in)."""
    from gpuenv.runner import SubprocessRunner
    from gpuenv.setup.adopt import find_target

    existing = recipe is not None and recipe.torch.existing
    return find_target(venv=args.venv, python=args.python, existing=existing, runner=SubprocessRunner())


def _given_torch(target: Target, recipe: Recipe) -> TorchFacts | None:
    from gpuenv.runner import SubprocessRunner
    from gpuenv.setup.adopt import given_torch

    return given_torch(target, SubprocessRunner(), existing=recipe.torch.existing)


def _cmd_plan(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gpuenv.plan.planner import make_plan
    from gpuenv.render import plan_text

    recipe = _load_recipe(args)
    hardware = _hardware(args)
    options = _plan_options(args, recipe)
    if args.venv is not None or args.python is not None or recipe.torch.existing:
        # Planned for the torch of that env, as setup would build into it.
        options = replace(options, given_torch=_given_torch(_target(args, recipe), recipe))
    result = make_plan(recipe, hardware, options)
    if not args.no_cache and not result.blockers:
        from gpuenv.cache.hits import predicted_hits
        from gpuenv.cache.wheels import WheelCache

        hits = predicted_hits(result, WheelCache(_cache_dir(args)))
        if hits:
            result = make_plan(recipe, hardware, replace(options, cached=hits))
    _show(json.dumps(result.to_json(), indent=2) if args.json else plan_text(result))
    # The whole plan first, then every blocker with its hint: what setup would stop on.
    for blocker in result.blockers:
        _print_error(blocker.error, args)
    return EXIT_UNSATISFIABLE if result.blockers else EXIT_OK


def _cmd_setup(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gpuenv.cache.shared import cache_source
    from gpuenv.lock.lockfile import lock_path_for, read_lock
    from gpuenv.lock.lockplan import plan_locked
    from gpuenv.plan.planner import make_plan, plan
    from gpuenv.progress import TerminalReporter, log_files
    from gpuenv.render import plan_summary
    from gpuenv.setup.adopt import adopted_work_dir
    from gpuenv.setup.run import run_setup
    from gpuenv.setup.sources import file_sha256
    from gpuenv.setup.steps import SetupOptions

    recipe = _load_recipe(args)
    hardware = _hardware(args, local_host=True)
    target = _target(args, recipe)
    if target.adopted and not args.dry_run:  # before anything is written, logs included
        from gpuenv.runner import SubprocessRunner
        from gpuenv.setup.adopt import check_externally_managed

        interpreter = target.env.interpreter(SubprocessRunner())
        check_externally_managed(target.env, interpreter, allowed=args.break_system_packages)
    # An env gpuenv did not create: planned for its torch, which nothing replaces.
    plan_options = replace(_plan_options(args, recipe), given_torch=_given_torch(target, recipe))
    lock_file = lock_path_for(recipe.path)
    if args.locked:
        locked = read_lock(lock_file).get(recipe.name)
        if locked is None:
            raise InputError(f"{lock_file} has no environment {recipe.name}",
                             hint="run 'gpuenv setup' without --locked first to write it")
        result = plan_locked(recipe, hardware, locked, plan_options)
    else:
        result = plan(recipe, hardware, plan_options)
    options = SetupOptions(
        venv=target.path, python=target.python, adopted=target.adopted,
        break_system_packages=args.break_system_packages, installer=args.installer,
        work_dir=args.work_dir or (adopted_work_dir(target.path) if target.adopted else None),
        preflight=args.torch_index != "config" and plan_options.given_torch is None,
        cache_dir=None if args.no_cache else _cache_dir(args),
        # --locked reproduces the lock; it does not rewrite it.
        lock_file=None if args.locked else lock_file,
        recipe_sha256=file_sha256(recipe.path),
        cache_from=tuple(cache_source(u) for u in result.cache_from), push=result.push,
        prebuilt=result.prebuilt,
    )
    # The plan made again for the torch that lands (observed beats shipped), in a dry run too.
    replan = None if args.locked or plan_options.given_torch is not None else (
        lambda facts: make_plan(recipe, hardware, replace(plan_options, given_torch=facts)))
    if args.dry_run:
        _show(f"# plan: {plan_summary(result)}")
        for line in run_setup(result, options, dry_run=True, replan=replan).commands:
            _show(line)
        return EXIT_OK
    with TerminalReporter(verbosity=args.verbosity, color=use_color(args.color, sys.stderr)) as reporter:
        reporter.step(f"plan: {plan_summary(result)}")
        for warning in result.warnings:
            reporter.done(f"warning: {warning}")
        try:
            outcome = run_setup(result, options, reporter=reporter, replan=replan)
        finally:
            # Where the output went, whether the run succeeded or not.
            logs = log_files(options.work / "logs")
            if logs:
                reporter.step(f"logs: {logs[0].parent}: {', '.join(p.name for p in logs)}")
        for line in outcome.skipped:
            reporter.done(f"skipped {line}")
    ready = _style(args)("ready:", "green", "bold")
    if target.adopted:
        print(f"{ready} {shlex.quote(str(outcome.venv))} (with {shlex.quote(str(target.env.python))})")
        return EXIT_OK
    activate = shlex.quote(str(outcome.venv / "bin" / "activate"))
    where = printable(shlex.quote(str(outcome.venv)))
    print(f"{ready} {where} (activate with: source {printable(activate)})")
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gpuenv.doctor.diagnosis import diagnose, recipe_and_lock
    from gpuenv.doctor.report import report_text
    from gpuenv.progress import paint_verdicts

    recipe, locked = recipe_and_lock(args.recipe, start=Path.cwd())
    target = _target(args, None)
    report = diagnose(target.path, python=target.python, hardware=_hardware(args, local_host=True),
                      recipe=recipe, locked=locked)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return report.exit_code
    if args.verbosity <= QUIET:
        # Only what needs attention, and the summary (its counts are the same).
        report = replace(report, checks=tuple(c for c in report.checks if c.verdict in ("warn", "fail")))
    print(paint_verdicts(printable(report_text(report), lines=True), _style(args)))
    return report.exit_code


def _cmd_init(args: argparse.Namespace) -> int:
    from gpuenv.init.existing import torch_in_this_python
    from gpuenv.init.writer import init_repo, init_text

    result = init_repo(Path.cwd(), name=args.name, into_pyproject=args.pyproject,
                       torch_version=args.torch, extensions=args.extension, here=torch_in_this_python())
    text = init_text(result)
    _show(text.splitlines()[-1] if args.verbosity <= QUIET else text)
    return EXIT_OK


def _cmd_export_uv(args: argparse.Namespace) -> int:
    from gpuenv.export.uv import export_uv

    recipe = _load_recipe(args)
    result = export_uv(recipe, _hardware(args), _plan_options(args, recipe), write=args.write)
    _show(result.text)
    return EXIT_OK


def _cmd_export_pylock(args: argparse.Namespace) -> int:
    from gpuenv.doctor.diagnosis import recipe_and_lock
    from gpuenv.export.pylock import export_pylock

    _, locked = recipe_and_lock(args.recipe, start=Path.cwd())
    text = export_pylock(args.venv.absolute(), locked=locked, cache_dir=_cache_dir(args), output=args.output)
    _show(text)
    return EXIT_OK


def _cmd_cache_path(args: argparse.Namespace) -> int:
    _show(str(_cache_dir(args)))
    return EXIT_OK


def _cmd_cache_list(args: argparse.Namespace) -> int:
    from gpuenv.cache.toolkitcache import ToolkitCache
    from gpuenv.cache.wheels import WheelCache

    cache = WheelCache(_cache_dir(args))
    entries = cache.entries() if cache.path.exists() else []
    total = sum(e.size for e in entries)
    toolkits = ToolkitCache(_toolkit_dir(args)).toolkits()
    if args.json:
        print(json.dumps({"path": str(cache.path), "total_bytes": total,
                          "entries": [e.to_json() for e in entries],
                          "toolkits": [{"path": str(tk.path), "size": tk.size, "summary": tk.summary()}
                                       for tk in toolkits]}, indent=2))
        return EXIT_OK
    if args.verbosity > QUIET:
        style = _style(args)
        for entry in entries:
            print(f"{style(entry.digest[:12], 'cyan')}  {printable(entry.summary())}")
    _show(f"{len(entries)} wheel(s), {total / 1e6:.1f} MB in {cache.path}")
    for toolkit in toolkits:
        _show(f"{printable(toolkit.path.name):<12}  {printable(toolkit.summary())}")
    if toolkits:
        size = sum(t.size for t in toolkits) / 1e6
        _show(f"{len(toolkits)} toolkit(s), {size:.1f} MB in {_toolkit_dir(args)}")
    return EXIT_OK


def _cmd_cache_prune(args: argparse.Namespace) -> int:
    from gpuenv.cache.prunelimits import prune_limits
    from gpuenv.cache.wheels import WheelCache

    limits = prune_limits(older_than_days=args.older_than, unused_since=args.unused_since,
                          max_size=args.max_size)
    cache = WheelCache(_cache_dir(args))
    older_than, unused_since = limits.older_than, limits.unused_since
    removed = cache.prune(
        older_than=older_than,
        unused_since=unused_since,
        max_total_bytes=limits.max_total_bytes,
        dry_run=args.dry_run,
    )
    # --older-than and --unused-since cover the toolkit cache too (--max-size counts wheels only).
    toolkits = [] if args.dry_run else _prune_toolkits(args, older_than, unused_since)
    verb = "would remove" if args.dry_run else "removed"
    total = sum(e.size for e in removed)
    if args.json:
        print(json.dumps({"path": str(cache.path), "dry_run": args.dry_run, "total_bytes": total,
                          "entries": [e.to_json() for e in removed],
                          "toolkits": [str(tk.path) for tk in toolkits]}, indent=2))
        return EXIT_OK
    if args.verbosity > QUIET:
        for entry in removed:
            _show(f"{verb} {entry.digest[:12]}  {printable(entry.summary())}")
        for toolkit in toolkits:
            _show(f"removed {printable(toolkit.path.name)}  {printable(toolkit.summary())}")
    _show(f"{verb} {len(removed)} wheel(s), {total / 1e6:.1f} MB" + (" (dry run: nothing removed)"
                                                                     if args.dry_run else ""))
    if toolkits:
        _show(f"removed {len(toolkits)} toolkit(s), {sum(tk.size for tk in toolkits) / 1e6:.1f} MB")
    return EXIT_OK


def _cmd_cache_export(args: argparse.Namespace) -> int:
    from gpuenv.cache.wheelhouse import export_text, export_wheelhouse
    from gpuenv.cache.wheels import WheelCache

    _show(export_text(export_wheelhouse(WheelCache(_cache_dir(args)), args.directory)))
    return EXIT_OK


def _cmd_cache_push(args: argparse.Namespace) -> int:
    import tempfile

    from gpuenv.cache.shared import cache_source, push_cache
    from gpuenv.cache.wheels import WheelCache

    target = cache_source(args.target)
    with tempfile.TemporaryDirectory(prefix="gpuenv-push-") as work:
        report = push_cache(WheelCache(_cache_dir(args)), target, Path(work))
    for line in report.lines:
        print(line)
    for line in report.failed:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_STEP_FAILED if report.failed else EXIT_OK


def _prune_toolkits(
    args: argparse.Namespace, older_than: timedelta | None, unused_since: datetime | None
) -> list[ProvisionedToolkit]:
    from gpuenv.cache.toolkitcache import ToolkitCache

    if older_than is None and unused_since is None:
        return []
    return ToolkitCache(_toolkit_dir(args)).prune(older_than=older_than, unused_since=unused_since)


def _cmd_completion(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    print(shellcode(["gpuenv"], shell=args.shell))
    return EXIT_OK


def _show(text: str) -> None:
    """Print what a command says: the text it made, every character a terminal would obey escaped
    (it quotes names, versions and paths from files gpuenv did not write)."""
    print(printable(text, lines=True))


def _print_error(exc: GpuenvError, args: argparse.Namespace | None = None) -> None:
    """The error boundary's two lines: ``error:`` and, where there is a fix, ``hint:`` (both escaped:
    they quote values from files and commands)."""
    style = _style(args, sys.stderr) if args is not None else (lambda text, *_: text)
    try:
        print(f"{style('error:', 'red', 'bold')} {printable(str(exc), lines=True)}", file=sys.stderr)
        if exc.hint:
            print(f"{style('hint:', 'yellow')} {printable(exc.hint, lines=True)}", file=sys.stderr)
    except (OSError, ValueError):  # stderr itself is gone: the exit code says it
        pass


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a job scheduler's cancel, ``kill``) as Ctrl-C: setup stops its command and puts an adopted
    env back as it was, instead of dying half-way."""
    import signal
    import threading

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


#: Each command's handler, by the key the parser gives it (``args.command_key``: "cache prune").
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "probe": _cmd_probe, "gpus": _cmd_gpus, "plan": _cmd_plan, "setup": _cmd_setup,
    "doctor": _cmd_doctor, "init": _cmd_init, "export uv": _cmd_export_uv,
    "export pylock": _cmd_export_pylock, "cache path": _cmd_cache_path, "cache list": _cmd_cache_list,
    "cache prune": _cmd_cache_prune, "cache export": _cmd_cache_export,
    "cache push": _cmd_cache_push, "completion": _cmd_completion,
}


def main(argv: Sequence[str] | None = None) -> int:
    tolerant_streams()
    show_warnings()
    output = Output(sys.stdout)
    sys.stdout = output
    try:
        return _main(argv, output)
    finally:
        sys.stdout = output.stream


def _main(argv: Sequence[str] | None, output: Output) -> int:
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:
        # The shell asks for completions (see 'gpuenv completion'): answer and exit.
        import argcomplete

        argcomplete.autocomplete(parser)
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(argv)  # --help prints here
        _interrupt_on_sigterm()
        code = int(HANDLERS[args.command_key](args))
        output.flush()  # a full disk is found here, not at exit
        return code
    except GpuenvError as exc:
        _print_error(exc, args)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `gpuenv plan | head`: the reader left; say nothing more.
        output.drop()
        with contextlib.suppress(OSError):
            sys.stderr.close()
        return EXIT_OK
    except OSError as exc:
        # The net under every write and read: a refusal of the OS is the user's to fix, not a bug.
        error = os_error(exc, output)
        _print_error(error, args)
        return error.exit_code
    except SystemExit:  # argparse after --help or a usage error: it ignores a failed write
        if output.failed is not None:
            _print_error(os_error(output.failed, output), args)
            return EXIT_BAD_INPUT
        raise
