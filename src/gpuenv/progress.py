"""A terminal Reporter for setup: step lines, and a refreshed status line with elapsed time.

On a terminal the status line is rewritten in place (at most a few times a
second); elsewhere (CI logs, nox output) a status line is printed at most every
``quiet_interval`` seconds so a long build is never silent and never floods.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class TerminalReporter:
    def __init__(self, stream: TextIO | None = None, *, quiet_interval: float = 30.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet_interval = quiet_interval
        self._step_started = time.monotonic()
        self._last_shown = 0.0
        self._status_width = 0

    def _clear(self) -> None:
        if self.tty and self._status_width:
            self.stream.write("\r" + " " * self._status_width + "\r")
            self._status_width = 0

    def step(self, text: str) -> None:
        self._clear()
        self._step_started = time.monotonic()
        self._last_shown = self._step_started
        print(text, file=self.stream, flush=True)

    def status(self, text: str) -> None:
        now = time.monotonic()
        interval = 0.2 if self.tty else self.quiet_interval
        if now - self._last_shown < interval:
            return
        self._last_shown = now
        elapsed = int(now - self._step_started)
        line = f"  {elapsed // 60:d}m{elapsed % 60:02d}s {text.strip()}"
        if self.tty:
            width = 118
            line = line[:width]
            self._clear()
            self.stream.write(line)
            self.stream.flush()
            self._status_width = len(line)
        else:
            print(line[:200], file=self.stream, flush=True)

    def done(self, text: str) -> None:
        self._clear()
        print(f"  {text}", file=self.stream, flush=True)
