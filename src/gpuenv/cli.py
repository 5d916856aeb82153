"""The ``gpuenv`` command: argument parsing and one error boundary, nothing else.

Every command translates its arguments and calls the library. A
:class:`~gpuenv.errors.GpuenvError` becomes an ``error:`` line, an optional
``hint:`` line and its exit code; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gpuenv import __version__
from gpuenv.errors import EXIT_OK, GpuenvError, InputError
from gpuenv.hardware import Hardware
from gpuenv.recipe import Recipe

#: Environment variable holding a torch index template (same as --torch-index).
TORCH_INDEX_ENV = "GPUENV_TORCH_INDEX"


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--recipe", type=Path, default=None,
                        help="recipe file or pyproject.toml (default: envs/default.toml, "
                             "else pyproject.toml's [tool.gpuenv])")
    group = parser.add_argument_group("hardware (default: probe this machine)")
    group.add_argument("--hardware", type=Path, metavar="FILE",
                       help="plan from a 'gpuenv probe --json' file taken elsewhere")
    group.add_argument("--gpu", metavar="NAME[,NAME]",
                       help="plan for these GPUs instead of the probed ones (H100, A100, L4, 8xH100…)")
    group.add_argument("--arch", metavar="X.Y[,X.Y]",
                       help="plan for these compute capabilities instead of the probed GPUs")
    parser.add_argument("--cuda", metavar="VERSION",
                        help="force the torch variant: 12.1, cu121 or cpu (default: the recipe's, else auto)")
    parser.add_argument("--torch-index", metavar="TEMPLATE",
                        default=os.environ.get(TORCH_INDEX_ENV) or None,
                        help="index URL template for torch, {variant} is replaced (e.g. a mirror); "
                             f"'config' uses the installer's own configuration; env: {TORCH_INDEX_ENV}")
    _add_cache_options(parser)
    parser.add_argument("--no-cache", action="store_true", help="neither use nor fill the wheel cache")


def _add_cache_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="the wheel cache (default: $GPUENV_CACHE_DIR, else ~/.cache/gpuenv/wheels); "
                             "a shared directory works for a whole cluster")


def _cache_dir(args: argparse.Namespace) -> Path:
    from gpuenv.cache import default_cache_dir

    return Path(args.cache_dir) if args.cache_dir is not None else default_cache_dir()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpuenv",
        description="PyTorch GPU environments that work: probe, plan, set up.",
    )
    parser.add_argument("--version", action="version", version=f"gpuenv {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    probe = commands.add_parser("probe", help="what this machine has: driver, GPUs, toolkits, CPUs, memory")
    probe.add_argument("--json", action="store_true", help="print the hardware as JSON")
    probe.set_defaults(func=_cmd_probe)

    plan = commands.add_parser("plan", help="what setup would do for a recipe on this (or another) machine")
    _add_target_options(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(func=_cmd_plan)

    setup = commands.add_parser(
        "setup", help="create the environment: torch, then the extensions built for your GPUs"
    )
    _add_target_options(setup)
    setup.add_argument("--venv", type=Path, default=Path(".venv"),
                       help="the target virtual environment, created or reused (default: .venv)")
    setup.add_argument("--installer", choices=("auto", "pip", "uv"), default="auto",
                       help="what makes the target env and installs into it: uv, or pip; "
                            "auto (default): uv if gpuenv's uv extra or a uv on PATH has it, else pip")
    setup.add_argument("--work-dir", type=Path, default=None,
                       help="where build logs, sources and wheels go (default: VENV/.gpuenv)")
    setup.add_argument("--dry-run", action="store_true",
                       help="print the commands setup would run, in order, and change nothing")
    setup.add_argument("--locked", action="store_true",
                       help="rebuild exactly what gpuenv.lock (next to the recipe) records")
    setup.set_defaults(func=_cmd_setup)

    doctor = commands.add_parser("doctor", help="check that an env really runs on this machine's GPUs")
    doctor.add_argument("--venv", type=Path, default=Path(".venv"),
                        help="the environment to check (default: .venv)")
    doctor.add_argument("-r", "--recipe", type=Path, default=None,
                        help="recipe whose extensions and lock to check (default: the project's, if any)")
    group = doctor.add_argument_group("hardware (default: probe this machine)")
    group.add_argument("--hardware", type=Path, metavar="FILE", help="a 'gpuenv probe --json' file")
    group.add_argument("--gpu", metavar="NAME[,NAME]", help="check against these GPUs")
    group.add_argument("--arch", metavar="X.Y[,X.Y]", help="check against these compute capabilities")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(func=_cmd_doctor)

    init = commands.add_parser(
        "init", help="add gpuenv to this repository: a recipe, noxfile.py, tasks.py, a README section"
    )
    init.add_argument("--pyproject", action="store_true",
                      help="put the recipe in pyproject.toml's [tool.gpuenv] instead of envs/default.toml")
    init.add_argument("--torch", default="2.14.*", metavar="VERSION",
                      help="torch version or specifier (default: 2.14.*)")
    init.add_argument("--extension", action="append", default=[], metavar="REQ",
                      help="an extension to build without isolation (repeatable)")
    init.add_argument("--name", default=None, help="the environment's name")
    init.set_defaults(func=_cmd_init)

    cache = commands.add_parser("cache", help="the wheel cache: list, prune, path")
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    cache_path = cache_commands.add_parser("path", help="print where the cache is")
    cache_list = cache_commands.add_parser("list", help="every cached wheel: key, size, age, last use")
    cache_prune = cache_commands.add_parser("prune", help="remove wheels by age, last use or total size")
    cache_prune.add_argument("--older-than", type=float, metavar="DAYS", help="built more than DAYS ago")
    cache_prune.add_argument("--unused-since", metavar="YYYY-MM-DD", help="not used since this date")
    cache_prune.add_argument("--max-size", metavar="SIZE",
                             help="keep the cache under SIZE (e.g. 20G, 500M): least recently used go first")
    for sub, func in ((cache_path, _cmd_cache_path), (cache_list, _cmd_cache_list),
                      (cache_prune, _cmd_cache_prune)):
        _add_cache_options(sub)
        sub.set_defaults(func=func)
    return parser


def _hardware(args: argparse.Namespace, *, local_host: bool = False) -> Hardware:
    from gpuenv.machine import describe_machine

    return describe_machine(hardware_file=args.hardware, gpu=args.gpu, arch=args.arch, local_host=local_host)


def _cmd_probe(args: argparse.Namespace) -> int:
    from gpuenv.probe import probe
    from gpuenv.render import hardware_text

    hardware = probe()
    print(json.dumps(hardware.to_json(), indent=2) if args.json else hardware_text(hardware))
    return EXIT_OK


def _load_recipe(args: argparse.Namespace) -> Recipe:
    from gpuenv.recipe import find_recipe, load_recipe

    return load_recipe(args.recipe if args.recipe is not None else find_recipe(Path.cwd()))


def _cmd_plan(args: argparse.Namespace) -> int:
    from gpuenv.plan import PlanOptions, plan
    from gpuenv.render import plan_text

    recipe = _load_recipe(args)
    hardware = _hardware(args)
    options = PlanOptions(cuda=args.cuda, torch_index=args.torch_index)
    result = plan(recipe, hardware, options)
    if not args.no_cache:
        from gpuenv.cache import WheelCache
        from gpuenv.cachehits import predicted_hits

        hits = predicted_hits(result, WheelCache(_cache_dir(args)))
        if hits:
            result = plan(recipe, hardware, PlanOptions(cuda=args.cuda, torch_index=args.torch_index,
                                                        cached=hits))
    print(json.dumps(result.to_json(), indent=2) if args.json else plan_text(result))
    return EXIT_OK


def _cmd_setup(args: argparse.Namespace) -> int:
    from gpuenv.execute import run_setup
    from gpuenv.lock import lock_path_for, plan_locked, read_lock
    from gpuenv.plan import PlanOptions, plan
    from gpuenv.progress import TerminalReporter
    from gpuenv.sources import file_sha256
    from gpuenv.steps import SetupOptions

    recipe = _load_recipe(args)
    hardware = _hardware(args, local_host=True)
    plan_options = PlanOptions(cuda=args.cuda, torch_index=args.torch_index)
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
        venv=args.venv.absolute(), installer=args.installer, work_dir=args.work_dir,
        preflight=args.torch_index != "config",
        cache_dir=None if args.no_cache else _cache_dir(args),
        # --locked reproduces the lock; it does not rewrite it.
        lock_file=None if args.locked else lock_file,
        recipe_sha256=file_sha256(recipe.path),
    )
    if args.dry_run:
        for line in run_setup(result, options, dry_run=True).commands:
            print(line)
        return EXIT_OK
    reporter = TerminalReporter()
    reporter.step(f"plan: torch {result.torch} ({result.variant}), archs {' '.join(result.arch_list) or '-'}")
    for warning in result.warnings:
        reporter.done(f"warning: {warning}")
    outcome = run_setup(result, options, reporter=reporter)
    for line in outcome.skipped:
        reporter.done(f"skipped {line}")
    print(f"ready: {outcome.venv} (activate with: source {outcome.venv}/bin/activate)")
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from gpuenv.doctor import diagnose, recipe_and_lock, report_text

    recipe, locked = recipe_and_lock(args.recipe, start=Path.cwd())
    report = diagnose(args.venv.absolute(), hardware=_hardware(args, local_host=True), recipe=recipe,
                      locked=locked)
    print(json.dumps(report.to_json(), indent=2) if args.json else report_text(report))
    return report.exit_code


def _cmd_init(args: argparse.Namespace) -> int:
    from gpuenv.bootstrap import init_repo, init_text

    result = init_repo(Path.cwd(), name=args.name, into_pyproject=args.pyproject,
                       torch_version=args.torch, extensions=args.extension)
    print(init_text(result))
    return EXIT_OK


def _cmd_cache_path(args: argparse.Namespace) -> int:
    print(_cache_dir(args))
    return EXIT_OK


def _cmd_cache_list(args: argparse.Namespace) -> int:
    from gpuenv.cache import WheelCache

    cache = WheelCache(_cache_dir(args))
    entries = cache.entries() if cache.path.exists() else []
    for entry in entries:
        print(f"{entry.digest[:12]}  {entry.summary()}")
    total = sum(e.size for e in entries)
    print(f"{len(entries)} wheel(s), {total / 1e6:.1f} MB in {cache.path}")
    return EXIT_OK


def _cmd_cache_prune(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta

    from gpuenv.cache import WheelCache

    if args.older_than is None and args.unused_since is None and args.max_size is None:
        raise InputError("cache prune: say what to remove",
                         hint="--older-than DAYS, --unused-since YYYY-MM-DD or --max-size SIZE")
    try:
        unused_since = datetime.fromisoformat(args.unused_since) if args.unused_since else None
    except ValueError:
        raise InputError(f"--unused-since {args.unused_since}: not a date", hint="e.g. 2026-10-01") from None
    removed = WheelCache(_cache_dir(args)).prune(
        older_than=timedelta(days=args.older_than) if args.older_than is not None else None,
        unused_since=unused_since,
        max_total_bytes=_size(args.max_size) if args.max_size else None,
    )
    for entry in removed:
        print(f"removed {entry.digest[:12]}  {entry.summary()}")
    print(f"removed {len(removed)} wheel(s), {sum(e.size for e in removed) / 1e6:.1f} MB")
    return EXIT_OK


def _size(text: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    raw = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (raw[:-1], raw[-1]) if raw and raw[-1] in units else (raw, "")
    try:
        return int(float(number) * units[unit])
    except ValueError:
        raise InputError(f"--max-size {text}: not a size", hint="e.g. 20G or 500M") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except GpuenvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `gpuenv plan | head`: the reader left; say nothing more.
        sys.stderr.close()
        return EXIT_OK
