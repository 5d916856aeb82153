"""The ``gpuenv`` command: a few lines per command over :mod:`gpuenv.api`, and one error boundary.

:data:`COMMANDS` holds each command's record (its handler and options; its help is in
:mod:`gpuenv.cli_help`); :mod:`gpuenv.cli_parser` makes the parser from them and the option table.
Every handler hands the options to :class:`gpuenv.api.Project` and prints what it returns. A
:class:`~gpuenv.errors.GpuenvError` becomes an ``error:`` line, an optional ``hint:`` line and its exit
code; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gpuenv.api import Project, gpus, init
from gpuenv.cli_output import Output, os_error, show_warnings, tolerant_streams
from gpuenv.cli_parser import Command, build_parser
from gpuenv.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_STEP_FAILED, EXIT_UNSATISFIABLE, GpuenvError
from gpuenv.printable import printable
from gpuenv.progress import QUIET, Style, use_color


def _project(args: argparse.Namespace) -> Project:
    """The options this command was given, as the library takes them."""
    command = COMMAND_BY_KEY[args.command_key]
    given = {name: getattr(args, name) for name in command.options if hasattr(args, name)}
    return Project(progress=_progress(args), **given)


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    """Progress lines on stderr (the plan may be JSON on stdout), unless -q."""
    if args.verbosity <= QUIET:
        return None
    return lambda text: print(f"{printable(text)}...", file=sys.stderr, flush=True)


def _style(args: argparse.Namespace, stream: Any = None) -> Style:
    return Style(use_color(args.color, stream or sys.stdout))


def _cmd_gpus(args: argparse.Namespace) -> int:
    from gpuenv.errors import InputError

    models = gpus(args.substring)
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

    hardware = _project(args).probe()
    _show(json.dumps(hardware.to_json(), indent=2) if args.json else hardware_text(hardware))
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace) -> int:
    from gpuenv.render import plan_text

    result = _project(args).plan()
    _show(json.dumps(result.to_json(), indent=2) if args.json else plan_text(result))
    # The whole plan first, then every blocker with its hint: what setup would stop on.
    for blocker in result.blockers:
        _print_error(blocker.error, args)
    return EXIT_UNSATISFIABLE if result.blockers else EXIT_OK


def _cmd_setup(args: argparse.Namespace) -> int:
    from gpuenv.progress import TerminalReporter, log_files
    from gpuenv.render import plan_summary

    prepared = _project(args).prepare_setup()
    if args.dry_run:
        _show(f"# plan: {plan_summary(prepared.plan)}")
        for line in prepared.dry_run().commands:
            _show(line)
        return EXIT_OK
    with TerminalReporter(verbosity=args.verbosity, color=use_color(args.color, sys.stderr)) as reporter:
        reporter.step(f"plan: {plan_summary(prepared.plan)}")
        for warning in prepared.plan.warnings:
            reporter.done(f"warning: {warning}")
        try:
            outcome = prepared.run(reporter)
        finally:
            # Where the output went, whether the run succeeded or not.
            logs = log_files(prepared.logs)
            if logs:
                reporter.step(f"logs: {logs[0].parent}: {', '.join(p.name for p in logs)}")
        for line in outcome.skipped:
            reporter.done(f"skipped {line}")
    ready = _style(args)("ready:", "green", "bold")
    if prepared.target.adopted:
        python = shlex.quote(str(prepared.target.env.python))
        print(f"{ready} {shlex.quote(str(outcome.venv))} (with {python})")
        return EXIT_OK
    activate = shlex.quote(str(outcome.venv / "bin" / "activate"))
    where = printable(shlex.quote(str(outcome.venv)))
    print(f"{ready} {where} (activate with: source {printable(activate)})")
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gpuenv.progress import paint_verdicts
    from gpuenv.render import report_text

    report = _project(args).doctor()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return report.exit_code
    if args.verbosity <= QUIET:
        # Only what needs attention, and the summary (its counts are the same).
        report = replace(report, checks=tuple(c for c in report.checks if c.verdict in ("warn", "fail")))
    print(paint_verdicts(printable(report_text(report), lines=True), _style(args)))
    return report.exit_code


def _cmd_init(args: argparse.Namespace) -> int:
    from gpuenv.render import init_text

    result = init(name=args.name, pyproject=args.pyproject, torch=args.torch, extension=args.extension or ())
    text = init_text(result)
    _show(text.splitlines()[-1] if args.verbosity <= QUIET else text)
    return EXIT_OK


def _cmd_export_uv(args: argparse.Namespace) -> int:
    _show(_project(args).export_uv().text)
    return EXIT_OK


def _cmd_export_pylock(args: argparse.Namespace) -> int:
    _show(_project(args).export_pylock())
    return EXIT_OK


def _cmd_cache_path(args: argparse.Namespace) -> int:
    _show(str(_project(args).cache_dir))
    return EXIT_OK


def _cmd_cache_list(args: argparse.Namespace) -> int:
    listing = _project(args).caches.listing()
    if args.json:
        print(json.dumps({"path": str(listing.path), "total_bytes": listing.total_bytes,
                          "entries": [e.to_json() for e in listing.entries],
                          "toolkits": [{"path": str(tk.path), "size": tk.size, "summary": tk.summary()}
                                       for tk in listing.toolkits]}, indent=2))
        return EXIT_OK
    if args.verbosity > QUIET:
        style = _style(args)
        for entry in listing.entries:
            print(f"{style(entry.digest[:12], 'cyan')}  {printable(entry.summary())}")
    _show(f"{len(listing.entries)} wheel(s), {listing.total_bytes / 1e6:.1f} MB in {listing.path}")
    for toolkit in listing.toolkits:
        _show(f"{printable(toolkit.path.name):<12}  {printable(toolkit.summary())}")
    if listing.toolkits:
        size = sum(t.size for t in listing.toolkits) / 1e6
        _show(f"{len(listing.toolkits)} toolkit(s), {size:.1f} MB in {listing.toolkit_path}")
    return EXIT_OK


def _cmd_cache_prune(args: argparse.Namespace) -> int:
    pruned = _project(args).caches.prune(older_than=args.older_than, unused_since=args.unused_since,
                                         max_size=args.max_size, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    if args.json:
        print(json.dumps({"path": str(pruned.path), "dry_run": args.dry_run,
                          "total_bytes": pruned.total_bytes,
                          "entries": [e.to_json() for e in pruned.entries],
                          "toolkits": [str(tk.path) for tk in pruned.toolkits]}, indent=2))
        return EXIT_OK
    if args.verbosity > QUIET:
        for entry in pruned.entries:
            _show(f"{verb} {entry.digest[:12]}  {printable(entry.summary())}")
        for toolkit in pruned.toolkits:
            _show(f"removed {printable(toolkit.path.name)}  {printable(toolkit.summary())}")
    _show(f"{verb} {len(pruned.entries)} wheel(s), {pruned.total_bytes / 1e6:.1f} MB"
          + (" (dry run: nothing removed)" if args.dry_run else ""))
    if pruned.toolkits:
        size = sum(tk.size for tk in pruned.toolkits) / 1e6
        _show(f"removed {len(pruned.toolkits)} toolkit(s), {size:.1f} MB")
    return EXIT_OK


def _cmd_cache_export(args: argparse.Namespace) -> int:
    from gpuenv.render import wheelhouse_text

    _show(wheelhouse_text(_project(args).caches.export(args.directory)))
    return EXIT_OK


def _cmd_cache_push(args: argparse.Namespace) -> int:
    report = _project(args).caches.push(args.target)
    for line in report.lines:
        print(line)
    for line in report.failed:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_STEP_FAILED if report.failed else EXIT_OK


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


#: The options of the commands that plan: the recipe, the machine, the index, the toolkit, the caches.
PLANNING = ("recipe", "hardware", "gpu", "arch", "cuda", "torch_index", "toolkit", "cache_dir", "no_cache",
            "offline", "refresh", "cache_from", "push", "prebuilt")
#: Which env: gpuenv's own, a conda env, a container's Python.
ENV = ("venv", "python")

#: Every command: its name, its handler, its options (a new one: a line here and its help in cli_help).
COMMANDS = (
    Command("probe", _cmd_probe, ("json", "cache_dir")),
    Command("gpus", _cmd_gpus, ("substring", "json")),
    Command("plan", _cmd_plan, (*PLANNING, *ENV, "json")),
    Command("setup", _cmd_setup, (*PLANNING, *ENV, "break_system_packages", "installer", "work_dir",
                                  "dry_run", "locked")),
    Command("doctor", _cmd_doctor, (*ENV, "recipe", "hardware", "gpu", "arch", "cache_dir", "json")),
    Command("init", _cmd_init, ("pyproject", "torch", "extension", "name")),
    Command("export uv", _cmd_export_uv, (*PLANNING, "write")),
    Command("export pylock", _cmd_export_pylock, ("venv", "recipe", "output", "cache_dir")),
    Command("cache path", _cmd_cache_path, ("cache_dir",)),
    Command("cache list", _cmd_cache_list, ("json", "cache_dir")),
    Command("cache prune", _cmd_cache_prune, ("older_than", "unused_since", "max_size", "dry_run", "json",
                                              "cache_dir")),
    Command("cache export", _cmd_cache_export, ("directory", "cache_dir")),
    Command("cache push", _cmd_cache_push, ("target", "cache_dir")),
    Command("completion", _cmd_completion, ("shell",)),
)
COMMAND_BY_KEY = {c.name: c for c in COMMANDS}


def main(argv: Sequence[str] | None = None, *, check_dependencies: bool = False) -> int:
    """``gpuenv ARGV``: its exit code. ``check_dependencies`` first checks that this Python has every
    package gpuenv needs (the invoke tasks run it in invoke's Python)."""
    tolerant_streams()
    show_warnings()
    output = Output(sys.stdout)
    sys.stdout = output
    try:
        return _main(argv, output, check_dependencies)
    finally:
        sys.stdout = output.stream


def _main(argv: Sequence[str] | None, output: Output, check_dependencies: bool) -> int:
    parser = build_parser(COMMANDS)
    if "_ARGCOMPLETE" in os.environ:
        # The shell asks for completions (see 'gpuenv completion'): answer and exit.
        import argcomplete

        argcomplete.autocomplete(parser)
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(argv)  # --help prints here
        if check_dependencies:
            from gpuenv.api import check_dependencies as check

            check()
        _interrupt_on_sigterm()
        code = int(COMMAND_BY_KEY[args.command_key].handler(args))
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
