"""``gpuenv init``: put gpuenv into an existing research repository, from what it already declares.

:func:`init_repo` reads the repository (:mod:`gpuenv.init.reposcan`: requirements
files, pyproject, environment.yml, setup.py/cfg, submodules, local extension
folders) and writes a recipe (``envs/default.toml``, or a ``[tool.gpuenv]`` table
appended to the repository's pyproject.toml) that refers to the repository's
own requirements files rather than copying them, builds its extensions, and
installs the repository itself last; a ``noxfile.py`` with gpuenv's sessions, a
``tasks.py`` with gpuenv's invoke collection, a "GPU environment" section of the
README and the ``.gitignore`` lines for ``.venv/`` and ``.nox/``. It never
overwrites or edits what exists, except to append to README.md, pyproject.toml
and .gitignore, and only when they lack gpuenv's part: every file it leaves
alone is reported with the reason and, for a noxfile or tasks file that exists,
the lines to add by hand.

The noxfile imports nothing of gpuenv (``nox -l`` works with nox alone): each
session installs gpuenv from ``$GPUENV_REQUIREMENT``, else from where the
gpuenv that ran ``init`` came from (its install record: a checkout, a git URL,
a version). The tasks file takes gpuenv's invoke collection in one line.

All or nothing: every file is rendered and validated (the recipe is parsed by
the recipe loader) and every target checked (:func:`gpuenv.outputs.path_inside`:
inside the repository, not a link that leads out of it or nowhere, not a folder,
not read-only) before the first is written; each is then written whole (an
append too: the new content replaces the file in one rename), and if one fails
those already written are put back (:func:`gpuenv.outputs.write_all`). So bad
input, or a repository whose README.md is a link to a ``.bashrc``, writes
nothing. The texts come from :mod:`gpuenv.init.recipetoml` and
:mod:`gpuenv.init.templates`; this module decides what is written where, and
what is left alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gpuenv.errors import InputError, RecipeError
from gpuenv.init.existing import ExistingTorch, fits
from gpuenv.init.origin import gpuenv_origin
from gpuenv.init.recipetoml import RECIPE_HEADER, RecipeParts, recipe_parts, recipe_toml
from gpuenv.init.report import scan_lines
from gpuenv.init.reposcan import RepoScan, scan_repo
from gpuenv.init.templates import (
    README_HEADING,
    noxfile_addition,
    noxfile_text,
    readme_section,
    tasks_snippet,
    tasks_text,
)
from gpuenv.inputs import UnreadableInput, read_input, read_input_bytes
from gpuenv.load.recipe import PYPROJECT_TABLE, parse_recipe
from gpuenv.outputs import PlannedWrite, path_inside, write_all
from gpuenv.printable import printable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RECIPE_PATH = Path("envs") / "default.toml"
#: What .gitignore must hold so a 5 GB env and nox's envs stay out of git.
GITIGNORE_LINES = (".venv/", ".nox/")


@dataclass(frozen=True)
class Skipped:
    """A file init left alone, why, and what to add by hand (if anything)."""

    path: Path
    reason: str
    snippet: str | None = None


@dataclass(frozen=True)
class InitResult:
    root: Path
    #: Where the recipe is: envs/default.toml or pyproject.toml.
    recipe: Path
    #: Every file created or appended to, in the order written.
    written: tuple[Path, ...]
    skipped: tuple[Skipped, ...]
    #: Those of ``written`` that existed and were appended to (README.md, pyproject.toml, .gitignore).
    appended: tuple[Path, ...] = ()
    #: What the repository declares and where each part went.
    scan: RepoScan | None = field(default=None, compare=False)
    #: The torch of the env init ran in, and whether the recipe takes it (use = "existing") or why not.
    existing: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "recipe": str(self.recipe),
            "written": [str(p) for p in self.written],
            "appended": [str(p) for p in self.appended],
            "skipped": [
                {"path": str(s.path), "reason": s.reason, "snippet": s.snippet} for s in self.skipped
            ],
            "found": [] if self.scan is None else [
                {"place": f.place, "text": f.text, "origin": f.origin, "note": f.note}
                for f in self.scan.findings
            ],
        }


@dataclass(frozen=True)
class _Write:
    """One planned change: create ``path`` with ``text``, or append ``text`` to it."""

    path: Path
    text: str
    append: bool = False


def init_repo(
    root: Path,
    *,
    name: str | None = None,
    into_pyproject: bool = False,
    torch_version: str | None = None,
    extensions: Sequence[str] = (),
    origin: str | None = None,
    here: ExistingTorch | None = None,
) -> InitResult:
    """Write gpuenv's files into the repository at ``root``, from what it declares; skip what exists.

    ``name`` becomes the recipe's ``[env] name``; ``torch_version`` replaces the
    torch the repository pins (default: its pin, else ``>=2.1``); ``extensions``
    are added to the ones found ("flash-attn==2.8.3.post2", a URL or a path);
    ``origin`` is where the written noxfile installs gpuenv from (default: where
    this gpuenv came from). ``here`` is the torch of the env init runs in (a
    container's, a conda env's: :func:`gpuenv.init.existing.torch_in_this_python`):
    unless ``torch_version`` is given or the repository's pin rules it out, the
    recipe takes it as it is (``use = "existing"``). Raises :class:`~gpuenv.errors.RecipeError` for a bad
    version or requirement, and :class:`~gpuenv.errors.InputError` when
    ``into_pyproject`` is asked of a repository without a pyproject.toml
    (creating one would switch pip to PEP 517 builds of the repository) or
    with an ``envs/default.toml``, which would be found before the table.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a directory", hint="run 'gpuenv init' in the repository's root")
    scan = scan_repo(root)
    origin = origin or gpuenv_origin()
    writes: list[_Write] = []
    skipped: list[Skipped] = []
    parts = recipe_parts(scan, name, torch_version, extensions)
    existing = ""
    if here is not None and torch_version is None:
        pinned = scan.torch.text if scan.torch is not None else None
        if fits(here, parts.torch_version if pinned else None):
            parts = replace(parts, existing=here.describe())
            existing = f'{here.describe()} -> [torch] use = "existing" (setup builds into this env)'
        else:
            existing = (f"{here.describe()}: not taken, the repository pins {pinned} "
                        f"(gpuenv setup --python {sys.executable} would refuse it)")
    recipe = _plan_recipe(root, parts, into_pyproject, writes, skipped)
    _plan_new_file(root / "noxfile.py", noxfile_text(origin), "gpu-env", noxfile_addition(origin),
                   writes, skipped)
    _plan_new_file(root / "tasks.py", tasks_text(origin), "invoke_collection", tasks_snippet(origin),
                   writes, skipped)
    _plan_readme(root, recipe.relative_to(root), origin, writes, skipped)
    _plan_gitignore(root, writes, skipped)
    write_all([_checked(root, write) for write in writes])
    return InitResult(root, recipe, tuple(w.path for w in writes), tuple(skipped),
                      appended=tuple(w.path for w in writes if w.append), scan=scan, existing=existing)


def init_text(result: InitResult) -> str:
    """What init found and did, for the front end: where each part went, the files, then what to run."""
    lines: list[str] = []
    if result.existing:
        lines.append(f"this Python: {printable(result.existing)}")
    lines += scan_lines(result.scan) if result.scan is not None else []
    lines += [f"{'appended' if p in result.appended else 'wrote':<8} {printable(_relative(p, result.root))}"
              for p in result.written]
    for skip in result.skipped:
        lines.append(f"skipped  {printable(_relative(skip.path, result.root))}: {printable(skip.reason)}")
        if skip.snippet:
            lines += ["", *("    " + line if line else "" for line in skip.snippet.splitlines()), ""]
    lines.append("next: 'gpuenv plan' shows what setup would install here; 'nox -s gpu-env' sets it up")
    return "\n".join(lines)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# -- the recipe ---------------------------------------------------------------------------


def _plan_recipe(
    root: Path, parts: RecipeParts, into_pyproject: bool, writes: list[_Write], skipped: list[Skipped],
) -> Path:
    if into_pyproject:
        return _plan_pyproject(root, parts, writes, skipped)
    path = root / RECIPE_PATH
    path_inside(root, RECIPE_PATH)  # an envs/ that links out is refused before anything is read through it
    # Paths in a recipe are relative to its directory (envs/); init's are relative to the root.
    text = RECIPE_HEADER + recipe_toml(parts, to_root="..")
    _validate(tomllib.loads(text), path, None)
    if path.exists() and not _is_empty(path):
        skipped.append(Skipped(path, "it exists (gpuenv never overwrites a recipe)"))
    elif _has_gpuenv_table(root / "pyproject.toml"):
        # envs/default.toml is found first: writing it would replace the recipe in use.
        skipped.append(Skipped(path, f"pyproject.toml already holds the recipe ([{PYPROJECT_TABLE}])"))
        return root / "pyproject.toml"
    else:
        writes.append(_Write(path, text))
    return path


def _is_empty(path: Path) -> bool:
    """An empty recipe (what an interrupted init of old left) holds nothing to keep: it is replaced."""
    try:
        return not read_input(path, errors="replace").strip()
    except UnreadableInput:
        return False


def _has_gpuenv_table(pyproject: Path) -> bool:
    try:
        tool = tomllib.loads(read_input(pyproject)).get("tool")
    except (UnreadableInput, tomllib.TOMLDecodeError):
        return False
    return isinstance(tool, dict) and "gpuenv" in tool


def _plan_pyproject(root: Path, parts: RecipeParts, writes: list[_Write], skipped: list[Skipped]) -> Path:
    path = root / "pyproject.toml"
    if not path.is_file():
        raise InputError(
            f"{path} does not exist; gpuenv init adds its [{PYPROJECT_TABLE}] table to an existing one",
            hint="run 'gpuenv init' without --pyproject to write envs/default.toml instead",
        )
    try:
        existing = read_input(path, universal_newlines=True)
    except UnreadableInput as exc:
        raise RecipeError(path, None, exc.problem) from None
    table = recipe_toml(parts, table=PYPROJECT_TABLE, to_root=".")
    text = _separator(existing) + table
    try:
        current = tomllib.loads(existing)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(path, None, f"not valid TOML: {exc}") from None
    if isinstance(current.get("tool"), dict) and "gpuenv" in current["tool"]:
        skipped.append(Skipped(path, f"it already has a [{PYPROJECT_TABLE}] table"))
        return path
    if (root / RECIPE_PATH).exists():
        raise InputError(
            f"{root / RECIPE_PATH} exists and is found before pyproject.toml's [{PYPROJECT_TABLE}]: "
            "the table would never be used",
            hint="keep envs/default.toml (run 'gpuenv init' without --pyproject), or remove it first",
        )
    merged = _loads_or_error(path, existing + text)
    _validate(merged["tool"]["gpuenv"], path, PYPROJECT_TABLE)
    writes.append(_Write(path, text, append=True))
    return path


def _loads_or_error(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # e.g. `tool = { … }` as an inline table, which no later [tool.x] may extend.
        raise RecipeError(path, PYPROJECT_TABLE, f"cannot be appended to this file: {exc}",
                          hint="add the table by hand, or run 'gpuenv init' without --pyproject") from None


def _validate(data: dict[str, Any], path: Path, table: str | None) -> None:
    """Raise the recipe loader's own error if what init would write is not a valid recipe."""
    parse_recipe(data, path, table)


# -- noxfile, tasks, README, .gitignore -------------------------------------------------------------


def _plan_new_file(
    path: Path, text: str, marker: str, snippet: str, writes: list[_Write], skipped: list[Skipped]
) -> None:
    if not path.exists():
        writes.append(_Write(path, text))
        return
    if marker in _existing_text(path):
        skipped.append(Skipped(path, f"it exists and already mentions {marker!r}"))
        return
    skipped.append(Skipped(path, "it exists; add this by hand", snippet))


def _plan_readme(root: Path, recipe: Path, origin: str, writes: list[_Write], skipped: list[Skipped]) -> None:
    path = root / "README.md"
    section = readme_section(recipe, origin)
    if not path.exists():
        # A folder name that is not UTF-8 becomes a title with replacement characters.
        title = os.fsencode(root.resolve().name).decode("utf-8", "replace")
        writes.append(_Write(path, f"# {title}\n\n{section}"))
        return
    existing = _existing_text(path)
    if any(line.strip() == README_HEADING for line in existing.splitlines()):
        skipped.append(Skipped(path, f"it already has a '{README_HEADING}' section"))
        return
    writes.append(_Write(path, _separator(existing) + section, append=True))


def _plan_gitignore(root: Path, writes: list[_Write], skipped: list[Skipped]) -> None:
    """Append the env's and nox's folders to .gitignore (never replacing what is there)."""
    path = root / ".gitignore"
    existing = _existing_text(path)
    present = {line.strip().rstrip("/").lstrip("/") for line in existing.splitlines()}
    missing = [line for line in GITIGNORE_LINES if line.rstrip("/") not in present]
    if not missing:
        skipped.append(Skipped(path, f"it already ignores {', '.join(GITIGNORE_LINES)}"))
        return
    text = "# gpuenv: the GPU environment and nox's session envs\n" + "".join(f"{m}\n" for m in missing)
    writes.append(_Write(path, _separator(existing) + text if existing else text, append=path.exists()))


def _existing_text(path: Path) -> str:
    """What a file init searches or appends to holds, as open() reads it ("" when there is none)."""
    try:
        return read_input(path, errors="replace", universal_newlines=True)
    except UnreadableInput as exc:
        if exc.missing:
            return ""
        raise InputError(f"cannot read {path}: {exc.problem}",
                         hint="gpuenv init reads it before adding to it: make it a readable file, "
                         "or move it aside") from None


def _separator(existing: str) -> str:
    """What puts one blank line between ``existing`` text and what is appended to it."""
    if not existing or existing.endswith("\n\n"):
        return ""
    return "\n" if existing.endswith("\n") else "\n\n"


def _checked(root: Path, write: _Write) -> PlannedWrite:
    """``write`` as the bytes to put at its checked place: an append is the file's own bytes (its
    encoding and line ends kept; the text added gets the same line ends) with the text after them."""
    target = path_inside(root, write.path.relative_to(root))
    try:
        text = write.text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{write.path}: what gpuenv init would write there holds a name that is not UTF-8 "
                         "(a file or folder name of the repository)",
                         hint="rename it, or write the file by hand") from None
    if not write.append and not os.path.lexists(target):
        return PlannedWrite(target, text)
    try:
        previous = read_input_bytes(target)
    except UnreadableInput as exc:
        raise InputError(f"cannot read {write.path}: {exc.problem}",
                         hint="gpuenv init reads it before adding to it: make it a readable file, "
                         "or move it aside") from None
    if not write.append:  # an empty recipe, replaced
        return PlannedWrite(target, text, previous=previous)
    if b"\r\n" in previous:
        text = text.replace(b"\n", b"\r\n")
    return PlannedWrite(target, previous + text, previous=previous)
