"""The one way gpuenv runs a subprocess.

A runner has pyproject-hooks' signature, ``runner(cmd, cwd=None,
extra_environ=None)``, so the same object drives installs, builds (through
:class:`pyproject_hooks.BuildBackendHookCaller`) and queries; it returns the
command's combined output. Output is streamed line by line to an optional log
file and an optional callback (the front end's progress display), and a
non-zero exit raises :class:`~gpuenv.errors.CommandError` carrying the last
lines and the log path.
"""

from __future__ import annotations

import os
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

from gpuenv.errors import CommandError

#: How many trailing lines of output an error carries.
TAIL_LINES = 25

#: Precedes the JSON line a query script run in an env prints (its output is mixed with stderr
#: and warnings); a progress display hides such lines.
ANSWER_MARK = "@@gpuenv-json@@"

#: Set to 0, the env's runtime ``.pth`` (:mod:`gpuenv.setup.runtime`) leaves the environment alone.
#: Every command this runner starts gets it: gpuenv's own builds and installs in an env carry the
#: plan's values themselves, which the runtime env must not override.
RUNTIME_OFF_SWITCH = "GPUENV_RUNTIME_ENV"


class Runner(Protocol):
    def __call__(
        self,
        cmd: Sequence[str],
        cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> str: ...


LineCallback = Callable[[str], None]


class SubprocessRunner:
    """Run commands, tee their output to ``log_path`` and ``on_line``, raise on failure.

    ``env`` replaces the inherited environment when given (tests use it to
    pin PATH); ``extra_environ`` of a call is layered on top, and a value of
    ``""`` for a key removes it.
    """

    def __init__(
        self,
        *,
        log_path: Path | None = None,
        on_line: LineCallback | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self.on_line = on_line
        self.env = dict(env) if env is not None else None

    def with_log(self, log_path: Path | None, on_line: LineCallback | None = None) -> SubprocessRunner:
        """A runner like this one that writes to another log (one log per build)."""
        return SubprocessRunner(log_path=log_path, on_line=on_line or self.on_line, env=self.env)

    def environ(self, extra_environ: Mapping[str, str] | None) -> dict[str, str]:
        env = dict(self.env if self.env is not None else os.environ)
        env[RUNTIME_OFF_SWITCH] = "0"  # the env's runtime .pth is for the user's runs, not gpuenv's
        for key, value in (extra_environ or {}).items():
            if value == "":
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def __call__(
        self,
        cmd: Sequence[str],
        cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> str:
        cmd = [str(c) for c in cmd]
        env = self.environ(extra_environ)
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        lines: list[str] = []
        log: IO[str] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
        try:
            try:
                proc = subprocess.Popen(
                    cmd,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                    bufsize=1,
                )
            except OSError as exc:
                raise CommandError(cmd, 127, log_path=self.log_path,
                                   message=f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
            assert proc.stdout is not None
            try:
                with proc.stdout:
                    for line in proc.stdout:
                        lines.append(line)
                        tail.append(line.rstrip("\n"))
                        if log is not None:
                            log.write(line)
                            log.flush()
                        if self.on_line is not None:
                            self.on_line(line.rstrip("\n"))
                returncode = proc.wait()
            except BaseException:
                # Interrupted (Ctrl-C, SIGTERM): the command must not go on changing the env behind
                # whatever undoes the run's changes.
                _stop(proc)
                raise
        finally:
            if log is not None:
                log.close()
        if returncode != 0:
            raise CommandError(cmd, returncode, log_path=self.log_path, tail="\n".join(tail))
        return "".join(lines)


def _stop(proc: subprocess.Popen[str], grace: float = 10.0) -> None:
    """End ``proc``: SIGTERM, then SIGKILL if it is still there after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
