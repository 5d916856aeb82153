"""The ``gpuenv`` command's arguments: every command, its options and its help, as one argparse parser.

Each command's parser sets ``command_key`` ("cache prune"); :data:`gpuenv.cli.HANDLERS` maps it to
the handler. The invoke collection (:mod:`gpuenv.integrations`) is made from this parser too.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from gpuenv import __version__
from gpuenv.cli_help import HELP, wrap
from gpuenv.outputs import path_argument
from gpuenv.progress import COLOR_CHOICES, NORMAL, QUIET, VERBOSE

#: Environment variable holding a torch index template (same as --torch-index).
TORCH_INDEX_ENV = "GPUENV_TORCH_INDEX"
#: Environment variable holding where nvcc comes from (same as --toolkit).
TOOLKIT_ENV = "GPUENV_TOOLKIT"
#: Environment variable that makes plan and setup ask no index (same as --offline).
OFFLINE_ENV = "GPUENV_OFFLINE"


def _value(text: str) -> str:
    """A value that must say something: "" (or blanks) would be silently taken as "not given"."""
    if not text.strip() or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a value: give one, or leave the option out")
    return text


def _days(text: str) -> float:
    """A number of days, in ASCII digits (float() reads Arabic-Indic and full-width digits too)."""
    if not text.isascii():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days")
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--recipe", type=path_argument, default=None,
                        help="recipe file or pyproject.toml (default: envs/default.toml, "
                             "else pyproject.toml's [tool.gpuenv])")
    group = parser.add_argument_group("hardware (default: probe this machine)")
    group.add_argument("--hardware", type=path_argument, metavar="FILE",
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
    parser.add_argument("--toolkit", metavar="auto|system|pypi|PATH",
                        help="where nvcc comes from: auto (a matching toolkit on disk, else CUDA 13.x "
                             "from PyPI into the toolkit cache), system (never download), pypi, "
                             "or a toolkit root "
                             f"(default: the recipe's torch.toolkit, else auto); env: {TOOLKIT_ENV}")
    _add_cache_options(parser)
    parser.add_argument("--no-cache", action="store_true", help="neither use nor fill the wheel cache")
    index = parser.add_argument_group("torch releases (default: gpuenv's data and what the indexes say, "
                                      "cached for a day)")
    index.add_argument("--offline", action="store_true", default=_flag(os.environ.get(OFFLINE_ENV)),
                       help="ask no index: plan from the data this gpuenv shipped with; "
                            f"env: {OFFLINE_ENV}=1")
    index.add_argument("--refresh", action="store_true",
                       help="read the torch releases from the indexes now, whatever the cache holds")
    shared = parser.add_argument_group("shared caches and prebuilt wheels")
    shared.add_argument("--cache-from", action="append", metavar="URL", default=None,
                        help="a shared cache to ask before building: an index (pypiserver: "
                             "http://host:8080/simple/, devpi: http://host/USER/INDEX/+simple/), a "
                             "find-links page or a folder; repeatable (default: $GPUENV_CACHE_FROM, "
                             "space-separated, else the recipe's [cache] from)")
    shared.add_argument("--push", action="store_true", default=False,
                        help="push the wheels this setup builds to the shared caches")
    shared.add_argument("--no-prebuilt", dest="prebuilt", action="store_false", default=None,
                        help="never use a publisher's prebuilt wheel, even one that passes the audit")


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _add_env_options(parser: argparse.ArgumentParser, venv_help: str) -> None:
    """--venv and --python: which env (gpuenv's own, a conda env, a container's Python)."""
    parser.add_argument("--venv", type=path_argument, default=None, help=venv_help)
    parser.add_argument("--python", type=path_argument, default=None, metavar="PATH",
                        help="the interpreter of an env gpuenv did not create (a container's system Python, "
                             "a conda env's bin/python): its torch is used as it is, never replaced")


def _add_cache_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=path_argument, default=None,
                        help="the wheel cache (default: $GPUENV_CACHE_DIR, else ~/.cache/gpuenv/wheels); "
                             "a shared directory works for a whole cluster")


def _add_output_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """-v/-q/--color on the main parser and on every command (``gpuenv -q setup`` = ``gpuenv setup -q``)."""
    # A command's own defaults must not undo the main parser's: its options default to "unset".
    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    group = parser.add_argument_group("output")
    loudness = group.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=VERBOSE,
                          help="also stream the installers' and compilers' output", **default)
    loudness.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=QUIET,
                          help="print only errors and the final line", **default)
    group.add_argument("--color", choices=COLOR_CHOICES, metavar="WHEN",
                       help="colour: auto (default: on a terminal, unless NO_COLOR is set), always, never",
                       **default)
    if top:
        parser.set_defaults(verbosity=NORMAL, color="auto")


def _command(commands: Any, name: str, key: str | None = None) -> argparse.ArgumentParser:
    """A subcommand with its help from :data:`HELP` and the output options."""
    entry = HELP[key or name]
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=entry.summary, description=wrap(entry.description), epilog=entry.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_output_options(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpuenv",
        description="PyTorch GPU environments that work: probe, plan, set up.",
        epilog="'gpuenv COMMAND --help' describes a command, the files it reads and writes, with examples.",
    )
    parser.add_argument("--version", action="version", version=f"gpuenv {__version__}")
    _add_output_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    probe = _command(commands, "probe")
    probe.add_argument("--json", action="store_true", help="print the hardware as JSON")
    _add_cache_options(probe)  # the toolkits gpuenv provisioned are listed too
    probe.set_defaults(command_key="probe")

    gpus = _command(commands, "gpus")
    gpus.add_argument("substring", nargs="?", default="", metavar="SUBSTRING",
                      help="list only the names that contain it (ignoring case, spaces and dashes)")
    gpus.add_argument("--json", action="store_true", help="print the list as JSON")
    gpus.set_defaults(command_key="gpus")

    plan = _command(commands, "plan")
    _add_target_options(plan)
    _add_env_options(plan, "plan for the torch of this env (a venv or conda env folder), as setup would "
                     "build into it")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(command_key="plan")

    setup = _command(commands, "setup")
    _add_target_options(setup)
    _add_env_options(setup, "the target env: created, reused, or adopted if gpuenv did not create it "
                     "(a conda env, another tool's venv: its torch is kept) (default: .venv)")
    setup.add_argument("--break-system-packages", action="store_true",
                       help="install into a Python its distribution manages (PEP 668): passed on to pip "
                            "and uv, whose own override it is")
    setup.add_argument("--installer", choices=("auto", "pip", "uv"), default="auto",
                       help="what makes the target env and installs into it: uv, or pip; "
                            "auto (default): uv if gpuenv's uv extra or a uv on PATH has it, else pip")
    setup.add_argument("--work-dir", type=path_argument, default=None,
                       help="where build logs, sources and wheels go (default: VENV/.gpuenv)")
    setup.add_argument("--dry-run", action="store_true",
                       help="print the commands setup would run, in order, and change nothing")
    setup.add_argument("--locked", action="store_true",
                       help="rebuild exactly what gpuenv.lock (next to the recipe) records")
    setup.set_defaults(command_key="setup")

    doctor = _command(commands, "doctor")
    _add_env_options(doctor, "the environment to check (default: .venv)")
    doctor.add_argument("-r", "--recipe", type=path_argument, default=None,
                        help="recipe whose extensions and lock to check (default: the project's, if any)")
    group = doctor.add_argument_group("hardware (default: probe this machine)")
    group.add_argument("--hardware", type=path_argument, metavar="FILE", help="a 'gpuenv probe --json' file")
    group.add_argument("--gpu", metavar="NAME[,NAME]", help="check against these GPUs")
    group.add_argument("--arch", metavar="X.Y[,X.Y]", help="check against these compute capabilities")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(command_key="doctor")

    init = _command(commands, "init")
    init.add_argument("--pyproject", action="store_true",
                      help="put the recipe in pyproject.toml's [tool.gpuenv] instead of envs/default.toml")
    init.add_argument("--torch", default=None, metavar="VERSION", type=_value,
                      help="torch version or specifier (default: the repository's pin, else >=2.1)")
    init.add_argument("--extension", action="append", default=[], metavar="REQ", type=_value,
                      help="an extension to build without isolation (repeatable)")
    init.add_argument("--name", default=None, type=_value, help="the environment's name")
    init.set_defaults(command_key="init")

    export = _command(commands, "export")
    export_commands = export.add_subparsers(dest="export_command", metavar="FORMAT", required=True)
    export_uv = _command(export_commands, "uv", "export uv")
    _add_target_options(export_uv)
    export_uv.add_argument("--write", nargs="?", const=Path("pyproject.toml"), type=path_argument,
                           metavar="PYPROJECT",
                           help="merge them into this pyproject.toml (default: ./pyproject.toml) instead of "
                                "printing them")
    export_uv.set_defaults(command_key="export uv")
    export_pylock = export_commands.add_parser(
        "pylock", help="a pylock.toml (PEP 751) of a set-up env",
        description="Writes a PEP 751 lock of the env: every distribution at its installed version with its "
                    "file and hash, each built extension as its cached wheel. Reads the env, gpuenv.lock and "
                    "the wheel cache; writes pylock.toml with -o (else prints it). Example: "
                    "gpuenv export pylock --venv .venv -o pylock.toml")
    _add_output_options(export_pylock)
    export_pylock.add_argument("--venv", type=path_argument, default=Path(".venv"),
                               help="the env (default: .venv)")
    export_pylock.add_argument("-r", "--recipe", type=path_argument, default=None,
                               help="the recipe whose gpuenv.lock describes the env (default: the project's)")
    export_pylock.add_argument("-o", "--output", type=path_argument, default=None,
                               help="write the lock here (e.g. pylock.toml) instead of printing it")
    _add_cache_options(export_pylock)
    export_pylock.set_defaults(command_key="export pylock")

    cache = _command(commands, "cache")
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    cache_path = _command(cache_commands, "path", "cache path")
    cache_list = _command(cache_commands, "list", "cache list")
    cache_list.add_argument("--json", action="store_true", help="print the entries as JSON")
    cache_prune = _command(cache_commands, "prune", "cache prune")
    cache_prune.add_argument("--older-than", type=_days, metavar="DAYS", help="built more than DAYS ago")
    cache_prune.add_argument("--unused-since", metavar="YYYY-MM-DD", help="not used since this date")
    cache_prune.add_argument("--max-size", metavar="SIZE",
                             help="keep the cache under SIZE (e.g. 20G, 500M): least recently used go first")
    cache_prune.add_argument("--dry-run", action="store_true",
                             help="list what would be removed; remove nothing")
    cache_prune.add_argument("--json", action="store_true", help="print the removed entries as JSON")
    cache_export = _command(cache_commands, "export", "cache export")
    cache_export.add_argument("directory", type=path_argument, metavar="DIR",
                              help="where the group directories go")
    cache_push = _command(cache_commands, "push", "cache push")
    cache_push.add_argument("target", metavar="URL",
                            help="an index that takes uploads (pypiserver: http://host:8080/simple/, devpi: "
                                 "http://host/USER/INDEX/+simple/; credentials as https://USER:TOKEN@host/ "
                                 "or in ~/.netrc) or a folder")
    for sub, key in ((cache_path, "cache path"), (cache_list, "cache list"), (cache_prune, "cache prune"),
                     (cache_export, "cache export"), (cache_push, "cache push")):
        _add_cache_options(sub)
        sub.set_defaults(command_key=key)

    completion = _command(commands, "completion")
    completion.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete in")
    completion.set_defaults(command_key="completion")
    return parser
