"""A package's build files: from its sdist on the configured index, or from a local tree.

``pip download --no-binary :all:`` cannot fetch these sdists: pip prepares their
metadata under build isolation even to download, and their setup.py imports
torch (``No module named 'torch'``). So the versions and the sdist URLs come from the index's
simple API (PEP 691 JSON, or PEP 503 HTML where an index only has that), on the
indexes pip's configuration names (:mod:`gpuenv.env.pipconfig`); the sdist is
checked against the index's sha256 and kept in a cache, and only the build files
are read out of it: setup.py, pyproject.toml, setup.cfg, CMakeLists.txt and the
helper modules setup.py imports. Every network read has a timeout.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import ssl
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar
from urllib.parse import urlsplit
from urllib.request import url2pathname

from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename

from gpuenv.env.pipconfig import PipSources
from gpuenv.errors import IndexUnreachableError, InputError, StepError
from gpuenv.inputs import MAX_INPUT_BYTES, UnreadableInput, read_input
from gpuenv.plan.buildfiles.derive import IMPORT_DEPTH, TOP_FILES, imported_files
from gpuenv.probe.indexhttp import PageError, parse_links

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
#: Far above any sdist these packages publish (flash-attn's is 8 MB), far below a disk's worth.
MAX_SDIST_BYTES = 1 << 30
_SDIST_SUFFIXES = (".tar.gz", ".zip")
#: At most this many helper modules are read from one package.
MAX_HELPERS = 40

Progress = Callable[[str], None]
Info = TypeVar("Info")


@dataclass(frozen=True)
class SdistFile:
    filename: str
    url: str
    sha256: str | None
    version: str


@dataclass
class Project:
    """What the indexes hold of one project: its sdists by version."""

    name: str
    sdists: dict[str, SdistFile] = field(default_factory=dict)
    #: The indexes asked, and what each said when it did not list the project.
    asked: list[str] = field(default_factory=list)


def index_urls(sources: PipSources) -> list[str]:
    """The simple-API roots ``pip install`` would ask: index-url (pip's default when unset), then
    extra-index-url. None with ``no-index``."""
    if sources.no_index:
        return []
    return [sources.index_url or _pip_default_index(), *sources.extra_index_urls]


def _pip_default_index() -> str:
    """pip's own default index, as the installed pip names it (never written here)."""
    try:
        module = importlib.import_module("pip._internal.models.index")
        return str(module.PyPI.simple_url)
    except (ImportError, AttributeError):
        raise InputError("pip's configuration names no index-url and pip's default index cannot be read",
                         hint="set one: pip config set global.index-url URL") from None


# -- the simple API ----------------------------------------------------------------------------


def read_project(name: str, urls: list[str], *, timeout: float, cert: str | None = None) -> Project:
    """The sdists of ``name`` on every index of ``urls`` (merged as pip merges them, first wins)."""
    project = Project(canonicalize_name(name))
    failures: list[tuple[str, str]] = []
    for root in urls:
        page = root.rstrip("/") + f"/{project.name}/"
        try:
            body, content_type, final = _get(page, timeout=timeout, cert=cert, accept=_ACCEPT)
        except _NotFound:
            project.asked.append(f"{root}: no such project")
            continue
        except IndexUnreachableError as exc:
            failures.append((root, exc.problem))
            project.asked.append(f"{root}: {exc.problem}")
            continue
        files = _sdists(body, content_type, final)
        for file in files:
            project.sdists.setdefault(file.version, file)
        project.asked.append(f"{root}: {len(files)} sdists")
    if not project.sdists and failures:
        url, problem = failures[0]
        raise IndexUnreachableError(url, problem,
                                    hint="check the network and pip's configuration (pip config list)")
    return project


def _sdist(filename: str, url: str, sha256: str | None, yanked: object) -> SdistFile | None:
    if yanked or not filename.endswith(_SDIST_SUFFIXES):
        return None
    try:
        _, version = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return None
    return SdistFile(filename, url, sha256, str(version))


def _sdists(body: bytes, content_type: str, base: str) -> list[SdistFile]:
    try:
        links = parse_links(body, content_type, base)
    except PageError as exc:
        raise StepError(f"{base} answered a page that does not parse: {exc.problem}") from None
    found = [_sdist(link.file_name, link.url, link.hashes.get("sha256"), link.yanked) for link in links]
    return [file for file in found if file is not None]


# -- reading URLs -------------------------------------------------------------------------------


class _NotFound(Exception):
    pass


def _context(cert: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cert and Path(cert).is_file():
        context.load_verify_locations(cert)
    return context


def _get(url: str, *, timeout: float, cert: str | None, accept: str = "*/*") -> tuple[bytes, str, str]:
    """(body, content type, final URL) of ``url``; a ``file:`` URL reads the directory's index file."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return _get_file(Path(url2pathname(parts.path)), url)
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "gpuenv-catalogcheck"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_context(cert)) as answer:
            body = answer.read(MAX_SDIST_BYTES + 1)
            if len(body) > MAX_SDIST_BYTES:
                raise IndexUnreachableError(url, f"more than {MAX_SDIST_BYTES >> 20} MiB")
            return body, answer.headers.get("Content-Type", ""), answer.geturl()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise _NotFound(url) from None
        raise IndexUnreachableError(url, f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise IndexUnreachableError(url, str(exc.reason)) from None
    except (TimeoutError, OSError) as exc:
        raise IndexUnreachableError(url, f"{exc} (timeout {timeout:g} s)") from None


def _get_file(path: Path, url: str) -> tuple[bytes, str, str]:
    if path.is_dir():
        for index, kind in (("index.json", JSON_TYPE), ("index.html", "text/html")):
            if (path / index).is_file():
                return (path / index).read_bytes(), kind, (path / index).as_uri()
        raise _NotFound(url)
    if path.is_file():
        return path.read_bytes(), "application/octet-stream", url
    raise _NotFound(url)


# -- the sdist and its build files ---------------------------------------------------------------


def download(file: SdistFile, cache: Path, *, timeout: float, cert: str | None = None,
             progress: Progress | None = None) -> Path:
    """The sdist in ``cache/sdists/`` (downloaded unless there), its sha256 checked against the index's."""
    folder = cache / "sdists"
    target = folder / file.filename
    if target.is_file() and (file.sha256 is None or _sha256(target) == file.sha256):
        return target
    if progress:
        progress(f"downloading {file.filename}")
    body, _, _ = _get(file.url, timeout=timeout, cert=cert)
    digest = hashlib.sha256(body).hexdigest()
    if file.sha256 is not None and digest != file.sha256:
        raise StepError(f"{file.filename} from {file.url} has sha256 {digest}, the index says {file.sha256}",
                        hint="a mirror or a proxy changed the file; try again, or another index")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".part-", delete=False) as handle:
        handle.write(body)
    os.replace(handle.name, target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_files_of_archive(archive: Path, dest: Path | None = None) -> dict[str, str]:
    """The build files of an sdist (path inside the package → text), read without unpacking the rest;
    written under ``dest`` too when given (for a person to read)."""
    with _members(archive) as members:
        files = _pick(members)
    if dest is not None:
        for name, text in files.items():
            target = dest.joinpath(*PurePosixPath(name).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    return files


def build_files_of_tree(root: Path) -> dict[str, str]:
    """The build files of a local checkout or unpacked sdist."""
    if not (root / "setup.py").is_file() and not (root / "pyproject.toml").is_file():
        raise InputError(f"{root} has no setup.py or pyproject.toml: not a package's source tree",
                         hint="give the directory that holds the package's setup.py")
    available: dict[str, Callable[[], bytes]] = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if any(part.startswith(".") or part in ("build", "dist") for part in relative.split("/")[:-1]):
            continue
        if path.is_file() and not path.is_symlink() and (relative.endswith(".py") or relative in TOP_FILES):
            available[relative] = _reader(path)
    return _pick(available)


def _reader(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return read_input(path, errors="replace").encode()
        except UnreadableInput as exc:
            raise StepError(f"{path} cannot be read: {exc.problem}") from None
    return read


def _pick(members: dict[str, Callable[[], bytes]]) -> dict[str, str]:
    """setup.py and its kin at the top, then the helper modules setup.py imports (IMPORT_DEPTH deep)."""
    files: dict[str, str] = {}
    for name in TOP_FILES:
        if name in members:
            files[name] = _text(members[name](), name)
    layer = [n for n in files if n.endswith(".py")]
    python = {n for n in members if n.endswith(".py")}
    for _ in range(IMPORT_DEPTH):
        found = [m for n in layer for m in imported_files(n, files[n], python) if m not in files]
        for name in dict.fromkeys(found):
            if len(files) >= MAX_HELPERS:
                break
            files[name] = _text(members[name](), name)
        layer = list(dict.fromkeys(found))
    return files


def _text(raw: bytes, name: str) -> str:
    if len(raw) > MAX_INPUT_BYTES:
        raise StepError(f"{name} is larger than {MAX_INPUT_BYTES >> 20} MiB: not a build file")
    return raw.decode("utf-8", "replace")


@contextmanager
def _members(archive: Path) -> Iterator[dict[str, Callable[[], bytes]]]:
    """The archive's regular files below its top directory, by safe relative path, each read on demand."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            infos = {i.filename: i for i in zipped.infolist() if not i.is_dir()}
            yield _below_top(infos, lambda info: zipped.read(info))
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}

            def read(member: tarfile.TarInfo) -> bytes:
                handle = tar.extractfile(member)
                return handle.read(MAX_INPUT_BYTES + 1) if handle else b""
            yield _below_top(members, read)
    else:
        raise StepError(f"{archive} is not a tar or zip archive")


def _below_top(members: Mapping[str, Info], read: Callable[[Info], bytes]) -> dict[str, Callable[[], bytes]]:
    safe = {name: info for name, info in members.items() if _safe(name)}
    tops = {PurePosixPath(name).parts[0] for name in safe}
    strip = 1 if len(tops) == 1 and all(len(PurePosixPath(n).parts) > 1 for n in safe) else 0
    return {"/".join(PurePosixPath(name).parts[strip:]): functools.partial(read, info)
            for name, info in safe.items()}


def _safe(name: str) -> bool:
    """A member path that stays inside the archive's folder: relative, no ``..``, no drive."""
    path = PurePosixPath(name.replace("\\", "/"))
    return bool(path.parts) and not path.is_absolute() and ".." not in path.parts and ":" not in path.parts[0]
