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
from gpuenv.errors import EXIT_OK, GpuenvError
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
    setup.add_argument("--installer", choices=("pip", "uv"), default="pip",
                       help="what installs packages into the target env (default: pip)")
    setup.add_argument("--work-dir", type=Path, default=None,
                       help="where build logs, sources and wheels go (default: VENV/.gpuenv)")
    setup.add_argument("--dry-run", action="store_true",
                       help="print the commands setup would run, in order, and change nothing")
    setup.set_defaults(func=_cmd_setup)
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
    result = plan(recipe, _hardware(args), PlanOptions(cuda=args.cuda, torch_index=args.torch_index))
    print(json.dumps(result.to_json(), indent=2) if args.json else plan_text(result))
    return EXIT_OK


def _cmd_setup(args: argparse.Namespace) -> int:
    from gpuenv.execute import SetupOptions, run_setup
    from gpuenv.plan import PlanOptions, plan
    from gpuenv.progress import TerminalReporter

    recipe = _load_recipe(args)
    result = plan(recipe, _hardware(args, local_host=True),
                  PlanOptions(cuda=args.cuda, torch_index=args.torch_index))
    options = SetupOptions(venv=args.venv.absolute(), installer=args.installer, work_dir=args.work_dir,
                           preflight=args.torch_index != "config")
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
