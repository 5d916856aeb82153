"""The one way gpuenv runs a subprocess.

A runner has pyproject-hooks' signature, ``runner(cmd, cwd=None,
extra_environ=None)``, so the same object drives installs, builds (through
:class:`pyproject_hooks.BuildBackendHookCaller`) and queries; it returns the
command's combined output. Output is streamed line by line to an optional log
file and an optional callback (the front end's progress display), and a
non-zero exit raises :class:`~gpuenv.errors.CommandError` carrying the last
lines and the log path.

:class:`RecordingRunner` is the runner of ``gpuenv setup --dry-run``: the real
steps run with it, and it records every command that would change something
(in order, as ``(cmd, cwd, extra_environ)``) instead of running it, while the
questions (every command gpuenv bounds with a time limit) are asked for real,
so the dry run answers from what is really there. What gpuenv does itself
(writes a file, takes a lock, asks the network) goes through
:meth:`SubprocessRunner.perform`, which the recording runner only records in words.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol, TypeVar

from gpuenv.errors import CommandError

#: How many trailing lines of output an error carries.
TAIL_LINES = 25
#: The most output of one command kept in memory (its end; the log has it all), and the longest
#: piece read as one line: a command that prints without end (a broken env's python, a hostile
#: tool) cannot fill the memory before its time limit.
MAX_OUTPUT_CHARS = 32 << 20
MAX_LINE_CHARS = 1 << 20
#: The most of one line an error's tail shows.
TAIL_LINE_CHARS = 2000

#: Precedes the JSON line a query script run in an env prints (its output is mixed with stderr
#: and warnings); a progress display hides such lines.
ANSWER_MARK = "@@gpuenv-json@@"

#: Set to 0, the env's runtime ``.pth`` (:mod:`gpuenv.setup.runtime`) leaves the environment alone.
#: Every command this runner starts gets it: gpuenv's own builds and installs in an env carry the
#: plan's values themselves, which the runtime env must not override.
RUNTIME_OFF_SWITCH = "GPUENV_RUNTIME_ENV"


#: How long a tool may take to answer a question about itself (``nvcc --version``, ``nvcc --dryrun``,
#: ``cuobjdump --list-elf``, ``uv python find``, a Python's version, ``git rev-parse``): they answer
#: in well under a second; a hung one (a broken toolkit in a shared cache, a wrapper waiting on a
#: dead mount) must not hang ``probe``, ``plan`` or ``cache list``. ``GPUENV_QUERY_TIMEOUT``
#: (seconds) replaces it; the two limits below scale with it.
QUERY_TIMEOUT = 5.0
QUERY_TIMEOUT_ENV = "GPUENV_QUERY_TIMEOUT"
#: An env's interpreter answering what it holds without importing torch (its version, its
#: distributions, torch's files): this many query timeouts (15 s by default; a cold start on a
#: cluster file system takes seconds).
ENV_QUERY_FACTOR = 3
#: An interpreter importing torch and the extensions (verify, doctor) or pip asking an index about
#: a release: this many query timeouts (10 minutes by default). Installs, downloads and builds
#: have no time limit: a build of flash-attn takes hours; they show their progress, and Ctrl-C
#: stops them.
IMPORT_FACTOR = 120


class Runner(Protocol):
    def __call__(
        self,
        cmd: Sequence[str],
        cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> str: ...


LineCallback = Callable[[str], None]
T = TypeVar("T")


def query_timeout(environ: Mapping[str, str] | None = None) -> float:
    """The time limit of a tool's answer: ``GPUENV_QUERY_TIMEOUT`` if it is a positive number of
    seconds, else :data:`QUERY_TIMEOUT`."""
    text = (os.environ if environ is None else environ).get(QUERY_TIMEOUT_ENV, "")
    try:
        seconds = float(text)
    except ValueError:
        return QUERY_TIMEOUT
    return seconds if 0 < seconds < 1e6 else QUERY_TIMEOUT


def env_query_timeout(environ: Mapping[str, str] | None = None) -> float:
    """The time limit of an env's interpreter answering a query that imports nothing heavy."""
    return query_timeout(environ) * ENV_QUERY_FACTOR


def import_timeout(environ: Mapping[str, str] | None = None) -> float:
    """The time limit of an interpreter importing torch and extensions, or of pip asking an index."""
    return query_timeout(environ) * IMPORT_FACTOR


def bounded(runner: Runner, seconds: float | None) -> Runner:
    """``runner`` with a time limit on each command (a runner that takes none, a test's fake, as is)."""
    with_timeout = getattr(runner, "with_timeout", None)
    return with_timeout(seconds) if callable(with_timeout) else runner


class CommandTimeout(CommandError):
    """A command ran past its time limit and was killed (with whatever it had started)."""

    def __init__(self, cmd: list[str], seconds: float, *, log_path: Path | None = None,
                 tail: str = "") -> None:
        self.seconds = seconds
        super().__init__(
            cmd, -9, log_path=log_path, tail=tail,
            message=f"{cmd[0]} did not answer within {seconds:g} s and was stopped: {' '.join(cmd)}",
            hint=f"it hangs, or this machine is very slow: check that it runs by hand; "
                 f"{QUERY_TIMEOUT_ENV}=SECONDS gives such queries longer",
        )


class SubprocessRunner:
    """Run commands, tee their output to ``log_path`` and ``on_line``, raise on failure.

    ``env`` replaces the inherited environment when given (tests use it to
    pin PATH); ``extra_environ`` of a call is layered on top, and a value of
    ``""`` for a key removes it. ``timeout`` (seconds; None: no limit) bounds each
    command: one that runs past it is killed with every process it started (it runs
    in a process group of its own) and :class:`CommandTimeout` is raised.
    """

    def __init__(
        self,
        *,
        log_path: Path | None = None,
        on_line: LineCallback | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.log_path = log_path
        self.on_line = on_line
        self.env = dict(env) if env is not None else None
        self.timeout = timeout

    def with_log(self, log_path: Path | None, on_line: LineCallback | None = None) -> SubprocessRunner:
        """A runner like this one that writes to another log (one log per build)."""
        return SubprocessRunner(log_path=log_path, on_line=on_line or self.on_line, env=self.env,
                                timeout=self.timeout)

    def with_timeout(self, seconds: float | None) -> SubprocessRunner:
        """A runner like this one whose commands are stopped after ``seconds`` (None: never)."""
        return SubprocessRunner(log_path=self.log_path, on_line=self.on_line, env=self.env, timeout=seconds)

    def perform(self, what: str, action: Callable[[], T], instead: Callable[[], T]) -> T:
        """Do ``action``, something gpuenv does itself rather than through a command (write a file,
        take a lock, ask the network), and return its result. ``what`` says it in words, and
        ``instead`` makes what stands for its result where it is only recorded
        (:class:`RecordingRunner`)."""
        return action()

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
        lines: deque[str] = deque()
        kept = 0
        log: IO[str] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
        timer: threading.Timer | None = None
        expired, finished = threading.Event(), threading.Event()
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
                    # A bounded command gets a process group of its own, so what it started dies with it.
                    start_new_session=self.timeout is not None,
                )
            except (OSError, ValueError) as exc:  # ValueError: a NUL in the command
                raise CommandError(cmd, 127, log_path=self.log_path,
                                   message=f"cannot run {cmd[0]}: {getattr(exc, 'strerror', None) or exc}"
                                   ) from None
            if self.timeout is not None:
                timer = threading.Timer(self.timeout, _expire, (proc, expired, finished))
                timer.daemon = True
                timer.start()
            try:
                assert proc.stdout is not None
                with proc.stdout:
                    for line in _pieces(proc.stdout):
                        lines.append(line)
                        kept += len(line)
                        while kept > MAX_OUTPUT_CHARS:
                            kept -= len(lines.popleft())
                        tail.append(line.rstrip("\n")[:TAIL_LINE_CHARS])
                        if log is not None:
                            log.write(line)
                            log.flush()
                        if self.on_line is not None:
                            self.on_line(line.rstrip("\n"))
                returncode = proc.wait()
                finished.set()
            except BaseException:
                if self.timeout is not None:  # interrupted: no query outlives gpuenv
                    _kill_group(proc)
                else:
                    # Interrupted (Ctrl-C, SIGTERM): the command must not go on changing the env
                    # behind whatever undoes the run's changes.
                    _stop(proc)
                raise
        finally:
            if timer is not None:
                timer.cancel()
            if log is not None:
                log.close()
        if expired.is_set():
            raise CommandTimeout(cmd, self.timeout or 0.0, log_path=self.log_path, tail="\n".join(tail))
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


def _pieces(stream: IO[str]) -> Iterator[str]:
    """The lines of ``stream``, a line longer than :data:`MAX_LINE_CHARS` in pieces of that size."""
    while True:
        piece = stream.readline(MAX_LINE_CHARS)
        if not piece:
            return
        yield piece


def _expire(proc: subprocess.Popen[str], expired: threading.Event, finished: threading.Event) -> None:
    """The time limit passed: unless the command is done, kill it and all it started (a child that
    still holds the output pipe would keep the read waiting)."""
    if not finished.is_set():
        expired.set()
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc``'s process group (it leads one: ``start_new_session``)."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)


def perform(runner: Runner, what: str, action: Callable[[], T], instead: Callable[[], T]) -> T:
    """:meth:`SubprocessRunner.perform` of ``runner``; a runner without it (a test's fake) does ``action``."""
    method = getattr(runner, "perform", None)
    return method(what, action, instead) if callable(method) else action()


# -- the dry run's runner -----------------------------------------------------------------

#: A placeholder: what only exists once the real run has changed something (the sha256 of an
#: sdist it downloads, the wheel a build makes). Its angle brackets keep a shell from running the
#: line by mistake, and a recorded line that holds one says so.
_PLACEHOLDER = re.compile(r"<[^<>\n]+>")


def unknown(what: str) -> str:
    """A clearly marked placeholder for ``what``, which a dry run cannot know."""
    return f"<{what}>"


def is_unknown(text: str) -> bool:
    """Whether ``text`` holds a placeholder made by :func:`unknown`."""
    return _PLACEHOLDER.search(text) is not None


def unknowns_in(text: str) -> list[str]:
    """What the placeholders in ``text`` stand for, in words."""
    return [found[1:-1] for found in _PLACEHOLDER.findall(text)]


#: What a recorded line is: a command, a line of shell (a file a later command reads), something gpuenv
#: does itself (in words), or a note (the reporter's words: a step's title, a decision, a warning).
Kind = Literal["command", "shell", "change", "note"]


@dataclass(frozen=True)
class Recorded:
    """One thing a :class:`RecordingRunner` recorded, in the order the real run would do it."""

    kind: Kind
    #: The command (kind "command"), or the words or the line of shell of the others.
    cmd: tuple[str, ...]
    cwd: str | None = None
    extra_environ: tuple[tuple[str, str], ...] = ()

    def line(self, base: Mapping[str, str]) -> str:
        """The line to print: a command shell-quoted, ready to paste (``base`` is the environment it
        would be layered on); words as a ``#`` comment, one per line."""
        if self.kind in ("change", "note"):
            return "\n".join(f"# {line}" for line in self.cmd[0].splitlines() or [""])
        text = self.cmd[0] if self.kind == "shell" else _shell_command(self, base)
        said = list(dict.fromkeys(_PLACEHOLDER.findall(text)))
        if said:
            text += f"  # {', '.join(said)}: not known before the real run gets here"
        return text


def _shell_command(recorded: Recorded, base: Mapping[str, str]) -> str:
    unset = [name for name, value in recorded.extra_environ if value == ""]
    words = ["env", *(f"-u {shlex.quote(name)}" for name in unset)] if unset else []
    words += [f"{name}={_shell_value(name, value, base)}" for name, value in recorded.extra_environ if value]
    text = " ".join([*words, shlex.join(recorded.cmd)])
    return f"(cd {shlex.quote(recorded.cwd)} && {text})" if recorded.cwd else text


def _shell_value(name: str, value: str, base: Mapping[str, str]) -> str:
    """``value`` quoted; a list that ends with the variable's own value (``PATH``) ends with ``"$PATH"``."""
    own = base.get(name, "")
    if own and value.endswith(os.pathsep + own) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        front = value[: -len(own)]
        return f'{shlex.quote(front)}"${name}"'
    return shlex.quote(value)


class RecordingRunner(SubprocessRunner):
    """The runner of a dry run: records what would change something, asks what only reads.

    A command with a time limit is a question: gpuenv bounds every query it asks (a Python's
    version, what an env holds, ``nvcc --version``) and nothing else, since installs, downloads
    and builds may take hours. A question runs for real, with bytecode writing off, so the dry
    run answers from what is really there. Every other command is recorded as ``(cmd, cwd,
    extra_environ)`` and returns no output; :meth:`perform` records what gpuenv would do itself
    in words and returns the stand-in it is given the means to make. The runners it makes
    (another log, a time limit) record into the same list; no log is written.
    """

    def __init__(self, *, env: Mapping[str, str] | None = None, timeout: float | None = None,
                 recorded: list[Recorded] | None = None) -> None:
        super().__init__(env=env, timeout=timeout)
        self.recorded: list[Recorded] = [] if recorded is None else recorded

    def with_log(self, log_path: Path | None, on_line: LineCallback | None = None) -> RecordingRunner:
        return RecordingRunner(env=self.env, timeout=self.timeout, recorded=self.recorded)

    def with_timeout(self, seconds: float | None) -> RecordingRunner:
        return RecordingRunner(env=self.env, timeout=seconds, recorded=self.recorded)

    def __call__(
        self,
        cmd: Sequence[str],
        cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> str:
        if self.timeout is not None:
            asking = SubprocessRunner(env=self.env, timeout=self.timeout)
            return asking(cmd, cwd, {**(extra_environ or {}), "PYTHONDONTWRITEBYTECODE": "1"})
        self.recorded.append(Recorded("command", tuple(str(c) for c in cmd), cwd,
                                      tuple((extra_environ or {}).items())))
        return ""

    def perform(self, what: str, action: Callable[[], T], instead: Callable[[], T]) -> T:
        if what:
            self.recorded.append(Recorded("change", (what,)))
        return instead()

    def note(self, text: str) -> None:
        """Record words (a step's title, a decision, a warning) where they fall among the commands."""
        self.recorded.append(Recorded("note", (text,)))

    def write_file(self, path: Path, lines: Sequence[str]) -> None:
        """Record a file the real run writes for a later command (a constraints file) as the shell
        line that writes it, once per path and content."""
        text = f"printf '%s\\n' {shlex.join(lines)} > {shlex.quote(str(path))}"
        if not any(r.kind == "shell" and r.cmd == (text,) for r in self.recorded):
            self.recorded.append(Recorded("shell", (text,)))

    def changes(self) -> int:
        """How many things that change something were recorded so far (notes are none)."""
        return sum(1 for r in self.recorded if r.kind != "note")

    def lines(self) -> list[str]:
        """Everything recorded, in order, as lines to print."""
        base = self.env if self.env is not None else os.environ
        return [r.line(base) for r in self.recorded]
