"""gpuenv's nox sessions and invoke tasks, as collections a repository takes in one line.

The invoke tasks run gpuenv in invoke's own process, exactly as the command does (same parser, same
error boundary, same output): each has every option of its command, made from the commands' records and
the option table, so a new option reaches every repository without editing its files. The nox sessions
install gpuenv into their own env and run ``python -m gpuenv COMMAND`` there with the arguments after
``--``, unchanged.

tasks.py::

    from gpuenv.integrations import invoke_collection

    namespace = invoke_collection()          # invoke setup --cuda 12.1, invoke doctor, …

noxfile.py (gpuenv's own; a repository's noxfile, written by ``gpuenv init``,
defines the same sessions without importing gpuenv, so ``nox -l`` works with
nox alone)::

    from gpuenv.integrations import register_nox_sessions

    register_nox_sessions()                  # nox -s gpu-env / gpu-plan / gpu-doctor

This module imports only the standard library and gpuenv's option table at import time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gpuenv.options import OPTIONS, Option

#: The gpuenv commands the invoke collection has a task for ("cache": one task, its action first).
INVOKE_COMMANDS = ("setup", "plan", "probe", "doctor", "cache")


def gpuenv_command(python: str, command: str, args: Sequence[str]) -> list[str]:
    """The command a nox session runs in its env."""
    return [python, "-m", "gpuenv", command, *args]


# -- the options of a command, as a task's ---------------------------------------------------------


def task_options(command: str) -> list[Option]:
    """The options ``gpuenv COMMAND`` takes (for a group such as ``cache``: those of each of its actions),
    the ones passed on to nox and invoke, once each."""
    from gpuenv.cli import COMMANDS

    found: dict[str, Option] = {}
    for record in COMMANDS:
        if record.name == command or record.name.startswith(f"{command} "):
            for name in record.all_options:
                option = OPTIONS[name]
                if option.forwarded:
                    found.setdefault(_parameter(option), option)
    return list(found.values())


def _is_group(command: str) -> bool:
    from gpuenv.cli import COMMANDS

    return any(c.name.startswith(f"{command} ") for c in COMMANDS)


def _parameter(option: Option) -> str:
    """The task's parameter: the option's name; for a flag that stores into a shared or negated name
    (-v/-q into verbosity, --no-prebuilt), the flag's words (verbose, no_prebuilt)."""
    if option.kind in ("level", "off") and option.flag:
        return option.flag.lstrip("-").replace("-", "_")
    return option.name


def command_line(command: str, values: Mapping[str, Any]) -> list[str]:
    """``gpuenv COMMAND`` arguments for options by their task names (``cuda="12.1"``, ``dry_run=True``;
    for a group, ``action="prune"`` first)."""
    argv = [command]
    if _is_group(command):
        action = values.get("action")
        if not action:
            raise TypeError(f"gpuenv {command} needs an action")
        argv.append(str(action))
    for option in task_options(command):
        value = values.get(_parameter(option))
        if value in (None, False, (), [], ""):
            continue
        if option.flag is None:
            argv.append(str(value))
        elif option.kind in ("flag", "off", "level"):
            argv.append(option.flag)
        elif option.kind == "list":
            for item in [value] if isinstance(value, str) else value:
                argv += [option.flag, str(item)]
        else:
            argv += [option.flag, str(value)]
    return argv


def setup_args(**options: Any) -> list[str]:
    """``gpuenv setup`` arguments for options by their names (``setup_args(cuda="12.1")``)."""
    return command_line("setup", options)[1:]


def run_command(argv: Sequence[str]) -> int:
    """``gpuenv ARGV`` in this process, through the command's own parser and error boundary: its exit
    code. A Python that lacks one of gpuenv's dependencies is told so before anything runs."""
    from gpuenv.cli import main

    return main(list(argv), check_dependencies=True)


# -- nox -------------------------------------------------------------------------------------


def nox_session_body(command: str, requirement: str | None = None) -> Callable[[Any], None]:
    """A nox session that installs gpuenv and runs ``gpuenv COMMAND`` with the session's posargs."""

    def session(session: Any) -> None:
        import os

        from gpuenv.api import REQUIREMENT_VARIABLE, gpuenv_origin

        # uv comes along (gpuenv's uv extra): --installer auto, the default, finds it in the session.
        session.install(requirement or os.environ.get(REQUIREMENT_VARIABLE) or gpuenv_origin(), "uv")
        session.run(*gpuenv_command("python", command, session.posargs))

    session.__doc__ = f"gpuenv {command} (arguments after -- go to it)"
    return session


def register_nox_sessions(requirement: str | None = None) -> None:
    """Register gpu-env, gpu-plan and gpu-doctor in the noxfile that calls this."""
    import nox

    from gpuenv.api import NOX_SESSIONS

    for name, command in NOX_SESSIONS.items():
        nox.session(name=name, default=False)(nox_session_body(command, requirement))


def nox_gpu_env(session: Any, *, requirement: str | None = None) -> None:
    """Install gpuenv into the session and run ``gpuenv setup`` with the session's posargs."""
    from gpuenv.api import DEFAULT_REQUIREMENT

    nox_session_body("setup", requirement or DEFAULT_REQUIREMENT)(session)


# -- invoke ----------------------------------------------------------------------------------


def invoke_collection() -> Any:
    """An invoke Collection with a task per gpuenv command, each with every option of the command."""
    from invoke.collection import Collection

    collection = Collection()
    for name in INVOKE_COMMANDS:
        collection.add_task(_invoke_task(name))
    return collection


def invoke_setup(c: Any = None, **options: Any) -> int:
    """Run ``gpuenv setup`` from an invoke task or a script, in this process (options by their names:
    cuda="12.1", dry_run=True, python="/opt/conda/bin/python"); raise invoke's Exit if it fails."""
    return _exit_on_failure(run_command(command_line("setup", options)))


def _exit_on_failure(code: int) -> int:
    if code != 0:
        from invoke.exceptions import Exit

        raise Exit(code=code)
    return code


def _invoke_task(command: str) -> Any:
    from invoke.tasks import Task

    from gpuenv.cli import HELP

    options = task_options(command)
    group = _is_group(command)

    def body(c: Any, *args: Any, **kwargs: Any) -> None:
        values = dict(zip(["action"] if group else [], args))
        values.update(kwargs)
        _exit_on_failure(run_command(command_line(command, values)))

    signature = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    if group:
        signature.append(inspect.Parameter("action", inspect.Parameter.POSITIONAL_OR_KEYWORD))
    for option in options:
        default: Any = False if option.kind in ("flag", "off", "level") else None
        signature.append(inspect.Parameter(_parameter(option), inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                           default=default))
    body.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    body.__name__ = command
    body.__doc__ = f"gpuenv {command}: {HELP[command].summary}"
    actions = [c.split()[1] for c in _actions(command)]
    helps = {_parameter(o): o.help for o in options}
    if group:
        helps["action"] = f"one of: {', '.join(actions)}"
    return Task(body, name=command, help=helps,
                iterable=[_parameter(o) for o in options if o.kind == "list"],
                positional=["action"] if group else [])


def _actions(command: str) -> list[str]:
    from gpuenv.cli import COMMANDS

    return [c.name for c in COMMANDS if c.name.startswith(f"{command} ")]
