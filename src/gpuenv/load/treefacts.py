"""What the local source trees of a recipe say before planning: what blocks them, what they need.

Read at every plan (the planner stays pure), from the recipe's ``[repo]`` and
its local ``[[extensions]]``:

- git submodules of the repository (``.gitmodules`` and the git index,
  :mod:`gpuenv.load.gitindex`) that are not checked out: each is a blocker whose
  hint is the ``git submodule update`` line to run, unless the recipe installs
  the same repository by URL; a ``.gitmodules`` entry without a gitlink is
  stale and only noted;
- lines of the recipe's requirements files pip refuses: blockers naming file and line;
- the repository's own ``setup.py`` (:mod:`gpuenv.load.setupscan`): whether it
  builds CUDA and what it needs to do so without a visible GPU;
- uses of APIs a torch release removed in those trees (:mod:`gpuenv.load.sourcecheck`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from gpuenv.errors import SourceTreeError, UnsatisfiableError
from gpuenv.load.gitindex import repo_key, submodules
from gpuenv.load.setupscan import scan_setup
from gpuenv.load.sourcecheck import scan_tree
from gpuenv.load.treemeta import declaring_gitmodules, uninitialised
from gpuenv.plan.recipespec import Recipe
from gpuenv.plan.sourcetrees import RepoTree, SetupFacts, TreeFacts


def recipe_tree(recipe: Recipe) -> TreeFacts:
    blockers: list[UnsatisfiableError] = []
    notes: list[str] = []
    locals_ = {ext.name: ext.path for ext in recipe.extensions if ext.path is not None and ext.path.is_dir()}
    urls = _urls(recipe)
    roots = [recipe.repo.path] if recipe.repo is not None else []
    roots += [_project(recipe.path.parent)]
    roots += [p for p in locals_.values() if (p / ".git").exists()]
    skipped: set[Path] = set(locals_.values())
    for root in dict.fromkeys(roots):
        for sub in submodules(root):
            skipped.add(root / sub.path)
            if sub.state == "stale":
                notes.append(f"{root / '.gitmodules'}: {sub.path} is listed but {sub.why}: ignored")
            elif sub.state in ("empty", "unknown") and not _installed_by_url(sub.url, urls):
                command = f"git -C {shlex.quote(str(root))} submodule update --init --recursive"
                blockers.append(
                    SourceTreeError(
                        f"{root / sub.path} is a git submodule "
                        f"({root / '.gitmodules'}, {sub.origin.split(':')[-1]}) "
                        f"that is not checked out: {sub.why}",
                        hint=f"run: {command}", code="submodule-not-checked-out", path=str(root / sub.path),
                    )
                )
    for ext_name, path in locals_.items():
        if any((path / f).is_file() for f in ("setup.py", "pyproject.toml", "setup.cfg")) or any(
            str(b).startswith(str(path)) for b in blockers
        ):
            continue
        owner = declaring_gitmodules(path.resolve())
        if owner is not None:
            problem = uninitialised(path, owner)
            blockers.append(SourceTreeError(str(problem), hint=problem.hint, code="submodule-not-checked-out",
                                            path=str(path)))
        else:
            blockers.append(
                SourceTreeError(
                    f"{path} (extension {ext_name}) holds no setup.py, pyproject.toml or "
                    "setup.cfg: nothing to build",
                    hint="check the path in the recipe", code="nothing-to-build", path=str(path),
                    name=ext_name,
                )
            )
    for line in recipe.refused:
        blockers.append(
            SourceTreeError(
                f"{line}",
                hint="pip refuses this line too: correct it (a path into a "
                "submodule needs the submodule checked out first)",
                code="requirement-refused", line=str(line),
            )
        )
    for tree_root, facts in _setups(recipe, locals_):
        blockers += _missing_includes(tree_root, facts, skipped)
    hits = {name: scan_tree(path) for name, path in locals_.items()}
    setups = {
        name: scan_setup(path / "setup.py") for name, path in locals_.items() if (path / "setup.py").is_file()
    }
    repo = None
    if recipe.repo is not None and (recipe.repo.path / "setup.py").is_file():
        setup = scan_setup(recipe.repo.path / "setup.py")
        own = scan_tree(recipe.repo.path, skip=frozenset(skipped)) if setup.builds_cuda else ()
        repo = RepoTree(recipe.repo.path, setup, own)
    return TreeFacts(tuple(blockers), tuple(notes), repo, {k: v for k, v in hits.items() if v}, setups)


def _setups(recipe: Recipe, locals_: Mapping[str, Path]) -> list[tuple[Path, SetupFacts]]:
    trees = ([recipe.repo.path] if recipe.repo is not None else []) + list(locals_.values())
    return [(t, scan_setup(t / "setup.py")) for t in dict.fromkeys(trees) if (t / "setup.py").is_file()]


def _missing_includes(tree: Path, facts: SetupFacts, submodule_paths: set[Path]) -> list[UnsatisfiableError]:
    """A folder the setup.py compiles with (``include_dirs``) that the tree lacks, and no submodule brings."""
    found: list[UnsatisfiableError] = []
    for rel, line in facts.include_dirs:
        target = tree / rel
        if target.exists() or any(target == s or s in target.parents for s in submodule_paths):
            continue
        found.append(
            SourceTreeError(
                f"{tree / 'setup.py'}:{line} compiles with the headers of {rel} (include_dirs), "
                "which is not in "
                f"{tree}",
                hint=f"put {rel} in place first (the repository's README says where it comes from)",
                code="headers-missing", path=str(tree / rel), line=f"{tree / 'setup.py'}:{line}",
            )
        )
    return found


def _project(start: Path) -> Path:
    """The project a recipe belongs to: the nearest folder up that is one (a .git, a .gitmodules, project
    files), never beyond it (a home directory under git is not the project)."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if any(
            (directory / f).exists()
            for f in (".git", ".gitmodules", "pyproject.toml", "setup.py", "setup.cfg")
        ):
            return directory
    return start


def _urls(recipe: Recipe) -> list[str]:
    texts = [*recipe.packages, *(ext.requirement for ext in recipe.extensions)]
    return [t for t in texts if "://" in t or t.startswith("git@")]


def _installed_by_url(url: str, urls: list[str]) -> bool:
    """Whether the recipe installs the repository ``url`` names by URL (then the submodule is not needed)."""
    key = repo_key(url)
    return bool(key) and any(repo_key(u) == key for u in urls)
