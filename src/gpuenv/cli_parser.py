"""The ``gpuenv`` command's arguments: one argparse parser made from the commands' records and the option
table (:data:`gpuenv.options.OPTIONS`), so an option reads the same on every command that takes it.

Each command's parser sets ``command_key`` ("cache prune"); main() runs that command's handler.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gpuenv import __version__
from gpuenv.cli_help import HELP, wrap
from gpuenv.options import OPTIONS, OUTPUT_OPTIONS, Option
from gpuenv.progress import NORMAL


@dataclass(frozen=True)
class Command:
    """One command: its name ("cache prune"), its handler, and the options it takes (by name, in the
    order --help lists them; the output options come with every command). Its help is ``HELP[name]``."""

    name: str
    handler: Callable[[argparse.Namespace], int]
    options: tuple[str, ...] = ()

    @property
    def all_options(self) -> tuple[str, ...]:
        return (*self.options, *OUTPUT_OPTIONS)


def build_parser(commands: Sequence[Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpuenv",
        description="PyTorch GPU environments that work: probe, plan, set up.",
        epilog="'gpuenv COMMAND --help' describes a command, the files it reads and writes, with examples.",
    )
    parser.add_argument("--version", action="version", version=f"gpuenv {__version__}")
    _add_options(parser, OUTPUT_OPTIONS, top=True)
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, Any] = {}
    for command in commands:
        words = command.name.split()
        into = top
        if len(words) == 2:  # "cache prune": the group's parser, then the action's
            if words[0] not in groups:
                group = _subcommand(top, words[0], words[0])
                groups[words[0]] = group.add_subparsers(
                    dest=f"{words[0]}_command", metavar="FORMAT" if words[0] == "export" else "ACTION",
                    required=True)
            into = groups[words[0]]
        sub = _subcommand(into, words[-1], command.name)
        _add_options(sub, command.options)
        _add_options(sub, OUTPUT_OPTIONS)
        sub.set_defaults(command_key=command.name)
    return parser


def _subcommand(commands: Any, name: str, key: str) -> argparse.ArgumentParser:
    """A subcommand with its help from :data:`HELP`."""
    entry = HELP[key]
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
