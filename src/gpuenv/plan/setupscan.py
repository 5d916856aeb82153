"""What a ``setup.py`` says about its own build, read from its syntax tree (never run).

- whether it builds a CUDA extension (``CUDAExtension`` used, called or assigned),
  and under which conditions: the ``if`` tests around it, and the early
  ``return``/``raise`` before it, evaluated for a build on a machine without a
  visible GPU where gpuenv sets ``CUDA_HOME``, ``TORCH_CUDA_ARCH_LIST`` and the
  switches the file reads (``FORCE_CUDA=1``);
- whether it asks the GPU it runs on (``torch.cuda.get_device_capability()``,
  ``nvidia-smi``): it then builds for the visible GPU only;
- whether a failed CUDA build is swallowed (``try``/``except`` around it);
- the environment variables it reads, whether it imports torch (it then needs
  torch installed: no build isolation);
- the requirements files it reads into ``install_requires`` or ``extras_require``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from gpuenv.plan.pysource import PythonFile, dotted, parents, read_python, segment, strings

_ENV_CALLS = ("os.environ.get", "os.getenv", "environ.get", "getenv")
_GPU_QUERIES = ("get_device_capability", "get_device_properties", "get_device_name", "device_count")
_REQUIREMENT_FILE = re.compile(r"\.(txt|in)$")
#: Switches a setup.py may read to build CUDA code without seeing a GPU.
_SWITCH = re.compile(r"FORCE|WITH_CUDA|USE_CUDA|BUILD_CUDA|CUDA_EXT|_CUDA$")
_NOT_SWITCHES = {"CUDA_HOME", "CUDA_PATH", "TORCH_CUDA_ARCH_LIST", "CUDA_VISIBLE_DEVICES", "MAX_JOBS"}


@dataclass(frozen=True)
class Guard:
    """A test the CUDA extension is built under: ``if <test>`` (``negated`` for an else or an early exit)."""

    line: int
    text: str
    #: Whether it holds when gpuenv builds without a visible GPU (None: cannot tell).
    holds: bool | None
    negated: bool = False


@dataclass(frozen=True)
class SetupFacts:
    path: Path
    problem: str | None = None
    #: Lines that use CUDAExtension.
    cuda_lines: tuple[int, ...] = ()
    #: Lines that use CppExtension / BuildExtension / torch.utils.cpp_extension (C++ builds).
    cpp_lines: tuple[int, ...] = ()
    guards: tuple[Guard, ...] = ()
    #: (line, what): it asks the GPU it runs on.
    gpu_queries: tuple[tuple[int, str], ...] = ()
    #: Lines of a try/except around the CUDA extension (a failed CUDA build goes unnoticed).
    swallowed: tuple[int, ...] = ()
    #: Environment variables it reads, with the first line that does.
    env_reads: tuple[tuple[str, int], ...] = ()
    imports_torch: bool = False
    #: (file, line, where: "install_requires", "extras_require:KEY" or "").
    requirement_files: tuple[tuple[str, int, str], ...] = ()
    #: Static ``install_requires`` strings, with their lines.
    install_requires: tuple[tuple[str, int], ...] = ()
    python_requires: tuple[str, int] | None = None

    @property
    def builds_cuda(self) -> bool:
        return bool(self.cuda_lines)

    @property
    def conditional(self) -> bool:
        return bool(self.guards)

    #: The switches gpuenv sets so the CUDA build happens without a visible GPU ({"FORCE_CUDA": "1"}).
    switches: tuple[tuple[str, str], ...] = ()

    @property
    def needs_visible_gpu(self) -> str | None:
        """Why a build without a visible GPU compiles no CUDA (or the wrong archs), else None."""
        refused = [g for g in self.guards if g.holds is False]
        if refused:
            g = refused[0]
            return f"{self.path.name}:{g.line} builds CUDA only {'unless' if g.negated else 'if'} {g.text}"
        if self.gpu_queries:
            line, what = self.gpu_queries[0]
            return f"{self.path.name}:{line} asks the GPU it runs on ({what})"
        return None


def scan_setup(path: Path) -> SetupFacts:
    """The facts of the setup.py at ``path``; a file that cannot be parsed gives its problem."""
    source = read_python(path)
    if source.module is None:
        return SetupFacts(path, problem=source.problem)
    return _facts(source)


def _facts(source: PythonFile) -> SetupFacts:
    module = source.module
    assert module is not None
    up = parents(module)
    env = _env_reads(module)
    assigned = _module_names(module)
    tests: list[tuple[ast.expr, bool]] = []
    cuda: list[int] = []
    cpp: list[int] = []
    swallowed: list[int] = []
    gpu: list[tuple[int, str]] = []
    imports_torch = False
    for node in ast.walk(module):
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        if name == "CUDAExtension" and not isinstance(up.get(node), ast.Attribute):
            line = getattr(node, "lineno", 0)
            if line not in cuda:
                cuda.append(line)
                tests += [t for t in _tests(node, up) if t not in tests and _relevant(t[0], assigned)]
                swallowed += _tries(node, up)
        elif name in ("CppExtension", "BuildExtension"):
            cpp.append(getattr(node, "lineno", 0))
        if isinstance(node, ast.Call):
            called = dotted(node.func)
            if called.rsplit(".", 1)[-1] in _GPU_QUERIES and "cuda" in called:
                gpu.append((node.lineno, called + "()"))
            elif any(text.startswith("nvidia-smi") for _, text in strings(node)):
                gpu.append((node.lineno, "nvidia-smi"))
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            imports_torch = imports_torch or any(n == "torch" or n.startswith("torch.") for n in names)
    files, requires, python = _requirements(module)
    switches = _switches(tests, assigned)
    guards = tuple(Guard(test.lineno, segment(source.text, test), _holds(test, negated, switches, assigned),
                         negated) for test, negated in tests)
    return SetupFacts(source.path, None, tuple(sorted(cuda)), tuple(sorted(set(cpp))), guards, tuple(gpu),
                      tuple(sorted(set(swallowed))), tuple(env), imports_torch, tuple(files), tuple(requires),
                      python, tuple(sorted(switches.items())))


def _module_names(module: ast.Module) -> dict[str, ast.expr]:
    """Names assigned once at module level (``SKIP_CUDA_BUILD = os.getenv(...) == "TRUE"``)."""
    found: dict[str, ast.expr] = {}
    for node in module.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
    return found


def _env_names(test: ast.AST, assigned: dict[str, ast.expr]) -> set[str]:
    """The environment variables a test reads, directly or through module-level names."""
    names: set[str] = set()
    for node in ast.walk(test):
        if isinstance(node, ast.Name) and node.id in assigned:
            node = assigned[node.id]
        for read, _ in _env_reads(node):
            names.add(read)
    return names


def _relevant(test: ast.expr, assigned: dict[str, ast.expr]) -> bool:
    """A test that has to do with CUDA, a GPU or the environment (not ``sys.version_info < (3, 6)``)."""
    for node in ast.walk(test):
        name = dotted(node)
        if re.search(r"cuda|gpu|CUDA|GPU", name) or (isinstance(node, ast.Name) and node.id in assigned):
            return True
    return bool(_env_names(test, assigned))


def _switches(tests: list[tuple[ast.expr, bool]], assigned: dict[str, ast.expr]) -> dict[str, str]:
    """The switch variables (and values) that make each failing test hold without a visible GPU."""
    switches: dict[str, str] = {}
    for test, negated in tests:
        if _holds(test, negated, switches, assigned) is not False:
            continue
        candidates = [n for n in _env_names(test, assigned) if _is_switch(n)]
        for value in ("1", "TRUE"):
            trial = {**switches, **dict.fromkeys(candidates, value)}
            if candidates and _holds(test, negated, trial, assigned):
                switches = trial
                break
    return switches


def _is_switch(name: str) -> bool:
    return name not in _NOT_SWITCHES and bool(_SWITCH.search(name)) and not re.search(r"SKIP|NO_|ABI", name)


def _holds(test: ast.expr, negated: bool, env: dict[str, str], assigned: dict[str, ast.expr]) -> bool | None:
    value = _value(test, env, 0, assigned)
    if value is _UNKNOWN:
        return None
    return not value if negated else bool(value)


def _env_reads(module: ast.AST) -> list[tuple[str, int]]:
    found: dict[str, int] = {}
    for node in ast.walk(module):
        key: ast.AST | None = None
        if isinstance(node, ast.Call) and dotted(node.func) in _ENV_CALLS and node.args:
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and dotted(node.value) in ("os.environ", "environ"):
            key = node.slice
        elif isinstance(node, ast.Compare) and any(dotted(c) in ("os.environ", "environ")
                                                    for c in node.comparators):
            key = node.left
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.setdefault(key.value, getattr(node, "lineno", 0))
    return sorted(found.items(), key=lambda item: item[1])


# -- the conditions around the CUDA extension --------------------------------------------------------


def _tests(node: ast.AST, up: dict[ast.AST, ast.AST]) -> list[tuple[ast.expr, bool]]:
    """The tests ``node`` is under: (test, negated) for an ``if``/else around it or an early exit before it."""
    tests: list[tuple[ast.expr, bool]] = []
    child, parent = node, up.get(node)
    while parent is not None:
        if isinstance(parent, ast.IfExp):
            if child is parent.body or child is parent.orelse:
                tests.append((parent.test, child is parent.orelse))
        elif isinstance(parent, ast.If):
            if child in parent.body or child in parent.orelse:
                tests.append((parent.test, child in parent.orelse))
        for block in ("body", "orelse", "finalbody"):
            statements = getattr(parent, block, None)
            if isinstance(statements, list) and child in statements:
                for before in statements[: statements.index(child)]:
                    if isinstance(before, ast.If) and not before.orelse and _exits(before.body):
                        tests.append((before.test, True))
        child, parent = parent, up.get(parent)
    return tests


def _exits(body: list[ast.stmt]) -> bool:
    last = body[-1] if body else None
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    return isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and \
        dotted(last.value.func) in ("sys.exit", "exit", "quit")


def _tries(node: ast.AST, up: dict[ast.AST, ast.AST]) -> list[int]:
    found = []
    child, parent = node, up.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body and parent.handlers:
            found.append(parent.lineno)
        child, parent = parent, up.get(parent)
    return found


_UNKNOWN = object()


def _value(node: ast.AST, env: dict[str, str], depth: int, names: dict[str, ast.expr]) -> object:
    """What ``node`` evaluates to in a build without a visible GPU, where gpuenv sets CUDA_HOME,
    TORCH_CUDA_ARCH_LIST and ``env``; _UNKNOWN when it cannot be told."""
    if depth > 40:
        return _UNKNOWN
    d = depth + 1
    if isinstance(node, ast.Name) and node.id in names and node.id != "CUDA_HOME":
        return _value(names[node.id], env, d, names)
    if isinstance(node, ast.BoolOp):
        values = [_value(v, env, d, names) for v in node.values]
        if isinstance(node.op, ast.And):
            if any(v is not _UNKNOWN and not v for v in values):
                return False
            return _UNKNOWN if any(v is _UNKNOWN for v in values) else values[-1]
        if any(v is not _UNKNOWN and v for v in values):
            return next(v for v in values if v is not _UNKNOWN and v)
        return _UNKNOWN if any(v is _UNKNOWN for v in values) else values[-1]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _value(node.operand, env, d, names)
        return _UNKNOWN if inner is _UNKNOWN else not inner
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_value(e, env, d, names) for e in node.elts]
        return _UNKNOWN if any(i is _UNKNOWN for i in items) else tuple(items)
    name = dotted(node)
    if name.rsplit(".", 1)[-1] == "CUDA_HOME":
        return "/usr/local/cuda"
    if isinstance(node, ast.Call):
        return _call(node, env, d, names)
    if isinstance(node, ast.Subscript) and dotted(node.value) in ("os.environ", "environ"):
        key = _value(node.slice, env, d, names)
        return _environ(key, env, None)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        return _compare(node, env, d, names)
    return _UNKNOWN


def _call(node: ast.Call, env: dict[str, str], depth: int, names: dict[str, ast.expr]) -> object:
    called = dotted(node.func)
    if called.endswith("cuda.is_available"):
        return False
    if called in _ENV_CALLS and node.args:
        key = _value(node.args[0], env, depth, names)
        default = _value(node.args[1], env, depth, names) if len(node.args) > 1 else None
        return _environ(key, env, default)
    if isinstance(node.func, ast.Attribute) and node.func.attr in ("lower", "upper", "strip") and not node.args:
        inner = _value(node.func.value, env, depth, names)
        return getattr(inner, node.func.attr)() if isinstance(inner, str) else _UNKNOWN
    if called in ("int", "bool", "str") and len(node.args) == 1:
        inner = _value(node.args[0], env, depth, names)
        try:
            return {"int": int, "bool": bool, "str": str}[called](inner) if inner is not _UNKNOWN else _UNKNOWN
        except (TypeError, ValueError):
            return _UNKNOWN
    return _UNKNOWN


def _environ(key: object, env: dict[str, str], default: object) -> object:
    if not isinstance(key, str):
        return _UNKNOWN
    if key == "CUDA_HOME":
        return "/usr/local/cuda"
    if key == "TORCH_CUDA_ARCH_LIST":
        return "8.0"
    return env.get(key, default)


def _compare(node: ast.Compare, env: dict[str, str], depth: int, names: dict[str, ast.expr]) -> object:
    left = _value(node.left, env, depth, names)
    right_node = node.comparators[0]
    op = node.ops[0]
    if isinstance(op, (ast.In, ast.NotIn)) and dotted(right_node) in ("os.environ", "environ"):
        present = isinstance(left, str) and (left in env or left in ("CUDA_HOME", "TORCH_CUDA_ARCH_LIST"))
        return present if isinstance(op, ast.In) else not present
    right = _value(right_node, env, depth, names)
    if left is _UNKNOWN or right is _UNKNOWN:
        return _UNKNOWN
    try:
        if isinstance(op, ast.Is):
            return left is right
        if isinstance(op, ast.IsNot):
            return left is not right
        if isinstance(op, ast.Eq):
            return left == right
        if isinstance(op, ast.NotEq):
            return left != right
        if isinstance(op, ast.In):
            return left in right  # type: ignore[operator]
        if isinstance(op, ast.NotIn):
            return left not in right  # type: ignore[operator]
    except TypeError:
        return _UNKNOWN
    return _UNKNOWN


# -- requirements it reads ----------------------------------------------------------------------------


def _requirements(module: ast.Module) -> tuple[
        list[tuple[str, int, str]], list[tuple[str, int]], tuple[str, int] | None]:
    """Requirement files named in setup.py (and where they go), static install_requires, python_requires."""
    assigned: dict[str, ast.AST] = dict(_module_names(module))
    files: dict[str, tuple[int, str]] = {}
    requires: list[tuple[str, int]] = []
    python: tuple[str, int] | None = None
    for node in ast.walk(module):
        if not isinstance(node, ast.keyword) or node.arg not in ("install_requires", "extras_require",
                                                                 "python_requires"):
            continue
        value: ast.AST = assigned.get(node.value.id, node.value) if isinstance(node.value, ast.Name) \
            else node.value
        if node.arg == "python_requires":
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                python = (value.value, value.lineno)
            continue
        if node.arg == "install_requires" and isinstance(value, (ast.List, ast.Tuple)):
            requires += [(e.value, e.lineno) for e in value.elts
                         if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        for where, sub in _keyed(node.arg, value, assigned):
            for line, text in strings(sub):
                if _REQUIREMENT_FILE.search(text):
                    files.setdefault(text, (line, where))
    for line, text in strings(module):
        if _REQUIREMENT_FILE.search(text) and "requirement" in text.lower():
            files.setdefault(text, (line, ""))
    return [(f, line, where) for f, (line, where) in files.items()], requires, python


def _keyed(keyword: str, value: ast.AST, assigned: dict[str, ast.AST]) -> list[tuple[str, ast.AST]]:
    """(where, expression): the whole value for install_requires; each key of an extras_require dict."""
    if keyword == "install_requires":
        return [("install_requires", _through_calls(value, assigned))]
    if isinstance(value, ast.Dict):
        return [(f"extras_require:{k.value}", _through_calls(v, assigned)) for k, v in zip(value.keys, value.values)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return [("extras_require", value)]


def _through_calls(value: ast.AST, assigned: dict[str, ast.AST]) -> ast.AST:
    """A name assigned at module level stands for its value (``reqs = parse("requirements.txt")``)."""
    if isinstance(value, ast.Name) and value.id in assigned:
        return assigned[value.id]
    return value
