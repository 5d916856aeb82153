"""What the tests stand in with, in one place: a fake runner, a fake env's interpreter, and the command.

- :class:`FakeRunner` implements the Runner interface (as
  :class:`gpuenv.runner.SubprocessRunner` does) and runs nothing: it records
  each command and answers it (one output for all, a function of the command,
  or an error), for the tests of command lines and of output parsing.
- :class:`FakeEnvRunner` is an env's interpreter reduced to its facts (its torch,
  its distributions, its imports that fail, what CUDA says): it answers each
  question gpuenv asks an env by the name the question is declared under
  (:mod:`gpuenv.env.envqueries`), never by reading the script's text, and
  refuses any question not declared there.
- :class:`FakeInstaller` is an installer that installs nothing and records what
  it was asked (requirements and constraints); :func:`clean_env` (a subprocess's
  environment) and :func:`clean_gpuenv_environ` (this process's) leave a command no
  GPUENV_ setting of the user's.
- :func:`gpuenv` runs the real command (``python -m gpuenv``) in a subprocess,
  for what only a process shows (exit on a signal, a terminal, the
  environment read at start-up, the slow tier's real setups);
  :func:`gpuenv_main` runs it in this process (:func:`gpuenv.cli.main`, streams
  captured), for everything else: the same exit code and output, a tenth of
  the time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuenv.env.envqueries import query_name
from gpuenv.env.targetenv import TorchInfo
from gpuenv.errors import CommandError
from gpuenv.runner import ANSWER_MARK
from gpuenv.setup.installer import NO_OPTIONS, Installer, InstallOptions

if TYPE_CHECKING:
    import pytest

    from gpuenv.env.targetenv import TargetEnv

# -- a runner that runs nothing ---------------------------------------------------------------------


@dataclass
class Call:
    cmd: list[str]
    cwd: str | None
    extra_environ: dict[str, str]


class FakeRunner:
    """Records each command; answers ``answer(cmd)`` if given, else ``output``; raises ``error`` if given."""

    def __init__(self, output: str = "", *, answer: Callable[[list[str]], str] | None = None,
                 error: CommandError | None = None) -> None:
        self.output = output
        self.answer = answer
        self.error = error
        self.calls: list[Call] = []

    def __call__(
        self, cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
    ) -> str:
        command = [str(c) for c in cmd]
        self.calls.append(Call(command, cwd, dict(extra_environ or {})))
        if self.error is not None:
            raise self.error
        return self.answer(command) if self.answer is not None else self.output

    @property
    def commands(self) -> list[list[str]]:
        """The commands run, in order."""
        return [call.cmd for call in self.calls]


# -- an env's interpreter, as facts -----------------------------------------------------------------


class FakeEnvRunner:
    """Answers the questions TargetEnv, the doctor and export ask an env's interpreter, from facts.

    ``site`` is the env's site-packages (a real directory: the doctor reads the
    files there); ``torch`` the torch it imports (None: none); ``installed``
    distribution → version besides torch; ``failing_imports`` module → the
    traceback its import prints; ``cuda`` what ``torch.cuda`` says.
    """

    def __init__(self, site: Path, *, torch: TorchInfo | None, installed: Mapping[str, str] | None = None,
                 failing_imports: Mapping[str, str] | None = None,
                 cuda: Mapping[str, Any] | None = None) -> None:
        self.site = site
        self.torch = torch
        self.installed = dict(installed or {})
        self.failing_imports = dict(failing_imports or {})
        self.cuda = cuda or {"available": True, "count": 1, "reason": None}
        self.calls: list[list[str]] = []
        self.checked: list[list[str]] = []

    def __call__(self, cmd: Sequence[str], cwd: str | None = None,
                 extra_environ: Mapping[str, str] | None = None) -> str:
        self.calls.append(list(cmd))
        at = list(cmd).index("-c")
        script, args = cmd[at + 1], list(cmd[at + 2:])
        name = query_name(script)
        answers: dict[str, Callable[[], Any]] = {
            "torch": self._torch, "installed": self._installed, "interpreter": self._interpreter,
            "cuda": lambda: self.cuda, "verify": lambda: self._verify(args),
            "facts": lambda: {"torch": self._torch(), "installed": self._installed(),
                              "interpreter": self._interpreter()},
        }
        if name not in answers:
            raise AssertionError(f"a question the fake env has no facts for: {name or script[:80]!r}")
        return ANSWER_MARK + json.dumps(answers[name]()) + "\n"

    def _torch(self) -> Any:
        t = self.torch
        return None if t is None else {"version": t.version, "cuda": t.cuda, "cxx11_abi": t.cxx11_abi,
                                       "arch_list": list(t.arch_list), "path": t.path,
                                       "distribution": t.distribution}

    def _installed(self) -> dict[str, str]:
        return {**({"torch": self.torch.version} if self.torch else {}), **self.installed}

    def _interpreter(self) -> dict[str, Any]:
        return {"version": "3.11.7", "python_tag": "cp311", "abi_tag": "cp311",
                "platform_tag": "linux_x86_64", "purelib": str(self.site), "markers": {}}

    def _verify(self, modules: list[str]) -> Any:
        self.checked.append(modules)
        return {"torch": self._torch(), "installed": self._installed(),
                "failures": {m: self.failing_imports[m] for m in modules if m in self.failing_imports}}

    def imported(self) -> list[str]:
        """The modules the doctor imported, through setup's one check (one interpreter, torch first)."""
        return [m for modules in self.checked for m in modules]


# -- the command --------------------------------------------------------------------------------------


def gpuenv(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
           timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run the real command, ``python -m gpuenv ARGS``, in a subprocess and capture what it prints."""
    return subprocess.run([sys.executable, "-m", "gpuenv", *args], cwd=cwd,
                          env=None if env is None else dict(env), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def _environ(env: Mapping[str, str] | None) -> Iterator[None]:
    if env is None:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def gpuenv_main(*args: str, cwd: Path | None = None,
                env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``gpuenv ARGS`` in this process (:func:`gpuenv.cli.main`): its exit code and what it printed, as
    :func:`gpuenv` returns them. argparse's own exits (``--help``, a bad option) are exit codes too."""
    from gpuenv.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_environ(env))
        if cwd is not None:
            stack.enter_context(contextlib.chdir(cwd))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(["gpuenv", *args], code, out.getvalue(), err.getvalue())


# -- an installer that installs nothing ---------------------------------------------------------------


class FakeInstaller(Installer):
    """Records what it is asked to install (requirements, constraints); installs nothing."""

    name = "fake"

    def __init__(self) -> None:
        super().__init__(FakeRunner())
        self.installs: list[tuple[list[str], list[str]]] = []

    def commands(self, env: TargetEnv, requirements: Sequence[str],
                 options: InstallOptions = NO_OPTIONS) -> list[list[str]]:
        return []

    def uninstall_commands(self, env: TargetEnv, names: Sequence[str]) -> list[list[str]]:
        return []

    def install(self, env: TargetEnv, requirements: Sequence[str],
                options: InstallOptions = NO_OPTIONS) -> None:
        self.installs.append((list(requirements), list(options.constraints)))


# -- the environment a command runs in --------------------------------------------------------------


def _users_setting(name: str, *, keep_offline: bool) -> bool:
    """A GPUENV_ variable of the user's; GPUENV_OFFLINE (the tests' own: tests/conftest.py) if not kept."""
    return name.startswith("GPUENV_") and not (keep_offline and name == "GPUENV_OFFLINE")


def clean_env(*, keep_offline: bool = True, **extra: str) -> dict[str, str]:
    """This process's environment for a subprocess, without the user's GPUENV_ settings, with ``extra``.

    ``keep_offline=False`` drops GPUENV_OFFLINE too, for a command that must ask an index.
    """
    env = {k: v for k, v in os.environ.items() if not _users_setting(k, keep_offline=keep_offline)}
    env.update(extra)
    return env


def clean_gpuenv_environ(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """No GPUENV_ variable of the user's reaches the command (GPUENV_OFFLINE, the tests' own, stays),
    its wheel cache is ``cache``, and it prints no colour."""
    for name in [n for n in os.environ if _users_setting(n, keep_offline=True)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GPUENV_CACHE_DIR", str(cache))
    monkeypatch.setenv("NO_COLOR", "1")
