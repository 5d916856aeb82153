"""What setup shows while it runs: a line per step, live progress inside it, colour on a terminal.

:class:`TerminalReporter` is the front end's :class:`~gpuenv.setup.context.Reporter`.
Every line an installer or a builder prints reaches :meth:`TerminalReporter.status`
(through the runner's ``on_line``), and :class:`OutputDigest` condenses it into
what is being fetched and how far: pip's ``--progress-bar raw`` byte counts,
the packages pip is installing, uv's resolved/prepared/installed summaries, the
build's compiler step. A ticker thread keeps it alive while the output is
silent (pip unpacking a 5 GB wheel prints nothing for a minute):

- on a terminal, one status line per step, rewritten in place with the step's
  elapsed time at least every second;
- elsewhere (CI logs, nox, a pipe), plain lines: a new status at most every
  ``min_gap`` seconds, and the current one again (with its elapsed time) after
  ``heartbeat`` seconds without a line, so a log is never silent for more than
  about ten seconds and never floods.

``verbosity`` is :data:`QUIET` (nothing: the command prints its final line
itself), :data:`NORMAL`, or :data:`VERBOSE` (every output line as well,
indented under its step). Colour is plain ANSI codes (:class:`Style`), on only
when :func:`use_color` says so: ``--color always``, or a terminal with no
``NO_COLOR`` in the environment and ``TERM`` not ``dumb``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TextIO

from gpuenv.printable import printable
from gpuenv.runner import ANSWER_MARK

QUIET, NORMAL, VERBOSE = -1, 0, 1

COLOR_CHOICES = ("auto", "always", "never")


# -- colour -------------------------------------------------------------------------------


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def use_color(choice: str, stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to colour ``stream``: ``choice`` is auto, always or never (``--color``).

    An explicit ``always`` wins over ``NO_COLOR`` (as no-color.org asks of a
    flag); ``auto`` colours a terminal unless ``NO_COLOR`` is set (to anything
    but the empty string) or ``TERM`` is ``dumb``.
    """
    environ = os.environ if environ is None else environ
    if choice == "always":
        return True
    if choice == "never" or environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


class Style:
    """Wraps text in ANSI SGR codes when enabled, else returns it unchanged."""

    CODES: Mapping[str, str] = {
        "bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36",
    }

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles or not text:
            return text
        codes = ";".join(self.CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


#: How each doctor verdict is coloured.
VERDICT_STYLES: Mapping[str, tuple[str, ...]] = {
    "ok": ("green",), "warn": ("yellow",), "fail": ("red", "bold"), "skip": ("dim",),
}
_VERDICT = re.compile(r"^(ok|warn|fail|skip)(?= )", re.MULTILINE)


def paint_verdicts(report: str, style: Style) -> str:
    """Doctor's report with each line's leading verdict coloured."""
    return _VERDICT.sub(lambda m: style(m.group(1), *VERDICT_STYLES[m.group(1)]), report)


def log_files(logs: Path) -> list[Path]:
    """The logs a setup wrote: setup.log first, then one per extension."""
    found = sorted(logs.glob("*.log")) if logs.is_dir() else []
    return sorted(found, key=lambda p: p.name != "setup.log")


# -- what installers and builders print ----------------------------------------------------

_PIP_PROGRESS = re.compile(r"^\s*Progress (?:[\d.?]+% )?(?P<done>\d+) of (?P<total>\d+|\?)")
_PIP_START = re.compile(
    r"^\s*Starting download \[(?P<i>\d+)/(?P<n>\d+)\] (?P<what>.+?) \((?P<size>\d+|\?) bytes\)"
)
_PIP_DOWNLOADING = re.compile(r"^\s*Downloading (?P<what>\S+)(?: \((?P<size>[^)]*)\))?\s*$")
_PIP_INSTALLING = re.compile(r"^\s*Installing collected packages: (?P<names>.+)")
_PIP_REPLACING = re.compile(
    r"^\s*(?:Attempting uninstall: |Found existing installation: |Uninstalling |Successfully uninstalled )"
    r"(?P<name>[^\s:]+)"
)
_UV_SUMMARY = re.compile(r"^\s*(?P<verb>Resolved|Prepared|Installed) (?P<n>\d+) packages? in ")
_UV_NEXT = {"Resolved": "preparing them (download, unpack)", "Prepared": "installing them"}


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover - the loop returns


def is_progress_line(line: str) -> bool:
    """pip's raw byte counter: four lines a second, condensed rather than streamed."""
    return _PIP_PROGRESS.match(line) is not None


class OutputDigest:
    """Condenses the lines pip, uv and builds print into a short status (None: nothing new to say)."""

    def __init__(self) -> None:
        self.download: str | None = None
        #: pip's "installing N packages" while it runs: its uninstall lines are part of it.
        self.installing: str | None = None

    def feed(self, line: str) -> str | None:
        text = line.strip()
        if not text:
            return None
        progress = _PIP_PROGRESS.match(text)
        if progress is not None:
            return self._progress(int(progress["done"]), progress["total"])
        start = _PIP_START.match(text)
        if start is not None:
            self.download = start["what"]
            size = f", {human_bytes(int(start['size']))}" if start["size"].isdigit() else ""
            return f"downloading [{start['i']}/{start['n']}] {self.download}{size}"
        downloading = _PIP_DOWNLOADING.match(text)
        if downloading is not None:
            self.download = downloading["what"].rsplit("/", 1)[-1]
            size = f" ({downloading['size']})" if downloading["size"] else ""
            return f"downloading {self.download}{size}"
        installing = _PIP_INSTALLING.match(text)
        if installing is not None:
            names = [n.strip() for n in installing["names"].split(",") if n.strip()]
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
            self.installing = f"installing {len(names)} package{'s' if len(names) != 1 else ''}: {shown}"
            return self.installing
        replacing = _PIP_REPLACING.match(text)
        if replacing is not None and self.installing is not None:
            if text.startswith("Successfully"):
                return self.installing
            return f"{self.installing} (replacing {replacing['name']})"
        if text.startswith("Successfully installed"):
            self.installing = None
        summary = _UV_SUMMARY.match(text)
        if summary is not None:
            verb, n = summary["verb"], int(summary["n"])
            then = _UV_NEXT.get(verb)
            return f"{verb.lower()} {n} package{'s' if n != 1 else ''}" + (f"; {then}" if then else "")
        return text

    def _progress(self, done: int, total: str) -> str:
        what = self.download or "a file"
        if not total.isdigit() or int(total) == 0:
            return f"downloading {what}: {human_bytes(done)}"
        percent = 100 * done / int(total)
        return f"downloading {what}: {human_bytes(done)} of {human_bytes(int(total))} ({percent:.0f}%)"


# -- the reporter -------------------------------------------------------------------------


def elapsed_text(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60:d}m{whole % 60:02d}s"


class TerminalReporter:
    """setup's progress on ``stream`` (stderr): step lines, a live status, the outcome of each step.

    Use it as a context manager: the ticker thread that keeps a silent step
    alive runs between ``__enter__`` and ``__exit__``. :meth:`tick` is what
    the thread calls every ``tick_interval`` seconds (tests call it with a
    fake ``clock``).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        verbosity: int = NORMAL,
        color: bool = False,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: float = 8.0,
        min_gap: float = 2.0,
        refresh: float = 0.2,
        tick_interval: float = 1.0,
    ) -> None:
        self.answer_mark = ANSWER_MARK
        self.stream = stream or sys.stderr
        self.tty = is_terminal(self.stream) if tty is None else tty
        self.verbosity = verbosity
        self.style = Style(color)
        self.clock = clock
        self.heartbeat = heartbeat
        self.min_gap = min_gap
        self.refresh = refresh
        self.tick_interval = tick_interval
        self.digest = OutputDigest()
        self._lock = threading.RLock()
        self._title: str | None = None
        self._started = clock()
        self._status: str | None = None
        self._shown_status: str | None = None
        self._last_write = clock()
        self._status_width = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread

    def __enter__(self) -> TerminalReporter:
        if self.verbosity > QUIET and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gpuenv-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._clear()
            self._title = None

    def _run(self) -> None:
        while not self._stop.wait(self.tick_interval):
            self.tick()

    # -- the Reporter protocol

    def step(self, text: str) -> None:
        with self._lock:
            now = self.clock()
            text = printable(text, lines=True)
            self._title, self._started, self._status, self._shown_status = text, now, None, None
            self.digest = OutputDigest()
            self._line(self.style(text, "bold"), now)

    def status(self, text: str) -> None:
        if text.startswith(self.answer_mark):
            return  # the answer of gpuenv's own question to the env, not output to show
        text = printable(text)  # a build's output: a setup.py may print escape sequences
        with self._lock:
            if self.verbosity >= VERBOSE and text.strip() and not is_progress_line(text):
                self._line(self.style(f"    {text.rstrip()}", "dim"), self.clock())
            condensed = self.digest.feed(text)
            if condensed is None:
                return
            self._status = condensed
            self._show(self.clock())

    def done(self, text: str) -> None:
        text = printable(text, lines=True)
        with self._lock:
            styles = ("yellow",) if text.startswith("warning") else ()
            self._line("  " + self.style(text, *styles), self.clock())

    def tick(self) -> None:
        """Refresh the status: elapsed time on a terminal, a heartbeat line in a log."""
        with self._lock:
            if self._title is not None:
                self._show(self.clock())

    # -- output

    def _status_text(self, now: float) -> str:
        status = self._status or "working (no output yet)"
        return f"  {elapsed_text(now - self._started)} {status}"

    def _show(self, now: float) -> None:
        if self.verbosity <= QUIET:
            return
        since = now - self._last_write
        if self.tty:
            if since >= self.refresh:
                self._draw(self._status_text(now), now)
            return
        changed = self._status is not None and self._status != self._shown_status
        if (changed and since >= self.min_gap) or since >= self.heartbeat:
            self._shown_status = self._status
            self._write(self._status_text(now)[:200] + "\n", now)

    def _draw(self, line: str, now: float) -> None:
        width = max(20, shutil.get_terminal_size((120, 24)).columns - 1)
        line = line[:width]
        self._clear()
        self._write(self.style(line, "cyan"), now)
        self._status_width = len(line)
        self._shown_status = self._status

    def _clear(self) -> None:
        if self.tty and self._status_width:
            self.stream.write("\r" + " " * self._status_width + "\r")
            self._status_width = 0

    def _line(self, text: str, now: float) -> None:
        if self.verbosity <= QUIET:
            return
        self._clear()
        self._write(text + "\n", now)
        # On a terminal the status comes back with the next tick or output line.

    def _write(self, text: str, now: float) -> None:
        self.stream.write(text)
        self.stream.flush()
        self._last_write = now
