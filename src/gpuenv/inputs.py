"""The one reader of the files gpuenv is handed: recipes, hardware files, gpuenv.lock, the state file,
requirements files, a repository's metadata and README, pip's configuration files, a target env's
``pyvenv.cfg`` and ``.pth`` files.

Each is read only if it is a regular file (a FIFO would block forever,
``/dev/zero`` never ends), up to a size no real one comes near, and as UTF-8
text (or the encoding its own reader uses: pip reads its configuration in the
locale's). Whatever is wrong is an :class:`UnreadableInput` carrying the problem in
words; each caller turns it into its own error (a RecipeError names the
recipe, a HardwareFileError the probe file), so every file fails the same way.
"""

from __future__ import annotations

import ast
import codecs
import json
import math
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

#: Far above any recipe, probe file or lock (they are kilobytes), far below what hurts memory.
MAX_INPUT_BYTES = 16 << 20

#: Deeper than any real TOML or JSON input nests; deeper input is refused before a parser recurses.
MAX_NESTING = 64


class UnreadableInput(Exception):
    """Why a file cannot be read as an input; ``missing`` when it does not exist."""

    def __init__(self, problem: str, *, missing: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.missing = missing


def open_input(path: Path | str) -> BinaryIO:
    """The regular file at ``path``, opened for reading in binary mode (the caller closes it).

    Opened without waiting (a FIFO would block ``open`` until a writer came), then refused unless
    it is a regular file: the one gate every file gpuenv reads passes, whether it is read whole
    (:func:`read_input`) or mapped (an extension's ``.so``, hundreds of MB).
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; a regular file ignores it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UnreadableInput("no such file", missing=True) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise UnreadableInput(f"cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableInput(f"not a regular file ({_kind(info.st_mode)})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_input_bytes(path: Path | str, *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them (more is refused)."""
    with open_input(path) as file:
        try:
            raw = file.read(limit + 1)
        except OSError as exc:
            raise UnreadableInput(f"cannot read it: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise UnreadableInput(f"larger than {_size(limit)}: not a file gpuenv reads")
    return raw


def read_input(
    path: Path | str, *, limit: int = MAX_INPUT_BYTES, encoding: str = "utf-8", errors: str = "strict",
    universal_newlines: bool = False,
) -> str:
    """The text of the regular file at ``path``, at most ``limit`` bytes in ``encoding``, nested at
    most :data:`MAX_NESTING` brackets deep.

    As ``open()`` in text mode would read it: ``errors="replace"`` for text that is only searched
    (a README, a .gitignore) whatever its encoding; ``universal_newlines`` for text gpuenv appends
    to or rewrites, so CRLF and CR line ends read as LF.
    """
    raw = read_input_bytes(path, limit=limit)
    try:
        text = raw.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        name = codecs.lookup(encoding).name
        raise UnreadableInput(f"not {'UTF-8' if name == 'utf-8' else name} text (byte {exc.start})") from None
    check_nesting(text)
    return text.replace("\r\n", "\n").replace("\r", "\n") if universal_newlines else text


def read_json(path: Path | str, *, limit: int = MAX_INPUT_BYTES) -> Any:
    """The JSON value in the regular file at ``path`` (see :func:`parse_json`)."""
    return parse_json(read_input(path, limit=limit))


def parse_json(text: str) -> Any:
    """The JSON value of ``text``: nested at most :data:`MAX_NESTING` deep, numbers finite (``1e999``
    and ``NaN`` are refused, not read as infinity), integers of at most 4300 digits.

    Raises :class:`UnreadableInput` saying what is wrong; never RecursionError or OverflowError.
    """
    check_nesting(text)
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise UnreadableInput(f"not valid JSON: {exc}") from None
    except (ValueError, RecursionError, OverflowError) as exc:  # a 5000-digit integer, a too-large float
        raise UnreadableInput(f"not JSON gpuenv reads: {exc}") from None


#: Deeper than any build file's syntax tree nests (setup.py files stay under 30); deeper source is
#: refused before a recursive reader of the tree (gpuenv's, or ``ast``'s own) runs out of stack.
MAX_SOURCE_DEPTH = 200


def parse_python(text: str, name: str = "<unknown>") -> ast.Module:
    """The syntax tree of the Python source ``text`` (a setup.py, a version.py), read, never run.

    Anything Python's parser cannot read is a :class:`SyntaxError`: also a NUL byte (a ValueError
    on Python < 3.12), source too deep for the parser (RecursionError, MemoryError: ``'a'+'a'+...``
    3000 times), and a tree nested more than :data:`MAX_SOURCE_DEPTH` levels, which the recursive
    readers of a tree would not survive. So a caller handles one exception, whatever the file holds.
    """
    try:
        tree = ast.parse(text, filename=name)
    except (RecursionError, MemoryError):
        raise SyntaxError("nested too deeply for Python's parser", (name, None, None, None)) from None
    except ValueError as exc:  # a NUL byte (Python < 3.12)
        raise SyntaxError(f"not Python source: {exc}", (name, None, None, None)) from None
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SOURCE_DEPTH:
            raise SyntaxError(f"nested more than {MAX_SOURCE_DEPTH} levels deep",
                              (name, getattr(node, "lineno", None), None, None))
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return tree


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not a number gpuenv reads")


def _size(limit: int) -> str:
    if limit >= 1 << 20:
        return f"{limit >> 20} MiB"
    return f"{limit >> 10} KiB" if limit >= 1 << 10 else f"{limit} bytes"


def check_nesting(text: str, *, limit: int = MAX_NESTING) -> None:
    """Refuse brackets nested deeper than ``limit`` (counted over the raw text: quoted brackets
    count too, which only makes the bound stricter for text no real input holds)."""
    depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            if depth > limit:
                raise UnreadableInput(f"nested more than {limit} levels deep")
        elif char in "]}":
            depth = max(0, depth - 1)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def index_template(text: str, *, option: str = "--torch-index") -> str:
    """``text`` if it is an index URL template (``{variant}`` may stand for "cu130") or "config"."""
    from urllib.parse import urlsplit

    from gpuenv.errors import InputError

    if text == "config":
        return text
    hint = "e.g. https://mirror.example/whl/{variant}, or 'config' for the installer's own sources"
    if not text or any(c.isspace() or not c.isprintable() for c in text) or len(text) > 4096:
        raise InputError(f"{option} {text[:80]!r}: not an index URL", hint=hint)
    try:
        parts = urlsplit(text.replace("{variant}", "cu130"))
    except ValueError:
        raise InputError(f"{option} {text!r}: not an index URL", hint=hint) from None
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.hostname):
        raise InputError(f"{option} {text!r}: not an http(s) or file URL", hint=hint)
    problem = placeholder_problem(text)
    if problem is not None:
        raise InputError(f"{option} {text!r} {problem}", hint=hint)
    return text


def placeholder_problem(template: str) -> str | None:
    """What is wrong with the braces of an index template (only ``{variant}`` is replaced), or None."""
    import re

    rest = template.replace("{variant}", "")
    if "{" not in rest and "}" not in rest:
        return None
    placeholders = re.findall(r"\{[^{}]*\}", rest)
    what = f"an unknown placeholder {placeholders[0]}" if placeholders else "an unmatched '{' or '}'"
    return f"has {what}; only {{variant}} is replaced (by e.g. cu121 or cpu)"
