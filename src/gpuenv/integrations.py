"""gpuenv's nox sessions and invoke tasks, as collections a repository takes in one line.

Both run the same code path as the command: ``python -m gpuenv COMMAND ARGS``
in an interpreter that has gpuenv installed. The invoke tasks are made from
gpuenv's own argument parser, so every option of a command is an option of its
task, and a new option reaches every repository without editing its files;
the nox sessions pass their arguments after ``--`` through unchanged.

tasks.py::

    from gpuenv.integrations import invoke_collection

    namespace = invoke_collection()          # invoke setup --cuda 12.1, invoke doctor, …

noxfile.py (gpuenv's own; a repository's noxfile, written by ``gpuenv init``,
defines the same sessions without importing gpuenv, so ``nox -l`` works with
nox alone)::

    from gpuenv.integrations import register_nox_sessions

    register_nox_sessions()                  # nox -s gpu-env / gpu-plan / gpu-doctor

This module imports only the standard library at import time.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

#: What a nox session installs to get gpuenv when nothing says otherwise.
DEFAULT_REQUIREMENT = "gpuenv"
#: The variable that overrides it: a version pin, a git URL or the path of a checkout.
REQUIREMENT_VARIABLE = "GPUENV_REQUIREMENT"
#: nox session → the gpuenv command it runs.
NOX_SESSIONS = {"gpu-env": "setup", "gpu-plan": "plan", "gpu-doctor": "doctor"}
#: The gpuenv commands the invoke collection has a task for.
INVOKE_COMMANDS = ("setup", "plan", "probe", "doctor", "cache")


def gpuenv_command(python: str, command: str, args: Sequence[str]) -> list[str]:
    """The one command every front end runs."""
    return [python, "-m", "gpuenv", command, *args]


def setup_command(python: str, args: Sequence[str]) -> list[str]:
    return gpuenv_command(python, "setup", args)


# -- where this gpuenv came from ---------------------------------------------------------


def gpuenv_origin() -> str:
    """A requirement that installs the gpuenv running now: its checkout, its git URL, or its version.

    Read from the install's own record (PEP 610 ``direct_url.json``); a gpuenv
    run from a source tree without being installed is that tree.
    """
    try:
        dist = metadata.distribution("gpuenv")
    except metadata.PackageNotFoundError:
        return _source_tree() or DEFAULT_REQUIREMENT
    text = dist.read_text("direct_url.json")
    if text:
        try:
            record = json.loads(text)
        except ValueError:
            record = {}
        url = str(record.get("url", ""))
        vcs = record.get("vcs_info")
        if isinstance(vcs, dict) and url:
            commit = vcs.get("commit_id") or vcs.get("requested_revision")
            return f"gpuenv @ {vcs.get('vcs', 'git')}+{url}" + (f"@{commit}" if commit else "")
        if url.startswith("file://"):
            path = url[len("file://"):]
            return path if Path(path).is_dir() else f"gpuenv @ {url}"
        if url:
            return f"gpuenv @ {url}"
    return f"gpuenv=={dist.version}"


def _source_tree() -> str | None:
    root = Path(__file__).resolve().parents[2]
    return str(root) if (root / "pyproject.toml").is_file() else None


# -- nox -------------------------------------------------------------------------------------


def nox_session_body(command: str, requirement: str | None = None) -> Callable[[Any], None]:
    """A nox session that installs gpuenv and runs ``gpuenv COMMAND`` with the session's posargs."""

    def session(session: Any) -> None:
        import os

        # uv comes along (gpuenv's uv extra): --installer auto, the default, finds it in the session.
        session.install(requirement or os.environ.get(REQUIREMENT_VARIABLE) or gpuenv_origin(), "uv")
        session.run(*gpuenv_command("python", command, session.posargs))

    session.__doc__ = f"gpuenv {command} (arguments after -- go to it)"
    return session


def register_nox_sessions(requirement: str | None = None) -> None:
    """Register gpu-env, gpu-plan and gpu-doctor in the noxfile that calls this."""
    import nox

    for name, command in NOX_SESSIONS.items():
        nox.session(name=name, default=False)(nox_session_body(command, requirement))


def nox_gpu_env(session: Any, *, requirement: str = DEFAULT_REQUIREMENT) -> None:
    """Install gpuenv into the session and run ``gpuenv setup`` with the session's posargs."""
    nox_session_body("setup", requirement)(session)


# -- invoke ----------------------------------------------------------------------------------


def invoke_collection(python: str | None = None) -> Any:
    """An invoke Collection with a task per gpuenv command, each with every option of the command."""
    from invoke.collection import Collection

    from gpuenv.cli_parser import build_parser

    parser = build_parser()
    commands, helps = _subparsers(parser), _subcommand_help(parser)
    collection = Collection()
    for name in INVOKE_COMMANDS:
        if name in commands:
            collection.add_task(_invoke_task(name, commands[name], helps.get(name, ""), python))
    return collection


def invoke_setup(c: Any, *, gpuenv_python: str | None = None, **options: Any) -> Any:
    """Run ``gpuenv setup`` from an invoke task (options by their names: cuda="12.1", dry_run=True,
    python="/opt/conda/bin/python" for an env gpuenv did not create); ``gpuenv_python`` runs gpuenv."""
    from gpuenv.cli_parser import build_parser

    parser = _subparsers(build_parser())["setup"]
    return c.run(shlex.join(setup_command(gpuenv_python or sys.executable, _argv(_params(parser), options))),
                 pty=False)


def setup_args(**options: Any) -> list[str]:
    """``gpuenv setup`` arguments for options by their names (``setup_args(cuda="12.1")``)."""
    from gpuenv.cli_parser import build_parser

    return _argv(_params(_subparsers(build_parser())["setup"]), options)


class _Param:
    def __init__(self, name: str, flag: str | None, kind: str, help: str | None) -> None:
        self.name, self.flag, self.kind, self.help = name, flag, kind, help


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _subcommand_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def _params(parser: argparse.ArgumentParser) -> list[_Param]:
    """The options (and positionals) of a gpuenv command, as invoke parameters."""
    params: list[_Param] = []
    seen: set[str] = set()
    parsers = [parser]
    nested = _subparsers(parser)
    if nested:
        params.append(_Param("action", None, "positional", f"one of: {', '.join(nested)}"))
        parsers += list(nested.values())
    for sub in parsers:
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction,
                                   argparse._VersionAction)):
                continue
            flag = max(action.option_strings, key=len) if action.option_strings else None
            # Options sharing a dest (-v/-q both set verbosity) are a flag each, named by the option.
            name = flag.lstrip("-").replace("-", "_") if flag and isinstance(
                action, argparse._StoreConstAction) else action.dest
            if name in seen:
                continue
            seen.add(name)
            if flag is None:
                params.append(_Param(action.dest, None, "optional-positional", action.help))
                continue
            if isinstance(action, (argparse._StoreTrueAction, argparse._StoreConstAction)):
                kind = "flag"
            elif isinstance(action, argparse._AppendAction):
                kind = "list"
            elif isinstance(action, argparse._CountAction):
                kind = "count"
            else:
                kind = "value"
            params.append(_Param(name, flag, kind, action.help))
    return params


def _argv(params: list[_Param], values: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for param in params:
        value = values.get(param.name)
        if value in (None, False, [], 0, ""):
            continue
        if param.flag is None:
            argv.append(str(value))
        elif param.kind == "flag":
            argv.append(param.flag)
        elif param.kind == "count":
            argv += [param.flag] * int(value)
        elif param.kind == "list":
            for item in value:
                argv += [param.flag, str(item)]
        else:
            argv += [param.flag, str(value)]
    return argv


def _invoke_task(command: str, parser: argparse.ArgumentParser, summary: str, python: str | None) -> Any:
    from invoke.tasks import Task

    params = _params(parser)

    def body(c: Any, *args: Any, **kwargs: Any) -> Any:
        values = dict(zip((p.name for p in params if p.kind == "positional"), args))
        values.update(kwargs)
        return c.run(shlex.join(gpuenv_command(python or sys.executable, command, _argv(params, values))),
                     pty=False)

    signature = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for p in sorted(params, key=lambda p: p.kind != "positional"):
        default: Any = inspect.Parameter.empty if p.kind == "positional" else (
            False if p.kind == "flag" else 0 if p.kind == "count" else None)
        signature.append(inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default))
    body.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    body.__name__ = command
    body.__doc__ = f"gpuenv {command}: {summary or parser.description or ''}".rstrip(": ")
    return Task(body, name=command,
                help={p.name: p.help or "" for p in params if p.help},
                iterable=[p.name for p in params if p.kind == "list"],
                incrementable=[p.name for p in params if p.kind == "count"],
                positional=[p.name for p in params if p.kind == "positional"])
