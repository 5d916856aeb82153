"""The nox sessions and invoke tasks: every option of a command reaches it, and the tasks run in-process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from invoke.exceptions import Exit
from invoke.parser import Parser, ParserContext

from gpuenv import integrations
from gpuenv.cli import COMMAND_BY_KEY, COMMANDS
from gpuenv.cli_parser import build_parser
from gpuenv.integrations import (
    INVOKE_COMMANDS,
    command_line,
    invoke_collection,
    nox_session_body,
    setup_args,
    task_options,
)
from gpuenv.options import OPTIONS, Option

NOX_COMMANDS = ("setup", "plan", "doctor")


def sample(option: Option) -> tuple[list[str], Any]:
    """Words that give ``option`` a value on a command line, and the value gpuenv's parser then holds."""
    if option.kind in ("flag", "level", "off"):
        return [option.flag or ""], {"flag": True, "off": False}.get(option.kind, option.const)
    value = option.choices[-1] if option.choices else "3" if option.name == "older_than" else "x1"
    expected: Any = option.type(value) if option.type is not None else value
    if option.kind == "list":
        expected = [expected]
    words = [value] if option.flag is None else [option.flag, value]
    return words, expected


def parsed(argv: list[str]) -> dict[str, Any]:
    return vars(build_parser(COMMANDS).parse_args(argv))


def forwarded(command: str) -> list[tuple[str, Option]]:
    """(the command's record name, option) for every option of ``command`` (or of each of its actions)."""
    return [(record.name, OPTIONS[name]) for record in COMMANDS
            if record.name == command or record.name.startswith(f"{command} ")
            for name in record.all_options if OPTIONS[name].forwarded]


def dest(option: Option) -> str:
    return option.dest or option.name


def task_words(option: Option) -> list[str]:
    """``sample``'s words as an invoke task takes them: an action's own positional (cache export DIR) is
    a task option there."""
    words, _ = sample(option)
    return [f"--{option.name.replace('_', '-')}", *words] if option.flag is None else words


def required(record: str, but: Option) -> list[Option]:
    """The positionals ``record`` cannot run without, other than ``but``."""
    return [OPTIONS[n] for n in COMMAND_BY_KEY[record].options
            if OPTIONS[n].kind == "positional" and n != but.name]


@pytest.mark.parametrize("command", INVOKE_COMMANDS)
def test_each_invoke_task_takes_every_option_of_its_command_and_passes_it_on(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(integrations, "run_command", lambda argv: ran.append(list(argv)) or 0)
    task = invoke_collection().tasks[command]
    options = forwarded(command)
    assert options
    for record, option in options:
        _, expected = sample(option)
        words = [*task_words(option), *(w for other in required(record, option) for w in task_words(other))]
        action = record.split()[1:]  # the cache task's action comes first
        context = ParserContext(name=command, args=task.get_arguments())
        values = Parser(contexts=[context]).parse_argv([command, *action, *words])[0].as_kwargs
        ran.clear()
        task.body(None, *action, **{k: v for k, v in values.items() if k != "action"})
        assert ran and ran[0][:len(record.split())] == record.split(), (record, option.name, ran)
        assert parsed(ran[0])[dest(option)] == expected, (record, option.name, ran[0])


@pytest.mark.parametrize("command", NOX_COMMANDS)
def test_each_nox_session_passes_every_option_of_its_command_on(command: str) -> None:
    class Session:
        def __init__(self) -> None:
            self.posargs: list[str] = []
            self.ran: list[str] = []

        def install(self, *args: str) -> None:
            pass

        def run(self, *args: str) -> None:
            self.ran = list(args)

    body = nox_session_body(command, requirement="gpuenv")
    for _, option in forwarded(command):
        session = Session()
        words, expected = sample(option)
        session.posargs = words
        body(session)
        assert session.ran[:4] == ["python", "-m", "gpuenv", command]
        assert parsed(session.ran[3:])[dest(option)] == expected, option.name


def test_the_nox_sessions_are_the_commands_they_say() -> None:
    from gpuenv.api import NOX_SESSIONS

    assert set(NOX_SESSIONS.values()) == set(NOX_COMMANDS)


def test_task_arguments_become_the_command_line() -> None:
    assert setup_args(cuda="12.1", dry_run=True, gpu=None) == ["--cuda", "12.1", "--dry-run"]
    # invoke setup --python /opt/conda/bin/python: an env gpuenv did not create, as on the command line.
    assert setup_args(python="/opt/conda/bin/python", break_system_packages=True) == [
        "--python", "/opt/conda/bin/python", "--break-system-packages"]
    # The cache task: its action first, an action's positional as a task option.
    assert command_line("cache", {"action": "export", "directory": "wheelhouse", "quiet": True}) == [
        "cache", "export", "--quiet", "wheelhouse"]
    assert "shell" not in {o.name for o in task_options("completion")}  # not passed on: no such task


def test_an_invoke_task_runs_gpuenv_in_this_process(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUENV_CACHE_DIR", str(tmp_path / "cache"))
    task = invoke_collection().tasks["plan"]
    recipe = Path(__file__).resolve().parents[3] / "envs" / "default.toml"
    task.body(None, recipe=str(recipe), gpu="H100", offline=True, json=True)
    assert '"variant": "cu1' in capsys.readouterr().out
    with pytest.raises(Exit) as failed:
        task.body(None, recipe=str(tmp_path / "absent.toml"), offline=True)
    assert failed.value.code == 2
    assert "error: " in capsys.readouterr().err


def test_a_python_without_gpuenvs_dependencies_is_told_what_to_install() -> None:
    # As in a fresh clone whose tasks.py runs gpuenv from src/ under an invoke installed alone.
    code = ("import sys; sys.modules['yaml'] = None; from gpuenv.integrations import run_command; "
            "raise SystemExit(run_command(['gpus']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    error, hint = done.stderr.splitlines()
    assert error == f"error: gpuenv needs the module 'yaml', which {sys.executable} does not have"
    assert hint.startswith("hint: install gpuenv with its dependencies into that Python: ")
    assert f"{sys.executable} -m pip install" in hint and done.stdout == ""
