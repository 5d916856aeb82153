"""A client of ordinary package index servers: read their pages, download with hash checks, upload.

What it speaks, all standard, so any server does (pypiserver, devpi, a static
folder served over HTTP, an object store's website):

- **Pages.** A project page of a simple index (``URL/NAME/``, PEP 503 HTML or
  PEP 691 JSON, asked for by content negotiation) or a flat *find-links* page
  that lists wheel files (pip's ``--find-links URL``). Each link keeps the
  hash the page gives (``#sha256=…`` or the JSON ``hashes``).
- **Downloads** into a temporary file, hashed as they arrive and checked
  against the page's hash; only a file that matches gets its real name.
- **Uploads** as twine does: the legacy upload API, a ``multipart/form-data``
  POST with ``:action=file_upload``, streamed from disk. A server that already
  holds the file answers 409 (pypiserver) or 400/403 naming it (devpi and
  PyPI's wording): that is :attr:`UploadResult.exists`, not an error.

Every request has a timeout (on connecting and on every read, so a slow but
moving download is not cut). A server that does not answer is marked down for
the life of the client: the caller warns once and every later request to it
fails at once, so a down server costs at most one timeout per setup.
Credentials come from the URL (``https://user:token@host/``) or ``~/.netrc``
and are never shown: :func:`redact` is what messages print. Redirects are
followed only within the same server (pypiserver sends a project it does not
hold to pypi.org: that is a miss, not a trip to another host).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import netrc
import os
import secrets
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from gpuenv.errors import GpuenvError
from gpuenv.probe.indexhttp import (
    HASH_NAMES,
    SIMPLE_ACCEPT,
    Link,
    PageError,
    get_page,
    parse_links,
    ssl_context,
)
from gpuenv.version import __version__

#: Seconds to connect and for each read, unless the caller says otherwise.
DEFAULT_TIMEOUT = 10.0
#: A project page or a find-links page larger than this is not one (PyG's pages are ~1 MB).
MAX_PAGE_BYTES = 64 << 20
#: Larger than any extension wheel (flash-attn's are ~250-500 MB).
MAX_WHEEL_BYTES = 8 << 30


class RemoteError(GpuenvError):
    """A server answered with an error, or what it sent is not what it said it was."""

    def __init__(self, url: str, problem: str, *, hint: str | None = None) -> None:
        self.url = redact(url)
        self.problem = problem
        super().__init__(f"{self.url}: {problem}", hint=hint)


class ServerDown(RemoteError):
    """A server that does not answer (refused, unreachable, timed out)."""


@dataclass(frozen=True)
class UploadResult:
    """``exists``: the server already held a file of that name and kept it."""

    url: str
    exists: bool
    message: str = ""


def redact(url: str) -> str:
    """``url`` without its password (a user name stays, to say whose credentials were used)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


# -- the client -------------------------------------------------------------------------


class _SameServerRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if origin(newurl) != origin(req.full_url):
            return None  # urllib raises the redirect as an HTTPError: the caller reads it as a miss
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class IndexClient:
    """Requests to package index servers, each with a timeout; servers that failed are remembered."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, netrc_file: Path | None = None) -> None:
        self.timeout = timeout
        self._netrc_file = netrc_file
        self._down: dict[str, str] = {}
        # pip's trust for https (its cert, PIP_CERT, SSL_CERT_FILE): a lab's cache with its own CA works.
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ssl_context()),
                                                   _SameServerRedirects())

    def down(self, url: str) -> str | None:
        """Why the server of ``url`` was found down in this client's life, or None."""
        return self._down.get(origin(url))

    # -- reading ----------------------------------------------------------------

    def page(self, url: str) -> list[Link] | None:
        """The links of the page at ``url``; None if the server says it has no such page (404)."""
        if urlsplit(url).scheme == "file":
            try:
                found = get_page(url, timeout=self.timeout, limit=MAX_PAGE_BYTES)
            except PageError as exc:
                if exc.missing:
                    return None
                raise RemoteError(url, exc.problem) from None
            return self._links(found.body, found.content_type, found.url)
        try:
            with self._open(url, headers={"Accept": SIMPLE_ACCEPT}) as response:
                kind = response.headers.get("Content-Type", "")
                body = _read_limited(response, MAX_PAGE_BYTES, url)
                final = response.geturl()
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410) or 300 <= exc.code < 400:
                return None
            raise RemoteError(url, f"the server answered {exc.code} {exc.reason}") from None
        except OSError as exc:  # the answer stopped coming: as down as not answering at all
            raise self._mark_down(url, exc) from None
        return self._links(body, kind, final)

    @staticmethod
    def _links(body: bytes, content_type: str, url: str) -> list[Link]:
        try:
            return parse_links(body, content_type, url)
        except PageError as exc:
            raise RemoteError(url, exc.problem) from None

    def project_links(self, base: str, project: str) -> list[Link]:
        """The files of ``project`` at ``base``: its simple index project page (``base/project/``);
        if there is none, ``base`` itself as a find-links page."""
        base = base if base.endswith("/") or base.endswith(".html") else base + "/"
        if not base.endswith(".html"):
            found = self.page(urljoin(base, f"{project}/"))
            if found is not None:
                return found
        return self.page(base) or []

    def download(self, link: Link, dest_dir: Path, *, max_bytes: int = MAX_WHEEL_BYTES,
                 on_progress: Callable[[int], None] | None = None) -> Path:
        """``link``'s file as ``dest_dir/FILE``, whole and matching the page's hash (if it gives one).

        Written to a temporary name first; a cut-off or mismatching download
        leaves nothing behind and raises :class:`RemoteError`.
        """
        dest_dir.mkdir(parents=True, exist_ok=True)
        temp = dest_dir / f".{link.file_name}.{secrets.token_hex(4)}.part"
        algorithm = next((a for a in HASH_NAMES if a in link.hashes), None)
        digests = {"sha256": hashlib.sha256(), **({algorithm: hashlib.new(algorithm)} if algorithm else {})}
        try:
            with self._source(link.url) as source, open(temp, "wb") as out:
                size = 0
                for block in iter(lambda: source.read(1 << 20), b""):
                    size += len(block)
                    if size > max_bytes:
                        raise RemoteError(link.url, f"larger than {max_bytes >> 20} MiB: "
                                                    "not a wheel gpuenv takes")
                    for digest in digests.values():
                        digest.update(block)
                    out.write(block)
                    if on_progress is not None:
                        on_progress(size)
            actual = digests[algorithm].hexdigest() if algorithm else ""
            if algorithm and actual != link.hashes[algorithm]:
                raise RemoteError(link.url, f"its {algorithm} is {actual[:16]}…, the page says "
                                            f"{link.hashes[algorithm][:16]}…: altered or cut short")
            final = dest_dir / link.file_name
            os.replace(temp, final)
            return final
        except urllib.error.HTTPError as exc:
            raise RemoteError(link.url, f"the server answered {exc.code} {exc.reason}") from None
        except (OSError, ValueError) as exc:
            if isinstance(exc, (socket.timeout, TimeoutError, ConnectionError)):
                raise RemoteError(link.url, f"the download was cut off: {exc}") from None
            raise RemoteError(link.url, f"the download failed: {exc}") from None
        finally:
            with contextlib.suppress(OSError):
                temp.unlink()

    @contextlib.contextmanager
    def _source(self, url: str) -> Iterator[IO[bytes]]:
        if urlsplit(url).scheme == "file":
            with open(unquote(urlsplit(url).path), "rb") as file:
                yield file
        else:
            with self._open(url) as response:
                yield response

    # -- uploading ----------------------------------------------------------------

    def upload(self, url: str, wheel: Path, fields: Mapping[str, str]) -> UploadResult:
        """POST ``wheel`` to ``url`` with the legacy upload API's form ``fields`` (``:action`` added)."""
        boundary = "gpuenv-" + secrets.token_hex(16)
        head, tail = _multipart(boundary, {":action": "file_upload", "protocol_version": "1", **fields},
                                wheel.name)
        size = len(head) + wheel.stat().st_size + len(tail)

        def body() -> Iterator[bytes]:
            yield head
            with open(wheel, "rb") as file:
                yield from iter(lambda: file.read(1 << 20), b"")
            yield tail

        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(size)}
        try:
            with self._open(url, headers=headers, data=body(), method="POST") as response:
                return UploadResult(redact(url), False, _first_line(_read_limited(response, 1 << 16, url)))
        except urllib.error.HTTPError as exc:
            message = _first_line(exc.read(1 << 16) if exc.fp else b"") or str(exc.reason)
            if exc.code == 409 or (exc.code in (400, 403) and "exist" in message.lower()):
                return UploadResult(redact(url), True, message)
            hint = ("the server wants credentials: put them in the URL (https://USER:TOKEN@host/) or ~/.netrc"
                    if exc.code in (401, 403) else None)
            raise RemoteError(url, f"the upload of {wheel.name} was refused: {exc.code} {message}",
                              hint=hint) from None

    def remove(self, url: str, name: str, version: str) -> bool:
        """Ask the server at ``url`` to remove the files of ``name`` ``version`` (pypiserver's
        ``:action=remove_pkg``); whether it did. A server without that action says no."""
        body = "&".join(f"{quote(k)}={quote(v)}" for k, v in
                        ((":action", "remove_pkg"), ("name", name), ("version", version))).encode()
        try:
            with self._open(url, data=body, method="POST",
                            headers={"Content-Type": "application/x-www-form-urlencoded"}):
                return True
        except urllib.error.HTTPError:
            return False

    # -- one request --------------------------------------------------------------

    def _open(self, url: str, *, headers: Mapping[str, str] | None = None, data: Any = None,
              method: str | None = None) -> Any:
        known = self.down(url)
        if known is not None:
            raise ServerDown(url, known)
        plain, auth = self._credentials(url)
        request = urllib.request.Request(plain, data=data, method=method,
                                         headers={"User-Agent": f"gpuenv/{__version__}", **(headers or {})})
        if auth:
            request.add_header("Authorization", auth)
        try:
            return self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise self._mark_down(url, exc) from None

    def _mark_down(self, url: str, exc: BaseException) -> ServerDown:
        reason = getattr(exc, "reason", exc)
        timed_out = isinstance(reason, (socket.timeout, TimeoutError))
        problem = f"no answer within {self.timeout:g} s" if timed_out else f"cannot be reached: {reason}"
        self._down[origin(url)] = problem
        return ServerDown(url, problem)

    def _credentials(self, url: str) -> tuple[str, str | None]:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
        plain = urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))\
            if parts.hostname else url
        if user is None and parts.hostname:
            with contextlib.suppress(OSError, netrc.NetrcParseError):
                found = netrc.netrc(str(self._netrc_file) if self._netrc_file else None).authenticators(
                    parts.hostname)
                if found:
                    user, password = found[0], found[2]
        if user is None:
            return plain, None
        token = base64.b64encode(f"{unquote(user)}:{unquote(password or '')}".encode()).decode()
        return plain, f"Basic {token}"


def _read_limited(source: IO[bytes], limit: int, url: str) -> bytes:
    data = source.read(limit + 1)
    if len(data) > limit:
        raise RemoteError(url, f"larger than {limit >> 20} MiB: not a page gpuenv reads")
    return data


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    line = text.splitlines()[0] if text else ""
    return "".join(c if c.isprintable() else "?" for c in line)[:300]


def _multipart(boundary: str, fields: Mapping[str, str], file_name: str) -> tuple[bytes, bytes]:
    """The bytes before and after the file's content in a ``multipart/form-data`` body."""
    head = b""
    for name, value in fields.items():
        head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                 f"{value}\r\n").encode()
    quoted = file_name.replace('"', "%22")
    head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{quoted}\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head, f"\r\n--{boundary}--\r\n".encode()
