"""Asking a package index for a page: one GET with a timeout and a size limit, and pip's TLS trust;
reading the files a page lists (:func:`parse_links`: PEP 691 JSON, PEP 503 HTML, find-links pages).

ssl and urllib are imported only when a page is asked for: a plan whose
index facts are cached never pays for them.
"""

from __future__ import annotations

import functools
import html.parser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from gpuenv.inputs import UnreadableInput, parse_json, read_input

if TYPE_CHECKING:
    import ssl

#: PEP 691's JSON form first; PEP 503's HTML from an index that has no JSON.
SIMPLE_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
                 "text/html;q=0.1")

#: Far above any project page (torch's JSON is about half a megabyte).
MAX_PAGE_BYTES = 32 << 20


class PageError(Exception):
    """Why a page could not be had. ``missing``: the index answered that it has no such page."""

    def __init__(self, problem: str, *, missing: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.missing = missing


@dataclass(frozen=True)
class Page:
    url: str
    content_type: str
    body: bytes


def ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """The system's trust, and the CA bundle pip is told about (``cert``, PIP_CERT, SSL_CERT_FILE):
    a private mirror's CA."""
    candidates = (cafile, os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"))
    return _context(next((c for c in candidates if c and Path(c).is_file()), None))


@functools.cache
def _context(cafile: str | None) -> ssl.SSLContext:
    # Made once per bundle and run (loading a trust store costs tens of milliseconds).
    import ssl

    context = ssl.create_default_context()
    if cafile is not None:
        context.load_verify_locations(cafile)
    return context


def get_page(url: str, *, timeout: float, cafile: str | None = None, limit: int = MAX_PAGE_BYTES) -> Page:
    """The page at ``url`` (an index's project page); raises PageError."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return _local_page(Path(unquote(parts.path)), url, limit)
    if parts.scheme not in ("http", "https"):
        raise PageError(f"unsupported URL scheme {parts.scheme!r} ({url})")
    import socket
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept": SIMPLE_ACCEPT, "User-Agent": "gpuenv"})
    try:
        context = ssl_context(cafile) if parts.scheme == "https" else None
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            body: bytes = response.read(limit + 1)
            content_type = response.headers.get("Content-Type", "")
            final = response.geturl()
    except urllib.error.HTTPError as exc:
        raise PageError(f"HTTP {exc.code} {exc.reason} for {url}", missing=exc.code in (404, 410)) from None
    except urllib.error.URLError as exc:
        raise PageError(describe(exc.reason, url, timeout)) from None
    except (OSError, socket.timeout) as exc:
        raise PageError(describe(exc, url, timeout)) from None
    if len(body) > limit:
        raise PageError(f"{url} is larger than {limit >> 20} MiB: not an index page gpuenv reads")
    return Page(final, content_type, body)


def _local_page(path: Path, url: str, limit: int) -> Page:
    """A file:// index: the project's directory holds index.html (as pip reads it)."""
    page = path / "index.html" if not path.suffix else path
    if not page.exists():
        raise PageError(f"{path} does not exist", missing=True)
    try:
        text = read_input(page, limit=limit)
    except UnreadableInput as exc:
        raise PageError(f"{page}: {exc.problem}") from None
    return Page(page.as_uri(), "text/html", text.encode())


def describe(reason: object, url: str, timeout: float) -> str:
    """Why a host did not answer, in words."""
    import socket

    host = urlsplit(url).hostname
    if isinstance(reason, socket.gaierror):
        return f"the host name {host} does not resolve ({reason.strerror or reason})"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"no answer from {host} within {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return f"{host} refused the connection"
    return f"{reason} ({url})"


# -- the files a page lists ----------------------------------------------------------------------

#: The hash algorithms a link's ``#name=digest`` fragment may name (pip's list).
HASH_NAMES = ("sha256", "sha384", "sha512", "sha224", "md5")


@dataclass(frozen=True)
class Link:
    """One file a page lists: its name (the URL's last path component), where it is, its hashes."""

    file_name: str
    url: str
    #: Algorithm -> hex digest, as the page gives them (``#sha256=…`` or PEP 691's ``hashes``).
    hashes: Mapping[str, str] = field(default_factory=dict)
    yanked: bool = False


def parse_links(body: bytes, content_type: str, page_url: str) -> list[Link]:
    """The files of a project page (PEP 691 JSON or PEP 503 HTML) or a find-links page.

    Links to folders are left out, and so are links a page may not send a reader to: anything but
    http(s), and a file on disk from a page that is not on disk itself.
    """
    if "json" in content_type:
        found = _json_links(body, page_url)
    else:
        parser = _Anchors()
        parser.feed(body.decode("utf-8", "replace"))
        base = urljoin(page_url, parser.base) if parser.base else page_url
        found = [_link(urljoin(base, str(attrs["href"])), yanked="data-yanked" in attrs)
                 for attrs in parser.anchors if attrs.get("href")]
    local = page_url.startswith("file:")
    return [link for link in found if link is not None
            and urlsplit(link.url).scheme in (("http", "https", "file") if local else ("http", "https"))]


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")


def _json_links(body: bytes, page_url: str) -> list[Link | None]:
    try:
        data = parse_json(body.decode("utf-8"))
    except (UnreadableInput, UnicodeDecodeError) as exc:
        raise PageError(f"{page_url}: not a PEP 691 page ({exc})") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise PageError(f"{page_url}: not a PEP 691 page (no 'files' list)")
    found: list[Link | None] = []
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            continue
        given = item.get("hashes")
        hashes: dict[Any, Any] = given if isinstance(given, dict) else {}
        strings = {k: v for k, v in hashes.items() if isinstance(k, str) and isinstance(v, str)}
        found.append(_link(urljoin(page_url, item["url"]), yanked=bool(item.get("yanked")), hashes=strings))
    return found


def _link(url: str, *, yanked: bool, hashes: Mapping[str, str] | None = None) -> Link | None:
    parts = urlsplit(url)
    name = unquote(parts.path.rsplit("/", 1)[-1])
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        return None
    found = dict(hashes or {})
    algorithm, _, digest = parts.fragment.partition("=")
    if algorithm in HASH_NAMES and digest and algorithm not in found:
        found[algorithm] = digest
    lowered = {k.lower(): v.lower() for k, v in found.items()}
    return Link(name, urlunsplit(parts._replace(fragment="")), lowered, yanked)
