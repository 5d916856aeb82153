"""A package index on 127.0.0.1 standing in for the PyTorch index (and PyPI), which the tests cannot reach.

It answers PEP 691 JSON project pages (``/simple/PROJECT/``, and ``/whl/VARIANT/PROJECT/`` for the
variant indexes) and serves small wheels that honour HTTP Range requests, as the real file hosts
do. It counts every request by path, so a test can say how many the reader made.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PEP691 = "application/vnd.pypi.simple.v1+json"


def wheel(members: Mapping[str, str]) -> bytes:
    """A small zip holding ``members`` (name → text), deflated as wheels are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
        # Bulk, so the central directory and the members are not all in the first block read.
        archive.writestr("torch/lib/padding.bin", bytes(range(256)) * 2048, compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def torch_wheel(version: str, cuda: str | None, cxx: int = 20) -> bytes:
    return wheel({
        "torch/version.py": f"__version__ = '{version}'\ncuda: Optional[str] = {cuda!r}\nhip = None\n",
        "torch/include/torch/csrc/api/include/torch/all.h":
            f"#pragma once\n#if !defined(_MSC_VER) && __cplusplus < 2020L\n"
            f"#error C++{cxx} or later compatible compiler is required to use PyTorch.\n#endif\n",
        f"torch-{version.split('+')[0]}.dist-info/METADATA":
            f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n",
    })


def companion_wheel(name: str, version: str, requires: str | None) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", "Requires-Dist: numpy"]
    if requires is not None:
        lines.append(f"Requires-Dist: torch{requires}")
    return wheel({f"{name}-{version}.dist-info/METADATA": "\n".join(lines) + "\n"})


class FakeIndex:
    """Project pages and files by path; ``requests`` counts what was asked."""

    def __init__(self) -> None:
        #: (index path, project) → [(filename, bytes)]: index path "simple" or "whl/cu132".
        self.pages: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
        #: filename → the URL its page gives instead of the fake's own /files/NAME.
        self.urls: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        #: Whether files honour Range (a server that does not must not be downloaded from).
        self.ranges = True
        #: Bytes of file content sent in answers to Range requests, all together.
        self.bytes_sent = 0
        self._server: ThreadingHTTPServer | None = None

    def add(self, project: str, filename: str, content: bytes, index: str = "simple") -> None:
        self.pages.setdefault((index, project), []).append((filename, content))

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def simple(self) -> str:
        return f"{self.url}/simple"

    @property
    def variant_template(self) -> str:
        return f"{self.url}/whl/{{variant}}"

    def page_requests(self) -> int:
        return sum(n for path, n in self.requests.items() if path.endswith("/"))

    def file_requests(self) -> int:
        return sum(n for path, n in self.requests.items() if path.startswith("/files/"))

    def _file(self, filename: str) -> bytes | None:
        for files in self.pages.values():
            for name, content in files:
                if name == filename:
                    return content
        return None

    @contextmanager
    def serving(self) -> Iterator[FakeIndex]:
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                index.requests[self.path] += 1
                page = re.fullmatch(r"/(simple|whl/[^/]+)/([^/]+)/", self.path)
                if page is not None:
                    files = index.pages.get((page.group(1), page.group(2)))
                    if files is None:
                        self.send_error(404)
                        return
                    body = json.dumps({
                        "meta": {"api-version": "1.1"}, "name": page.group(2),
                        "files": [{"filename": name, "url": index.urls.get(name, f"/files/{name}"),
                                   "hashes": {}} for name, _ in files],
                    }).encode()
                    self._send(200, body, {"Content-Type": PEP691})
                    return
                content = index._file(self.path.removeprefix("/files/"))
                if content is None:
                    self.send_error(404)
                    return
                wanted = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
                if not index.ranges or wanted is None:
                    self._send(200, content, {"Content-Type": "application/octet-stream"})
                    return
                size = len(content)
                if wanted.group(1) == "":
                    start, end = max(0, size - int(wanted.group(2))), size - 1
                else:
                    start = int(wanted.group(1))
                    end = min(size - 1, int(wanted.group(2)) if wanted.group(2) else size - 1)
                self._send(206, content[start:end + 1], {"Content-Range": f"bytes {start}-{end}/{size}",
                                                         "Content-Type": "application/octet-stream"})

            def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                    if "Content-Range" in headers:
                        index.bytes_sent += len(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                  daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


@contextmanager
def silent_host() -> Iterator[str]:
    """An index URL whose host accepts connections and never answers (as a firewalled mirror does)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
