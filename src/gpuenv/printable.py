"""Text from files gpuenv did not write, made safe to print.

gpuenv prints strings that others control: names and versions from gpuenv.lock, the values of an
env's ``_gpuenv_runtime.pth``, cache metadata on a shared cache, a repository's file names and
requirement lines, the output of a build. A terminal obeys the control characters such text may
hold (an escape sequence sets the window title or clears the screen; a carriage return or a
newline forges a line that gpuenv never printed). :func:`printable` shows each such character as
an escape (``\\x1b``, ``\\n``, ``\\u202e``), whether colour is on or not; every front end passes what
it prints through it, before its own colours are added.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with every character a terminal would act on shown as an escape.

    ``lines=True`` keeps newlines (and tabs): for text that is several lines by design (an error
    message with a command's last lines), not a one-line value from a file.
    """
    if text.isprintable():
        return text
    keep = "\n\t" if lines else ""
    return "".join(char if char.isprintable() or char in keep else _escape(char) for char in text)


#: Longer than any line of a message gpuenv writes itself; a longer one quotes a file's line or value.
MAX_QUOTED_LINE = 4000


def clipped(text: str, *, limit: int = MAX_QUOTED_LINE) -> str:
    """``text`` with each line longer than ``limit`` cut in the middle, saying how much went: an error
    that quotes a 1 MB requirement line (twice: the line, then the parser's message about it) names
    the file and line, and shows the start and end of it, not megabytes of it."""
    if len(text) <= limit:
        return text
    return "\n".join(
        line if len(line) <= limit
        else f"{line[:limit - 500]} [... {len(line) - limit + 300} characters left out ...] {line[-200:]}"
        for line in text.split("\n")
    )


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
