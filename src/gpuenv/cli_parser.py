"""The ``gpuenv`` command's arguments: one argparse parser made from the commands' records
(:data:`gpuenv.cli.COMMANDS`) and the option table (:data:`gpuenv.options.OPTIONS`), so an option reads
the same on every command that takes it.

Each command's parser sets ``command_key`` ("cache prune"); main() runs that command's handler.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from gpuenv.cli_help import CommandHelp, wrap
from gpuenv.options import OPTIONS, OUTPUT_OPTIONS, Option
from gpuenv.progress import NORMAL
from gpuenv.version import __version__


@dataclass(frozen=True)
class Command:
    """One command: its name ("cache prune"), its help, its handler and the options it takes (by name, in
    the order --help lists them; the output options come with every command). A group ("cache") has no
    handler: its actions ("cache prune") are the commands, listed after it."""

    name: str
    handler: Callable[[argparse.Namespace], int] | None
    options: tuple[str, ...]
    help: CommandHelp

    @property
    def all_options(self) -> tuple[str, ...]:
        return () if self.handler is None else (*self.options, *OUTPUT_OPTIONS)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors end with a ``hint:`` line like every other error of gpuenv's
    (exit 2). Its subcommands' parsers are of this class too (argparse makes them of the parent's)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        hint = f"'{self.prog} --help' lists its options"
        if "expected one argument" in message:
            hint += "; a value that starts with '-' is written with '=': --option=-VALUE"
        self.exit(2, f"{self.prog}: error: {message}\nhint: {hint}\n")


def build_parser(commands: Sequence[Command]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gpuenv",
        description="PyTorch GPU environments that work: probe, plan, set up.",
        epilog="'gpuenv COMMAND --help' describes a command, the files it reads and writes, with examples.",
    )
    parser.add_argument("--version", action="version", version=f"gpuenv {__version__}")
    _add_options(parser, OUTPUT_OPTIONS, top=True)
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, Any] = {}
    for command in commands:
        *group, name = command.name.split()
        sub = _subcommand(groups[group[0]] if group else top, name, command.help)
        if command.handler is None:  # "cache": its actions go under it (gpuenv cache -q list works too)
            _add_options(sub, OUTPUT_OPTIONS)
            groups[name] = sub.add_subparsers(dest=f"{name}_command", required=True,
                                              metavar="FORMAT" if name == "export" else "ACTION")
            continue
        _add_options(sub, command.all_options)
        sub.set_defaults(command_key=command.name)
    return parser


def _subcommand(commands: Any, name: str, entry: CommandHelp) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=entry.summary, description=wrap(entry.description), epilog=entry.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _add_options(parser: argparse.ArgumentParser, names: Sequence[str], *, top: bool = False) -> None:
    """The options ``names``, each under its group's heading, -v/-q exclusive of each other.

    The output options are on the main parser and on every command (``gpuenv -q setup`` = ``gpuenv setup
    -q``): a command's own defaults must not undo the main parser's, so there they default to "unset".
    """
    groups: dict[str, Any] = {}
    levels: Any = None
    for name in names:
        option = OPTIONS[name]
        where: Any = parser
        if option.group is not None:
            if option.group not in groups:
                groups[option.group] = parser.add_argument_group(option.group)
            where = groups[option.group]
        if option.kind == "level":
            levels = levels or where.add_mutually_exclusive_group()
            where = levels
        where.add_argument(*option.flags or (option.name,), **_argparse_keywords(option, top=top))
    if top:
        parser.set_defaults(verbosity=NORMAL, color=OPTIONS["color"].default)


def _argparse_keywords(option: Option, *, top: bool) -> dict[str, Any]:
    help_text = option.help + (f"; env: {option.env}" + ("=1" if option.kind == "flag" else "")
                               if option.env else "")
    words: dict[str, Any] = {"help": help_text}
    if option.metavar is not None:
        words["metavar"] = option.metavar
    if option.type is not None:
        words["type"] = option.type
    if option.choices is not None:
        words["choices"] = option.choices
    output = option.name in OUTPUT_OPTIONS
    if output and not top:
        words["default"] = argparse.SUPPRESS
    if option.kind == "level":
        return {**words, "dest": option.dest, "action": "store_const", "const": option.const}
    if option.kind == "flag":
        return {**words, "action": "store_true"}
    if option.kind == "off":
        return {**words, "dest": option.name, "action": "store_false", "default": None}
    if option.kind == "list":
        return {**words, "action": "append", "default": None}
    if option.kind == "positional":
        return words
    if option.kind == "optional-positional":
        return {**words, "nargs": "?", "default": option.default}
    if option.const is not None:
        words.update(nargs="?", const=option.const)
    words.setdefault("default", None if output else option.default)
    return {**words, "dest": option.name}
