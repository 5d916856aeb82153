"""What a research repository already declares, sorted the way a recipe needs it.

``gpuenv init`` reads ``requirements*.txt`` (following ``-r``), ``pyproject.toml``
(``[project]`` dependencies, extras, ``requires-python``), ``environment.yml``
(python, pytorch, pytorch-cuda / cudatoolkit, its ``pip:`` list), ``setup.py`` /
``setup.cfg`` install requirements where they are static, ``.gitmodules``, and
the folders below the root whose setup.py builds a C++/CUDA extension. Every
finding keeps its file and line and is sorted into: torch, the packages paired
with torch, the extensions to build without isolation (catalog entries and
local extension folders), the repository itself, ordinary packages, and what
could not be placed (with why). Nothing is executed and nothing is written.
"""

from __future__ import annotations

import ast
import configparser
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from gpuenv.errors import InputError
from gpuenv.plan import catalog, knowledge
from gpuenv.plan.requirements import read_requirements
from gpuenv.plan.treemeta import small_text, submodule_paths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Place = Literal["torch", "paired", "extension", "local-extension", "repo", "package", "python", "unplaced"]

#: Folders never searched for extension sources.
_SKIPPED_DIRS = frozenset({".git", ".venv", "venv", ".nox", ".tox", "node_modules", "build", "dist",
                           "__pycache__", ".mypy_cache", ".pytest_cache", "site-packages", ".eggs"})
_EXTENSION_MARKERS = re.compile(r"CUDAExtension|CppExtension|torch\.utils\.cpp_extension|BuildExtension")
_MAX_DEPTH = 4


@dataclass(frozen=True)
class Finding:
    """One thing the repository declares, where, and where it goes in the recipe."""

    place: Place
    #: What goes into the recipe ("torch==2.0.1", "./submodules/simple-knn", "einops").
    text: str
    #: "requirements.txt:3", "environment.yml:7", "submodules/simple-knn/setup.py".
    origin: str
    note: str = ""


@dataclass(frozen=True)
class RepoScan:
    root: Path
    findings: tuple[Finding, ...] = ()
    #: The requirements files the recipe refers to instead of copying them (relative to root).
    requirement_files: tuple[str, ...] = ()
    #: Extras the repository's pyproject offers.
    extras: tuple[str, ...] = ()
    #: Whether the root is itself an installable project.
    installable: bool = False
    #: Extras its requirements files install it with ("-e .[train]"): the recipe's [repo] extras.
    selected_extras: tuple[str, ...] = ()

    def placed(self, place: Place) -> list[Finding]:
        return [f for f in self.findings if f.place == place]

    @property
    def torch(self) -> Finding | None:
        found = self.placed("torch")
        return found[0] if found else None


@dataclass
class _Scan:
    root: Path
    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    #: Extras the repository's own files install it with ("-e .[train]").
    selected: list[str] = field(default_factory=list)
    seen_names: set[str] = field(default_factory=set)


def scan_repo(root: Path) -> RepoScan:
    """Read what ``root`` declares; raise InputError only for a file that cannot be read at all."""
    root = Path(root).resolve()
    scan = _Scan(root)
    _local_extensions(scan)
    _requirements_files(scan)
    _pyproject(scan)
    _setup_static(scan)
    _environment_yml(scan)
    installable = any((root / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg"))
    return RepoScan(root, tuple(scan.findings), tuple(scan.files), tuple(dict.fromkeys(scan.extras)),
                    installable, tuple(dict.fromkeys(scan.selected)))


# -- sorting one requirement ------------------------------------------------------------------


def _sort(scan: _Scan, text: str, origin: str, *, from_file: bool = False) -> None:
    """Place one requirement line: torch, paired, extension, the repo itself, or a package."""
    stripped = text.strip()
    local = _local_tree(scan, stripped)
    if local is not None:
        tree, extras = local
        if tree == scan.root:
            scan.selected += extras
            scan.findings.append(Finding("repo", "." + (f"[{','.join(extras)}]" if extras else ""), origin,
                                         "the repository itself"))
        elif any(f.place == "local-extension" and (scan.root / f.text).resolve() == tree
                 for f in scan.findings):
            scan.findings.append(Finding("local-extension", "./" + tree.relative_to(scan.root).as_posix(),
                                         origin, "already found as a local extension folder"))
        else:
            scan.findings.append(Finding("package", stripped, origin,
                                         "kept in its requirements file" if from_file else ""))
        return
    try:
        req = Requirement(stripped)
    except InvalidRequirement:
        if not from_file:
            scan.findings.append(Finding("unplaced", stripped, origin, "not a requirement gpuenv can read"))
        else:
            scan.findings.append(Finding("package", stripped, origin, "kept in its requirements file"))
        return
    name = canonicalize_name(req.name)
    if name == "torch":
        scan.findings.append(Finding("torch", stripped, origin))
    elif name in knowledge.paired_packages():
        scan.findings.append(Finding("paired", stripped, origin, f"{name} is paired with the chosen torch"))
    elif catalog.catalog_entry(name).known and name not in scan.seen_names:
        scan.seen_names.add(name)
        scan.findings.append(Finding("extension", stripped, origin, "built without isolation against torch"))
    elif name in scan.seen_names:
        return
    else:
        scan.findings.append(Finding("package", stripped, origin,
                                     "kept in its requirements file" if from_file else ""))


def _local_tree(scan: _Scan, text: str) -> tuple[Path, list[str]] | None:
    """The local tree and extras a line installs ("-e .[train]", "/abs/repo", "./lib"), else None."""
    target = text.removeprefix("-e").strip()
    if "://" in target or not target.startswith(("/", ".", "~")):
        return None
    match = re.fullmatch(r"(.*?)(?:\[([^\]]*)\])?", target)
    assert match is not None
    path = Path(match[1]).expanduser()
    tree = (path if path.is_absolute() else scan.root / path).resolve()
    extras = [e.strip() for e in (match[2] or "").split(",") if e.strip()]
    return tree, extras


# -- requirements files -----------------------------------------------------------------------


def _requirements_files(scan: _Scan) -> None:
    candidates = sorted(scan.root.glob("requirements*.txt")) + sorted(scan.root.glob("requirements/*.txt"))
    included: set[Path] = set()
    for path in candidates:
        if path.resolve() in included:
            continue
        try:
            parsed = read_requirements(path)
        except InputError as exc:
            scan.findings.append(Finding("unplaced", path.name, _rel(scan, path), str(exc)))
            continue
        included.update(line.path.resolve() for line in parsed.requirements)
        scan.files.append(_rel(scan, path))
        for line in parsed.requirements:
            _sort(scan, line.text, f"{_rel(scan, line.path)}:{line.lineno}", from_file=True)
        for line, why in parsed.ignored:
            where = f"{_rel(scan, line.path)}:{line.lineno}"
            scan.findings.append(Finding("unplaced", line.text, where, why))
    # A file included by -r is read through the file that includes it.
    scan.files = [f for f in scan.files if (scan.root / f).resolve() not in included or f == scan.files[0]]


# -- pyproject.toml, setup.py, setup.cfg ----------------------------------------------------------


def _pyproject(scan: _Scan) -> None:
    path = scan.root / "pyproject.toml"
    text = small_text(path)
    if text is None:
        return
    try:
        project = tomllib.loads(text).get("project")
    except tomllib.TOMLDecodeError as exc:
        problem = f"not valid TOML: {exc}"
        scan.findings.append(Finding("unplaced", "pyproject.toml", "pyproject.toml", problem))
        return
    if not isinstance(project, Mapping):
        return
    python = project.get("requires-python")
    if isinstance(python, str):
        scan.findings.append(Finding("python", python, "pyproject.toml [project] requires-python"))
    for dep in project.get("dependencies", []) or []:
        if isinstance(dep, str):
            _sort_dependency(scan, dep, "pyproject.toml [project] dependencies")
    optional = project.get("optional-dependencies", {}) or {}
    if isinstance(optional, Mapping):
        scan.extras += [str(k) for k in optional]
        for extra, deps in optional.items():
            for dep in deps if isinstance(deps, list) else []:
                if isinstance(dep, str):
                    _sort_dependency(scan, dep, f"pyproject.toml [project.optional-dependencies] {extra}")


def _sort_dependency(scan: _Scan, text: str, origin: str) -> None:
    """A dependency of the repository itself: installed with it, unless gpuenv handles it first."""
    before = len(scan.findings)
    _sort(scan, text, origin)
    if len(scan.findings) > before and scan.findings[-1].place == "package":
        last = scan.findings.pop()
        scan.findings.append(Finding("repo", last.text, origin, "installed with the repository itself"))


def _setup_static(scan: _Scan) -> None:
    cfg = small_text(scan.root / "setup.cfg")
    if cfg is not None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(cfg)
            requires = parser.get("options", "install_requires", fallback="")
        except configparser.Error:
            requires = ""
        for line in requires.splitlines():
            if line.strip():
                _sort_dependency(scan, line.strip(), "setup.cfg [options] install_requires")
    text = small_text(scan.root / "setup.py")
    if text is None:
        return
    try:
        module = ast.parse(text)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(module):
        if isinstance(node, ast.keyword) and node.arg == "install_requires" and isinstance(
            node.value, (ast.List, ast.Tuple)
        ):
            for item in node.value.elts:
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    _sort_dependency(scan, item.value, f"setup.py:{item.lineno} install_requires")


# -- environment.yml --------------------------------------------------------------------------


_CONDA_TORCH = {"pytorch": "torch", "torchvision": "torchvision", "torchaudio": "torchaudio"}


def _environment_yml(scan: _Scan) -> None:
    for name in ("environment.yml", "environment.yaml"):
        path = scan.root / name
        text = small_text(path)
        if text is None:
            continue
        for lineno, item, in_pip in _yaml_dependencies(text):
            origin = f"{name}:{lineno}"
            if in_pip:
                _sort(scan, item, origin)
                continue
            match = re.match(r"^([A-Za-z0-9_.-]+)\s*(?:=+|\s)?\s*([0-9][^=\s]*)?", item)
            if match is None:
                continue
            conda, version = match[1].lower(), match[2] or ""
            if conda == "python":
                scan.findings.append(Finding("python", version, origin))
            elif conda in _CONDA_TORCH:
                _sort(scan, f"{_CONDA_TORCH[conda]}{'==' + version if version else ''}", origin)
            elif conda in ("pytorch-cuda", "cudatoolkit", "cuda-toolkit", "cuda-version"):
                scan.findings.append(Finding("torch", f"cuda={version}", origin,
                                             f"conda {conda}: the CUDA variant of torch"))
            elif conda in ("pip", "cpuonly", "nvidia", "setuptools", "wheel"):
                continue
            else:
                scan.findings.append(Finding("unplaced", item, origin,
                                             "a conda package: add its PyPI name to [packages]"))


def _yaml_dependencies(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line, item, inside the pip: list) of an environment.yml's dependencies, without a YAML library."""
    in_deps = in_pip = False
    deps_indent = pip_indent = -1
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if indent == 0:
            in_deps, in_pip = stripped.startswith("dependencies:"), False
            continue
        if not in_deps:
            continue
        if in_pip and indent <= pip_indent:
            in_pip = False
        if stripped.startswith("- pip:") or stripped == "- pip :":
            in_pip, pip_indent = True, indent
            continue
        if stripped.startswith("- "):
            item = stripped[2:].strip().strip("'\"")
            if deps_indent < 0:
                deps_indent = indent
            yield lineno, item, in_pip


# -- local extension folders and submodules ------------------------------------------------------


def _local_extensions(scan: _Scan) -> None:
    submodules = submodule_paths(scan.root / ".gitmodules")
    for path in submodules:
        folder = scan.root / path
        if not folder.is_dir() or not any(folder.iterdir()):
            scan.findings.append(Finding(
                "unplaced", f"./{path}", ".gitmodules",
                "a git submodule that is not checked out: run 'git submodule update --init --recursive', "
                "then 'gpuenv init' again"))
    for folder in _extension_folders(scan.root):
        rel = "./" + folder.relative_to(scan.root).as_posix()
        origin = _rel(scan, folder / ("setup.py" if (folder / "setup.py").is_file() else "pyproject.toml"))
        scan.findings.append(Finding("local-extension", rel, origin, "a C++/CUDA extension of this repo"))


def _extension_folders(root: Path) -> Iterator[Path]:
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        depth = len(here.relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith(".")
                         and depth < _MAX_DEPTH)
        if here == root:
            continue
        if "setup.py" in files and _EXTENSION_MARKERS.search(small_text(here / "setup.py") or ""):
            dirs[:] = []  # an extension's own subfolders are its sources
            yield here
        elif "pyproject.toml" in files and re.search(r"requires\s*=\s*\[[^\]]*[\"']torch",
                                                     small_text(here / "pyproject.toml") or ""):
            dirs[:] = []
            yield here


# -- helpers ------------------------------------------------------------------------------------


def _rel(scan: _Scan, path: Path) -> str:
    try:
        return path.resolve().relative_to(scan.root).as_posix()
    except ValueError:
        return str(path)


def torch_choice(finding: Finding | None, findings: list[Finding]) -> tuple[str | None, str | None]:
    """The recipe's torch version and cuda from the repo's pins ("torch==2.0.1+cu118": "==2.0.1", "cu118")."""
    version: str | None = None
    cuda: str | None = None
    for f in [finding, *findings] if finding is not None else findings:
        if f is None:
            continue
        if f.text.startswith("cuda="):
            release = re.match(r"(\d+\.\d)", f.text.removeprefix("cuda="))
            cuda = cuda or (knowledge.normalize_variant(release[1]) if release else None)
            continue
        try:
            req = Requirement(f.text)
        except InvalidRequirement:
            continue
        if version is None and req.specifier:
            clauses = []
            for spec in req.specifier:
                text = spec.version
                try:
                    parsed = Version(text.removesuffix(".*"))
                except InvalidVersion:
                    parsed = None
                if parsed is not None and parsed.local:
                    cuda = cuda or knowledge.normalize_variant(str(parsed.local))
                    text = parsed.public
                clauses.append(f"{spec.operator}{text}")
            version = str(SpecifierSet(",".join(clauses)))
    return version, cuda
