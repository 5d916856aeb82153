"""What a shared object needs from others and what it provides: its ELF dynamic symbols.

The audit of a prebuilt extension wheel (:mod:`gpuenv.cache.audit`) asks two
questions no tool needs to be installed for: which symbols an extension's
``.so`` leaves undefined (what the loader must find in libtorch when it is
imported), and whether the installed libtorch defines each of them. Both are
read here from the files, through the section headers
:mod:`gpuenv.probe.binaries` reads (one ELF reader): ``.dynsym`` with its string
table, ``.dynamic`` for the ``DT_NEEDED`` libraries (``libcudart.so.13`` says
which CUDA major a binary was linked against), and ``.gnu.hash``, the table the
loader itself looks names up in, so asking whether libtorch_cuda.so (a GB)
defines 300 names reads a few pages, not its whole symbol table.

Every count and offset comes from the file and is checked against the file's
size before it is used: a damaged or crafted file is a
:class:`~gpuenv.probe.binaries.BinaryFormatError`, never a hang or a huge allocation.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gpuenv.inputs import UnreadableInput, open_input
from gpuenv.probe.binaries import BinaryFormatError, _section_headers

_SHT_DYNSYM = 11
_SHT_DYNAMIC = 6
_SHT_GNU_HASH = 0x6FFFFFF6
_DT_NEEDED = 1
_DT_SONAME = 14
_STB_WEAK = 2
_SHN_UNDEF = 0
#: Far above any real library (libtorch_cuda.so has a few hundred thousand dynamic symbols).
MAX_SYMBOLS = 8_000_000
MAX_NAME = 64 << 10


@dataclass(frozen=True)
class DynamicInfo:
    """The dynamic linking facts of one shared object."""

    #: ``DT_NEEDED``: the libraries the loader loads with it ("libc10.so", "libcudart.so.13").
    needed: tuple[str, ...]
    soname: str | None
    #: Undefined symbols the loader must resolve (weak ones, which may stay unresolved, are left out).
    undefined: frozenset[str]
    #: Symbols it defines (its exports).
    defined: frozenset[str]


@dataclass(frozen=True)
class _Table:
    offset: int
    size: int
    entry_size: int
    link: int


class _Elf:
    """An open, mapped ELF file and the tables the dynamic linker reads."""

    def __init__(self, path: Path, data: mmap.mmap) -> None:
        self.path, self.data = path, data
        headers, _ = _section_headers(path, data)
        self.wide = data[4] == 2
        self.end = "<" if data[5] == 1 else ">"
        self.headers = headers
        self.sym = struct.Struct(self.end + ("IBBHQQ" if self.wide else "IIIBBH"))

    def table(self, kind: int) -> _Table | None:
        for _name, section_type, _flags, _addr, offset, size, link, _info in self.headers:
            if section_type == kind:
                self._check(offset, size, f"section of type {kind:#x}")
                return _Table(offset, size, 0, link)
        return None

    def strings(self, index: int) -> _Table:
        if index >= len(self.headers):
            raise BinaryFormatError(self.path, f"string table index {index} out of range")
        offset, size = self.headers[index][4], self.headers[index][5]
        self._check(offset, size, "string table")
        return _Table(offset, size, 0, 0)

    def _check(self, offset: int, size: int, what: str) -> None:
        if offset + size > len(self.data):
            raise BinaryFormatError(self.path, f"truncated ELF file: its {what} runs past the end")

    def name(self, strings: _Table, offset: int) -> bytes:
        if offset >= strings.size:
            raise BinaryFormatError(self.path, f"a symbol name at {offset:#x} is outside its string table")
        start = strings.offset + offset
        stop = self.data.find(b"\0", start, min(strings.offset + strings.size, start + MAX_NAME))
        if stop < 0:
            raise BinaryFormatError(self.path, f"an unterminated symbol name at {start:#x}")
        return self.data[start:stop]

    def symbols(self) -> tuple[_Table, _Table, int]:
        """(.dynsym, its string table, how many entries)."""
        dynsym = self.table(_SHT_DYNSYM)
        if dynsym is None:
            return _Table(0, 0, 0, 0), _Table(0, 0, 0, 0), 0
        count = dynsym.size // self.sym.size
        if count > MAX_SYMBOLS:
            raise BinaryFormatError(self.path, f"{count} dynamic symbols: more than any library gpuenv reads")
        return dynsym, self.strings(dynsym.link), count

    def symbol(self, dynsym: _Table, index: int) -> tuple[int, int, int]:
        """(name offset, binding, section index) of dynamic symbol ``index``."""
        fields = self.sym.unpack_from(self.data, dynsym.offset + index * self.sym.size)
        if self.wide:
            name, info, _other, shndx = fields[0], fields[1], fields[2], fields[3]
        else:
            name, info, shndx = fields[0], fields[3], fields[5]
        return name, info >> 4, shndx


def _open(path: Path) -> tuple[BinaryIO, mmap.mmap]:
    try:
        file = open_input(path)  # a FIFO among a wheel's or an env's files must not hang the audit
    except UnreadableInput as exc:
        raise BinaryFormatError(path, f"cannot read: {exc.problem}") from None
    size = os.fstat(file.fileno()).st_size
    if size < 64:
        file.close()
        raise BinaryFormatError(path, f"not an ELF file (only {size} bytes)")
    try:
        return file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        file.close()
        raise BinaryFormatError(path, f"cannot map: {exc}") from None


def read_dynamic(path: Path | str) -> DynamicInfo:
    """The ``DT_NEEDED`` libraries, soname, undefined and defined dynamic symbols of an ELF file.

    Meant for an extension's own ``.so`` files (kilobytes to a few hundred MB of
    code, thousands of symbols); ask :func:`defined_among` of a library as large
    as libtorch instead.
    """
    path = Path(path)
    file, data = _open(path)
    try:
        elf = _Elf(path, data)
        needed, soname = _needed(elf)
        dynsym, strings, count = elf.symbols()
        undefined, defined = set(), set()
        for index in range(1, count):
            offset, binding, shndx = elf.symbol(dynsym, index)
            if offset == 0:
                continue
            name = elf.name(strings, offset).decode("ascii", "replace")
            if shndx != _SHN_UNDEF:
                defined.add(name)
            elif binding != _STB_WEAK:
                undefined.add(name)
        return DynamicInfo(tuple(needed), soname, frozenset(undefined), frozenset(defined))
    except struct.error as exc:
        raise BinaryFormatError(path, f"truncated ELF file: {exc}") from None
    finally:
        data.close()
        file.close()


def _needed(elf: _Elf) -> tuple[list[str], str | None]:
    dynamic = elf.table(_SHT_DYNAMIC)
    if dynamic is None:
        return [], None
    strings = elf.strings(dynamic.link)
    entry = struct.Struct(elf.end + ("qQ" if elf.wide else "iI"))
    needed, soname = [], None
    for position in range(dynamic.offset, dynamic.offset + dynamic.size - entry.size + 1, entry.size):
        tag, value = entry.unpack_from(elf.data, position)
        if tag == 0:
            break
        if tag in (_DT_NEEDED, _DT_SONAME):
            text = elf.name(strings, value).decode("ascii", "replace")
            if tag == _DT_NEEDED:
                needed.append(text)
            else:
                soname = text
    return needed, soname


def defined_among(path: Path | str, names: Iterable[str]) -> frozenset[str]:
    """Which of ``names`` the ELF file at ``path`` defines (exports), as the dynamic linker finds them.

    Uses the file's ``.gnu.hash`` table where it has one (every library a
    modern toolchain links does): a few reads per name. Without one, the
    symbol table is read once.
    """
    path = Path(path)
    wanted = {name.encode("ascii", "replace"): name for name in names}
    if not wanted:
        return frozenset()
    file, data = _open(path)
    try:
        elf = _Elf(path, data)
        dynsym, strings, count = elf.symbols()
        if count == 0:
            return frozenset()
        table = elf.table(_SHT_GNU_HASH)
        if table is not None:
            found = _hash_lookup(elf, table, dynsym, strings, count, wanted)
        else:
            found = _scan(elf, dynsym, strings, count, wanted)
        return frozenset(wanted[name] for name in found)
    except struct.error as exc:
        raise BinaryFormatError(path, f"truncated ELF file: {exc}") from None
    finally:
        data.close()
        file.close()


def _scan(elf: _Elf, dynsym: _Table, strings: _Table, count: int, wanted: dict[bytes, str]) -> set[bytes]:
    found = set()
    for index in range(1, count):
        offset, _binding, shndx = elf.symbol(dynsym, index)
        if offset and shndx != _SHN_UNDEF:
            name = elf.name(strings, offset)
            if name in wanted:
                found.add(name)
    return found


def gnu_hash(name: bytes) -> int:
    """The hash of a symbol name in ``.gnu.hash`` (Bernstein's: h * 33 + c, from 5381)."""
    value = 5381
    for byte in name:
        value = (value * 33 + byte) & 0xFFFFFFFF
    return value


def _hash_lookup(
    elf: _Elf, table: _Table, dynsym: _Table, strings: _Table, count: int, wanted: dict[bytes, str]
) -> set[bytes]:
    header = struct.Struct(elf.end + "IIII")
    if table.size < header.size:
        raise BinaryFormatError(elf.path, ".gnu.hash is shorter than its header")
    buckets_count, first, bloom_count, _shift = header.unpack_from(elf.data, table.offset)
    word = 8 if elf.wide else 4
    buckets = table.offset + header.size + bloom_count * word
    chains = buckets + buckets_count * 4
    if buckets_count == 0 or chains > table.offset + table.size:
        raise BinaryFormatError(elf.path, f".gnu.hash claims {buckets_count} buckets past its end")
    u32 = struct.Struct(elf.end + "I")
    found = set()
    for name in wanted:
        value = gnu_hash(name)
        (start,) = u32.unpack_from(elf.data, buckets + (value % buckets_count) * 4)
        for index in _chain(elf, u32, chains, table, start, first, count, value):
            offset, _binding, shndx = elf.symbol(dynsym, index)
            if shndx != _SHN_UNDEF and elf.name(strings, offset) == name:
                found.add(name)
                break
    return found


def _chain(
    elf: _Elf, u32: struct.Struct, chains: int, table: _Table, index: int, first: int, count: int, value: int
) -> Iterator[int]:
    """The symbol indices of ``value``'s bucket chain whose hash matches it."""
    if index == 0:
        return
    end = table.offset + table.size
    while first <= index < count:
        position = chains + (index - first) * 4
        if position + 4 > end:
            raise BinaryFormatError(elf.path, ".gnu.hash chain runs past the table")
        (entry,) = u32.unpack_from(elf.data, position)
        if entry | 1 == value | 1:
            yield index
        if entry & 1:
            return
        index += 1
