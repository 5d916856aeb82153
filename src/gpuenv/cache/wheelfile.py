"""A wheel as a zip archive: its RECORD checked, a file added to its .dist-info, its binaries read.

A wheel fetched from a server is trusted only after :func:`check_wheel`: the
archive reads whole (a file cut off in an upload, or two uploads written over
each other, does not), and every file matches the sha256 and size its RECORD
gives, so what is installed is what its builder packed. The shared cache adds
its key to a wheel with :func:`add_dist_info_file` (RECORD updated, output the
same bytes for the same input); the audit of a prebuilt wheel reads its
``.so`` files out with :func:`extract_binaries`.

Everything is bounded: the archive's entries, their declared sizes and the
bytes read, so a zip bomb is refused before it fills a disk.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from gpuenv.errors import GpuenvError
from gpuenv.inputs import UnreadableInput, open_input

#: More than any wheel gpuenv builds or fetches holds unpacked (flash-attn's is ~1 GB).
MAX_UNPACKED_BYTES = 32 << 30
MAX_ENTRIES = 200_000
#: RECORD, METADATA, the key: small text files.
MAX_TEXT_BYTES = 16 << 20
#: What reading a damaged archive raises (a cut-off file, a flipped byte in deflated data).
_DAMAGED = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError)
#: Fixed time stamp of the files gpuenv adds, so the same wheel and key give the same bytes.
_STAMP = (2020, 1, 1, 0, 0, 0)


class WheelFileError(GpuenvError):
    """A wheel that cannot be trusted as a wheel: not a zip, cut short, or not matching its RECORD."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path.name}: {problem}")


def _open(path: Path) -> zipfile.ZipFile:
    try:
        open_input(path).close()  # a regular file: a FIFO is refused, not waited on
        archive = zipfile.ZipFile(path)
    except UnreadableInput as exc:
        raise WheelFileError(path, f"cannot read it: {exc.problem}") from None
    except _DAMAGED as exc:
        raise WheelFileError(path, f"not a readable wheel (zip) file: {exc}") from None
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        archive.close()
        raise WheelFileError(path, f"{len(infos)} files: more than a wheel holds")
    if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
        archive.close()
        raise WheelFileError(path, f"unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB")
    return archive


def dist_info(archive: zipfile.ZipFile, path: Path) -> str:
    """The wheel's ``NAME-VERSION.dist-info`` folder (the one holding WHEEL and RECORD)."""
    names = set(archive.namelist())
    found = sorted({n.split("/")[0] for n in names
                    if n.count("/") == 1 and n.split("/")[0].endswith(".dist-info")
                    and f"{n.split('/')[0]}/RECORD" in names and f"{n.split('/')[0]}/WHEEL" in names})
    if len(found) != 1:
        raise WheelFileError(path, f"{len(found)} .dist-info folders with WHEEL and RECORD, not one")
    return found[0]


def read_member(path: Path | str, member: str, *, limit: int = MAX_TEXT_BYTES) -> bytes | None:
    """The bytes of ``member`` (a path inside the wheel; ``{dist-info}/`` stands for its .dist-info
    folder), or None if the wheel has no such file."""
    path = Path(path)
    with _open(path) as archive:
        member = member.replace("{dist-info}", dist_info(archive, path))
        try:
            info = archive.getinfo(member)
        except KeyError:
            return None
        return _read(archive, info, path, limit)


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, limit: int) -> bytes:
    if info.file_size > limit:
        raise WheelFileError(path, f"{info.filename} is {info.file_size} bytes, more than {limit} read")
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except _DAMAGED as exc:
        raise WheelFileError(path, f"{info.filename} cannot be read: {exc}") from None
    if len(data) > limit:
        raise WheelFileError(path, f"{info.filename} unpacks past its declared size")
    return data


def record_hash(data: bytes) -> str:
    """``sha256=…`` as RECORD writes it (urlsafe base64, no padding)."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def check_wheel(path: Path | str) -> None:
    """Raise :class:`WheelFileError` unless every file of the wheel matches its RECORD and RECORD
    lists every file (signatures aside)."""
    path = Path(path)
    with _open(path) as archive:
        info_dir = dist_info(archive, path)
        record = f"{info_dir}/RECORD"
        rows = _record_rows(_read(archive, archive.getinfo(record), path, MAX_TEXT_BYTES), path)
        files = {i.filename: i for i in archive.infolist() if not i.is_dir()}
        signatures = {record, f"{info_dir}/RECORD.jws", f"{info_dir}/RECORD.p7s"}
        unlisted = sorted(set(files) - set(rows) - signatures)
        if unlisted:
            raise WheelFileError(path, f"{unlisted[0]} is in the wheel but not in its RECORD")
        for name, (digest, size) in rows.items():
            if name == record:
                continue
            info = files.get(name)
            if info is None:
                raise WheelFileError(path, f"{name} is in its RECORD but not in the wheel")
            actual, actual_size = _hash_member(archive, info, path)
            if digest != actual or (size and size != str(actual_size)):
                raise WheelFileError(path, f"{name} does not match its RECORD entry (altered or cut short)")


def _record_rows(data: bytes, path: Path) -> dict[str, tuple[str, str]]:
    rows = {}
    try:
        for row in csv.reader(io.StringIO(data.decode("utf-8"))):
            if not row:
                continue
            if len(row) != 3:
                raise WheelFileError(path, f"RECORD row {row[:1]} has {len(row)} fields, not 3")
            rows[row[0]] = (row[1], row[2])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise WheelFileError(path, f"RECORD cannot be read: {exc}") from None
    return rows


def _hash_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    try:
        with archive.open(info) as member:
            for block in iter(lambda: member.read(1 << 20), b""):
                size += len(block)
                if size > info.file_size:
                    raise WheelFileError(path, f"{info.filename} unpacks past its declared size")
                digest.update(block)
    except _DAMAGED as exc:
        raise WheelFileError(path, f"{info.filename} cannot be read: {exc}") from None
    return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode(), size


def add_dist_info_file(source: Path | str, target: Path | str, name: str, data: bytes) -> None:
    """Write ``source`` to ``target`` with ``name`` added to (or replaced in) its .dist-info folder
    and its RECORD updated. The same source, name and data give the same bytes."""
    source, target = Path(source), Path(target)
    with _open(source) as archive:
        info_dir = dist_info(archive, source)
        record_name, member = f"{info_dir}/RECORD", f"{info_dir}/{name}"
        record = _read(archive, archive.getinfo(record_name), source, MAX_TEXT_BYTES).decode("utf-8")
        lines = [line for line in record.splitlines()
                 if line and not line.startswith((member + ",", record_name + ","))]
        row = io.StringIO()
        csv.writer(row, lineterminator="\n").writerow([member, record_hash(data), len(data)])
        lines += [row.getvalue().rstrip("\n"), f"{record_name},,"]
        with zipfile.ZipFile(target, "w") as out:
            for info in archive.infolist():
                if info.filename in (member, record_name):
                    continue
                _copy_member(archive, info, out, source)
            out.writestr(_info(member), data, compress_type=zipfile.ZIP_DEFLATED)
            out.writestr(_info(record_name), ("\n".join(lines) + "\n").encode(),
                         compress_type=zipfile.ZIP_DEFLATED)


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, out: zipfile.ZipFile, path: Path) -> None:
    try:
        with archive.open(info) as reader, out.open(_clone(info), "w", force_zip64=True) as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
    except _DAMAGED as exc:
        raise WheelFileError(path, f"{info.filename} cannot be read: {exc}") from None


def _clone(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    copy = zipfile.ZipInfo(info.filename, info.date_time)
    copy.compress_type = info.compress_type
    copy.external_attr = info.external_attr
    copy.create_system = info.create_system
    return copy


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, _STAMP)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def binaries(path: Path | str) -> list[str]:
    """The shared objects in the wheel (``*.so`` and ``*.so.N``), by their path inside it."""
    path = Path(path)
    with _open(path) as archive:
        return [i.filename for i in archive.infolist() if not i.is_dir() and _is_shared_object(i.filename)]


def _is_shared_object(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".so") or ".so." in base


def extract_binaries(path: Path | str, out_dir: Path) -> Iterator[tuple[str, Path]]:
    """Each shared object of the wheel written under ``out_dir`` (by a name gpuenv chooses, never
    the archive's path), with its path inside the wheel."""
    path = Path(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _open(path) as archive:
        for number, info in enumerate(i for i in archive.infolist()
                                      if not i.is_dir() and _is_shared_object(i.filename)):
            target = out_dir / f"{number}.so"
            try:
                with archive.open(info) as reader, open(target, "wb") as writer:
                    shutil.copyfileobj(reader, writer, 1 << 20)
            except _DAMAGED as exc:
                raise WheelFileError(path, f"{info.filename} cannot be read: {exc}") from None
            yield info.filename, target
