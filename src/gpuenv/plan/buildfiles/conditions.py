"""The conditions a build file puts around a line, as a small boolean tree that can be evaluated.

``if bare_metal_version >= Version("11.8") and "90" in cuda_archs():`` becomes
``All(Nvcc(">=", 11.8), Knob("90"))``; the else branch of ``if HIP_BUILD:`` is
``Not(Const(False, "ROCm"))``. A :class:`Context` says what is known about the
build (the nvcc, the environment the plan sets, the build options, whether a
GPU is visible); a condition evaluates to True, False or None (cannot tell).
:func:`spec_over` turns a condition into the PEP 440 range of nvcc (or torch)
versions for which it holds.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Optional

from packaging.version import Version

from gpuenv.plan.buildfiles.envreads import EnvCheck, EnvReads
from gpuenv.plan.buildfiles.pysource import PyFile, call_name, dotted

#: True, False, or None: cannot tell. (A runtime alias: Python 3.9 has no `bool | None`.)
Truth = Optional[bool]


@dataclass(frozen=True)
class Context:
    """What is known about one build; None: not known."""

    nvcc: Version | None = None
    torch: Version | None = None
    #: The values of the package's own arch knob ("80", "90").
    knob: frozenset[str] | None = None
    #: The environment the build runs with (unset variables fall back to the file's defaults).
    env: Mapping[str, str] | None = None
    #: The setup.py options it is given (``--cpp_ext``).
    options: frozenset[str] | None = None
    #: Whether torch sees a GPU while building.
    gpu: bool | None = None


class Cond:
    def value(self, ctx: Context) -> Truth:
        raise NotImplementedError

    def atoms(self) -> list[Cond]:
        return [self]


@dataclass(frozen=True)
class Const(Cond):
    truth: bool
    why: str

    def value(self, ctx: Context) -> Truth:
        return self.truth


@dataclass(frozen=True)
class Versioned(Cond):
    """``nvcc >= 11.8`` (axis "nvcc") or ``torch >= 2.12`` (axis "torch"), minor-granular."""

    axis: str
    op: str
    version: Version

    def value(self, ctx: Context) -> Truth:
        seen = ctx.nvcc if self.axis == "nvcc" else ctx.torch
        if seen is None:
            return None
        seen = Version(".".join(str(p) for p in (*seen.release, 0)[:2]))
        return {">=": seen >= self.version, "<": seen < self.version,
                "==": seen == self.version, "!=": seen != self.version}[self.op]


@dataclass(frozen=True)
class Knob(Cond):
    """``"90" in cuda_archs()``: the package's arch knob holds ``choice``."""

    choice: str

    def value(self, ctx: Context) -> Truth:
        return None if ctx.knob is None else self.choice in ctx.knob


@dataclass(frozen=True)
class Env(Cond):
    checks: tuple[EnvCheck, ...]

    def value(self, ctx: Context) -> Truth:
        if ctx.env is None:
            return None
        env = ctx.env
        seen = {c.accepts(env.get(c.name)) for c in self.checks}
        return seen.pop() if len(seen) == 1 else None


@dataclass(frozen=True)
class Option(Cond):
    """A setup.py option in ``sys.argv`` (``--cuda_ext``), or a helper that also takes its variable."""

    options: tuple[str, ...]
    checks: tuple[EnvCheck, ...] = ()

    def value(self, ctx: Context) -> Truth:
        if ctx.options is not None and any(o in ctx.options for o in self.options):
            return True
        if ctx.env is not None and any(c.accepts(ctx.env.get(c.name)) for c in self.checks):
            return True
        if (self.options and ctx.options is None) or (self.checks and ctx.env is None):
            return None
        return False


@dataclass(frozen=True)
class Gpu(Cond):
    """``torch.cuda.is_available()``."""

    def value(self, ctx: Context) -> Truth:
        return ctx.gpu


@dataclass(frozen=True)
class Unknown(Cond):
    text: str

    def value(self, ctx: Context) -> Truth:
        return None


@dataclass(frozen=True)
class Not(Cond):
    inner: Cond

    def value(self, ctx: Context) -> Truth:
        inner = self.inner.value(ctx)
        return None if inner is None else not inner

    def atoms(self) -> list[Cond]:
        return self.inner.atoms()


@dataclass(frozen=True)
class All(Cond):
    parts: tuple[Cond, ...]

    def value(self, ctx: Context) -> Truth:
        values = [p.value(ctx) for p in self.parts]
        if False in values:
            return False
        return True if all(v is True for v in values) else None

    def atoms(self) -> list[Cond]:
        return [a for p in self.parts for a in p.atoms()]


@dataclass(frozen=True)
class Any_(Cond):
    parts: tuple[Cond, ...]

    def value(self, ctx: Context) -> Truth:
        values = [p.value(ctx) for p in self.parts]
        if True in values:
            return True
        return False if all(v is False for v in values) else None

    def atoms(self) -> list[Cond]:
        return [a for p in self.parts for a in p.atoms()]


ALWAYS = All(())

# -- ranges of versions ------------------------------------------------------------------


def spec_over(cond: Cond, ctx: Context, axis: str = "nvcc") -> str | None:
    """The versions of ``axis`` for which ``cond`` holds in ``ctx``, as a specifier:
    "" for all, ">=11.8", ">=12.8,<13.0"; "never" for none; None when it cannot be told
    or is no single range."""
    bounds = sorted({a.version for a in cond.atoms() if isinstance(a, Versioned) and a.axis == axis})
    points = [Version("0"), *bounds]
    truths = [cond.value(_at(ctx, axis, p)) for p in points]
    if None in truths:
        return None
    runs = [i for i, t in enumerate(truths) if t]
    if not runs:
        return "never"
    first, last = runs[0], runs[-1]
    if runs != list(range(first, last + 1)):
        return None
    parts = []
    if first > 0:
        parts.append(_bound(">=", points[first]))
    if last + 1 < len(points):
        parts.append(_bound("<", points[last + 1]))
    return ",".join(parts)


def _bound(op: str, version: Version) -> str:
    """``<12.10`` (what ``<= 12.9`` becomes on minor versions) is written back as ``<=12.9``."""
    major, minor = (*version.release, 0)[:2]
    if minor == 10:
        return f"{'<=' if op == '<' else '>'}{major}.9"
    return f"{op}{version}"


def _at(ctx: Context, axis: str, version: Version) -> Context:
    return Context(version if axis == "nvcc" else ctx.nvcc, version if axis == "torch" else ctx.torch,
                   ctx.knob, ctx.env, ctx.options, ctx.gpu)


# -- reading a test --------------------------------------------------------------------------

_NVCC_NAME = re.compile(r"bare_metal|nvcc|cuda_version|cuda_ver\b|cuda_major|installed_cuda", re.IGNORECASE)
_VERSION_CALLS = {"Version", "parse", "LooseVersion", "parse_version"}
_NOT_LINUX = ("win32", "darwin", "cygwin", "nt", "Windows", "Darwin")


class Reader:
    """Turns the tests of one file into conditions."""

    def __init__(self, source: PyFile, reads: EnvReads) -> None:
        self.source = source
        self.reads = reads
        self._around: dict[ast.AST, Cond] = {}

    def around(self, node: ast.AST) -> Cond:
        """Every condition the lines holding ``node`` sit under, up to its function's top."""
        if node not in self._around:
            self._around[node] = self._conditions(node)
        return self._around[node]

    def _conditions(self, node: ast.AST) -> Cond:
        parts: list[Cond] = []
        for ancestor, child in self.source.ancestors(node):
            if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                break
            if isinstance(ancestor, (ast.If, ast.IfExp, ast.While)) and child is not ancestor.test:
                test = self.test(ancestor.test)
                in_body = (child in ancestor.body if isinstance(ancestor, (ast.If, ast.While))
                           else child is ancestor.body)
                parts.append(test if in_body else Not(test))
            elif isinstance(ancestor, ast.BoolOp) and child in ancestor.values:
                before = ancestor.values[:ancestor.values.index(child)]
                for earlier in before:
                    test = self.test(earlier)
                    parts.append(test if isinstance(ancestor.op, ast.And) else Not(test))
        return All(tuple(reversed(parts)))

    def test(self, node: ast.expr, depth: int = 0) -> Cond:
        checks = self.reads.at(node)
        if checks:
            return Env(checks)
        if isinstance(node, ast.BoolOp):
            parts = tuple(self.test(v, depth) for v in node.values)
            return All(parts) if isinstance(node.op, ast.And) else Any_(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Not(self.test(node.operand, depth))
        if isinstance(node, ast.Constant):
            return Const(bool(node.value), repr(node.value))
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return self._compare(node, depth)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        if isinstance(node, (ast.Name, ast.Attribute)):
            return self._name(node, depth)
        return Unknown(self.source.segment(node))

    def _name(self, node: ast.Name | ast.Attribute, depth: int) -> Cond:
        text = dotted(node) or self.source.segment(node)
        if re.search(r"hip|rocm", text, re.IGNORECASE):
            return Const(False, f"{text}: a ROCm build")
        if text in ("torch.version.cuda", "CUDA_HOME"):
            return Const(True, f"{text}: a CUDA build")
        if isinstance(node, ast.Name) and depth < 3:
            values = self.source.values_of(node.id, node)
            if len(values) == 1:
                return self.test(values[0], depth + 1)
        return Unknown(text)

    def _call(self, node: ast.Call, depth: int) -> Cond:
        text = dotted(node.func) or ""
        if text.endswith("cuda.is_available"):
            return Gpu()
        if re.search(r"hip|rocm", text, re.IGNORECASE):
            return Const(False, f"{text}(): a ROCm build")
        if text == "bool" and node.args:
            return self.test(node.args[0], depth)
        if text.endswith("platform.startswith") and node.args and isinstance(node.args[0], ast.Constant):
            return Const(str(node.args[0].value).startswith("linux"), self.source.segment(node))
        checks = self.reads.by_call(node)
        options = tuple(a.value for a in node.args if isinstance(a, ast.Constant)
                        and isinstance(a.value, str) and a.value.startswith("--"))
        if checks or options:
            return Option(options, checks)
        return Unknown(self.source.segment(node))

    def _compare(self, node: ast.Compare, depth: int) -> Cond:
        left, op, right = node.left, node.ops[0], node.comparators[0]
        left_text, right_text = self.source.segment(left), self.source.segment(right)
        if (isinstance(op, (ast.In, ast.NotIn)) and isinstance(left, ast.Constant)
                and isinstance(left.value, str)):
            if right_text == "sys.argv":
                found: Cond = Option((left.value,))
            elif "arch" in right_text.lower():
                found = Knob(left.value)
            else:
                return Unknown(self.source.segment(node))
            return found if isinstance(op, ast.In) else Not(found)
        if isinstance(op, (ast.Is, ast.IsNot)) and isinstance(right, ast.Constant) and right.value is None:
            is_none = isinstance(op, ast.Is)
            if re.search(r"hip|rocm", left_text, re.IGNORECASE):
                return Const(is_none, f"{left_text}: ROCm")
            if left_text in ("CUDA_HOME", "torch.version.cuda"):
                return Const(not is_none, f"{left_text}: a CUDA build")
            read = self._env_value(left)
            if read:  # archs = os.getenv("NVTE_CUDA_ARCHS"); if archs is None: ...
                return Env(tuple(replace(c, test="unset" if is_none else "present") for c in read))
            return Unknown(self.source.segment(node))
        platform = self._platform(left_text, op, right)
        if platform is not None:
            return platform
        if left_text == "__name__":
            return Const(True, "__main__")
        versioned = self._versioned(left, op, right)
        if versioned is not None:
            return versioned
        return Unknown(self.source.segment(node))

    def _env_value(self, node: ast.expr) -> tuple[EnvCheck, ...]:
        if not isinstance(node, ast.Name):
            return ()
        for value in self.source.values_of(node.id, node):
            checks = self.reads.at(value)
            if checks:
                return checks
        return ()

    def _platform(self, left_text: str, op: ast.cmpop, right: ast.expr) -> Cond | None:
        if left_text not in ("sys.platform", "os.name", "platform.system()"):
            return None
        if not isinstance(right, ast.Constant):
            return None
        value = str(right.value)
        if not isinstance(op, (ast.Eq, ast.NotEq)) or value not in (*_NOT_LINUX, "linux", "posix", "Linux"):
            return None
        equal = isinstance(op, ast.Eq)
        is_linux = value not in _NOT_LINUX
        return Const(is_linux if equal else not is_linux, f"{left_text} {'==' if equal else '!='} {value!r}")

    def _versioned(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> Cond | None:
        ops = {ast.GtE: ">=", ast.Gt: ">", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}
        symbol = ops.get(type(op))
        if symbol is None:
            return None
        for axis in ("nvcc", "torch"):
            if self._is_axis(left, axis):
                version = self._version(right)
            elif self._is_axis(right, axis):
                version, symbol = self._version(left), _flip(symbol)
            else:
                continue
            if version is None:
                return None
            return _minor(axis, symbol, version)
        return None

    def _is_axis(self, node: ast.expr, axis: str) -> bool:
        text = self.source.segment(node)
        if axis == "torch":
            return bool(re.fullmatch(r"\(\s*TORCH_MAJOR\s*,\s*TORCH_MINOR\s*\)", text)) or (
                "torch.__version__" in text and "cuda" not in text)
        if "torch" in text.lower() or ".major" in text or ".minor" in text or "[" in text:
            return False
        if _NVCC_NAME.search(text):
            return True
        if isinstance(node, ast.Name):
            return any(isinstance(v, ast.Call) and _NVCC_NAME.search(call_name(v) or "")
                       for v in self.source.values_of(node.id, node))
        return False

    def _version(self, node: ast.expr) -> Version | None:
        if isinstance(node, ast.Call) and call_name(node) in _VERSION_CALLS and node.args:
            node = node.args[0]
        try:
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                return Version(node.value)
            if isinstance(node, ast.Constant) and isinstance(node.value, int) and node.value >= 100:
                return Version(f"{node.value // 100}.{node.value % 100}")  # 1205: CUDA 12.5
            if isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts):
                return Version(".".join(str(e.value) for e in node.elts))  # type: ignore[attr-defined]
        except ValueError:  # InvalidVersion, or more digits than int() converts
            return None
        return None


def _flip(symbol: str) -> str:
    return {">=": "<=", ">": "<", "<": ">", "<=": ">="}.get(symbol, symbol)


def _minor(axis: str, symbol: str, version: Version) -> Cond:
    """The test on major.minor only (nvcc and torch are compared by release): > and <= become >= and <."""
    major, minor = (*version.release, 0)[:2]
    here, above = Version(f"{major}.{minor}"), Version(f"{major}.{minor + 1}")
    if symbol == ">":
        return Versioned(axis, ">=", above)
    if symbol == "<=":
        return Versioned(axis, "<", above)
    return Versioned(axis, symbol, here)
