"""Every requirements file of a repository, found and classified: which ones install it, and why.

Found: files whose name says requirements (``requirements*.txt``,
``dev-requirements.txt``, ``requirements/*.txt``, ``*.in``, ``constraints*.txt``)
anywhere in the repository (bounded depth, vendored and git-submodule folders
left out), the files the package metadata reads, and every file an ``-r`` of
those includes. Each gets one role, with the reason:

- ``install``: the metadata reads it, or it is the repository's own list
  (``requirements.txt``, ``requirements/base.txt``…), or an install file includes it;
- ``extra``: the metadata reads it for an extra, or it names an optional part
  (``requirements-train.txt``);
- ``dev``, ``test``, ``docs``, ``demo``: by its name or folder;
- ``per-cuda``: it pins torch for one CUDA build (``requirements-cu121.txt``, an
  index ``…/whl/cu121`` on its torch line); the one for Linux or the newest CUDA
  gives the torch stack;
- ``other-platform``: Windows, macOS, ROCm, XPU;
- ``lock``: a pip freeze of this repository's environment (many exact pins, a
  name that says lock/frozen), and ``frozen-other-tool``: a pip freeze whose
  pins clash with the install files or whose name names another tool;
- ``subproject``: the list of a folder that is a project of its own; ``tool``:
  the list of a script or tool folder.

Only ``install`` files, and the chosen ``per-cuda`` file, go into the recipe.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from gpuenv.errors import InputError
from gpuenv.init.metadata import Metadata
from gpuenv.init.pathwords import CUDA_WORD, ROLE_WORDS, role_by_words, words
from gpuenv.load.requirements import RequirementsFile, read_requirements
from gpuenv.load.treewalk import subfolders
from gpuenv.plan.pins import conflict

#: Besides what no reader walks: editor settings, run outputs and data, which hold no install files.
NOT_SEARCHED = frozenset({".idea", ".vscode", "wandb", "outputs", "checkpoints", "data", "datasets"})
MAX_DEPTH = 4
#: Directory entries looked at, at most: a repository with more holds data, not install files.
MAX_ENTRIES = 50_000
MAX_FILES = 200

_NAME = re.compile(r"(?i)(^|[-_.])(requirements?|reqs?|constraints?)([-_.]|$)")
_FREEZE_MIN = 25
_STANDARD_WORDS = {
    "requirements",
    "requirement",
    "reqs",
    "req",
    "base",
    "main",
    "core",
    "common",
    "all",
    "full",
    "install",
    "runtime",
    "default",
    "prod",
    "production",
    "minimal",
    "min",
    "optional",
    "pip",
    "txt",
    "in",
    "linux",
    "gpu",
    "cuda",
    "torch",
    "pytorch",
    "py3",
    "python",
    "env",
    "general",
    "basic",
    "std",
    "standard",
}
_INSTALL_NAMES = {
    "requirements",
    "requirement",
    "base",
    "main",
    "core",
    "common",
    "runtime",
    "install",
    "default",
    "prod",
    "production",
    "reqs",
    "req",
    "build",
    "minimal",
    "min",
    "general",
    "basic",
}
_TOOL_FOLDERS = {"tools", "tool", "scripts", "script", "utils", "benchmarks", "eval", "evaluation", ".runpod",
                 "docker", "deploy", "serving"}
#: The roles of lists made for developing the repository, not for using it.
_DEVELOPMENT = ("dev", "test", "docs")
_PLATFORM_WORDS = {"win", "windows", "win32", "win64", "mac", "macos", "osx", "darwin", "rocm", "ipex", "xpu"}


@dataclass(frozen=True)
class FileAccount:
    """One requirements file and what init made of it."""

    path: str
    role: str
    why: str
    #: Whether the recipe installs what it lists (as a file of requirements-files, or through an include).
    used: bool = False
    #: The extra it stands for ("train"), for role "extra".
    extra: str | None = None
    #: The build it pins torch for ("cu121"), for role "per-cuda".
    variant: str | None = None


@dataclass
class ReadFile:
    path: Path
    rel: str
    parsed: RequirementsFile | None
    problem: str | None = None


def discover(root: Path, skipped: set[Path]) -> tuple[list[Path], list[Path]]:
    """(requirements files, conda environment files and pixi manifests) below ``root``, never inside
    ``skipped`` folders."""
    requirements: list[Path] = []
    environments: list[Path] = []
    seen = 0
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        depth = len(here.relative_to(root).parts)
        seen += len(dirs) + len(files)
        dirs[:] = subfolders(here, dirs, depth, max_depth=MAX_DEPTH, skipped=skipped, also=NOT_SEARCHED)
        in_requirements_dir = here.name.lower() in ("requirements", "requirement", "reqs")
        for name in sorted(files):
            lower = name.lower()
            if lower.endswith((".txt", ".in")) and (
                _NAME.search(lower.rsplit(".", 1)[0]) or (in_requirements_dir and lower.endswith(".txt"))
            ):
                requirements.append(here / name)
            elif lower == "pixi.toml" or (
                lower.endswith((".yml", ".yaml")) and re.search(r"(?i)(^|[-_.])(environment|env|conda)", name)
            ):
                environments.append(here / name)
        if seen > MAX_ENTRIES or len(requirements) > MAX_FILES:
            break
    return requirements[:MAX_FILES], environments[:MAX_FILES]


def read_file(root: Path, path: Path) -> ReadFile:
    rel = relative(root, path)
    try:
        parsed = read_requirements(path, base=root, lenient=True)
    except InputError as exc:
        return ReadFile(path, rel, None, str(exc))
    return ReadFile(path, rel, parsed)


def relative(root: Path, path: Path) -> str:
    try:
        return Path(os.path.abspath(path)).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def classify(
    root: Path, files: list[ReadFile], meta: Metadata, project_words: set[str], subprojects: set[str]
) -> list[FileAccount]:
    """The role of each file, install files first."""
    by_rel = {f.rel: f for f in files}
    roles: dict[str, FileAccount] = {}
    for rel, (origin, extra) in meta.files.items():
        if rel in by_rel:
            # An extra named for the tests, the docs or development ("tests", "docs", "dev") is that list.
            side = role_by_words(extra, _DEVELOPMENT) if extra else None
            roles[rel] = FileAccount(
                rel,
                side[0] if side else ("extra" if extra else "install"),
                f"the package metadata reads it ({origin})" + (f" for extra {extra}" if extra else ""),
                used=extra is None,
                extra=extra if side is None else None,
            )
    for f in files:
        if f.rel not in roles:
            roles[f.rel] = _by_name(
                f,
                project_words,
                subprojects,
                has_metadata_files=bool([r for r, (_, e) in meta.files.items() if e is None]),
            )
    _follow_includes(root, files, roles)
    _build_on_development(root, files, roles)
    _freezes(files, roles, project_words)
    _per_cuda(files, roles)
    if not any(a.role == "install" for a in roles.values()):
        _promote_only_list(files, roles)
    order = {"install": 0, "per-cuda": 1, "extra": 2}
    return sorted(roles.values(), key=lambda a: (order.get(a.role, 3), a.path))


def _by_name(
    f: ReadFile, project_words: set[str], subprojects: set[str], *, has_metadata_files: bool
) -> FileAccount:
    rel = f.rel
    parts = rel.split("/")
    folder = "/".join(parts[:-1])
    name_words = words(parts[-1])
    if f.parsed is None:
        return FileAccount(rel, "unreadable", f.problem or "cannot be read")
    if _pins_cuda_stack(f.parsed, name_words):
        return FileAccount(
            rel, "per-cuda", "pins torch for one CUDA build", variant=f.parsed.variants()[0][0]
        )
    said = role_by_words(rel)
    if said is not None:
        return FileAccount(rel, said[0], f"its {said[1]} says {said[0]}")
    for sub in subprojects:
        if rel.startswith(sub + "/"):
            return FileAccount(rel, "subproject", f"the requirements of {sub}/, a project of its own")
    if (
        folder
        and folder.split("/")[0].lower() not in ("requirements", "requirement", "reqs")
        and frozen(f.parsed)
        and not set(words(folder)) <= project_words
    ):
        return FileAccount(
            rel, "subproject", f"a pip freeze of the env of {folder}/, a part with its own env"
        )
    top = folder.split("/")[0].lower()
    own = folder and folder.lower() not in ("requirements", "requirement", "reqs", "env", "envs")
    if own and (top in _TOOL_FOLDERS or not set(words(folder)) & project_words):
        return FileAccount(rel, "tool", f"the list of {folder}/, a part of the repository of its own")
    extra_words = [w for w in name_words if w not in _STANDARD_WORDS]
    if not extra_words or set(extra_words) <= _INSTALL_NAMES | project_words:
        if has_metadata_files:
            return FileAccount(
                rel, "install", "the repository's own list (beside the files the metadata reads)", used=True
            )
        return FileAccount(rel, "install", "the repository's own requirements list", used=True)
    extra = "-".join(extra_words)
    return FileAccount(rel, "extra", f"its name names an optional part ({extra})", extra=extra)


def _pins_cuda_stack(parsed: RequirementsFile, name_words: list[str]) -> bool:
    """A file for one CUDA build: torch from a CUDA index, in a file that is not the repository's main
    list (its name says cuXXX or linux or names a target, or it includes the main list with -r)."""
    if not any(v.startswith("cu") for v, _ in parsed.variants()) or set(name_words) & _PLATFORM_WORDS:
        return False
    if not any(line.name == "torch" for line in parsed.requirements):
        return False
    extra = [w for w in name_words if w not in _STANDARD_WORDS or w == "linux"]
    return bool(CUDA_WORD.search("_".join(name_words)) or parsed.includes or extra)


def _follow_includes(root: Path, files: list[ReadFile], roles: dict[str, FileAccount]) -> None:
    """A file an install file includes (-r) is installed with it."""
    for f in files:
        account = roles.get(f.rel)
        if account is None or account.role not in ("install", "per-cuda") or f.parsed is None:
            continue
        for target, including, lineno in f.parsed.includes:
            rel = relative(root, target)
            current = roles.get(rel)
            why = f"included by {relative(root, including)}:{lineno}"
            if current is None or current.role not in ("install",):
                role = (
                    current.role
                    if current is not None and current.role in ("demo", "per-cuda")
                    else "install"
                )
                roles[rel] = FileAccount(
                    rel, role, why + (f" ({current.why})" if current else ""), used=account.used
                )
            elif why not in current.why:
                roles[rel] = FileAccount(
                    rel,
                    current.role,
                    f"{why}; {current.why}",
                    used=current.used or account.used,
                    extra=current.extra,
                )


def _build_on_development(root: Path, files: list[ReadFile], roles: dict[str, FileAccount]) -> None:
    """A list that includes (-r) a test or dev list is for development too: requirements-benchmark.txt
    starting with -r requirements-test.txt is a developer's env, not an optional part of the install."""
    for f in files:
        account = roles.get(f.rel)
        if account is None or account.role != "extra" or f.parsed is None:
            continue
        if account.why.startswith("the package metadata"):  # an extra of the package stays one
            continue
        for target, _, lineno in f.parsed.includes:
            included = roles.get(relative(root, target))
            if included is not None and included.role in ("test", "dev"):
                roles[f.rel] = FileAccount(
                    f.rel, "dev", f"it includes {included.path} ({f.rel}:{lineno}), a {included.role} list"
                )
                break


def frozen(parsed: RequirementsFile) -> bool:
    """A pip freeze: many lines, nearly all exact pins (or the file: URLs a freeze of a conda env has)."""
    lines = parsed.requirements
    exact = [
        r
        for r in lines
        if r.parsed is not None
        and (r.parsed.specifier.startswith("==") or (r.parsed.url or "").startswith("file:"))
    ]
    return len(lines) >= _FREEZE_MIN and len(exact) >= 0.9 * len(lines)


def _freezes(files: list[ReadFile], roles: dict[str, FileAccount], project_words: set[str]) -> None:
    installed: dict[str, tuple[str, str, str]] = {}
    for f in files:
        if roles[f.rel].role == "install" and f.parsed is not None and not frozen(f.parsed):
            for line in f.parsed.requirements:
                if line.name and line.parsed is not None:
                    installed.setdefault(
                        line.name, (line.parsed.specifier, f"{f.rel}:{line.lineno}", line.text)
                    )
    for f in files:
        account = roles[f.rel]
        if (
            f.parsed is None
            or not frozen(f.parsed)
            or account.why.startswith("the package metadata")
            or account.role not in ("install", "extra", "lock")
        ):
            continue
        pins = len(f.parsed.requirements)
        clashes = [
            f"{line.text} against {installed[line.name][2]} in {installed[line.name][1]}"
            for line in f.parsed.requirements
            if line.name in installed
            and line.parsed is not None
            and conflict(line.parsed.specifier, installed[line.name][0])
        ]
        foreign = [
            w
            for w in words(f.rel.split("/")[-1])
            if w not in _STANDARD_WORDS and w not in project_words and not re.fullmatch(ROLE_WORDS[4][1], w)
        ]
        if account.role == "lock" or (not clashes and not foreign):
            if account.role == "install" and not account.why.startswith("included"):
                roles[f.rel] = FileAccount(
                    f.rel, "install", f"{account.why}: a pip freeze ({pins} exact pins)", used=True
                )
            elif account.role != "install":
                roles[f.rel] = FileAccount(
                    f.rel,
                    "lock",
                    f"a pip freeze of this repository's env ({pins} exact "
                    "pins): a record, not what to install",
                )
            continue
        why = f"a pip freeze of another env ({pins} exact pins"
        why += f"; {len(clashes)} clash with the install files: {clashes[0]}" if clashes else ""
        why += f"; its name names {'-'.join(foreign)}" if foreign else ""
        roles[f.rel] = FileAccount(f.rel, "frozen-other-tool", why + ")")


def _per_cuda(files: list[ReadFile], roles: dict[str, FileAccount]) -> None:
    """Files that pin torch to a CUDA build: the Linux one, else the newest CUDA, gives the stack."""
    candidates = [
        f
        for f in files
        if roles[f.rel].role in ("install", "per-cuda", "extra")
        and f.parsed is not None
        and f.parsed.variants()
        and not any(w in ("win", "windows", "mac", "macos", "rocm") for w in words(f.rel))
    ]
    per_cuda = [
        f
        for f in candidates
        if roles[f.rel].role == "per-cuda"
        or (roles[f.rel].role == "extra" and CUDA_WORD.search(f.rel))
        or (roles[f.rel].role == "extra" and "linux" in words(f.rel))
    ]
    for f in per_cuda:
        assert f.parsed is not None
        variant = f.parsed.variants()[0]
        roles[f.rel] = FileAccount(
            f.rel,
            "per-cuda",
            f"pins torch for {variant[0]} ({variant[1].split('/')[-1]})",
            variant=variant[0],
        )
    if not per_cuda:
        return

    def rank(f: ReadFile) -> tuple[int, int]:
        variant = roles[f.rel].variant or ""
        number = int(variant[2:]) if variant.startswith("cu") and variant[2:].isdigit() else 0
        return ("linux" in words(f.rel), number)

    chosen = max(per_cuda, key=rank)
    account = roles[chosen.rel]
    roles[chosen.rel] = FileAccount(
        chosen.rel,
        "per-cuda",
        account.why + "; the torch stack comes from it",
        used=True,
        variant=account.variant,
    )


def _promote_only_list(files: list[ReadFile], roles: dict[str, FileAccount]) -> None:
    """No install file: a lone list at the root, or a lone frozen list, is what the README installs."""
    for f in files:
        account = roles[f.rel]
        if "/" not in f.rel and account.role in ("lock", "tool", "extra"):
            roles[f.rel] = FileAccount(
                f.rel, "install", f"the only list at the root ({account.why})", used=True
            )
            return


def project_words(root: Path, meta: Metadata) -> set[str]:
    """Words that name this repository: its distribution name, its folder, its top-level packages."""
    found = set(words(root.name))
    if meta.name:
        found |= set(words(str(canonicalize_name(meta.name)))) | {meta.name.lower().replace("-", "")}
    try:
        for entry in sorted(os.listdir(root))[:200]:
            if (root / entry / "__init__.py").is_file():
                found |= set(words(entry)) | {entry.lower()}
    except OSError:
        pass
    return found
