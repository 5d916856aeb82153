"""What init reads across files: pins that cannot hold together, the project files, optional folders.

- Conflicts: two pins of one distribution in different sources that no version
  satisfies both (``numpy==1.23.5`` and ``numpy>=1.25``), among the files a user
  installs together: the install files, extras, test and dev lists, the package
  metadata, its build requirements (built without isolation, they share the env)
  and the metadata of the repository's sub-projects. Locks, other tools' frozen
  envs and other platforms' files are records, not checked.
- Project files: the root pyproject.toml (the package metadata) and each
  sub-project's own project file get their line in the files list.
- Optional local extension folders: where the install files name some of the
  repository's extension folders (``-e libs/pointops``), the others are built by
  hand when needed; folders under ``projects/``, ``examples/``, ``tools/`` and the
  like are too. They are listed, not put into the recipe.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from gpuenv.init.metadata import Metadata, read_metadata
from gpuenv.init.pathwords import words
from gpuenv.init.placing import Finding
from gpuenv.init.requirements_files import FileAccount, ReadFile, relative
from gpuenv.plan.pins import conflict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Roles of requirements files installed together with the repository (or with each other).
_TOGETHER = ("install", "per-cuda", "extra", "test", "dev")
#: Sub-projects whose metadata is read for conflicts, at most.
_MAX_SUBPROJECTS = 50
#: Top folders whose extension folders are side projects, built by hand.
_SIDE_FOLDERS = {
    "projects",
    "project",
    "examples",
    "example",
    "demo",
    "demos",
    "tools",
    "scripts",
    "benchmarks",
    "benchmark",
    "tests",
    "test",
    "docs",
    "playground",
    "contrib",
    "experimental",
}


class _Pin(NamedTuple):
    """A version pin installed together with the repository, and where it is written."""

    name: str
    spec: str
    text: str
    #: "requirements.txt:3", "pyproject.toml [project] dependencies"...
    origin: str
    #: Installed only with an extra, an optional list or a sub-project: not by the install itself.
    optional: bool

    @property
    def source(self) -> str:
        """The file the pin is in."""
        return self.origin.split(":")[0]


def conflicts(
    root: Path,
    files: list[ReadFile],
    accounts: list[FileAccount],
    meta: Metadata,
    subprojects: set[str],
    known: list[str],
) -> list[str]:
    """Conflicts among what is installed together, besides ``known`` (those placing already reported)."""
    roles = {a.path: a for a in accounts}
    pins: dict[str, list[_Pin]] = {}
    for pin in _pins(root, files, roles, meta, subprojects):
        pins.setdefault(pin.name, []).append(pin)
    reported = {str(canonicalize_name(k.split(":", 1)[0])) for k in known}
    found = []
    for name, entries in pins.items():
        if name in reported:
            continue
        # The clash that names the install itself first: it holds whatever else is chosen.
        clash = min(
            (
                (a, b)
                for i, a in enumerate(entries)
                for b in entries[i + 1 :]
                if a.source != b.source and conflict(a.spec, b.spec)
            ),
            key=lambda pair: pair[0].optional + pair[1].optional,
            default=None,
        )
        if clash is not None:
            a, b = clash
            found.append(
                f"{name}: {a.text} ({a.origin}) against {b.text} ({b.origin}): they cannot be installed "
                "together"
            )
    return found


def _pins(
    root: Path, files: list[ReadFile], roles: dict[str, FileAccount], meta: Metadata, subprojects: set[str]
) -> Iterator[_Pin]:
    """Every pin installed together with the repository."""
    for f in files:
        account = roles.get(f.rel)
        if f.parsed is None or account is None or account.role not in _TOGETHER:
            continue
        for line in f.parsed.requirements:
            if line.name and line.parsed is not None and line.parsed.specifier:
                origin = f"{relative(root, line.path)}:{line.lineno}"
                optional = account.role not in ("install", "per-cuda")
                yield _Pin(line.name, line.parsed.specifier, line.text, origin, optional)
    for declared in meta.requirements:
        yield from _declared(declared.text, declared.origin, declared.extra is not None)
    for text in meta.build_requires:
        origin = "pyproject.toml [build-system] requires (shares the env: no isolation)"
        yield from _declared(text, origin, False)
    for sub in sorted(subprojects)[:_MAX_SUBPROJECTS]:
        other = read_metadata(root / sub)
        for declared in other.requirements:
            if declared.extra is None:
                yield from _declared(declared.text, f"{sub}/{declared.origin}", True)


def _declared(text: str, origin: str, optional: bool) -> Iterator[_Pin]:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return
    if req.specifier and not req.url:
        yield _Pin(str(canonicalize_name(req.name)), str(req.specifier), text, origin, optional)


def project_accounts(root: Path, subprojects: set[str], local_folders: set[str]) -> list[FileAccount]:
    """A line for the root pyproject.toml, each sub-project's project file and the pyproject twins of a
    requirements/ folder (poetry's), which init reads for what they declare, not as requirements files."""
    found: list[FileAccount] = []
    if _has_project_table(root / "pyproject.toml"):
        found.append(
            FileAccount(
                "pyproject.toml",
                "install",
                "the package metadata ([project]): installed with the repository itself",
                used=True,
            )
        )
    for sub in sorted(subprojects - local_folders):
        name = "pyproject.toml" if (root / sub / "pyproject.toml").is_file() else "setup.py"
        found.append(
            FileAccount(
                f"{sub}/{name}",
                "subproject",
                f"{sub}/ is a project of its own: not part of the repository's install",
            )
        )
    for folder in ("requirements", "requirement", "reqs"):
        for path in sorted((root / folder).glob("pyproject*.toml")) if (root / folder).is_dir() else []:
            name_words = [w for w in words(path.name) if w not in ("pyproject", "toml")]
            role = (
                "dev" if {"dev", "test", "lint"} & set(name_words) else ("extra" if name_words else "install")
            )
            found.append(
                FileAccount(
                    relative(root, path),
                    role,
                    "a pyproject twin of the requirements files (poetry's): read as its requirements file is",
                )
            )
    return found


def _has_project_table(path: Path) -> bool:
    from gpuenv.inputs import UnreadableInput, read_input

    try:
        return "project" in tomllib.loads(read_input(path, limit=1 << 20))
    except (UnreadableInput, tomllib.TOMLDecodeError, RecursionError, ValueError):
        return False


def optional_folders(root: Path, findings: list[Finding]) -> list[Finding]:
    """Local extension folders the install files do not name, where they name others, or that sit in
    a side folder: listed ("left"), not built."""
    named = {f.text for f in findings if f.place == "local-extension" and f.note.startswith("found as")}
    out = []
    for f in findings:
        folder_finding = f.place == "local-extension" and not f.note.startswith("found as")
        side = f.text.removeprefix("./").split("/", 1)[0].lower() in _SIDE_FOLDERS
        if folder_finding and f.text not in named and (named or side):
            why = (
                "the install files name other extension folders, not this one"
                if named
                else f"a side project ({f.text.removeprefix('./').split('/', 1)[0]}/)"
            )
            f = Finding(
                "left",
                f.text,
                f.origin,
                f"a local extension built by hand when needed ({why}): add it to [[extensions]] to build it",
            )
        out.append(f)
    return out
