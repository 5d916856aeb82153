"""A project's Python build files parsed without running them, and never with unbounded recursion.

``setup.py`` is read as text and parsed with :mod:`ast`; nothing in it is
executed. A file that is too large, not text, or too deeply nested for the
parser (a 600 KB expression makes ``ast.parse`` recurse until it fails) is
reported as such, never raised. Walks over the tree are iterative.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gpuenv.inputs import UnreadableInput, read_input

#: A build file larger than this is not one people write.
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class PythonFile:
    path: Path
    text: str = ""
    module: ast.Module | None = None
    #: Why it could not be read or parsed ("no such file" when it is not there).
    problem: str | None = None

    @property
    def missing(self) -> bool:
        return self.problem == "no such file"


def read_python(path: Path) -> PythonFile:
    """``path`` read and parsed; the problem in words when it cannot be."""
    try:
        text = read_input(path, limit=MAX_BYTES, errors="replace")
    except UnreadableInput as exc:
        return PythonFile(path, problem=exc.problem)
    try:
        module = ast.parse(text)
    except SyntaxError as exc:
        return PythonFile(path, text, problem=f"not valid Python (line {exc.lineno}): {exc.msg}")
    except (RecursionError, MemoryError):
        return PythonFile(path, text, problem="nested too deeply for Python's parser")
    except ValueError as exc:  # a NUL byte
        return PythonFile(path, text, problem=f"not Python source: {exc}")
    return PythonFile(path, text, module)


def parents(module: ast.AST) -> dict[ast.AST, ast.AST]:
    """Each node's parent, built without recursion."""
    found: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(module):
        for child in ast.iter_child_nodes(node):
            found[child] = node
    return found


def dotted(node: ast.AST) -> str:
    """``torch.cuda.is_available`` for an attribute chain or a name, else ""."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def strings(node: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every string constant under ``node``."""
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str):
            yield child.lineno, child.value


def segment(source: str, node: ast.AST, limit: int = 160) -> str:
    """The source text of ``node`` on one line, shortened to ``limit`` characters."""
    text = ast.get_source_segment(source, node) or ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
