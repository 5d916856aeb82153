"""Get an extension's source tree: from the index, a direct URL, a local path or git.

pip prepares a package's metadata even to download it, under build isolation
by default, which fails for exactly the packages gpuenv builds (``No module
named 'torch'``). So sdists are downloaded by the TARGET env's pip with
``--no-build-isolation``, after torch is installed there, and with the extension's build environment
(flash-attn's setup.py needs CUDA_HOME, or its skip flag, even for metadata).

Everything lands under ``workdir``, which belongs to gpuenv: its ``download``,
``src`` and ``git`` subdirectories are emptied before they are refilled. A
local directory is copied there rather than built in place, so the build's
``build/`` and ``*.egg-info`` never litter the user's tree.

With a recording runner (``--dry-run``) the downloads and clones are recorded
and nothing is copied, unpacked or emptied: the :class:`Source` then says what
is known before the fetch (a local tree is read where it is; an sdist's sha256
and a clone's commit are placeholders).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidSdistFilename, parse_sdist_filename

from gpuenv.env.targetenv import TargetEnv
from gpuenv.errors import CommandError, InputError, StepError
from gpuenv.hints import hint_for
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.load.treemeta import tree_name, tree_version
from gpuenv.plan.buildplan import pinned_version
from gpuenv.runner import Runner, bounded, import_timeout, is_unknown, perform, query_timeout, unknown

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

Kind = Literal["index", "url", "path", "git"]

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar", ".zip")

#: Left out of a copied local tree anywhere in it.
_NEVER_COPIED = frozenset({
    ".git", ".hg", ".svn", "__pycache__", ".tox", ".nox", ".venv",
    ".mypy_cache", ".pytest_cache", ".ruff_cache",
})
#: Left out at the top of a copied local tree: earlier build output.
_BUILD_OUTPUT = frozenset({"build", "dist"})
#: Build plugins that need the VCS metadata to compute a version.
_VCS_VERSIONING = ("setuptools_scm", "setuptools-scm", "hatch-vcs", "versioningit", "dunamai")


@dataclass(frozen=True)
class Source:
    """An unpacked source tree ready to build."""

    name: str
    #: The version when the source says it (sdist file name, PKG-INFO, static pyproject version).
    version: str | None
    #: The tree to build (the sdist's top directory, the copy, the checkout or its subdirectory).
    directory: Path
    #: The sdist that was unpacked, or None for a local tree or a git checkout.
    archive: Path | None
    #: What identifies the source for the wheel cache: "sha256:<hex>" of the archive or of the
    #: tree's files, or "git:<commit>" (plus ":<subdirectory>").
    digest: str
    kind: Kind
    #: The git commit checked out, for git sources.
    commit: str | None = None
    #: Where the tree's files are read when they are not in ``directory`` yet: a dry run copies no
    #: local tree, and reads it where it is.
    origin: Path | None = None
    #: False for a source a dry run did not download or clone: its files are nowhere yet.
    fetched: bool = True

    @property
    def readable(self) -> Path | None:
        """Where the tree's files can be read now; None for one a dry run did not fetch."""
        if self.origin is not None:
            return self.origin
        return self.directory if self.fetched else None


def fetched_by_pip(requirement: str, path: Path | None = None) -> bool:
    """Whether :func:`fetch_source` downloads this source with the target env's pip.

    An index pin or a direct URL is; a local tree, a ``file:`` URL and a git URL are not.
    """
    text = requirement.strip()
    if path is not None or text.startswith("git+"):
        return False
    try:
        url = Requirement(text).url
    except InvalidRequirement:
        return False
    return not (url and url.startswith(("git+", "file:")))


def fetch_source(
    requirement: str,
    *,
    env: TargetEnv,
    runner: Runner,
    workdir: Path,
    path: Path | None = None,
    build_env: Mapping[str, str] | None = None,
) -> Source:
    """Fetch and unpack the source of ``requirement`` into ``workdir``.

    ``path`` (a directory or an sdist on disk) wins over the requirement, whose
    name then only names the source. ``build_env`` is the extension's planned
    build environment: pip runs its setup.py to prepare metadata when it
    downloads, so that run needs the same variables as the build.
    """
    workdir = Path(workdir).absolute()
    perform(runner, "", lambda: workdir.mkdir(parents=True, exist_ok=True), lambda: None)
    text = requirement.strip()
    if path is not None:
        return _from_path(Path(path), _name_of(text), workdir, runner)
    if text.startswith("git+"):
        return _from_git(text, None, runner, workdir)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise InputError(f"invalid requirement {text!r}: {exc}",
                         hint="write a PEP 508 requirement, a URL, a git URL or a local path") from None
    if req.url and req.url.startswith("git+"):
        return _from_git(req.url, req.name, runner, workdir)
    if req.url and req.url.startswith("file:"):
        from urllib.request import url2pathname  # not at the top: a no-op run imports this module

        return _from_path(Path(url2pathname(urlsplit(req.url).path)), req.name, workdir, runner)
    return _download(text, req, "url" if req.url else "index", env, runner, workdir, build_env or {})


def _name_of(text: str) -> str | None:
    try:
        return Requirement(text).name if text else None
    except InvalidRequirement:
        return None


# -- from the index or a direct URL ---------------------------------------------------


def _download(
    text: str,
    req: Requirement,
    kind: Kind,
    env: TargetEnv,
    runner: Runner,
    workdir: Path,
    build_env: Mapping[str, str],
) -> Source:
    dest = perform(runner, "", lambda: _fresh(workdir / "download"), lambda: workdir / "download")
    cmd = [str(env.python), "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--no-build-isolation", "-d", str(dest), text]
    try:
        runner(cmd, extra_environ=build_env)
    except CommandError as exc:
        raise _download_error(text, req, kind, env, runner, exc) from exc

    def unpack_it() -> Source:
        files = sorted(p for p in dest.iterdir() if p.is_file())
        if len(files) != 1 or files[0].suffix == ".whl":
            got = ", ".join(p.name for p in files) or "nothing"
            raise StepError(f"downloading the source of {text} gave {got}, not one source archive")
        return _from_archive(files[0], req.name, kind, workdir)

    name = req.name
    unpacked = workdir / "src" / unknown(f"the unpacked {name} sdist")
    return perform(runner, f"unpack the {name} sdist into {workdir / 'src'}", unpack_it, lambda: Source(
        name=name, version=pinned_version(text), directory=unpacked, archive=None,
        digest="sha256:" + unknown(f"the {name} sdist's sha256"), kind=kind, fetched=False))


#: pip found no distribution it may use (with --no-binary: no sdist), or none within the constraints.
_NOT_FOUND = re.compile(r"No matching distribution found|ResolutionImpossible")


def _download_error(
    text: str, req: Requirement, kind: Kind, env: TargetEnv, runner: Runner, exc: CommandError
) -> StepError:
    if kind == "index" and _NOT_FOUND.search(exc.tail):
        versions = _index_versions(req.name, env, runner)
        if versions:
            return StepError(
                f"{text} has no source distribution on the configured indexes, only wheels "
                f"(versions there: {versions})",
                hint="give the recipe a url, git or path source for it, or list it as an ordinary package",
            )
        return StepError(f"{text} is not on the configured package indexes:\n{exc.tail}",
                         hint="check its name and version in the recipe, or give a url, git or path source")
    return StepError(
        f"downloading the source of {text} failed (pip prepares the package's metadata, "
        f"in {env.path} without isolation, even to download it):\n{exc.tail}"
        + (f"\nfull log: {exc.log_path}" if exc.log_path else ""),
        hint=hint_for(exc.tail)
        or "install torch and the extension's build requirements into the env before fetching its source",
    )


def _index_versions(name: str, env: TargetEnv, runner: Runner) -> str | None:
    try:
        ask = bounded(runner, import_timeout())  # an index answers in seconds, a slow one in minutes
        output = ask([str(env.python), "-m", "pip", "index", "versions", name])
    except CommandError:
        return None
    match = re.search(r"Available versions:\s*(.+)", output)
    return match.group(1).strip() if match else None


# -- archives and local paths ---------------------------------------------------------


def _from_archive(archive: Path, name: str | None, kind: Kind, workdir: Path) -> Source:
    directory = unpack(archive, _fresh(workdir / "src"))
    try:
        sdist_name, version = parse_sdist_filename(archive.name)
        found_name: str | None = str(sdist_name)
        found_version: str | None = str(version)
    except InvalidSdistFilename:
        found_name, found_version = tree_name(directory), tree_version(directory)
    return Source(
        name=name or found_name or archive.name,
        version=found_version,
        directory=directory,
        archive=archive,
        digest="sha256:" + file_sha256(archive),
        kind=kind,
    )


def _from_path(path: Path, name: str | None, workdir: Path, runner: Runner) -> Source:
    path = path.expanduser().absolute()
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES):
        unpacked = workdir / "src" / unknown(f"the unpacked {path.name}")
        return perform(runner, f"unpack {path} into {workdir / 'src'}",
                       lambda: _from_archive(path, name, "path", workdir), lambda: Source(
            name=name or path.name, version=None, directory=unpacked, archive=path,
            digest="sha256:" + file_sha256(path), kind="path", fetched=False))
    if not path.is_dir():
        raise InputError(f"source path {path} is neither a directory nor a source archive",
                         hint="name a source folder (with setup.py or pyproject.toml), an sdist or a wheel")
    target = workdir / "src" / path.name

    called = name or tree_name(path) or path.name

    def copy_it() -> Source:
        copy_tree(path, _fresh(workdir / "src") / path.name)
        return Source(name=called, version=tree_version(target), directory=target, archive=None,
                      digest="sha256:" + tree_sha256(target), kind="path")

    # Not copied, the tree is read where it is, by the rules of the copy: the same files, the same digest.
    return perform(runner, f"copy {path} to {target} (without VCS folders and earlier build output)", copy_it,
                   lambda: Source(name=called, version=tree_version(path), directory=target, archive=None,
                          digest="sha256:" + tree_sha256(path, ignore=_copy_ignore(path)), kind="path",
                          origin=path))


def copy_tree(source: Path, target: Path) -> None:
    """Copy a local source tree, leaving out VCS data (unless its version needs it) and build output."""
    shutil.copytree(source, target, symlinks=True, ignore=_copy_ignore(source))


def _copy_ignore(source: Path) -> Callable[[str, list[str]], list[str]]:
    """What :func:`copy_tree` leaves out of ``source``, as :func:`shutil.copytree` asks it."""
    keep_git = _uses_vcs_versioning(source)

    def ignore(directory: str, names: list[str]) -> list[str]:
        top = Path(directory) == source
        return [
            n for n in names
            if (n in _NEVER_COPIED and not (keep_git and n == ".git"))
            or (top and (n in _BUILD_OUTPUT or n.endswith(".egg-info")))
        ]

    return ignore


def _uses_vcs_versioning(tree: Path) -> bool:
    for config in ("pyproject.toml", "setup.py", "setup.cfg"):
        try:
            text = read_input(tree / config, errors="replace")
        except UnreadableInput:
            continue
        if any(plugin in text for plugin in _VCS_VERSIONING):
            return True
    return False


# -- git ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitUrl:
    url: str
    ref: str | None
    subdirectory: str | None


def parse_git_url(text: str) -> GitUrl:
    """``git+https://host/repo.git@ref#subdirectory=dir`` → clone URL, ref, subdirectory."""
    url, _, fragment = text.removeprefix("git+").partition("#")
    parts = urlsplit(url)
    path, ref = parts.path, None
    if "@" in path:
        path, ref = path.rsplit("@", 1)
    subdirectory = parse_qs(fragment).get("subdirectory", [None])[0]
    return GitUrl(urlunsplit((parts.scheme, parts.netloc, path, parts.query, "")), ref or None, subdirectory)


def git_commands(git: GitUrl, checkout: Path) -> list[list[str]]:
    """Clone ``git`` into ``checkout``: shallow for a branch or tag, full then checkout for a commit."""
    dest = str(checkout)
    if git.ref and re.fullmatch(r"[0-9a-fA-F]{7,40}", git.ref):
        return [
            ["git", "clone", git.url, dest],
            ["git", "-C", dest, "checkout", "--detach", git.ref],
            ["git", "-C", dest, "submodule", "update", "--init", "--recursive"],
        ]
    branch = ["--branch", git.ref] if git.ref else []
    return [["git", "clone", "--depth", "1", *branch, "--recurse-submodules", "--shallow-submodules",
             git.url, dest]]


def _from_git(text: str, name: str | None, runner: Runner, workdir: Path) -> Source:
    git = parse_git_url(text)
    repo = PurePosixPath(urlsplit(git.url).path).name.removesuffix(".git") or "repo"
    checkout = perform(runner, "", lambda: _fresh(workdir / "git"), lambda: workdir / "git") / repo
    quiet = {"GIT_TERMINAL_PROMPT": "0"}  # fail instead of waiting for a password on the tty
    try:
        for cmd in git_commands(git, checkout):
            runner(cmd, extra_environ=quiet)
        ask = bounded(runner, query_timeout())
        commit = perform(runner, "", lambda: ask(["git", "-C", str(checkout), "rev-parse", "HEAD"]).strip()
                         .splitlines()[-1], lambda: unknown(f"the commit {git.ref or 'HEAD'} is at"))
    except CommandError as exc:
        raise StepError(f"getting {text} with git failed:\n{exc.tail}",
                        hint="check the URL and the ref (a branch, a tag or a commit)") from exc
    directory = checkout / git.subdirectory if git.subdirectory else checkout
    if is_unknown(commit):  # a dry run cloned nothing: what the tree says is read once it is there
        within = f":{git.subdirectory}" if git.subdirectory else ""
        return Source(name=name or repo, version=None, directory=directory, archive=None,
                      digest=f"git:{commit}{within}", kind="git", commit=commit, fetched=False)
    if not directory.is_dir():
        raise InputError(f"{text}: the checkout has no subdirectory {git.subdirectory}",
                         hint="check #subdirectory= against the repository at that ref")
    return Source(
        name=name or tree_name(directory) or repo,
        version=tree_version(directory),
        directory=directory,
        archive=None,
        digest=f"git:{commit}" + (f":{git.subdirectory}" if git.subdirectory else ""),
        kind="git",
        commit=commit,
    )


# -- unpacking and hashing ------------------------------------------------------------


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack a .tar.* or .zip into ``dest``, refusing members that would land outside it.

    Returns the archive's single top directory (an sdist's ``name-version/``), or ``dest``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        _unzip(archive, dest)
    elif tarfile.is_tarfile(archive):
        _untar(archive, dest)
    else:
        raise StepError(f"{archive} is not a tar or zip archive")
    entries = list(dest.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _inside(dest: Path, member: str) -> bool:
    if os.path.isabs(member) or member.startswith(("/", "\\")):
        return False
    target = os.path.normpath(os.path.join(dest, member))
    return os.path.commonpath([str(dest), target]) == str(dest)


def _unsafe(archive: Path, member: str, why: str) -> StepError:
    return StepError(f"refusing to unpack {archive}: member {member!r} {why}")


def _untar(archive: Path, dest: Path) -> None:
    dest = dest.resolve()
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            if not _inside(dest, member.name):
                raise _unsafe(archive, member.name, "would be written outside the target directory")
            if member.issym() and not _inside(dest, os.path.join(os.path.dirname(member.name),
                                                                member.linkname)):
                raise _unsafe(archive, member.name, f"links outside the target ({member.linkname})")
            if member.islnk() and not _inside(dest, member.linkname):
                raise _unsafe(archive, member.name, f"links outside the target ({member.linkname})")
            if member.isdev():
                raise _unsafe(archive, member.name, "is a device or a FIFO")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Pythons without extraction filters
            tar.extractall(dest, members=members)  # members were checked above


def _unzip(archive: Path, dest: Path) -> None:
    dest = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if not _inside(dest, info.filename):
                raise _unsafe(archive, info.filename, "would be written outside the target directory")
        for info in zf.infolist():
            written = Path(zf.extract(info, dest))
            mode = info.external_attr >> 16
            if mode & 0o111 and not info.is_dir():
                written.chmod(written.stat().st_mode | (mode & 0o111))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tree_files(tree: Path, ignore: Callable[[str, list[str]], list[str]] | None = None) -> Iterator[Path]:
    for root, dirs, files in os.walk(tree):
        if ignore is not None:
            left = set(ignore(root, [*dirs, *files]))
            dirs[:], files = [d for d in dirs if d not in left], [f for f in files if f not in left]
        dirs[:] = sorted(d for d in dirs if d != ".git")
        # os.walk lists a symlink to a directory with the directories and does not enter it.
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in sorted([*files, *links]):
            yield Path(root) / name


def tree_sha256(tree: Path, *, ignore: Callable[[str, list[str]], list[str]] | None = None) -> str:
    """A digest of a tree's files: relative paths, executable bits and contents, in sorted order.

    ``ignore`` leaves out what a copy made with it leaves out (:func:`shutil.copytree`'s): the digest
    of the tree read so is the digest of that copy.
    """
    digest = hashlib.sha256()
    for file in _tree_files(tree, ignore):
        rel = file.relative_to(tree).as_posix()
        info = file.lstat()
        if stat.S_ISLNK(info.st_mode):
            content = "link:" + os.readlink(file)
        elif stat.S_ISREG(info.st_mode):
            content = file_sha256(file)
        else:
            continue
        executable = "x" if info.st_mode & 0o111 else "-"
        digest.update(f"{rel}\0{executable}\0{content}\n".encode())
    return digest.hexdigest()


def _fresh(directory: Path) -> Path:
    """An empty ``directory`` under gpuenv's workdir (whatever an earlier run left is removed)."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return directory
