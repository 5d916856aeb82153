"""One file out of a wheel on an index, without downloading the wheel: HTTP Range requests on its zip.

A torch wheel is half a gigabyte; what gpuenv needs from it (``torch/version.py``,
one header, the METADATA) is a few kilobytes. :func:`read_members` reads the
zip's end (one request, which often holds the whole central directory), the
central directory if it did not fit, then each wanted member's local header
and data (one request each): three to five small requests in all. A server
that ignores Range is refused after the first block, not downloaded.

Every request has a timeout and every read a size limit; a file:// URL is read
from disk the same way.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

#: The first request: the zip's last bytes (end record, and for most wheels the central directory).
TAIL_BYTES = 64 << 10
#: The largest central directory read (torch's is about 2 MiB).
MAX_DIRECTORY_BYTES = 16 << 20
#: The largest member read, compressed or not.
MAX_MEMBER_BYTES = 4 << 20

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"


class RemoteZipError(Exception):
    """Why a member could not be read (the server, the network, or the zip)."""


@dataclass(frozen=True)
class _Entry:
    name: str
    method: int
    compressed: int
    size: int
    offset: int


class RangeSource:
    """Bytes of one file by offset: HTTP Range requests, or a local file."""

    def __init__(self, url: str, *, timeout: float, cafile: str | None = None, user_agent: str = "gpuenv",
                 opener: Callable[..., Any] | None = None) -> None:
        self.url = url.split("#", 1)[0]
        self.timeout = timeout
        self.cafile = cafile
        self.user_agent = user_agent
        self.requests = 0
        #: Bytes received, all requests together.
        self.received = 0
        self.size = -1
        self._tail = b""
        self._opener = opener

    def tail(self, length: int) -> bytes:
        """The last ``length`` bytes (fewer for a smaller file); learns the size."""
        if self.size < 0:
            self._tail = self._fetch(f"bytes=-{length}", None, length)
        return self._tail[-length:]

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        if self.size < 0:
            self.tail(TAIL_BYTES)
        start_of_tail = self.size - len(self._tail)
        if offset >= start_of_tail:
            begin = offset - start_of_tail
            return self._tail[begin:begin + length]
        end = min(offset + length, self.size) - 1
        return self._fetch(f"bytes={offset}-{end}", offset, end - offset + 1)

    def _fetch(self, byte_range: str, offset: int | None, length: int) -> bytes:
        self.requests += 1
        parts = urlsplit(self.url)
        if parts.scheme == "file" or not parts.scheme:
            path = Path(unquote(parts.path)) if parts.scheme else Path(self.url)
            return self._read_local(path, offset, length)
        if parts.scheme not in ("http", "https"):
            raise RemoteZipError(f"unsupported URL scheme {parts.scheme!r}")
        return self._read_http(byte_range, length)

    def _read_local(self, path: Path, offset: int | None, length: int) -> bytes:
        try:
            with path.open("rb") as file:
                size = file.seek(0, 2)
                self.size = size
                start = max(0, size - length) if offset is None else offset
                file.seek(start)
                return file.read(length)
        except OSError as exc:
            raise RemoteZipError(f"cannot read {path}: {exc.strerror or exc}") from None

    def _read_http(self, byte_range: str, length: int) -> bytes:
        import urllib.error
        import urllib.request

        from gpuenv.probe.indexhttp import ssl_context

        headers = {"Range": byte_range, "User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        request = urllib.request.Request(self.url, headers=headers)
        opener = self._opener or urllib.request.urlopen
        try:
            context = ssl_context(self.cafile) if self.url.startswith("https:") else None
            with opener(request, timeout=self.timeout, context=context) as response:
                status = getattr(response, "status", 200)
                data: bytes = response.read(length + 1)
                self.received += len(data)
                if status == 200 and len(data) <= length and self.size < 0:
                    self.size = len(data)  # the whole file, smaller than the tail asked for
                    return data
                content_range = response.headers.get("Content-Range", "").strip()
                match = re.fullmatch(r"bytes ([0-9]+)-([0-9]+)/([0-9]+)", content_range, re.ASCII)
                if status != 206:
                    raise RemoteZipError(f"the server ignores Range requests (HTTP {status} for {self.url})")
                if match is None:
                    raise RemoteZipError(f"no usable Content-Range in the answer for {self.url}")
                self.size = int(match.group(3))
        except urllib.error.HTTPError as exc:
            raise RemoteZipError(f"HTTP {exc.code} {exc.reason} for {self.url}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteZipError(f"{reason} ({self.url})") from None
        if len(data) > length:
            raise RemoteZipError(f"the server sent more than the {length} bytes asked for ({self.url})")
        return data


def read_members(source: RangeSource, wanted: Callable[[str], bool], *, limit: int = 4) -> dict[str, bytes]:
    """The members of the zip at ``source`` whose names ``wanted`` accepts (at most ``limit``), by name."""
    entries = [e for e in _directory(source) if wanted(e.name)][:limit]
    return {e.name: _member(source, e) for e in entries}


def _directory(source: RangeSource) -> list[_Entry]:
    tail = source.tail(TAIL_BYTES)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise RemoteZipError("not a zip file (no end of central directory record)")
    _, _, _, _, count, size, offset, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if 0xFFFFFFFF in (size, offset) or count == 0xFFFF:
        size, offset = _zip64_directory(source, tail, at)
    if size > MAX_DIRECTORY_BYTES:
        raise RemoteZipError(f"a central directory of {size} bytes: larger than gpuenv reads")
    data = source.read(offset, size)
    if len(data) != size:
        raise RemoteZipError("the central directory is cut short")
    return list(_entries(data))


def _zip64_directory(source: RangeSource, tail: bytes, eocd_at: int) -> tuple[int, int]:
    locator = tail[eocd_at - 20:eocd_at]
    if len(locator) != 20 or not locator.startswith(_EOCD64_LOCATOR):
        raise RemoteZipError("a zip64 file without its locator")
    (record_offset,) = struct.unpack("<Q", locator[8:16])
    record = source.read(record_offset, 56)
    if len(record) != 56 or not record.startswith(_EOCD64):
        raise RemoteZipError("a zip64 file without its end record")
    size, offset = struct.unpack("<QQ", record[40:56])
    return int(size), int(offset)


def _entries(data: bytes) -> Iterable[_Entry]:
    at = 0
    while at + 46 <= len(data) and data[at:at + 4] == _CENTRAL:
        (method, compressed, size, name_len, extra_len, comment_len, offset) = (
            struct.unpack("<H", data[at + 10:at + 12])[0], *struct.unpack("<LL", data[at + 20:at + 28]),
            *struct.unpack("<HHH", data[at + 28:at + 34]), struct.unpack("<L", data[at + 42:at + 46])[0])
        name = data[at + 46:at + 46 + name_len].decode("utf-8", "replace")
        extra = data[at + 46 + name_len:at + 46 + name_len + extra_len]
        compressed, size, offset = _zip64_sizes(extra, compressed, size, offset)
        yield _Entry(name, method, compressed, size, offset)
        at += 46 + name_len + extra_len + comment_len


def _zip64_sizes(extra: bytes, compressed: int, size: int, offset: int) -> tuple[int, int, int]:
    """The sizes and offset a zip64 extra field carries in place of 0xFFFFFFFF."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack("<HH", extra[at:at + 4])
        if kind == 1:
            values = list(struct.unpack(f"<{length // 8}Q", extra[at + 4:at + 4 + length - length % 8]))
            if size == 0xFFFFFFFF and values:
                size = values.pop(0)
            if compressed == 0xFFFFFFFF and values:
                compressed = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
        at += 4 + length
    return compressed, size, offset


def _member(source: RangeSource, entry: _Entry) -> bytes:
    if entry.compressed > MAX_MEMBER_BYTES or entry.size > MAX_MEMBER_BYTES:
        raise RemoteZipError(f"{entry.name} is larger than gpuenv reads")
    # The local header repeats the name and may carry another extra field: ask for some slack.
    slack = 30 + len(entry.name.encode()) + 1024
    block = source.read(entry.offset, slack + entry.compressed)
    if not block.startswith(_LOCAL) or len(block) < 30:
        raise RemoteZipError(f"no local header for {entry.name}")
    name_len, extra_len = struct.unpack("<HH", block[26:30])
    start = 30 + name_len + extra_len
    data = block[start:start + entry.compressed]
    if len(data) < entry.compressed:
        data = source.read(entry.offset + start, entry.compressed)
    if entry.method == 0:
        return data[:entry.size]
    if entry.method != 8:
        raise RemoteZipError(f"{entry.name} uses compression method {entry.method}")
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data, MAX_MEMBER_BYTES + 1)
    except zlib.error as exc:
        raise RemoteZipError(f"{entry.name}: {exc}") from None
    if len(out) > MAX_MEMBER_BYTES:
        raise RemoteZipError(f"{entry.name} inflates past what gpuenv reads")
    return out
