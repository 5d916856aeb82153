"""The GPU check's ground: its checks and verdicts, its one way to run a subprocess (always with a
timeout, and the whole process session killed when it runs out), and the run's time limit.

Stdlib only: gpu_check.py imports it before it knows whether gpuenv can be imported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PASS, FAIL, SKIP = "pass", "fail", "skip"
#: The first lines of a query script's answer (one JSON line) start with this.
MARK = "@@gpu-check@@"


@dataclass
class Check:
    """One row of the report: what was checked, what was expected and seen, the verdict and why."""

    name: str
    expected: str
    seen: str
    verdict: str
    #: Why it was skipped or failed (empty for a pass, unless there is something to say).
    reason: str = ""
    seconds: float | None = None
    #: The log of the commands behind it, relative to the report's directory.
    log: str | None = None


@dataclass
class Done:
    """A finished (or timed out) command."""

    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    def answer(self) -> str | None:
        """The JSON text after MARK in stdout, if the command printed one."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith(MARK):
                return line[len(MARK):]
        return None


class OutOfTime(Exception):
    """The run's time limit is spent before the check ``name`` could start."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass
class Deadline:
    limit: float
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.limit - (time.monotonic() - self.start)

    def cap(self, timeout: float, name: str) -> float:
        """``timeout``, cut to what is left of the run; OutOfTime when (almost) nothing is."""
        left = self.remaining()
        if left < 2:
            raise OutOfTime(name)
        return min(timeout, left)


def call(cmd: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
         cwd: Path | str | None = None) -> Done:
    """Run ``cmd`` in a session of its own; past ``timeout`` seconds kill the whole session.

    A build's compilers (ninja gives each job its own process group) are in the session too, so
    nothing the command started outlives it.
    """
    cmd = [str(c) for c in cmd]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace", env=dict(env) if env is not None else None,
                                cwd=cwd, start_new_session=True)
    except OSError as exc:
        return Done(cmd, 127, "", f"cannot run {cmd[0]}: {exc.strerror or exc}", 0.0)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        out, err = proc.communicate()
        timed_out = True
    except BaseException:
        # Ctrl-C reaches only this process (the command has a session of its own): take it down too.
        kill_session(proc.pid)
        proc.wait()
        raise
    return Done(cmd, proc.returncode, out, err, time.monotonic() - started, timed_out)


def kill_session(session: int) -> None:
    """SIGKILL every process of ``session`` (its leader's pid)."""
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session:
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass
    with contextlib.suppress(OSError):
        os.killpg(session, signal.SIGKILL)


class Checks:
    """The report's rows, in order, and the commands behind them (logged under ``logs``)."""

    def __init__(self, deadline: Deadline, logs: Path) -> None:
        self.deadline = deadline
        self.logs = logs
        self.checks: list[Check] = []

    def add(self, name: str, expected: str, seen: str, verdict: str, reason: str = "",
            seconds: float | None = None, log: str | None = None) -> Check:
        check = Check(name, expected, seen, verdict, reason,
                      None if seconds is None else round(seconds, 1), log and f"logs/{log}")
        self.checks.append(check)
        return check

    def compare(self, name: str, expected: str, seen: str, seconds: float | None = None) -> Check:
        same = expected == seen
        return self.add(name, expected, seen, PASS if same else FAIL, "" if same else "differs", seconds)

    def quiet(self, cmd: Sequence[str], timeout: float, *, log: str, name: str = "",
              env: Mapping[str, str] | None = None, cwd: Path | str | None = None) -> Done | None:
        """Run ``cmd`` (its output appended to ``logs/log``); None when it timed out."""
        done = call(cmd, timeout=self.deadline.cap(timeout, name or log), env=env, cwd=cwd)
        with open(self.logs / log, "a", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(done.cmd)}\n{done.stdout}")
            if done.stderr:
                handle.write(f"-- stderr --\n{done.stderr}")
            handle.write(f"-- exit {done.returncode}{' (timed out)' if done.timed_out else ''}, "
                         f"{done.seconds:.1f} s --\n\n")
        return None if done.timed_out else done

    def run(self, name: str, cmd: Sequence[str], *, timeout: float, log: str,
            env: Mapping[str, str] | None = None, cwd: Path | str | None = None) -> Done | None:
        """Like :meth:`quiet`, but a timeout is a failed check named ``name``."""
        done = self.quiet(cmd, timeout, log=log, name=name, env=env, cwd=cwd)
        if done is None:
            killed = min(timeout, self.deadline.remaining())
            self.add(name, f"done within {timeout:.0f} s", "timed out", FAIL,
                     f"killed after {killed:.0f} s (see logs/{log})", log=log)
        return done


def short(text: str, limit: int = 200, *, keep: str = "end") -> str:
    """``text`` on one line, cut to ``limit`` characters: its end kept (errors end there), or its start."""
    flat = " ".join(str(text).split())
    if len(flat) <= limit:
        return flat
    return "…" + flat[-(limit - 1):] if keep == "end" else flat[:limit - 1] + "…"


def capability_key(capability: str) -> tuple[int, int]:
    major, _, minor = capability.partition(".")
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def sm_names(archs: Sequence[str]) -> list[str]:
    """["8.0", "9.0"] -> ["sm_80", "sm_90"]: the cubins nvcc makes for TORCH_CUDA_ARCH_LIST=8.0;9.0."""
    return ["sm_" + a.replace(".", "") for a in archs]


def gpuenv_command(*args: str) -> list[str]:
    """The gpuenv command, run by the interpreter running this check (the one gpuenv is installed in)."""
    return [sys.executable, "-m", "gpuenv", *args]
