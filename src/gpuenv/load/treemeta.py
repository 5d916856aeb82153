"""What a source tree says about itself without building it: its distribution name and version.

Read before planning (the planner stays pure) so a repository's own copy of a
catalogued extension is planned with the knobs of *its* version, and by the
name its metadata gives rather than its folder's name. Only static facts are
read: ``PKG-INFO``, ``pyproject.toml``'s ``[project]``, ``setup.cfg``'s
``[metadata]``, and literal ``name=``/``version=`` arguments of ``setup()`` in
``setup.py`` (a module-level string constant counts, and a version read from
``PACKAGE/__init__.py``'s ``__version__``, as causal-conv1d and mamba-ssm do).
Nothing is executed; what cannot be read is None.
"""

from __future__ import annotations

import ast
import configparser
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from gpuenv.errors import InputError
from gpuenv.inputs import UnreadableInput, parse_python, read_input
from gpuenv.plan.extensionspec import ProjectFacts
from gpuenv.plan.recipespec import Recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Files larger than this are not project metadata.
_MAX_BYTES = 1 << 20
_VERSION_LINE = re.compile(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)


def recipe_sources(recipe: Recipe) -> dict[str, ProjectFacts]:
    """Facts of every local extension of ``recipe`` that is a project directory: extension name → facts.

    A tree that is not there yet (an uninitialised git submodule) has no facts: it is a
    blocker of the plan (:func:`gpuenv.load.treefacts.recipe_tree`), with the command to run.
    """
    facts = {}
    for ext in recipe.extensions:
        path = ext.path
        if path is not None and path.is_dir() and any((path / f).is_file() for f in _PROJECT_FILES):
            facts[ext.name] = read_tree(path)
    return facts


_PROJECT_FILES = ("setup.py", "pyproject.toml", "setup.cfg")


def check_submodules(tree: Path) -> None:
    """Raise InputError if ``tree``, or a submodule it declares, is an uninitialised git submodule."""
    tree = tree.resolve()
    if not any((tree / name).is_file() for name in _PROJECT_FILES):
        owner = declaring_gitmodules(tree)
        if owner is not None:
            raise uninitialised(tree, owner)
        raise InputError(f"{tree} holds no setup.py, pyproject.toml or setup.cfg: nothing to build",
                         hint="check the path in the recipe")
    for path in submodule_paths(tree / ".gitmodules"):
        nested = (tree / path).resolve()
        if nested.is_relative_to(tree) and (not nested.exists() or not any(nested.iterdir())):
            raise uninitialised(nested, tree / ".gitmodules")


def uninitialised(path: Path, gitmodules: Path) -> InputError:
    root = gitmodules.parent
    return InputError(
        f"{path} is a git submodule ({gitmodules}) that is not checked out: the folder is empty",
        hint=f"run: git -C {shlex.quote(str(_git_top(root)))} submodule update --init --recursive",
    )


def _git_top(start: Path) -> Path:
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return start


def declaring_gitmodules(tree: Path) -> Path | None:
    """The .gitmodules of an enclosing repository that lists ``tree`` (or a folder it is in)."""
    for directory in tree.parents:
        gitmodules = directory / ".gitmodules"
        if gitmodules.is_file():
            for path in submodule_paths(gitmodules):
                target = (directory / path).resolve()
                if tree == target or tree.is_relative_to(target):
                    return gitmodules
        if (directory / ".git").is_dir():
            break
    return None


def submodule_paths(gitmodules: Path) -> list[str]:
    text = small_text(gitmodules)
    if text is None:
        return []
    return [m.group(1).strip() for m in re.finditer(r"^\s*path\s*=\s*(.+)$", text, re.MULTILINE)]


def read_tree(tree: Path) -> ProjectFacts:
    """The name and version ``tree`` declares, from the first file that says each."""
    name: str | None = None
    version: str | None = None
    origins = []
    for origin, (found_name, found_version) in _readers(tree):
        if name is None and found_name:
            name = str(canonicalize_name(found_name))
            origins.append(origin)
        if version is None and found_version and _is_version(found_version):
            version = found_version
            if origin not in origins:
                origins.append(origin)
        if name is not None and version is not None:
            break
    return ProjectFacts(name=name, version=version, origin=", ".join(origins))


def tree_name(tree: Path) -> str | None:
    return read_tree(tree).name


def tree_version(tree: Path) -> str | None:
    return read_tree(tree).version


def _readers(tree: Path) -> list[tuple[str, tuple[str | None, str | None]]]:
    return [
        ("PKG-INFO", _pkg_info(tree / "PKG-INFO")),
        ("pyproject.toml", _pyproject(tree / "pyproject.toml")),
        ("setup.cfg", _setup_cfg(tree / "setup.cfg")),
        ("setup.py", _setup_py(tree)),
    ]


def small_text(path: Path) -> str | None:
    """The text of a small regular file (metadata, not data), or None."""
    try:
        return read_input(path, limit=_MAX_BYTES)
    except UnreadableInput:
        return None


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except ValueError:  # InvalidVersion, or a number of more digits than Python converts ('9' * 5000)
        return False
    return True


def _pkg_info(path: Path) -> tuple[str | None, str | None]:
    text = small_text(path)
    if text is None:
        return None, None
    name = re.search(r"^Name:\s*(\S+)", text, re.MULTILINE)
    version = re.search(r"^Version:\s*(\S+)", text, re.MULTILINE)
    return (name[1] if name else None), (version[1] if version else None)


def _pyproject(path: Path) -> tuple[str | None, str | None]:
    text = small_text(path)
    if text is None:
        return None, None
    try:
        project = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError:
        return None, None
    if not isinstance(project, Mapping):
        return None, None
    name, version = project.get("name"), project.get("version")
    return (name if isinstance(name, str) else None), (version if isinstance(version, str) else None)


def _setup_cfg(path: Path) -> tuple[str | None, str | None]:
    text = small_text(path)
    if text is None:
        return None, None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None, None
    if not parser.has_section("metadata"):
        return None, None
    version = parser.get("metadata", "version", fallback=None)
    if version and version.startswith(("attr:", "file:")):
        version = None
    return parser.get("metadata", "name", fallback=None), version


def _setup_py(tree: Path) -> tuple[str | None, str | None]:
    text = small_text(tree / "setup.py")
    if text is None:
        return None, None
    try:
        module = parse_python(text, "setup.py")
    except SyntaxError:
        return None, None
    constants = _string_constants(module)
    name = version = None
    for call in ast.walk(module):
        if isinstance(call, ast.Call) and _called(call) == "setup":
            for keyword in call.keywords:
                if keyword.arg == "name":
                    name = _value(keyword.value, constants)
                elif keyword.arg == "version":
                    version = _value(keyword.value, constants)
    if version is None and name is not None:
        version = _package_version(tree, name)
    return name, version


def _called(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _string_constants(module: ast.Module) -> dict[str, str]:
    constants = {}
    for node in module.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(
            node.value.value, str
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    return constants


def _value(node: Any, constants: Mapping[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _package_version(tree: Path, name: str) -> str | None:
    """``__version__`` of the package a setup.py names (causal_conv1d/__init__.py)."""
    package = name.replace("-", "_")
    for candidate in (tree / package / "__init__.py", tree / package / "version.py",
                      tree / "src" / package / "__init__.py"):
        text = small_text(candidate)
        match = _VERSION_LINE.search(text) if text else None
        if match:
            return match[1]
    return None
