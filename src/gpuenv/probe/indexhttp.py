"""Asking a package index for a page: one GET with a timeout and a size limit, and pip's TLS trust.

ssl and urllib are imported only when a page is asked for: a plan whose
index facts are cached never pays for them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from gpuenv.inputs import UnreadableInput, read_input

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
