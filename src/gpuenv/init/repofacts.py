"""The repository's own build code: local extension folders, and whether its setup.py compiles CUDA.

A folder below the root whose ``setup.py`` builds a C++/CUDA extension (or whose
pyproject needs torch to build) is a local extension. It goes into the recipe
only in a form the recipe loader accepts: ``./csrc/ext``, else ``NAME @ ./folder``
for a folder whose name is no distribution name (``conv_v2+fast``), else
``NAME @ file:…`` with the path quoted (``my ext``); each form is checked by
the loader itself before it is kept.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

from packaging.utils import canonicalize_name

from gpuenv.errors import RecipeError
from gpuenv.init.placing import Finding
from gpuenv.init.recipepaths import from_root
from gpuenv.load.treemeta import read_tree, small_text
from gpuenv.load.treewalk import subfolders
from gpuenv.plan.sourcetrees import SetupFacts

_EXTENSION_MARKERS = re.compile(r"CUDAExtension|CppExtension|torch\.utils\.cpp_extension|BuildExtension")
_MAX_DEPTH = 4
_MAX_ENTRIES = 50_000


def extension_folders(root: Path, skipped: set[Path]) -> list[Path]:
    """Folders below ``root`` whose setup.py builds a C++/CUDA extension, or whose build needs torch."""
    found = []
    seen = 0
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        depth = len(here.relative_to(root).parts)
        seen += len(dirs) + len(files)
        dirs[:] = subfolders(here, dirs, depth, max_depth=_MAX_DEPTH, skipped=skipped, hidden=False)
        if here != root:
            if "setup.py" in files and _EXTENSION_MARKERS.search(small_text(here / "setup.py") or ""):
                dirs[:] = []  # an extension's own subfolders are its sources
                found.append(here)
            elif "pyproject.toml" in files and re.search(
                r"requires\s*=\s*\[[^\]]*[\"']torch", small_text(here / "pyproject.toml") or ""
            ):
                dirs[:] = []
                found.append(here)
        if seen > _MAX_ENTRIES:
            break
    return found


def local_extension_findings(root: Path, folders: list[Path]) -> tuple[list[Finding], dict[Path, str]]:
    """A finding per folder, and folder → what the recipe names it by (only forms the loader accepts).

    The recipe lists each distribution once: a folder whose setup.py names a distribution an earlier
    folder already builds (the same op copied into several sub-projects) is a copy, named and left out;
    a folder whose own name another folder's entry already takes is written as ``NAME @ ./folder``."""
    findings: list[Finding] = []
    named: dict[Path, str] = {}
    declared: dict[str, str] = {}  # distribution → the folder that builds it
    taken: set[str] = set()  # the names the recipe's entries so far go by
    for folder in folders:
        rel = folder.relative_to(root).as_posix()
        origin = f"{rel}/{'setup.py' if (folder / 'setup.py').is_file() else 'pyproject.toml'}"
        name = read_tree(folder).name
        if name is not None and name in declared:
            findings.append(
                Finding(
                    "unplaced",
                    f"./{rel}",
                    origin,
                    f"a copy of ./{declared[name]}: the same distribution ({name}), which one env holds "
                    "once; the recipe builds that one",
                )
            )
            continue
        text, refusal = _recipe_form(root, folder, rel, name, taken)
        if text is None:
            findings.append(
                Finding(
                    "unplaced",
                    f"./{rel}",
                    origin,
                    f"a C++/CUDA extension of this repo that the recipe cannot name: {refusal}",
                )
            )
            continue
        if name is not None:
            declared[name] = rel
        taken.add(_entry_name(text, folder))
        named[folder.resolve()] = text
        findings.append(Finding("local-extension", text, origin, "a C++/CUDA extension of this repo"))
    return findings, named


def _recipe_form(
    root: Path, folder: Path, rel: str, declared: str | None, taken: set[str]
) -> tuple[str | None, str]:
    name = declared or str(
        canonicalize_name(re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-._") or "extension")
    )
    forms = [f"./{rel}", f"{name} @ ./{rel}", f"{name} @ file:{quote(rel)}"]
    refusal = ""
    for form in forms:
        if _entry_name(form, folder) in taken:
            refusal = f"{_entry_name(form, folder)} is the name of another extension folder's entry"
            continue
        refusal = loader_refusal(root, {"extensions": [{"requirement": _from_envs(form)}]}) or ""
        if not refusal:
            return form, ""
    return None, refusal


def _entry_name(form: str, folder: Path) -> str:
    """The name the recipe loader gives an entry: NAME of ``NAME @ …``, else the folder's own name."""
    name, at, _ = form.partition(" @ ")
    return str(canonicalize_name(name if at else folder.name))


def _from_envs(form: str) -> str:
    """A root-relative form as the recipe in envs/ writes it (the writer's own rewriting)."""
    return from_root(form, "..")


def loader_refusal(root: Path, table: dict[str, object]) -> str | None:
    """Why the recipe loader would refuse ``table`` in envs/default.toml of ``root``, or None."""
    from gpuenv.load.recipe import parse_recipe

    data = {"torch": {"version": ">=2"}, **table}
    try:
        parse_recipe(data, root / "envs" / "default.toml")
    except RecipeError as exc:
        return str(exc).split(": ", 1)[-1]
    return None


def repo_build_findings(root: Path, setup: SetupFacts | None) -> list[Finding]:
    """What the repository's own setup.py builds, as findings (its CUDA build, the conditions on it)."""
    if setup is None:
        return []
    if setup.problem is not None:
        return [Finding("unplaced", "setup.py", "setup.py", f"not read: {setup.problem}")]
    if not setup.builds_cuda:
        return []
    line = setup.cuda_lines[0]
    notes = [
        "the repository builds a CUDA extension itself: installed without isolation, against the env's "
        "torch, with the plan's CUDA_HOME and arch list"
    ]
    if setup.switches:
        notes.append(
            "setup gives it "
            + ", ".join(f"{k}={v}" for k, v in setup.switches)
            + " so it compiles CUDA without a visible GPU"
        )
    needs = setup.needs_visible_gpu
    if needs:
        notes.append(f"{needs}: on a machine without a visible GPU it builds no CUDA code")
    if setup.swallowed:
        notes.append(f"a try/except at setup.py:{setup.swallowed[0]} hides a failed CUDA build")
    return [Finding("repo", ".", f"setup.py:{line}", "; ".join(notes))]
