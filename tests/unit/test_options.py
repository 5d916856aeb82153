"""Every option declared once: which value wins, and every front end showing the table's option."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any

import pytest

import gpuenv
from gpuenv.cli import COMMANDS
from gpuenv.cli_parser import build_parser
from gpuenv.errors import InputError
from gpuenv.load.recipe import load_recipe
from gpuenv.options import OPTIONS, choose

PACKAGE = Path(gpuenv.__file__).parent


@pytest.fixture
def recipe(tmp_path: Path) -> gpuenv.Recipe:
    path = tmp_path / "llm.toml"
    path.write_text('[torch]\nversion = "2.13.*"\ncuda = "12.6"\ntoolkit = "system"\n'
                    '[cache]\nfrom = ["http://cache.lab/simple/"]\n', encoding="utf-8")
    return load_recipe(path)


def test_the_command_line_wins_then_the_environment_then_the_recipe_then_the_default(
    recipe: gpuenv.Recipe
) -> None:
    environ = {"GPUENV_TOOLKIT": "pypi"}
    given = choose("toolkit", "auto", environ=environ, recipe=recipe)
    assert given is not None and (given.value, given.source, given.by) == ("auto", "given", "--toolkit auto")
    env = choose("toolkit", None, environ=environ, recipe=recipe)
    assert env is not None and (env.value, env.by) == ("pypi", "GPUENV_TOOLKIT=pypi")
    from_recipe = choose("toolkit", None, environ={"GPUENV_TOOLKIT": "  "}, recipe=recipe)  # blank: unset
    assert from_recipe is not None and from_recipe.value == "system"
    assert from_recipe.by == 'toolkit = "system" in llm.toml'
    default = choose("installer", None, environ=environ, recipe=recipe)
    assert default is not None and (default.value, default.source) == ("auto", "default")
    assert choose("gpu", None, environ=environ, recipe=recipe) is None


def value(name: str, given: Any, **where: Any) -> Any:
    found = choose(name, given, **where)
    assert found is not None, name
    return found.value


def test_each_kind_reads_its_variable_as_its_flag_would_say_it(recipe: gpuenv.Recipe) -> None:
    listed = choose("cache_from", None, environ={"GPUENV_CACHE_FROM": "http://a/simple/ /b"}, recipe=recipe)
    assert listed is not None and listed.value == ("http://a/simple/", "/b")
    assert value("cache_from", None, environ={}, recipe=recipe) == ("http://cache.lab/simple/",)
    assert value("offline", False, environ={"GPUENV_OFFLINE": "yes"}) is True
    assert choose("offline", False, environ={"GPUENV_OFFLINE": "0"}) is None
    home = choose("cache_dir", None, environ={"GPUENV_CACHE_DIR": "~/wheels"})
    assert home is not None and home.value == Path("~/wheels").expanduser()
    with pytest.raises(InputError, match="GPUENV_CACHE_DIR=~nobody-here-at-all/w: no such user's home"):
        choose("cache_dir", None, environ={"GPUENV_CACHE_DIR": "~nobody-here-at-all/w"})
    # "" on the command line is a mistake to report, not "not given"; --no-prebuilt's False is given.
    assert value("gpu", "") == ""
    assert value("prebuilt", False, recipe=recipe) is False and value("prebuilt", None, recipe=recipe) is True


def _commands_parsers() -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*words, name))
        if words:
            found[" ".join(words)] = parser

    walk(build_parser(COMMANDS), ())
    return found


@pytest.mark.parametrize("command", [c.name for c in COMMANDS if c.handler is not None])
def test_every_command_shows_each_of_its_options_as_the_table_declares_it(command: str) -> None:
    """doctor's --recipe, export pylock's --venv: the same flags and help on every command that takes them."""
    parser = _commands_parsers()[command]
    record = next(c for c in COMMANDS if c.name == command)
    shown = {(a.dest, a.const if a.dest == "verbosity" else None): a
             for a in parser._actions if a.dest != "help"}
    assert len(shown) == len(record.all_options)
    for name in record.all_options:
        option = OPTIONS[name]
        action = shown[(option.dest or name, option.const if option.dest == "verbosity" else None)]
        assert tuple(action.option_strings) == option.flags, name
        assert action.help is not None and action.help.startswith(option.help), name
        assert (f"env: {option.env}" in action.help) == (option.env is not None), name


def test_no_module_but_the_table_names_an_options_environment_variable() -> None:
    """Every read of GPUENV_TOOLKIT, GPUENV_CACHE_DIR… goes through the table (messages may name them)."""
    variables = {o.env for o in OPTIONS.values() if o.env}
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "options.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in variables:
                wrong.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value}")
    assert not wrong, wrong


def test_every_option_some_command_takes_and_every_command_option_is_in_the_table() -> None:
    taken = {name for c in COMMANDS for name in c.all_options}
    assert taken == set(OPTIONS), set(OPTIONS) ^ taken
