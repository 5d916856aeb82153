"""One build file parsed with ``ast``, never run: its nodes with their parents, names and functions.

Everything here answers questions about the text: which statement holds a node,
what a module-level name was assigned, which function a line is in, which
string constants a name can stand for. Nothing is imported or executed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Union

from gpuenv.inputs import parse_python

#: A function definition (``def`` or ``async def``).
Function = Union[ast.FunctionDef, ast.AsyncFunctionDef]


@dataclass(frozen=True)
class Where:
    """Where a fact was read: a file of the package (as the package names it) and a line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class PyFile:
    """A parsed build file: ``name`` is its path inside the package ("setup.py", "build_tools/utils.py")."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.tree = parse_python(text, name)
        #: The lines as UTF-8 (``ast`` counts columns in bytes).
        self._lines = [line.encode("utf-8") for line in text.splitlines(keepends=True)]
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        self.functions: dict[str, Function] = {}
        self.assigns: dict[str, list[ast.expr]] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions.setdefault(node.name, node)
        for stmt in self.tree.body:
            self._collect_assigns(stmt)

    def _collect_assigns(self, stmt: ast.stmt) -> None:
        # Module-level assignments, those inside module-level if/try blocks too (not in functions).
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    self.assigns.setdefault(target.id, []).append(stmt.value)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            self.assigns.setdefault(stmt.target.id, []).append(stmt.value)
        elif isinstance(stmt, (ast.If, ast.Try, ast.With)):
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.stmt):
                    self._collect_assigns(child)
            for handler in getattr(stmt, "handlers", []):
                for child in handler.body:
                    self._collect_assigns(child)

    # -- places -------------------------------------------------------------------------

    def where(self, node: ast.AST) -> Where:
        return Where(self.name, getattr(node, "lineno", 0))

    def segment(self, node: ast.AST) -> str:
        """The source text of ``node``, on one line."""
        start, end = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
        first, last = getattr(node, "col_offset", None), getattr(node, "end_col_offset", None)
        if start is None or end is None or first is None or last is None:
            return ast.unparse(node)
        if start == end:
            raw = self._lines[start - 1][first:last]
        else:
            raw = b"".join([self._lines[start - 1][first:], *self._lines[start:end - 1],
                            self._lines[end - 1][:last]])
        return " ".join(raw.decode("utf-8", "replace").split())

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self.parents.get(node)

    def ancestors(self, node: ast.AST) -> Iterator[tuple[ast.AST, ast.AST]]:
        """(ancestor, the child of it on the way to ``node``), innermost first."""
        child = node
        parent = self.parents.get(child)
        while parent is not None:
            yield parent, child
            child, parent = parent, self.parents.get(parent)

    def function_of(self, node: ast.AST) -> Function | None:
        for ancestor, _ in self.ancestors(node):
            if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return ancestor
        return None

    def statement_of(self, node: ast.AST) -> ast.stmt | None:
        if isinstance(node, ast.stmt):
            return node
        for ancestor, _ in self.ancestors(node):
            if isinstance(ancestor, ast.stmt):
                return ancestor
        return None

    # -- names ----------------------------------------------------------------------------

    def assigned_in(self, name: str, scope: ast.AST | None) -> list[ast.expr]:
        """The values ``name`` is assigned in ``scope`` (a function; None: the module level)."""
        if scope is None:
            return list(self.assigns.get(name, []))
        values: list[ast.expr] = []
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    values += _matching(target, node.value, name)
            elif (isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None
                  and isinstance(node.target, ast.Name) and node.target.id == name):
                values.append(node.value)
        return values

    def values_of(self, name: str, at: ast.AST) -> list[ast.expr]:
        """What ``name`` can hold at ``at``: its assignments in the enclosing function, else the module's."""
        function = self.function_of(at)
        if function is not None:
            local = self.assigned_in(name, function)
            if local:
                return local
        return self.assigned_in(name, None)

    def strings(self, node: ast.AST, *, depth: int = 0) -> list[str] | None:
        """The string constants ``node`` stands for (a constant, a module constant, a loop over a
        dict's keys or a list, a function parameter given constants by its callers), or None."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if not isinstance(node, ast.Name) or depth > 3:
            return None
        loop = self._loop_over(node)
        if loop is not None:
            return loop
        function = self.function_of(node)
        if function is not None and node.id in _params(function):
            return self._call_arguments(function, node.id)
        values = self.values_of(node.id, node)
        if len(values) == 1:
            return self.strings(values[0], depth=depth + 1)
        return None

    def _loop_over(self, name: ast.Name) -> list[str] | None:
        for ancestor, _ in self.ancestors(name):
            if isinstance(ancestor, (ast.For, ast.comprehension)):
                target, iterable = ancestor.target, ancestor.iter
                first = target.elts[0] if isinstance(target, ast.Tuple) and target.elts else target
                if not (isinstance(first, ast.Name) and first.id == name.id):
                    continue
                return self._keys(iterable)
            if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return None
        return None

    def _keys(self, iterable: ast.expr) -> list[str] | None:
        # D.items() / D.keys() / D / [..] / (..)
        if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute) \
                and iterable.func.attr in ("items", "keys"):
            iterable = iterable.func.value
        if isinstance(iterable, ast.Name):
            values = self.assigns.get(iterable.id, [])
            if len(values) != 1:
                return None
            iterable = values[0]
        elements: list[ast.expr | None]
        if isinstance(iterable, ast.Dict):
            elements = list(iterable.keys)
        elif isinstance(iterable, (ast.List, ast.Tuple, ast.Set)):
            elements = list(iterable.elts)
        else:
            return None
        keys = [e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        return keys if len(keys) == len(elements) else None

    def _call_arguments(self, function: Function, param: str) -> list[str] | None:
        index = _params(function).index(param)
        found: list[str] = []
        for call in self.calls_to(function.name):
            arg: ast.expr | None = call.args[index] if index < len(call.args) else None
            for keyword in call.keywords:
                if keyword.arg == param:
                    arg = keyword.value
            if arg is None:
                continue
            values = self.strings(arg, depth=1)
            if values is None:
                return None
            found += values
        return list(dict.fromkeys(found)) or None

    def calls_to(self, name: str) -> list[ast.Call]:
        return [node for node in ast.walk(self.tree)
                if isinstance(node, ast.Call) and call_name(node) == name]


def _params(function: Function) -> list[str]:
    return [a.arg for a in (*function.args.posonlyargs, *function.args.args)]


def _matching(target: ast.expr, value: ast.expr, name: str) -> list[ast.expr]:
    if isinstance(target, ast.Name):
        return [value] if target.id == name else []
    if isinstance(target, ast.Tuple):
        for i, element in enumerate(target.elts):
            if isinstance(element, ast.Name) and element.id == name:
                # `_, version = f()`: the value is the call itself (its result, unpacked).
                return [value.elts[i]] if isinstance(value, ast.Tuple) and i < len(value.elts) else [value]
    return []


def call_name(call: ast.Call) -> str | None:
    """The called name: ``f`` of ``f(..)``, ``attr`` of ``x.attr(..)``."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def dotted(node: ast.AST) -> str | None:
    """``os.environ.get`` for that attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None
