"""What a tree's ``setup.py`` says about its own build and install, read from its text (never run).

The build facts come from :mod:`gpuenv.plan.buildfiles` (the reader the knowledge
checker and setup use): the ``CUDAExtension``\\ s and the conditions on them, the
tests that build CUDA only when torch sees a GPU (``GpuGate``) with the variables
that force the build. This module reads the file safely (bounded, a file the
parser cannot take is a problem in words, never an exception) and adds what a
repository's install needs:

- the switches to set so the CUDA build happens without a visible GPU
  (``FORCE_CUDA=1``), and whether it still needs one;
- whether it asks the GPU it runs on (``torch.cuda.get_device_capability()``,
  ``nvidia-smi``): it then builds for the visible GPU only;
- whether a failed CUDA build is swallowed (a ``try``/``except`` around it);
- the requirements files it reads into ``install_requires`` / ``extras_require``,
  the static ``install_requires`` and ``python_requires``.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.plan.buildfiles.conditions import Context
from gpuenv.plan.buildfiles.derive import derive, imported_files
from gpuenv.plan.buildfiles.facts import BuildFacts
from gpuenv.plan.buildfiles.pysource import PyFile, call_name, dotted
from gpuenv.plan.sourcetrees import BUILD_ENV, SetupFacts

#: A build file larger than this is not one people write.
MAX_BYTES = 1 << 20
#: Helper modules looked at for setup.py's imports, at most.
MAX_HELPERS = 200
_GPU_QUERIES = ("get_device_capability", "get_device_properties", "get_device_name", "device_count")
_REQUIREMENT_FILE = re.compile(r"\.(txt|in)$")
_SWITCH_VALUES = ("1", "TRUE", "true", "ON", "yes")


def scan_setup(path: Path) -> SetupFacts:
    """The facts of the setup.py at ``path``; a file that cannot be read or parsed gives its problem."""
    try:
        text = read_input(path, limit=MAX_BYTES, errors="replace")
    except UnreadableInput as exc:
        return SetupFacts(path, problem=exc.problem)
    try:
        source = PyFile("setup.py", text)
        build = derive({"setup.py": text, **_helpers(path.parent, text)})
    except SyntaxError as exc:  # parse_python's: also a NUL byte, source nested too deep
        where = f" (line {exc.lineno})" if exc.lineno else ""
        return SetupFacts(path, problem=f"not valid Python{where}: {exc.msg}")
    switches, needs = _switches(build)
    files, requires, python = _requirements(source)
    paths = tuple(
        dict.fromkeys(
            text.removeprefix("./")
            for _, text in _strings(source.tree)
            if "/" in text and len(text) < 200 and not text.startswith(("/", "http"))
        )
    )
    return SetupFacts(
        path,
        None,
        build,
        tuple(switches.items()),
        needs,
        tuple(_gpu_queries(source)),
        tuple(_swallowed(source)),
        tuple(files),
        tuple(requires),
        python,
        paths,
        tuple(_include_dirs(source)),
    )


def _helpers(tree: Path, text: str) -> dict[str, str]:
    """The helper modules of the tree that setup.py imports (build_tools/utils.py), read."""
    available: list[str] = []
    for directory, dirs, files in os.walk(tree):
        here = Path(directory)
        dirs[:] = [d for d in dirs if not d.startswith(".") and len(here.relative_to(tree).parts) < 2]
        available += [(here / f).relative_to(tree).as_posix() for f in files if f.endswith(".py")]
        if len(available) > MAX_HELPERS:
            break
    found: dict[str, str] = {}
    for name in imported_files("setup.py", text, available):
        try:
            found[name] = read_input(tree / name, limit=MAX_BYTES, errors="replace")
        except UnreadableInput:
            continue
    return found


def _switches(build: BuildFacts) -> tuple[dict[str, str], str | None]:
    """The variables that make each GPU test pass without a GPU, and what still needs one."""
    switches: dict[str, str] = {}
    for gate in build.gpu_gates:
        if gate.builds_cuda(Context(gpu=False, env={**BUILD_ENV, **switches})):
            continue
        for check in gate.overrides:
            value = next((v for v in _SWITCH_VALUES if check.accepts(v)), None)
            if value is not None and check.name not in BUILD_ENV:
                switches[check.name] = value
                if gate.builds_cuda(Context(gpu=False, env={**BUILD_ENV, **switches})):
                    break
    for gate in build.gpu_gates:
        if gate.builds_cuda(Context(gpu=False, env={**BUILD_ENV, **switches})) is False:
            return switches, f"setup.py:{gate.where.line} builds CUDA only when torch sees a GPU"
    return switches, None


def _include_dirs(source: PyFile) -> list[tuple[str, int]]:
    """Relative folders named in ``include_dirs=[...]``: a string, or the parts an os.path.join adds to
    the setup.py's folder (``osp.join(ROOT, 'thirdparty/eigen-3.4.0')``)."""
    found: dict[str, int] = {}
    for node in ast.walk(source.tree):
        if not (isinstance(node, ast.keyword) and node.arg == "include_dirs"):
            continue
        items = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
        for item in items:
            parts: list[str] = []
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                parts = [item.value]
            elif isinstance(item, ast.Call) and (call_name(item) or "").endswith("join"):
                parts = [
                    a.value for a in item.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                ]
            text = "/".join(p.strip("/") for p in parts if p)
            if text and not text.startswith(("/", "$", "~")) and ".." not in text.split("/"):
                found.setdefault(text.removeprefix("./"), item.lineno)
    return list(found.items())


def _gpu_queries(source: PyFile) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Call):
            called = dotted(node.func) or ""
            if called.rsplit(".", 1)[-1] in _GPU_QUERIES and "cuda" in called:
                found.append((node.lineno, called + "()"))
            elif any(
                isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("nvidia-smi")
                for a in ast.walk(node)
            ):
                found.append((node.lineno, "nvidia-smi"))
    return found


def _swallowed(source: PyFile) -> list[int]:
    """Lines of try/except blocks around a CUDAExtension."""
    found = []
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Name) and node.id == "CUDAExtension":
            for parent, child in source.ancestors(node):
                if isinstance(parent, ast.Try) and child in parent.body and parent.handlers:
                    found.append(parent.lineno)
    return sorted(set(found))


def _requirements(
    source: PyFile,
) -> tuple[list[tuple[str, int, str]], list[tuple[str, int]], tuple[str, int] | None]:
    """Requirement files named in setup.py (and where they go), static install_requires, python_requires."""
    files: dict[str, tuple[int, str]] = {}
    requires: list[tuple[str, int]] = []
    python: tuple[str, int] | None = None
    for node in ast.walk(source.tree):
        if not isinstance(node, ast.keyword) or node.arg not in (
            "install_requires",
            "extras_require",
            "python_requires",
        ):
            continue
        value: ast.AST = node.value
        if isinstance(value, ast.Name) and source.assigns.get(value.id):
            value = source.assigns[value.id][-1]
        if node.arg == "python_requires":
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                python = (value.value, value.lineno)
            continue
        if node.arg == "install_requires" and isinstance(value, (ast.List, ast.Tuple)):
            requires += [
                (e.value, e.lineno)
                for e in value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
        for where, sub in _keyed(node.arg, value, source):
            for line, text in _strings(sub):
                if _REQUIREMENT_FILE.search(text):
                    files.setdefault(text, (line, where))
    for line, text in _strings(source.tree):
        if _REQUIREMENT_FILE.search(text) and "requirement" in text.lower():
            files.setdefault(text, (line, ""))
    return [(f, line, where) for f, (line, where) in files.items()], requires, python


def _keyed(keyword: str, value: ast.AST, source: PyFile) -> list[tuple[str, ast.AST]]:
    """(where, expression): the whole value for install_requires; each key of an extras_require dict."""
    if keyword == "install_requires":
        return [("install_requires", value)]
    if isinstance(value, ast.Dict):
        return [
            (f"extras_require:{k.value}", v)
            for k, v in zip(value.keys, value.values)
            if isinstance(k, ast.Constant) and isinstance(k.value, str)
        ]
    return [("extras_require", value)]


def _strings(node: ast.AST) -> list[tuple[int, str]]:
    return [
        (n.lineno, n.value)
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


__all__ = ["scan_setup"]
