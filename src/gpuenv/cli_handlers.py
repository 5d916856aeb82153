"""What each ``gpuenv`` command does, in a few lines over :mod:`gpuenv.api`: it hands the options it was
given to :class:`gpuenv.api.Project` and prints what comes back (every character a terminal would obey
escaped). :data:`gpuenv.cli.COMMANDS` names each command's handler here, its options and its help."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable

from gpuenv import api
from gpuenv.cli_output import print_error
from gpuenv.errors import EXIT_OK, EXIT_STEP_FAILED, EXIT_UNSATISFIABLE
from gpuenv.options import OPTIONS
from gpuenv.printable import printable
from gpuenv.progress import QUIET, Style, use_color


def _project(args: argparse.Namespace) -> api.Project:
    """The options this command was given (the parser sets only those), as the library takes them."""
    given = {name: value for name, value in vars(args).items() if name in OPTIONS}
    return api.Project(progress=_progress(args), **given)


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    """Progress lines on stderr (the plan may be JSON on stdout), unless -q."""
    if args.verbosity <= QUIET:
        return None
    return lambda text: print(f"{printable(text)}...", file=sys.stderr, flush=True)


def _style(args: argparse.Namespace) -> Style:
    return Style(use_color(args.color, sys.stdout))


def gpus(args: argparse.Namespace) -> int:
    from gpuenv.errors import InputError

    models = api.gpus(args.substring)
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


def probe(args: argparse.Namespace) -> int:
    from gpuenv.render import hardware_text

    hardware = _project(args).probe()
    _show(json.dumps(hardware.to_json(), indent=2) if args.json else hardware_text(hardware))
    return EXIT_OK


def plan(args: argparse.Namespace) -> int:
    from gpuenv.render import plan_text

    result = _project(args).plan()
    _show(json.dumps(result.to_json(), indent=2) if args.json else plan_text(result))
    # The whole plan first, then every blocker with its hint: what setup would stop on.
    for blocker in result.blockers:
        print_error(blocker.error, args.color)
    return EXIT_UNSATISFIABLE if result.blockers else EXIT_OK


def setup(args: argparse.Namespace) -> int:
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


def doctor(args: argparse.Namespace) -> int:
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


def init(args: argparse.Namespace) -> int:
    from gpuenv.render import init_text

    result = api.init(name=args.name, pyproject=args.pyproject, torch=args.torch,
                      extension=args.extension or ())
    text = init_text(result)
    _show(text.splitlines()[-1] if args.verbosity <= QUIET else text)
    return EXIT_OK


def export_uv(args: argparse.Namespace) -> int:
    _show(_project(args).export_uv().text)
    return EXIT_OK


def export_pylock(args: argparse.Namespace) -> int:
    _show(_project(args).export_pylock())
    return EXIT_OK


def cache_path(args: argparse.Namespace) -> int:
    _show(str(_project(args).cache_dir))
    return EXIT_OK


def cache_list(args: argparse.Namespace) -> int:
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


def cache_prune(args: argparse.Namespace) -> int:
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


def cache_export(args: argparse.Namespace) -> int:
    from gpuenv.render import wheelhouse_text

    _show(wheelhouse_text(_project(args).caches.export(args.directory)))
    return EXIT_OK


def cache_push(args: argparse.Namespace) -> int:
    report = _project(args).caches.push(args.target)
    for line in report.lines:
        print(line)
    for line in report.failed:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_STEP_FAILED if report.failed else EXIT_OK


def completion(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    print(shellcode(["gpuenv"], shell=args.shell))
    return EXIT_OK


def _show(text: str) -> None:
    """Print what a command says: the text it made, every character a terminal would obey escaped
    (it quotes names, versions and paths from files gpuenv did not write)."""
    print(printable(text, lines=True))
