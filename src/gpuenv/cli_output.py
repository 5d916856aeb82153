"""What the ``gpuenv`` command writes and how its writing fails: standard output that remembers a
write that failed, OS errors as ``error:`` lines naming their path, streams that escape what an
ASCII-only terminal cannot show, the library's logged warnings as ``warning:`` lines."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from typing import Any

from gpuenv.errors import GpuenvError, InputError
from gpuenv.outputs import hint_of, problem_of
from gpuenv.printable import clipped, printable


class Output:
    """Standard output as main() found it, remembering a write that failed (argparse's help swallows
    the error; Python's flush at exit would print a traceback-like message): after a failure nothing
    more is written to it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.failed: OSError | None = None

    def write(self, text: str) -> int:
        if self.failed is not None:
            return len(text)
        try:
            return int(self.stream.write(text))
        except OSError as exc:
            self._fail(exc)
            raise

    def flush(self) -> None:
        if self.failed is not None:
            return
        try:
            self.stream.flush()
        except OSError as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: OSError) -> None:
        if not isinstance(exc, BrokenPipeError):
            self.failed = exc
        self.drop()

    def drop(self) -> None:
        """Point the real stream at /dev/null: what is still buffered cannot fail at exit."""
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, self.stream.fileno())
            os.close(fd)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # a test's StringIO
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def os_error(exc: OSError, output: Output) -> GpuenvError:
    """An OSError that reached the boundary, as an error naming its path (or the output) and a hint."""
    if exc is output.failed:
        return InputError(f"cannot write the output: {problem_of(exc)}",
                          hint="standard output is full or closed: send it elsewhere (> FILE)")
    where = f"{exc.filename}: " if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}: "
    return InputError(f"{where}{problem_of(exc)}", hint=hint_of(exc))


def tolerant_streams() -> None:
    """An ASCII-only terminal (LANG=C, PYTHONIOENCODING=ascii) gets escapes for what it cannot show,
    never a UnicodeEncodeError: help texts and plans hold arrows and dashes."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


class _WarningLine(logging.Handler):
    """The library's logged warnings (a toolkit that hangs and was left out) as ``warning:`` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(f"warning: {printable(clipped(record.getMessage()))}", file=sys.stderr)


_WARNINGS = _WarningLine(logging.WARNING)


def show_warnings() -> None:
    """Show the library's logged warnings on standard error (once, however often main runs)."""
    logger = logging.getLogger("gpuenv")
    if _WARNINGS not in logger.handlers:
        logger.addHandler(_WARNINGS)


def print_error(exc: GpuenvError, color: str | None = None) -> None:
    """The error boundary's two lines: ``error:`` and, where there is a fix, ``hint:`` (both escaped:
    they quote values from files and commands); ``color`` is --color's choice (None: no colour)."""
    from gpuenv.progress import Style, use_color

    style = Style(color is not None and use_color(color, sys.stderr))
    try:
        print(f"{style('error:', 'red', 'bold')} {printable(clipped(str(exc)), lines=True)}", file=sys.stderr)
        if exc.hint:
            print(f"{style('hint:', 'yellow')} {printable(clipped(exc.hint), lines=True)}", file=sys.stderr)
    except (OSError, ValueError):  # stderr itself is gone: the exit code says it
        pass
