"""The environment variables a build file reads, and what value each one's test takes as "on".

``os.getenv("X", "FALSE") == "TRUE"`` is on for exactly ``TRUE``;
``bool(int(os.getenv("X", "0")))`` for any non-zero integer (anything else
fails the build); ``os.getenv("X", "").lower() in ("1", "true")`` for those
two in any case; ``bool(os.environ.get("X"))`` for any non-empty value. A read
that only passes the value on (an arch list, a thread count) is a ``value``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from gpuenv.plan.buildfiles.pysource import Function, PyFile, Where, call_name, dotted

Test = Literal["equals", "not-equals", "int", "set", "present", "unset", "value"]

_GETTERS = {"os.getenv", "os.environ.get", "environ.get", "getenv"}
_ENVIRON = {"os.environ", "environ"}
_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "lower": str.lower, "casefold": str.casefold, "upper": str.upper, "strip": str.strip,
}


@dataclass(frozen=True)
class EnvCheck:
    """How a build file reads the variable ``name`` at ``where``."""

    name: str
    test: Test
    where: Where
    #: The values compared with (for equals / not-equals), after ``transform``.
    values: tuple[str, ...] = ()
    #: A method applied to the value before comparing ("lower"), or "int".
    transform: str = ""
    #: What the read falls back to when the variable is unset (None: nothing).
    default: str | None = None

    def accepts(self, value: str | None) -> bool | None:
        """Whether setting the variable to ``value`` (None: leaving it unset) makes the test true;
        None when the build uses the value as it is rather than testing it."""
        if self.test == "value":
            return None
        if self.test == "present":
            return value is not None
        if self.test == "unset":
            return value is None
        raw = value if value is not None else self.default
        if raw is None:
            return self.test == "not-equals"
        if self.test == "set":
            return raw != ""
        if self.test == "int":
            number = _int(raw)
            return number is not None and number != 0
        seen = _apply(self.transform, raw)
        if seen is None:  # int("TRUE") raises: the build stops, the flag is not on
            return False
        return (seen in self.values) == (self.test == "equals")

    def describe(self) -> str:
        """The test in words, as a reader of the setup.py would put it."""
        pre = {"": "", "int": "int() "}.get(self.transform, f".{self.transform}() ")
        shown = ", ".join(f'"{v}"' for v in self.values)
        if self.test == "equals":
            return f"{pre}== {shown}" if len(self.values) == 1 else f"{pre}in ({shown})"
        if self.test == "not-equals":
            return f"{pre}!= {shown}" if len(self.values) == 1 else f"{pre}not in ({shown})"
        return {
            "int": "int() != 0 (a value that is not an integer fails the build)",
            "set": "set and not empty",
            "present": "set (any value)",
            "unset": "unset",
            "value": "its value, as it is",
        }[self.test]


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _apply(transform: str, raw: str) -> str | None:
    if transform == "int":
        number = _int(raw)
        return None if number is None else str(number)
    method = _TRANSFORMS.get(transform)
    return method(raw) if method else raw


@dataclass(frozen=True)
class EnvRead:
    """One read in the text: its checks (one per name it can stand for), the node where its test
    ends (the comparison, the ``bool()``), and the call that named it when it sits in a helper."""

    checks: tuple[EnvCheck, ...]
    read: ast.AST
    test_node: ast.AST
    call: ast.Call | None = None


@dataclass
class EnvReads:
    """Every read of a file, with lookups by the node a test ends at and by a helper's call."""

    reads: list[EnvRead] = field(default_factory=list)
    #: Reads whose variable name could not be told (name built at run time).
    unresolved: list[tuple[Where, str]] = field(default_factory=list)

    def at(self, node: ast.AST) -> tuple[EnvCheck, ...]:
        return tuple(c for r in self.reads if r.test_node is node for c in r.checks)

    def by_call(self, call: ast.Call) -> tuple[EnvCheck, ...]:
        return tuple(c for r in self.reads if r.call is call for c in r.checks)

    def checks(self) -> list[EnvCheck]:
        return [c for r in self.reads for c in r.checks]


def env_reads(source: PyFile) -> EnvReads:
    found = EnvReads()
    for node in ast.walk(source.tree):
        read = _read(node)
        if read is None:
            continue
        name_node, default, present = read
        default_text = _constant_text(default)
        function = source.function_of(node)
        param = (name_node.id if isinstance(name_node, ast.Name) and function is not None
                 and name_node.id in [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
                 else None)
        if param is not None and function is not None:
            _from_helper(source, found, node, function, param, default_text, present)
            continue
        names = source.strings(name_node)
        if names is None:
            found.unresolved.append((source.where(node), source.segment(node)))
            continue
        test, values, transform, end, default_text = _classify(source, node, default_text, present)
        checks = tuple(EnvCheck(n, test, source.where(node), values, transform, default_text) for n in names)
        found.reads.append(EnvRead(checks, node, end))
    return found


def _from_helper(source: PyFile, found: EnvReads, node: ast.AST, function: Function,
                 param: str, default: str | None, present: bool) -> None:
    """A read inside a helper (``has_flag(flag, env_var)``, ``is_env_set(key)``): each call names it."""
    test, values, transform, end, default = _classify(source, node, default, present)
    returned = test == "value" and any(isinstance(a, ast.Return) for a, _ in source.ancestors(node))
    params = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
    for call in source.calls_to(function.name):
        index = params.index(param)
        arg = call.args[index] if index < len(call.args) else None
        for keyword in call.keywords:
            if keyword.arg == param:
                arg = keyword.value
        names = source.strings(arg) if arg is not None else None
        if names is None:
            continue
        if returned:  # the helper hands the value back: the caller's use is the test
            t, v, tr, call_end, d = _classify(source, call, _call_default(call, function, default), False)
            checks = tuple(EnvCheck(n, t, source.where(call), v, tr, d) for n in names)
            found.reads.append(EnvRead(checks, call, call_end))
        else:
            checks = tuple(EnvCheck(n, test, source.where(call), values, transform, default) for n in names)
            found.reads.append(EnvRead(checks, node, end, call))


def _call_default(call: ast.Call, function: Function, default: str | None) -> str | None:
    # get_env_if_set('DS_BUILD_OPS', BUILD_OP_PLATFORM): a second argument is the fallback.
    if len(call.args) > 1:
        return _constant_text(call.args[1]) or default
    return default


def _read(node: ast.AST) -> tuple[ast.expr, ast.expr | None, bool] | None:
    """(the name expression, the default expression, whether it is an ``in os.environ`` test)."""
    if isinstance(node, ast.Call) and dotted(node.func) in _GETTERS and node.args:
        return node.args[0], node.args[1] if len(node.args) > 1 else None, False
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and dotted(node.value) in _ENVIRON:
        return node.slice, None, False
    if (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn))
            and dotted(node.comparators[0]) in _ENVIRON):
        return node.left, None, True
    return None


def _constant_text(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and node.value is not None and not isinstance(node.value, bytes):
        return str(node.value)
    return None


def _constants(node: ast.expr) -> tuple[str, ...] | None:
    if isinstance(node, ast.Constant) and node.value is not None:
        return (str(node.value),)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        values = [str(e.value) for e in node.elts if isinstance(e, ast.Constant) and e.value is not None]
        return tuple(values) if len(values) == len(node.elts) else None
    return None


def _classify(source: PyFile, node: ast.AST, default: str | None,
              present: bool) -> tuple[Test, tuple[str, ...], str, ast.AST, str | None]:
    """Walk out from the read to the test it feeds: (test, values, transform, node it ends at, default)."""
    if present:
        parent = source.parent(node)
        negated = isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.NotIn)
        if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.Not):
            negated, node = not negated, parent
        return ("unset" if negated else "present"), (), "", node, None
    transform, is_int, current = "", False, node
    while True:
        parent = source.parent(current)
        if (isinstance(parent, ast.Attribute) and parent.value is current and parent.attr in _TRANSFORMS
                and isinstance(source.parent(parent), ast.Call)):
            transform = parent.attr if parent.attr != "strip" else transform
            current = source.parent(parent)  # type: ignore[assignment]
            continue
        if isinstance(parent, ast.Call) and current in parent.args:
            name = call_name(parent)
            if name in ("int", "float"):
                is_int, transform, current = True, "int", parent
                continue
            if name == "str":
                current = parent
                continue
            if name == "bool":
                return ("int" if is_int else "set"), (), "", parent, default
        if isinstance(parent, ast.Compare) and len(parent.ops) == 1:
            other = parent.comparators[0] if parent.left is current else parent.left
            op = parent.ops[0]
            if isinstance(op, (ast.Is, ast.IsNot)) and _is_none(other):
                return ("unset" if isinstance(op, ast.Is) else "present"), (), "", parent, None
            values = _constants(other)
            if values is not None and isinstance(op, (ast.Eq, ast.In)):
                return "equals", values, transform, parent, default
            if values is not None and isinstance(op, (ast.NotEq, ast.NotIn)):
                return "not-equals", values, transform, parent, default
            return ("int" if is_int else "value"), (), "", parent, default
        if isinstance(parent, ast.BoolOp) and isinstance(parent.op, ast.Or) and parent.values[0] is current:
            # `os.getenv("NVCC_THREADS") or "4"`: the value, with a fallback
            fallback = _constant_text(parent.values[-1])
            fallback = fallback if fallback is not None else default
            return ("int" if is_int else "value"), (), "", parent, fallback
        if _is_truth_position(parent, current):
            return ("int" if is_int else "set"), (), "", current, default
        return ("int" if is_int else "value"), (), "", current, default


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _is_truth_position(parent: ast.AST | None, node: ast.AST) -> bool:
    if isinstance(parent, (ast.If, ast.While, ast.IfExp)) and parent.test is node:
        return True
    if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.Not):
        return True
    return isinstance(parent, ast.BoolOp)
