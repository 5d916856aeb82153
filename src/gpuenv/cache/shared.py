"""The shared wheel cache: the local cache's wheels on package index servers, found by their key.

``gpuenv cache push URL`` (and ``setup --push``) uploads built wheels, each
named and packed with its cache key (:mod:`gpuenv.cache.remotekey`); setup,
given ``--cache-from URL`` (repeatable, or ``GPUENV_CACHE_FROM``, or the
recipe's ``cache-from``), asks each source for the wheel of the exact key
before building. A hit is downloaded, checked (the page's hash, every file
against the wheel's RECORD, the packed key field by field) and stored in the
local cache, then installed from there like any local hit.

Sources, all read the same way (:meth:`~gpuenv.cache.remote.IndexClient.project_links`):

- an index that accepts uploads: pypiserver (``http://host:8080/simple/``;
  pushes go to ``http://host:8080/``) or devpi (``http://host/USER/INDEX/+simple/``;
  pushes go to ``http://host/USER/INDEX/``);
- a folder, written by ``gpuenv cache push DIR`` as a simple index
  (``DIR/NAME/index.html`` beside the wheels), read as ``file://`` or served
  read-only over HTTP by any web server or object store;
- any find-links page listing wheel files.

Failures never stop a setup: a source that does not answer is warned about
once and skipped; a wheel whose hash, RECORD or key does not match is refused
by name and the next candidate (or the build) takes over.
"""

from __future__ import annotations

import contextlib
import html
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from gpuenv.cache.files import sha256_file
from gpuenv.cache.key import CacheKey
from gpuenv.cache.locking import open_lock_file, wait_flock
from gpuenv.cache.remote import IndexClient, RemoteError, ServerDown, redact
from gpuenv.cache.remotekey import RemoteKeyError, digest_in_name, local_name, verify, with_key
from gpuenv.cache.wheelfile import WheelFileError, read_member
from gpuenv.cache.wheels import WheelCache
from gpuenv.errors import InputError, OutputError
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.options import chosen_value
from gpuenv.outputs import hint_of, path_inside, problem_of, write_atomic
from gpuenv.probe.indexhttp import Link, PageError, parse_links

#: Marks the index pages gpuenv writes into a folder: those it may rewrite.
MARKER = "<!-- gpuenv shared cache -->"
INDEX = "index.html"

Warn = Callable[[str], None]


@dataclass(frozen=True)
class CacheSource:
    """One place wheels are shared: an index URL, or a folder."""

    #: As given, for messages (its password redacted).
    text: str
    #: Where pages are read (a URL; a folder as a file:// URL).
    read_url: str
    #: A folder written directly, or None for a server.
    folder: Path | None = None

    @property
    def upload_url(self) -> str:
        """Where a server takes uploads: pypiserver's and devpi's simple URL without ``simple/``."""
        url = self.read_url if self.read_url.endswith("/") else self.read_url + "/"
        for suffix in ("/+simple/", "/simple/"):
            if url.endswith(suffix):
                return url[: -len(suffix) + 1]
        return url

    def __str__(self) -> str:
        return self.text


def cache_source(text: str) -> CacheSource:
    """A ``--cache-from``/``cache push`` argument as a source; :class:`InputError` if it is neither
    an http(s) or file URL nor a folder path."""
    hint = "give an index URL (http://host:8080/simple/), a find-links page, or a folder"
    if not text.strip() or any(not c.isprintable() or c.isspace() for c in text) or len(text) > 4096:
        raise InputError(f"cache source {text[:80]!r}: not a URL or a folder", hint=hint)
    parts = urlsplit(text)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise InputError(f"cache source {redact(text)!r}: a URL without a host", hint=hint)
        return CacheSource(redact(text), text)
    if parts.scheme == "file":
        folder = Path(unquote(parts.path))
        return CacheSource(text, folder.as_uri() + "/", folder)
    if parts.scheme and len(parts.scheme) > 1:
        raise InputError(f"cache source {text!r}: gpuenv reads http, https and file URLs", hint=hint)
    folder = Path(text).expanduser().absolute()
    return CacheSource(text, folder.as_uri() + "/", folder)


def sources_from(values: Iterable[str], environ: Mapping[str, str] = os.environ) -> tuple[CacheSource, ...]:
    """The sources of the command line, else ``GPUENV_CACHE_FROM`` (space-separated), in order, once each."""
    given = chosen_value("cache_from", tuple(values), environ=environ) or ()
    seen: dict[str, CacheSource] = {}
    for text in given:
        source = cache_source(text)
        seen.setdefault(source.read_url, source)
    return tuple(seen.values())


# -- fetching ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """A wheel of the wanted key, downloaded and checked."""

    source: CacheSource
    #: The downloaded file, named as the builder named it (the key's build tag dropped).
    wheel: Path
    remote_name: str
    sha256: str


class SharedCache:
    """The sources one setup or push uses, and the client that reads them (servers found down stay down)."""

    def __init__(self, sources: Sequence[CacheSource], work_dir: Path, *, client: IndexClient | None = None,
                 warn: Warn | None = None) -> None:
        self.sources = tuple(sources)
        self.work_dir = work_dir
        self.client = client or IndexClient()
        self._warn = warn or (lambda text: None)
        self._warned: set[str] = set()

    def fetch(self, key: CacheKey, *, also: Iterable[str] = ()) -> Fetched | None:
        """The wheel of ``key`` from the first source that holds a sound one, or None.

        A server files a wheel under the distribution its file names, which for a
        local tree can differ from the key's name (a folder "ops" whose setup.py
        says "mmcv-ops"): ``also`` names the projects to look in after the key's.
        """
        names = list(dict.fromkeys(canonicalize_name(n) for n in (key.name, *also) if n))
        for source in self.sources:
            found = self._fetch_from(source, key, names)
            if found is not None:
                return found
        return None

    def _fetch_from(self, source: CacheSource, key: CacheKey, names: Sequence[str]) -> Fetched | None:
        links = [link for name in names for link in self._links(source, name)]
        for link in (link for link in links if digest_in_name(link.file_name) == key.digest):
            try:
                path = self.client.download(link, self.work_dir / "downloads")
            except ServerDown as exc:
                self._down(source, exc)
                return None
            except RemoteError as exc:
                self._warn(f"refused {link.file_name} from {source}: {exc.problem}")
                continue
            try:
                verify(path, key)
            except RemoteKeyError as exc:
                path.unlink()
                self._warn(f"refused {link.file_name} from {source}: {exc.problem}")
                continue
            named = path.with_name(local_name(path.name))
            os.replace(path, named)
            return Fetched(source, named, link.file_name, sha256_file(named))
        return None

    def _links(self, source: CacheSource, name: str) -> list[Link]:
        if self.client.down(source.read_url):
            return []
        try:
            return self.client.project_links(source.read_url, canonicalize_name(name))
        except ServerDown as exc:
            self._down(source, exc)
        except RemoteError as exc:
            self._warn(f"shared cache {source}: {exc.problem}; skipping it")
        return []

    def _down(self, source: CacheSource, exc: RemoteError) -> None:
        if source.read_url not in self._warned:
            self._warned.add(source.read_url)
            self._warn(f"shared cache {source} {exc.problem}; going on without it")

    # -- pushing ---------------------------------------------------------------------------------

    def push(self, key: CacheKey, wheel: Path, target: CacheSource) -> str:
        """Put ``wheel`` of ``key`` on ``target``; what happened, in words. Raises RemoteError (or
        OSError for a folder) when it could not."""
        staging = self.work_dir / "push" / secrets.token_hex(4)
        staging.mkdir(parents=True, exist_ok=True)
        try:
            keyed = with_key(wheel, key, staging)
            if target.folder is not None:
                return push_to_folder(keyed, key, target.folder)
            return self._push_to_server(keyed, key, target, replace=True)
        finally:
            for leftover in staging.glob("*"):
                leftover.unlink()
            with contextlib.suppress(OSError):
                staging.rmdir()

    def _push_to_server(self, keyed: Path, key: CacheKey, target: CacheSource, *, replace: bool) -> str:
        sha = sha256_file(keyed)
        result = self.client.upload(target.upload_url, keyed, upload_fields(keyed, sha))
        listed = self._listed(target, keyed.name, wait=not result.exists)
        if not result.exists:
            if listed is None:
                raise RemoteError(target.read_url, f"took {keyed.name} but does not list it at "
                                                   f"{target.read_url}",
                                  hint="give the index URL pip reads (pypiserver: http://host:8080/simple/)")
            if listed.hashes.get("sha256", sha) != sha:
                raise RemoteError(target.read_url, f"lists {keyed.name} with another sha256 than the file "
                                                   "sent: the upload was cut off or changed on its way")
            return f"pushed {keyed.name} to {target}"
        if listed is not None and listed.hashes.get("sha256") == sha:
            return f"{keyed.name} is already on {target} (the same file)"
        found = self._fetch_from(target, key, [project_of(keyed.name)])
        if found is not None:  # another node pushed this key first, and theirs is sound: keep it
            found.wheel.unlink()
            return f"{keyed.name} is already on {target} (pushed by another node; checked: sound, same key)"
        # A damaged file under this key's name (an upload cut off): remove that one file and push again.
        # pypiserver names a file by its name's spelling, and a tagged wheel's version is VERSION-TAG.
        name, version, tag = keyed.name.split("-")[:3]
        if replace and self.client.remove(target.upload_url, name, f"{version}-{tag}"):
            said = self._push_to_server(keyed, key, target, replace=False)
            return f"replaced a damaged {keyed.name} on {target}" if said.startswith("pushed") else said
        raise RemoteError(target.read_url, f"holds a {keyed.name} that is damaged or not this key's, and "
                                           "refuses to replace it",
                          hint=f"remove {keyed.name} from the server (pypiserver: delete the file from its "
                               "package folder; devpi: devpi remove), then push again")


    def _listed(self, target: CacheSource, file_name: str, *, wait: bool) -> Link | None:
        """The server's link to ``file_name``, on the page of the project the file names (what the
        server files it under). After an upload it took, asked again for a few seconds: a server with
        a page cache refreshes it from its folder a moment later (pypiserver's watches the folder)."""
        delays = LISTING_DELAYS if wait else ()
        for delay in (0.0, *delays):
            time.sleep(delay)
            links = self.client.project_links(target.read_url, project_of(file_name))
            listed = next((link for link in links if link.file_name == file_name), None)
            if listed is not None:
                return listed
        return None


#: How long after an upload the server's page is asked again for the file (seconds, about 6 in all).
LISTING_DELAYS = (0.2, 0.4, 0.8, 1.6, 3.0)


def project_of(wheel_name: str) -> str:
    """The canonical project a wheel's file name names: the page an index lists it on."""
    try:
        return str(parse_wheel_filename(wheel_name)[0])
    except InvalidWheelFilename as exc:
        raise InputError(f"{wheel_name}: not a wheel file name ({exc})",
                         hint="a wheel is named NAME-VERSION-PYTHON-ABI-PLATFORM.whl (PEP 427)") from None


def upload_fields(wheel: Path, sha256: str) -> dict[str, str]:
    """The legacy upload API's form fields for ``wheel``, from its METADATA."""
    try:
        data = read_member(wheel, "{dist-info}/METADATA") or b""
    except WheelFileError:
        data = b""
    headers: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    parts = wheel.name.split("-")
    return {
        "name": headers.get("name", parts[0]),
        "version": headers.get("version", parts[1]),
        "metadata_version": headers.get("metadata-version", "2.1"),
        "filetype": "bdist_wheel",
        "pyversion": parts[-3],
        "summary": headers.get("summary", ""),
        "sha256_digest": sha256,
    }


@dataclass(frozen=True)
class PushReport:
    """What ``gpuenv cache push`` did: one line per wheel, and the wheels it could not push."""

    lines: tuple[str, ...]
    failed: tuple[str, ...]


def push_cache(cache: WheelCache, target: CacheSource, work_dir: Path, *,
               client: IndexClient | None = None, on_status: Warn | None = None) -> PushReport:
    """Push every sound wheel of the local ``cache`` to ``target`` (those already there stay as they are).

    A server that does not answer stops the push at its first wheel; an entry
    that fails its own check, or a wheel the server refuses, is named and skipped.
    """
    shared = SharedCache([target], work_dir, client=client)
    lines, failed = [], []
    for entry in cache.entries() if cache.path.exists() else []:
        problem = cache.verify(entry)
        if problem is not None:
            failed.append(f"{entry.wheel.name} ({entry.digest[:12]}): not pushed: {problem}")
            continue
        if on_status is not None:
            on_status(f"pushing {entry.wheel.name} to {target}")
        try:
            lines.append(shared.push(entry.key, entry.wheel, target))
        except ServerDown as exc:
            failed.append(f"{target}: {exc.problem}; nothing more pushed")
            break
        except (RemoteError, OSError) as exc:
            failed.append(f"{entry.wheel.name} ({entry.digest[:12]}): not pushed: {exc}")
    if not lines and not failed:
        lines.append(f"the wheel cache {cache.path} holds no wheel: nothing pushed")
    return PushReport(tuple(lines), tuple(failed))


# -- a folder as a simple index -------------------------------------------------------------------


def push_to_folder(keyed: Path, key: CacheKey, folder: Path) -> str:
    """Copy ``keyed`` into ``folder/NAME/`` and rewrite the index pages, under the folder's lock.

    The file appears whole (copied to a temporary name in the same folder,
    then renamed); nodes pushing at once take turns on the lock, and a
    sound file already there stays. Every path is checked to be inside
    ``folder`` first, and an ``index.html`` gpuenv did not write is never
    replaced (:class:`~gpuenv.errors.OutputError`, nothing written).
    """
    _make_folder(folder)  # nodes pushing at once make it at once: one of them wins, all go on
    project = path_inside(folder, project_of(keyed.name), folder=True)
    _make_folder(project)
    final = path_inside(folder, project / keyed.name)
    for page in (folder / INDEX, project / INDEX):
        _check_ours(path_inside(folder, page))
    fd = open_lock_file(folder / ".gpuenv-push.lock", folder)
    try:
        wait_flock(fd, None, 0.2)
        if final.exists():
            try:
                verify(final, key)
                said = f"{keyed.name} is already in {folder}"
            except RemoteKeyError as exc:  # damaged: replace it, the folder is gpuenv's
                os.replace(_staged(keyed, project), final)
                said = f"replaced a damaged {keyed.name} in {folder} ({exc.problem})"
        else:
            os.replace(_staged(keyed, project), final)
            said = f"pushed {keyed.name} to {folder}"
        _write_pages(folder, project)
        return said
    finally:
        os.close(fd)


def _make_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(path, problem_of(exc), hint=hint_of(exc)) from None


def _check_ours(page: Path) -> None:
    if not page.exists():
        return
    try:
        ours = MARKER in read_input(page, errors="replace")
    except UnreadableInput:
        ours = False
    if not ours:
        raise OutputError(page, "exists and is not an index page gpuenv wrote: gpuenv will not replace it",
                          hint="push into an empty folder, or one gpuenv's cache push wrote")


def _staged(keyed: Path, project: Path) -> Path:
    staged = project / f".{keyed.name}.{secrets.token_hex(4)}.part"
    with open(keyed, "rb") as source, open(staged, "xb") as out:
        for block in iter(lambda: source.read(1 << 20), b""):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return staged


def _write_pages(folder: Path, project: Path) -> None:
    known = _listed_hashes(project / INDEX)
    links = []
    for wheel in sorted(project.glob("*.whl")):
        sha = known.get(wheel.name) or sha256_file(wheel)
        links.append(f'<a href="{quote(wheel.name)}#sha256={sha}">{html.escape(wheel.name)}</a><br>')
    _write_page(project / INDEX, f"Links for {project.name}", links)
    projects = sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / INDEX).is_file())
    _write_page(folder / INDEX, "gpuenv shared cache",
                [f'<a href="{quote(p)}/">{html.escape(p)}</a><br>' for p in projects])


def _listed_hashes(page: Path) -> dict[str, str]:
    try:
        text = read_input(page, errors="replace")
        links = parse_links(text.encode(), "text/html", page.as_uri()) if MARKER in text else []
    except (UnreadableInput, PageError):
        return {}
    return {link.file_name: link.hashes["sha256"] for link in links if "sha256" in link.hashes}


def _write_page(path: Path, title: str, links: list[str]) -> None:
    body = "\n".join(links)
    write_atomic(path, ("<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\">"
                        f"<title>{html.escape(title)}</title></head>\n<body>\n{MARKER}\n"
                        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n").encode())
