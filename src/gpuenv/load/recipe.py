"""Recipes: the declarative description of an environment.

A recipe is a TOML file (``envs/NAME.toml``) or the ``[tool.gpuenv]`` table of a
pyproject.toml. It is read once, validated fully, and becomes the frozen
:class:`~gpuenv.plan.recipespec.Recipe`. This module reads the file and the [env],
[repo] and [packages] tables (the requirements files these name included); [torch]
is :mod:`gpuenv.plan.torchspec`'s, [[extensions]] :mod:`gpuenv.plan.extensionspec`'s,
and the checks of single values :mod:`gpuenv.plan.recipevalues`'. See README.md
("Recipes") for every key.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from gpuenv.errors import RecipeError
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.plan.cachespec import cache_table
from gpuenv.plan.extensionspec import ExtensionSpec, extensions_table
from gpuenv.plan.recipespec import PackageSources, Recipe, RepoSpec
from gpuenv.plan.recipevalues import (
    Where,
    as_boolean,
    as_requirements,
    as_string,
    as_strings,
    as_table,
    check_keys,
    describe,
    home_path,
    local_path,
)
from gpuenv.plan.torchspec import TorchSpec, torch_is_set_by, torch_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib


# -- loading ----------------------------------------------------------------------

#: The table of a pyproject.toml that holds a recipe.
PYPROJECT_TABLE = "tool.gpuenv"

_TOP_KEYS = ("env", "torch", "extensions", "packages", "repo", "cache")
_ENV_KEYS = ("name", "description", "python")
_REPO_KEYS = ("path", "editable", "extras", "build-isolation")
_PACKAGES_KEYS = ("requirements", "requirements-files")

_ENV_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TOML_POSITION = re.compile(r"(?P<msg>.*) \(at (?P<where>line \d+, column \d+|end of document)\)", re.DOTALL)


def load_recipe(path: Path | str) -> Recipe:
    """Read and validate a recipe file, or the ``[tool.gpuenv]`` table of a pyproject.toml.

    A directory is searched with :func:`find_recipe`, so ``-r ../project`` works.
    """
    path = Path(path)
    if path.is_dir():
        path = find_recipe(path)
    data = _read_toml(path)
    if path.name != "pyproject.toml":
        return parse_recipe(data, path)
    tool = data.get("tool")
    if not isinstance(tool, Mapping) or "gpuenv" not in tool:
        raise RecipeError(
            path,
            PYPROJECT_TABLE,
            f"missing; this pyproject.toml has no [{PYPROJECT_TABLE}] table",
            hint=f"add [{PYPROJECT_TABLE}.torch] with version = \"2.14.*\", or pass a recipe file with -r",
        )
    return parse_recipe(tool["gpuenv"], path, PYPROJECT_TABLE, default_name=_project_name(data, path))


def find_recipe(start: Path) -> Path:
    """The recipe of the project ``start`` is in: ``envs/default.toml``, else ``[tool.gpuenv]``.

    Looks in ``start`` and then its parents (so it works from a subdirectory),
    but never beyond the project's root: the first directory holding a
    pyproject.toml or a ``.git``, so an unrelated recipe further up is not used.
    """
    start = Path(start)
    for directory in (start, *start.resolve().parents):
        default = directory / "envs" / "default.toml"
        if default.is_file():
            return default
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and _has_gpuenv_table(pyproject):
            return pyproject
        if pyproject.is_file() or (directory / ".git").exists():
            break
    raise RecipeError(
        start,
        None,
        f"no recipe found (looked for envs/default.toml and a [{PYPROJECT_TABLE}] table in pyproject.toml)",
        hint="create one with 'gpuenv init' or pass -r FILE",
    )


def parse_recipe(
    data: Mapping[str, Any],
    path: Path,
    table: str | None = None,
    *,
    default_name: str | None = None,
) -> Recipe:
    """Validate already-parsed TOML ``data`` read from ``path`` and build the :class:`Recipe`.

    ``table`` is where ``data`` sits in its file ("tool.gpuenv"); every key
    path in an error starts with it. ``default_name`` replaces the file stem
    as the environment's name when the recipe gives none.
    """
    where = Where(Path(path), f"{table}." if table else "")
    if not isinstance(data, Mapping):
        # Only a [tool.gpuenv] can be something else: `gpuenv = "llm"` in [tool].
        raise RecipeError(where.path, table, f"expected a table, got {describe(data)}")
    top: Mapping[str, Any] = data
    check_keys(where, "", top, _TOP_KEYS)
    name, description = _env_table(where, top.get("env"), default_name or where.path.stem)
    python = _python(where, top.get("env"))
    if "torch" not in top:
        raise where.error(
            "torch",
            f"missing; every recipe needs a {where.header('torch')} table with at least "
            'version = "2.14.*"',
        )
    torch = torch_table(where, top["torch"])
    extensions = extensions_table(where, top.get("extensions", []))
    packages, files = _packages_table(where, top.get("packages"))
    repo = _repo_table(where, top.get("repo"))
    from_files, sources, left_out, refused = _requirement_files(where, files, torch, extensions, repo)
    return Recipe(
        path=where.path,
        name=name,
        description=description,
        torch=torch,
        extensions=extensions,
        packages=packages + tuple(p for p in from_files if p not in packages),
        table=table,
        python=python,
        repo=repo,
        requirement_files=files,
        package_sources=sources,
        left_out=left_out,
        refused=refused,
        cache=cache_table(where, top.get("cache"), where.path.parent),
    )


# -- the file -----------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = read_input(path)
    except UnreadableInput as exc:
        if exc.missing:
            raise RecipeError(
                path,
                None,
                "no such file",
                suggestion=_closest_sibling(path),
                hint="check the path, or create the recipe with 'gpuenv init'",
            ) from None
        raise RecipeError(path, None, exc.problem) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(path, None, f"not valid TOML {_toml_problem(exc)}") from None
    except (ValueError, RecursionError) as exc:  # an integer too long to convert
        raise RecipeError(path, None, f"not a recipe gpuenv reads: {exc}") from None


def _toml_problem(exc: ValueError) -> str:
    """'at line 3, column 5: Expected ...' from the decoder's message."""
    lineno, colno = getattr(exc, "lineno", None), getattr(exc, "colno", None)
    message = getattr(exc, "msg", None)
    if isinstance(lineno, int) and isinstance(colno, int) and isinstance(message, str):
        return f"at line {lineno}, column {colno}: {message}"
    match = _TOML_POSITION.match(str(exc))
    if match is None:
        return f": {exc}"
    return f"at {match['where']}: {match['msg']}"


def _closest_sibling(path: Path) -> str | None:
    """A recipe next to a missing one whose name is close (a typo in -r)."""
    try:
        siblings = sorted(p.stem for p in path.parent.glob("*.toml"))
    except OSError:
        return None
    # Stems, not names: the shared ".toml" would make any two names look alike.
    wanted = path.stem if path.suffix == ".toml" else path.name
    match = difflib.get_close_matches(wanted, siblings, n=1)
    return str(path.with_name(match[0] + ".toml")) if match else None


def _has_gpuenv_table(pyproject: Path) -> bool:
    tool = _read_toml(pyproject).get("tool")
    return isinstance(tool, Mapping) and "gpuenv" in tool


def _project_name(pyproject: Mapping[str, Any], path: Path) -> str:
    """The name a [tool.gpuenv] recipe defaults to: the project's, else its directory's."""
    project = pyproject.get("project")
    name = project.get("name") if isinstance(project, Mapping) else None
    return name if isinstance(name, str) and name else path.resolve().parent.name


# -- [env] --------------------------------------------------------------------------


def _env_table(where: Where, value: object, default_name: str) -> tuple[str, str]:
    if value is None:
        return default_name, ""
    table = as_table(where, "env", value)
    check_keys(where, "env", table, _ENV_KEYS)
    description = as_string(where, "env.description", table.get("description", ""))
    if "name" not in table:
        return default_name, description
    name = as_string(where, "env.name", table["name"])
    # The name ends up in paths and lock files: keep it to one path component.
    if not _ENV_NAME.fullmatch(name):
        raise where.error(
            "env.name", f"{name!r} is not an environment name; use letters, digits, '.', '_' and '-'"
        )
    return name, description


def _python(where: Where, env: object) -> str | None:
    """``[env] python``: "3.10" means 3.10.*, a specifier is taken as written."""
    if not isinstance(env, Mapping) or "python" not in env:
        return None
    text = as_string(where, "env.python", env["python"]).strip()
    spec = f"=={text}.*" if re.fullmatch(r"[0-9]+\.[0-9]+", text, re.ASCII) else text
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        raise where.error("env.python", f'{text!r} is not a Python version or specifier; write e.g. "3.10" '
                                        'or ">=3.10,<3.13"') from None
    return spec


# -- [repo] -------------------------------------------------------------------------


def _repo_table(where: Where, value: object) -> RepoSpec | None:
    if value is None:
        return None
    table = as_table(where, "repo", value)
    check_keys(where, "repo", table, _REPO_KEYS)
    if "path" in table:
        path = local_path(where, "repo.path", as_string(where, "repo.path", table["path"]),
                          home_path(as_string(where, "repo.path", table["path"]), f"{where.path}: repo.path"),
                          directory_only=True)
    else:
        path = _project_root(where)
    if not any((path / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")):
        raise where.error("repo.path",
                          f"{path} has no pyproject.toml, setup.py or setup.cfg: nothing to install")
    extras = as_strings(where, "repo.extras", table.get("extras", []))
    for i, extra in enumerate(extras):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", extra):
            raise where.error(f"repo.extras[{i}]", f"{extra!r} is not an extra's name")
    return RepoSpec(
        path=path,
        editable=as_boolean(where, "repo.editable", table.get("editable", True)),
        extras=tuple(extras),
        isolation=as_boolean(where, "repo.build-isolation", table.get("build-isolation", False)),
    )


def _project_root(where: Where) -> Path:
    """The project a recipe belongs to: its own directory or the nearest parent with project files."""
    start = where.path.resolve().parent
    for directory in (start, *start.parents):
        if any((directory / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")):
            return directory
        if (directory / ".git").exists():
            break
    raise where.error("repo", f"no pyproject.toml, setup.py or setup.cfg in {start} or its parents; "
                              'set repo.path = "PATH"')


# -- [packages] ---------------------------------------------------------------------


def _packages_table(where: Where, value: object) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    if value is None:
        return (), ()
    if isinstance(value, list):
        # `packages = [...]` at the top: the list belongs one level down.
        raise where.error("packages", "expected a table, got an array; write [packages] requirements = [...]")
    table = as_table(where, "packages", value)
    check_keys(where, "packages", table, _PACKAGES_KEYS)
    requirements = table.get("requirements", [])
    files = [local_path(where, f"packages.requirements-files[{i}]", text,
                        home_path(text, f"{where.path}: packages.requirements-files[{i}]"),
                        directory_only=False)
             for i, text in enumerate(as_strings(where, "packages.requirements-files",
                                                 table.get("requirements-files", [])))]
    return (as_requirements(where, "packages.requirements", requirements, torch_is_set_by(where)),
            tuple(files))


def _requirement_files(
    where: Where, files: tuple[Path, ...], torch: TorchSpec, extensions: tuple[ExtensionSpec, ...],
    repo: RepoSpec | None,
) -> tuple[tuple[str, ...], PackageSources, tuple[str, ...], tuple[str, ...]]:
    """The lines of the repository's requirements files the recipe does not install itself.

    torch and the packages released with it come from [torch]; an extension
    from its [[extensions]] table. The file stays the source of truth: it is
    read again every time the recipe is loaded.
    """
    from gpuenv.errors import InputError
    from gpuenv.load.recipefiles import read_files
    from gpuenv.plan.knowledge import paired_packages

    handled = {"torch": f"torch comes from {where.header('torch')}"}
    handled.update({name: f"{name} comes from {where.header('torch')}: paired with the chosen torch"
                    for name in paired_packages()})
    built_by = f"[{where.header('extensions')}]"
    handled.update({ext.name: f"{ext.name} is built by {built_by}" for ext in extensions})
    # Local trees by their resolved path: "-e ./csrc/ext" or "." in the file are the recipe's own too.
    local = {ext.path: f"built by {built_by}" for ext in extensions if ext.path is not None}
    if repo is not None:
        local[repo.path] = f"the repository itself: installed by {where.header('repo')}"
    try:
        # pip resolves a line's relative paths against where it runs: the project's root.
        from gpuenv.load.gitindex import repo_key

        repositories = {repo_key(e.requirement): f"{e.name} is built by {built_by}" for e in extensions
                        if "://" in e.requirement and repo_key(e.requirement)}
        read = read_files(files, handled, local, repo.path if repo is not None else None, repositories)
    except InputError as exc:
        raise where.error("packages.requirements-files", str(exc)) from None
    sources = PackageSources(read.index_url, tuple(dict.fromkeys(read.extra_index_urls)),
                             tuple(dict.fromkeys(read.find_links)))
    return tuple(read.kept), sources, tuple(read.left_out), tuple(read.refused)
