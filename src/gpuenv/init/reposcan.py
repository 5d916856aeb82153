"""What a research repository already declares, sorted the way a recipe needs it.

``gpuenv init`` reads, without running anything: the package metadata
(``pyproject.toml``, ``setup.cfg``, ``setup.py``'s syntax tree) and the
requirements files it reads; every other requirements file of the repository,
each classified (:mod:`gpuenv.init.requirements_files`); conda environment
files (:mod:`gpuenv.init.conda`); ``.gitmodules`` with the git index
(:mod:`gpuenv.load.gitindex`); the folders whose ``setup.py`` builds a C++/CUDA
extension; and whether the repository's own ``setup.py`` compiles CUDA
(:mod:`gpuenv.load.setupscan`). Every finding keeps its file and line and is
sorted into: torch (its pin and the CUDA build the files ask for), the
packages paired with torch, the extensions to build without isolation, the
repository itself, ordinary packages, and what could not be placed or was
left out (with why). Conflicting pins are reported; the files the package
metadata reads win (:mod:`gpuenv.init.placing`). Nothing is written.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gpuenv.errors import InputError
from gpuenv.init import condafind, crosscheck
from gpuenv.init.decide import checked_values, decide_python, decide_torch, loader_checked
from gpuenv.init.metadata import Metadata, read_metadata
from gpuenv.init.pixi import has_pixi_tables
from gpuenv.init.placing import (
    INSTALL,
    LOCK,
    METADATA,
    PER_CUDA,
    RECORD,
    Candidate,
    Finding,
    Placer,
    TorchClaim,
)
from gpuenv.init.repofacts import (
    extension_folders,
    local_extension_findings,
    repo_build_findings,
)
from gpuenv.init.requirements_files import (
    FileAccount,
    ReadFile,
    classify,
    discover,
    project_words,
    read_file,
    relative,
)
from gpuenv.load.gitindex import Submodule, submodules
from gpuenv.load.pipline import parse_requirement
from gpuenv.load.requirements import RequirementsFile
from gpuenv.plan.sourcetrees import SetupFacts

__all__ = ["Finding", "RepoScan", "scan_repo"]


@dataclass(frozen=True)
class RepoScan:
    root: Path
    findings: tuple[Finding, ...] = ()
    #: The requirements files the recipe refers to instead of copying them (relative to root).
    requirement_files: tuple[str, ...] = ()
    #: Extras the repository's package metadata offers.
    extras: tuple[str, ...] = ()
    #: Whether the root is itself an installable project.
    installable: bool = False
    #: Extras its requirements files install it with ("-e .[train]"): the recipe's [repo] extras.
    selected_extras: tuple[str, ...] = ()
    #: Every requirements and environment file considered, with its role and why.
    files: tuple[FileAccount, ...] = ()
    #: Pins of one distribution that cannot hold together, and which source wins.
    conflicts: tuple[str, ...] = ()
    #: The torch the recipe asks for ("==2.2.2") and the CUDA build ("cu121"), each with where it comes from.
    torch_version: str | None = None
    cuda: str | None = None
    cuda_origin: str = ""
    python: str | None = None
    #: What setup will stop on until it is fixed (a submodule not checked out).
    blockers: tuple[str, ...] = ()
    #: Other things worth knowing (a stale .gitmodules entry, files that disagree on the CUDA).
    notes: tuple[str, ...] = ()
    #: Files the recipe can add to requirements-files for an extra: (path, extra, why).
    optional_files: tuple[tuple[str, str, str], ...] = ()
    #: The repository's own setup.py, read (None without one).
    setup: SetupFacts | None = field(default=None, compare=False)

    def placed(self, place: str) -> list[Finding]:
        return [f for f in self.findings if f.place == place]

    @property
    def torch(self) -> Finding | None:
        found = self.placed("torch")
        return found[0] if found else None


def scan_repo(root: Path) -> RepoScan:
    """Read what ``root`` declares; raise InputError only for a root that cannot be read at all."""
    try:
        root = Path(root).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise InputError(
            f"{root}: cannot be read ({exc})", hint="run 'gpuenv init' in the repository's root"
        ) from None
    meta = read_metadata(root)
    subs = submodules(root)
    notes: list[str] = list(meta.problems)
    blockers: list[str] = []
    folders = extension_folders(root, {root / s.path for s in subs if s.state != "checked-out"})
    findings, local = local_extension_findings(root, folders)
    findings += _submodule_findings(root, subs, local, meta.setup, notes, blockers)
    skipped = {root / s.path for s in subs} | set(folders)
    requirement_paths, environment_paths = discover(root, skipped)
    files = _read_all(root, requirement_paths, meta)
    subprojects = _subprojects(root, folders)
    accounts = classify(root, files, meta, project_words(root, meta), subprojects)
    placer = Placer(root, local)
    placer.findings = findings
    _metadata_candidates(placer, meta)
    _folder_torch(placer, folders)
    used = _file_candidates(placer, files, accounts)
    folder_names = {relative(root, f) for f in folders}
    placer.conflicts += crosscheck.conflicts(
        root, files, accounts, meta, subprojects - folder_names, placer.conflicts
    )
    accounts += crosscheck.project_accounts(root, subprojects, folder_names)
    pip_route = bool(used) or any(d.extra is None for d in meta.requirements)
    if has_pixi_tables(root / "pyproject.toml"):  # [tool.pixi]: the package metadata and a pixi manifest
        environment_paths.append(root / "pyproject.toml")
    conda = condafind.read_all(root, environment_paths, pip_route=pip_route)
    for candidate in conda.candidates:
        placer.add(candidate)
    placer.claims += conda.claims
    placer.findings += conda.findings
    placer.findings = crosscheck.optional_folders(root, placer.findings)
    notes += conda.notes
    torch_version, cuda, cuda_origin = decide_torch(placer, notes)
    python = decide_python(meta.python.text if meta.python else None, conda.python)
    placer.findings += repo_build_findings(root, meta.setup)
    placer.findings = loader_checked(root, placer.findings)
    torch_version, cuda, python = checked_values(root, torch_version, cuda, python, notes)
    return RepoScan(
        root,
        tuple(placer.findings),
        tuple(used),
        tuple(meta.extras),
        meta.installable,
        tuple(dict.fromkeys(placer.selected)),
        (*accounts, *(a for a in conda.accounts if a.path not in {b.path for b in accounts})),
        tuple(placer.conflicts),
        torch_version,
        cuda,
        cuda_origin,
        python,
        tuple(blockers),
        tuple(dict.fromkeys(notes)),
        tuple((a.path, a.extra or "", a.why) for a in accounts if a.role == "extra"),
        meta.setup,
    )


# -- requirements files -----------------------------------------------------------------------


def _read_all(root: Path, paths: list[Path], meta: Metadata) -> list[ReadFile]:
    """Every candidate file and every file the metadata reads, read once each."""
    wanted = list(paths) + [root / rel for rel in meta.files if (root / rel).is_file()]
    files: dict[str, ReadFile] = {}
    for path in wanted:
        rel = relative(root, path)
        if rel not in files:
            files[rel] = read_file(root, path)
    # A file another one includes is accounted for too, even where its name says nothing.
    for f in list(files.values()):
        for target, _, _ in f.parsed.includes if f.parsed else ():
            rel = relative(root, target)
            if rel not in files and not rel.startswith("/"):
                files[rel] = read_file(root, target)
    return list(files.values())


_RANKS = {"install": INSTALL, "per-cuda": PER_CUDA}


def _file_candidates(placer: Placer, files: list[ReadFile], accounts: list[FileAccount]) -> list[str]:
    """Place the lines of the files the recipe installs; locks and CUDA files only tell about torch.
    Returns the files the recipe names (none read through another's -r), best first."""
    by_rel = {f.rel: f for f in files}
    covered: set[str] = set()
    used: list[str] = []
    for account in sorted(accounts, key=lambda a: (_rank(a), a.path)):
        f = by_rel.get(account.path)
        if f is None or f.parsed is None or account.path in covered:
            continue
        if not account.used and account.role not in ("lock", "per-cuda"):
            continue  # another tool's or platform's env says nothing about this repository's torch
        if account.used:
            used.append(account.path)
            covered.update(relative(placer.root, p) for p in f.parsed.files)
        rank = _rank(account) if account.used else (LOCK if account.role == "lock" else RECORD)
        variant = account.variant or _file_cuda(f.parsed)
        for line in f.parsed.requirements:
            line_variant = next((v for v in (_variant(u) for u in line.line_indexes) if v), None)
            placer.add(
                Candidate(
                    line.text,
                    f"{relative(placer.root, line.path)}:{line.lineno}",
                    rank,
                    line.parsed,
                    kept_in=account.path if account.used else None,
                    variant=line_variant or (variant if line.name == "torch" else None),
                )
            )
        for line, why in f.parsed.invalid if account.used else ():
            placer.findings.append(
                Finding(
                    "unplaced",
                    line.text,
                    f"{relative(placer.root, line.path)}:{line.lineno}",
                    f"pip refuses it: {why}",
                )
            )
    return used


def _file_cuda(parsed: RequirementsFile) -> str | None:
    """The CUDA build a file's torch is for: an index it names, or the CUDA runtime wheels a freeze pins
    (nvidia-cuda-runtime-cu12==12.6.77 → "12.6")."""
    variants = parsed.variants()
    if variants:
        return variants[0][0]
    for line in parsed.requirements:
        if line.name and re.fullmatch(r"nvidia-cuda-runtime-cu\d+", line.name) and line.parsed is not None:
            match = re.match(r"==(\d+)\.(\d+)", line.parsed.specifier)
            if match:
                return f"{match[1]}.{match[2]}"
    return None


def _rank(account: FileAccount) -> int:
    if account.why.startswith("the package metadata"):
        return METADATA
    return _RANKS.get(account.role, RECORD)


def _variant(url: str) -> str | None:
    from gpuenv.load.requirements import index_variant

    return index_variant(url)


def _metadata_candidates(placer: Placer, meta: Metadata) -> None:
    for declared in meta.requirements:
        if declared.extra is not None:
            continue
        try:
            parsed = parse_requirement(declared.text, placer.root)
        except ValueError as exc:
            placer.findings.append(
                Finding("unplaced", declared.text, declared.origin, f"not a requirement: {exc}")
            )
            continue
        placer.add(Candidate(declared.text, declared.origin, METADATA, parsed, metadata=True))


def _folder_torch(placer: Placer, folders: list[Path]) -> None:
    """The torch a local extension folder's setup.py requires constrains the env's torch too."""
    from gpuenv.load.setupscan import scan_setup

    for folder in folders:
        if not (folder / "setup.py").is_file():
            continue
        for text, line in scan_setup(folder / "setup.py").install_requires:
            try:
                parsed = parse_requirement(text, placer.root)
            except ValueError:
                continue
            if parsed.name == "torch":
                origin = f"{relative(placer.root, folder)}/setup.py:{line}"
                placer.folder_claims.append(TorchClaim(parsed.specifier, None, origin, INSTALL))
                placer.findings.append(
                    Finding("torch", text, origin, "the local extension's own requirement")
                )


def _subprojects(root: Path, folders: list[Path]) -> set[str]:
    """Folders below the root that are projects of their own (their requirements are theirs)."""
    found = {relative(root, f) for f in folders}
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        depth = len(here.relative_to(root).parts)
        dirs[:] = [d for d in dirs if not d.startswith(".") and depth < 3]
        if (
            here != root
            and ("setup.py" in files or "pyproject.toml" in files)
            and here.name.lower() not in ("requirements", "requirement", "reqs")
        ):
            found.add(relative(root, here))
    return found


# -- submodules ------------------------------------------------------------------------------


def _submodule_findings(
    root: Path,
    subs: list[Submodule],
    local: dict[Path, str],
    setup: SetupFacts | None,
    notes: list[str],
    blockers: list[str],
) -> list[Finding]:
    found = []
    referenced = _referenced_paths(setup)
    for sub in subs:
        if sub.state == "stale":
            notes.append(f"{sub.origin}: {sub.path} is listed but {sub.why}: ignored")
            found.append(
                Finding("left", f"./{sub.path}", sub.origin, f"a stale .gitmodules entry ({sub.why})")
            )
        elif sub.state in ("empty", "unknown"):
            command = "git submodule update --init --recursive"
            used = any(r == sub.path or r.startswith(sub.path + "/") for r in referenced)
            why = f"a git submodule that is not checked out ({sub.why})"
            if used:
                why += f"; the repository's setup.py uses {sub.path}"
            blockers.append(f"{sub.path}: {why}: run '{command}'")
            found.append(
                Finding(
                    "unplaced",
                    f"./{sub.path}",
                    sub.origin,
                    f"{why}: run '{command}'; 'gpuenv plan' stops on it until then",
                )
            )
    return found


def _referenced_paths(setup: SetupFacts | None) -> list[str]:
    return [] if setup is None else list(setup.paths)
