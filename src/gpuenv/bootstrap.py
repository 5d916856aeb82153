"""``gpuenv init``: put gpuenv into an existing research repository.

:func:`init_repo` writes a recipe (``envs/default.toml``, or a
``[tool.gpuenv]`` table appended to the repository's pyproject.toml), a
``noxfile.py`` with a ``gpu-env`` session, a ``tasks.py`` with a ``setup``
task and a "GPU environment" section of the README. It never overwrites or
edits what exists, except to append to README.md and pyproject.toml, and only
when they lack gpuenv's part: every file it leaves alone is reported with the
reason and, for a noxfile or tasks file that exists, the lines to add by hand.

The noxfile and the tasks file are a few lines that import
:mod:`gpuenv.integrations`, so the repository keeps no copy of gpuenv's logic.
The noxfile installs gpuenv into its session from ``$GPUENV_REQUIREMENT``
(default ``gpuenv``): a version pin, a git URL or the path of a checkout.

Everything is rendered and validated (the recipe is parsed by the recipe
loader) before the first file is written, so bad input writes nothing.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuenv.errors import InputError, RecipeError
from gpuenv.recipe import PYPROJECT_TABLE, parse_recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RECIPE_PATH = Path("envs") / "default.toml"
README_HEADING = "## GPU environment"
REQUIREMENT_VARIABLE = "GPUENV_REQUIREMENT"

NOX_SESSION = f'''\
@nox.session(name="gpu-env", default=False)
def gpu_env(session: nox.Session) -> None:
    """Set up the GPU environment in .venv (args after -- go to `gpuenv setup`)."""
    nox_gpu_env(session, requirement=os.environ.get("{REQUIREMENT_VARIABLE}", "gpuenv"))
'''

NOXFILE = f'''\
"""nox sessions: `nox -s gpu-env` sets up the GPU environment (with gpuenv)."""

from __future__ import annotations

import os

import nox
from gpuenv.integrations import nox_gpu_env

# The session installs gpuenv from ${REQUIREMENT_VARIABLE} (a version, a git URL or a path;
# default: gpuenv from the package index).


{NOX_SESSION}'''

INVOKE_TASK = '''\
@task(help={
    "recipe": "recipe file (default: envs/default.toml, else [tool.gpuenv])",
    "cuda": "force the torch variant: 12.6, cu126 or cpu",
    "gpu": "build for these GPUs instead of the probed ones (H100, 8xA100…)",
    "venv": "target virtual environment (default: .venv)",
    "dry_run": "print the commands and change nothing",
})
def setup(c, recipe=None, cuda=None, gpu=None, venv=None, dry_run=False):
    """Set up the GPU environment (runs `gpuenv setup`)."""
    invoke_setup(c, recipe=recipe, cuda=cuda, gpu=gpu, venv=venv, dry_run=dry_run)
'''

TASKS = f'''\
"""invoke tasks: `invoke setup` sets up the GPU environment (with gpuenv)."""

from gpuenv.integrations import invoke_setup
from invoke import task


{INVOKE_TASK}'''


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
    #: Those of ``written`` that existed and were appended to (README.md, pyproject.toml).
    appended: tuple[Path, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "recipe": str(self.recipe),
            "written": [str(p) for p in self.written],
            "appended": [str(p) for p in self.appended],
            "skipped": [
                {"path": str(s.path), "reason": s.reason, "snippet": s.snippet} for s in self.skipped
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
    torch_version: str = "2.14.*",
    extensions: Sequence[str] = (),
) -> InitResult:
    """Write gpuenv's files into the repository at ``root``; skip (and say why) what exists.

    ``name`` becomes the recipe's ``[env] name``; ``extensions`` are
    requirements ("flash-attn==2.8.3.post2", a URL or a path) for its
    ``[[extensions]]``. Raises :class:`~gpuenv.errors.RecipeError` for a bad
    version or requirement, and :class:`~gpuenv.errors.InputError` when
    ``into_pyproject`` is asked of a repository without a pyproject.toml
    (creating one would switch pip to PEP 517 builds of the repository) or
    with an ``envs/default.toml``, which would be found before the table.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a directory", hint="run 'gpuenv init' in the repository's root")
    writes: list[_Write] = []
    skipped: list[Skipped] = []
    recipe = _plan_recipe(root, name, into_pyproject, torch_version, extensions, writes, skipped)
    _plan_new_file(root / "noxfile.py", NOXFILE, "gpu-env", NOX_SESSION, writes, skipped)
    _plan_new_file(root / "tasks.py", TASKS, "def setup(", INVOKE_TASK, writes, skipped)
    _plan_readme(root, recipe.relative_to(root), writes, skipped)
    for write in writes:
        _apply(write)
    return InitResult(root, recipe, tuple(w.path for w in writes), tuple(skipped),
                      appended=tuple(w.path for w in writes if w.append))


def init_text(result: InitResult) -> str:
    """What init did, for the front end: one line per file, hand-edits indented, then what to run."""
    lines = [f"{'appended' if p in result.appended else 'wrote':<8} {_relative(p, result.root)}"
             for p in result.written]
    for skip in result.skipped:
        lines.append(f"skipped  {_relative(skip.path, result.root)}: {skip.reason}")
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


def recipe_toml(
    *, torch_version: str, extensions: Sequence[str] = (), name: str | None = None, table: str = ""
) -> str:
    """The recipe's TOML; ``table`` ("tool.gpuenv") prefixes every table, for a pyproject.toml."""
    prefix = f"{table}." if table else ""
    lines = []
    if name is not None:
        lines += [f"[{prefix}env]", f"name = {_toml_string(name)}", ""]
    lines += [
        f"[{prefix}torch]",
        f"version = {_toml_string(torch_version)}  # a version (\"2.14.1\") or a specifier (\"2.14.*\")",
        'cuda = "auto"  # the CUDA build that runs on this machine\'s GPUs and driver; or "12.6", "cpu"',
    ]
    for requirement in extensions:
        lines += ["", f"[[{prefix}extensions]]  # built without isolation, against this torch, for your GPUs",
                  f"requirement = {_toml_string(requirement)}"]
    lines += ["", f"# [{prefix}packages]", '# requirements = ["transformers>=4.40"]']
    return "\n".join(lines) + "\n"


def _relative_to(directory: Path, root: Path, requirement: str) -> str:
    """A requirement that is a relative path from ``root``, made relative to ``directory``.

    Paths in a recipe are relative to the recipe's directory; on the command
    line they are relative to the repository.
    """
    if requirement not in (".", "..") and not requirement.startswith(("./", "../")):
        return requirement
    target = os.path.relpath((root / requirement).resolve(), directory.resolve())
    return target if target.startswith("..") else "./" + target


def _toml_string(text: str) -> str:
    # A JSON string with ASCII escapes is a valid TOML basic string.
    return json.dumps(text)


def _plan_recipe(
    root: Path, name: str | None, into_pyproject: bool, torch_version: str, extensions: Sequence[str],
    writes: list[_Write], skipped: list[Skipped],
) -> Path:
    if into_pyproject:
        return _plan_pyproject(root, name, torch_version, extensions, writes, skipped)
    path = root / RECIPE_PATH
    extensions = [_relative_to(path.parent, root, requirement) for requirement in extensions]
    text = _RECIPE_HEADER + recipe_toml(torch_version=torch_version, extensions=extensions, name=name)
    _validate(tomllib.loads(text), path, None)
    if path.exists():
        skipped.append(Skipped(path, "it exists (gpuenv never overwrites a recipe)"))
    elif _has_gpuenv_table(root / "pyproject.toml"):
        # envs/default.toml is found first: writing it would replace the recipe in use.
        skipped.append(Skipped(path, f"pyproject.toml already holds the recipe ([{PYPROJECT_TABLE}])"))
        return root / "pyproject.toml"
    else:
        writes.append(_Write(path, text))
    return path


def _has_gpuenv_table(pyproject: Path) -> bool:
    try:
        tool = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool")
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return isinstance(tool, dict) and "gpuenv" in tool


_RECIPE_HEADER = """\
# This repository's GPU environment, for gpuenv: `gpuenv plan` shows what it would
# install on this machine, `nox -s gpu-env` (or `gpuenv setup`) sets it up in .venv.

"""


def _plan_pyproject(
    root: Path, name: str | None, torch_version: str, extensions: Sequence[str],
    writes: list[_Write], skipped: list[Skipped],
) -> Path:
    path = root / "pyproject.toml"
    if not path.is_file():
        raise InputError(
            f"{path} does not exist; gpuenv init adds its [{PYPROJECT_TABLE}] table to an existing one",
            hint="run 'gpuenv init' without --pyproject to write envs/default.toml instead",
        )
    existing = path.read_text(encoding="utf-8")
    table = recipe_toml(torch_version=torch_version, extensions=extensions, name=name, table=PYPROJECT_TABLE)
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


# -- noxfile, tasks, README --------------------------------------------------------------------


def _plan_new_file(
    path: Path, text: str, marker: str, snippet: str, writes: list[_Write], skipped: list[Skipped]
) -> None:
    if not path.exists():
        writes.append(_Write(path, text))
        return
    if marker in path.read_text(encoding="utf-8", errors="replace"):
        skipped.append(Skipped(path, f"it exists and already mentions {marker!r}"))
        return
    imports = "import os\n\nfrom gpuenv.integrations import nox_gpu_env" if path.name == "noxfile.py" \
        else "from gpuenv.integrations import invoke_setup\nfrom invoke import task"
    skipped.append(Skipped(path, "it exists; add this by hand", f"{imports}\n\n\n{snippet}"))


def readme_section(recipe: Path) -> str:
    """The README section: what the recipe is and the commands that use it."""
    where = f"the `[{PYPROJECT_TABLE}]` table of `pyproject.toml`" if recipe.name == "pyproject.toml" \
        else f"`{recipe.as_posix()}`"
    return f"""\
{README_HEADING}

The GPU environment of this repository is described by {where} and set up by
[gpuenv](https://pypi.org/project/gpuenv/): it picks the PyTorch CUDA build for this
machine's GPUs and driver, and builds the extensions against that torch.

```
pip install 'gpuenv[frontends]'   # once: gpuenv, with nox and invoke
gpuenv probe                      # what this machine has
gpuenv plan                       # what setup would install here
nox -s gpu-env                    # set up .venv (or: invoke setup, gpuenv setup)
gpuenv doctor --venv .venv        # check that it runs on these GPUs
```

The nox session installs gpuenv from `${REQUIREMENT_VARIABLE}` (default `gpuenv`; a
version, a git URL or a path). Arguments after `--` go to `gpuenv setup`, e.g.
`nox -s gpu-env -- --gpu H100` to build for a GPU this machine does not have.
"""


def _plan_readme(root: Path, recipe: Path, writes: list[_Write], skipped: list[Skipped]) -> None:
    path = root / "README.md"
    section = readme_section(recipe)
    if not path.exists():
        writes.append(_Write(path, f"# {root.resolve().name}\n\n{section}"))
        return
    existing = path.read_text(encoding="utf-8", errors="replace")
    if any(line.strip() == README_HEADING for line in existing.splitlines()):
        skipped.append(Skipped(path, f"it already has a '{README_HEADING}' section"))
        return
    writes.append(_Write(path, _separator(existing) + section, append=True))


def _separator(existing: str) -> str:
    """What puts one blank line between ``existing`` text and what is appended to it."""
    if not existing or existing.endswith("\n\n"):
        return ""
    return "\n" if existing.endswith("\n") else "\n\n"


def _apply(write: _Write) -> None:
    write.path.parent.mkdir(parents=True, exist_ok=True)
    # "x": a file that appeared since it was checked is still not overwritten.
    with open(write.path, "a" if write.append else "x", encoding="utf-8") as handle:
        handle.write(write.text)
