"""Which GPU code a compiled shared object holds.

A CUDA build can be checked on a machine without a GPU: nvcc embeds a *fat
binary* in every object it compiles, and the linker concatenates them into the
``.nv_fatbin`` section of the shared object. Each fatbin container holds one
entry per ``-gencode`` target: SASS (a cubin for ``sm_XY``), PTX
(``compute_XY``, JIT-compiled by the driver) or LTO IR (``lto_XY``).

:func:`read_cuda_code` reads those entry headers directly, with no CUDA tool,
so tests and ``gpuenv doctor`` work where no ``cuobjdump`` is installed.
:func:`find_cuobjdump` and :func:`list_elf` drive NVIDIA's own tool for a
second opinion.

Layout (little-endian; verified against nvcc 13.0 output and cuobjdump 13.5):

* container header, 16 bytes: magic u32 ``0xBA55ED50``, version u16 (1),
  header size u16 (16), size of the entries that follow u64. Containers are
  packed back to back, one per object file (``nvcc -shared`` adds one more for
  its device link), and may be empty.
* entry header, at least 64 bytes: kind u16 (1 PTX, 2 ELF, 8 LTO IR) @0,
  version u16 @2, header size u32 @4 (64 to 120: it grows with options and
  capability lists, so always skip by it), payload size u64 @8, compressed
  size u32 @16 (0 when stored plain), arch u32 @28 (``90`` for sm_90,
  ``120`` for sm_120), flags u64 @40 (``0x100000`` arch-specific ``a``,
  ``0x200000`` family ``f``; compression ``0x8000`` in nvcc's default, size
  and balance modes, ``0x2000`` in speed mode), uncompressed
  size u64 @56. The next entry starts at header size + payload size.
"""

from __future__ import annotations

import mmap
import os
import re
import shutil
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from gpuenv.errors import CommandError, GpuenvError
from gpuenv.inputs import UnreadableInput, open_input
from gpuenv.runner import Runner, SubprocessRunner, bounded, query_timeout

FATBIN_MAGIC = 0xBA55ED50
#: Linked device code, the one the CUDA runtime loads.
FATBIN_SECTION = ".nv_fatbin"
#: Relocatable device code of ``-rdc`` objects before the device link; read
#: only when there is no linked code, as cuobjdump does.
RELFATBIN_SECTION = "__nv_relfatbin"

KIND_PTX = 1
KIND_ELF = 2
KIND_LTO = 8

FLAG_ARCH_SPECIFIC = 0x100000
FLAG_FAMILY = 0x200000

_CONTAINER = struct.Struct("<IHHQ")
_ENTRY = struct.Struct("<HHIQ")
_ENTRY_ARCH = struct.Struct("<I")
_ENTRY_FLAGS = struct.Struct("<Q")
#: The fields read end at byte 48 (nvcc writes headers of 64 bytes and more).
_ENTRY_MIN_SIZE = 48

_SHT_NOBITS = 8
#: Far above the sections of any shared object (tens) or object file (thousands); below what a
#: list of their headers can take in memory.
_MAX_SECTIONS = 1 << 20
_SHN_XINDEX = 0xFFFF
_ARCH_NAME = re.compile(r"^(sm|compute|lto)_([0-9]+)([af]?)$", re.ASCII)


class BinaryFormatError(GpuenvError):
    """A file that is not an ELF object, or whose fat binary is damaged."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class CudaCode:
    """The GPU code in one binary, by nvcc's names.

    ``sass`` holds ``sm_80``, ``sm_90a``…; ``ptx`` holds ``compute_90``…;
    ``lto`` holds ``lto_90``… (LTO IR, which needs a JIT link to run).
    """

    sass: frozenset[str] = frozenset()
    ptx: frozenset[str] = frozenset()
    lto: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.sass or self.ptx or self.lto)

    @property
    def sass_capabilities(self) -> frozenset[str]:
        """``{"8.0", "9.0a"}``: the SASS in TORCH_CUDA_ARCH_LIST spelling."""
        return frozenset(arch_to_capability(name) for name in self.sass)

    @property
    def ptx_capabilities(self) -> frozenset[str]:
        return frozenset(arch_to_capability(name) for name in self.ptx)

    def runs_on(self, capability: str) -> bool:
        """Whether a GPU of ``capability`` ("8.6") can load this code.

        SASS for X.y runs on X.z with z >= y (CUDA binary compatibility);
        PTX for X.Y is JIT-compiled for any newer GPU. Arch-specific code
        (``a``) runs on exactly its GPU, family code (``f``) only within its
        major version.
        """
        gpu = _parse_capability(capability)
        return any(_sass_runs_on(name, gpu) for name in self.sass) or any(
            _ptx_runs_on(name, gpu) for name in self.ptx
        )


def arch_to_capability(name: str) -> str:
    """``"sm_90a"`` -> ``"9.0a"``, ``"compute_120"`` -> ``"12.0"``."""
    number, suffix = _split_arch(name)
    return f"{number // 10}.{number % 10}{suffix}"


def _split_arch(name: str) -> tuple[int, str]:
    match = _ARCH_NAME.match(name)
    if match is None:
        raise ValueError(f"not a CUDA arch name: {name!r} (expected e.g. 'sm_90' or 'compute_90')")
    return int(match.group(2)), match.group(3)


def _parse_capability(capability: str) -> tuple[int, int]:
    major, _, minor = capability.partition(".")
    if not (major.isascii() and minor.isascii() and major.isdigit() and minor.isdigit()):
        raise ValueError(f"not a compute capability: {capability!r} (expected e.g. '9.0')")
    return int(major), int(minor)


def _sass_runs_on(name: str, gpu: tuple[int, int]) -> bool:
    number, suffix = _split_arch(name)
    built = (number // 10, number % 10)
    if suffix == "a":
        return built == gpu
    return built[0] == gpu[0] and built[1] <= gpu[1]


def _ptx_runs_on(name: str, gpu: tuple[int, int]) -> bool:
    number, suffix = _split_arch(name)
    built = (number // 10, number % 10)
    if suffix == "a":
        return built == gpu
    if suffix == "f":
        return built[0] == gpu[0] and built[1] <= gpu[1]
    return built <= gpu


# -- reading the fat binary ----------------------------------------------------


@dataclass(frozen=True)
class _Section:
    name: str
    offset: int
    size: int


def read_cuda_code(path: Path | str) -> CudaCode:
    """The SASS, PTX and LTO IR targets embedded in the ELF file at ``path``.

    Works on shared objects, executables and object files. A file without
    device code gives an empty :class:`CudaCode`; a file that is not ELF, or
    whose fat binary is cut short, raises :class:`BinaryFormatError`.
    """
    return _mapped(Path(path), _read_mapped)


def count_cuda_code(path: Path | str) -> dict[str, int]:
    """How many fat binary containers (one per compiled object) of the ELF file at ``path`` hold each
    SASS and PTX target: ``{"sm_90": 475, "sm_90a": 4, "compute_90": 475}``.

    The arch list a library was built with is in nearly every object; a target
    a few kernels add on their own (``sm_90a``, ``sm_89``) is in few. Raises as
    :func:`read_cuda_code`.
    """
    return _mapped(Path(path), _count_mapped)


_Read = TypeVar("_Read")


def _mapped(path: Path, read: Callable[[Path, mmap.mmap], _Read]) -> _Read:
    try:
        file = open_input(path)  # a FIFO among an env's files must not hang doctor
    except UnreadableInput as exc:
        raise BinaryFormatError(path, f"cannot read: {exc.problem}") from None
    try:
        with file:
            size = os.fstat(file.fileno()).st_size
            if size < 64:
                raise BinaryFormatError(path, f"not an ELF file (only {size} bytes)")
            # mmap: libtorch_cuda.so is 500 MB and only its headers are read.
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return read(path, data)
    except OSError as exc:
        raise BinaryFormatError(path, f"cannot read: {exc.strerror or exc}") from None


def _read_mapped(path: Path, data: mmap.mmap) -> CudaCode:
    found: dict[int, set[str]] = {KIND_ELF: set(), KIND_PTX: set(), KIND_LTO: set()}
    for container in _fatbin_containers(path, data):
        for kind, name in container:
            if kind in found:
                found[kind].add(name)
    return CudaCode(
        sass=frozenset(found[KIND_ELF]), ptx=frozenset(found[KIND_PTX]), lto=frozenset(found[KIND_LTO])
    )


def _count_mapped(path: Path, data: mmap.mmap) -> dict[str, int]:
    counts: dict[str, int] = {}
    for container in _fatbin_containers(path, data):
        for name in {name for kind, name in container if kind in (KIND_ELF, KIND_PTX)}:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _fatbin_containers(path: Path, data: mmap.mmap) -> Iterator[list[tuple[int, str]]]:
    """The (kind, arch name) entries of each fatbin container: of the linked code, else the relocatable."""
    sections = {section.name: section for section in _elf_sections(path, data)}
    section = sections.get(FATBIN_SECTION) or sections.get(RELFATBIN_SECTION)
    if section is not None:
        yield from _containers(path, data, section)


def _elf_sections(path: Path, data: mmap.mmap) -> Iterator[_Section]:
    """The named sections of an ELF file that have bytes in the file."""
    headers, names_index = _section_headers(path, data)
    if names_index >= len(headers):
        raise BinaryFormatError(path, "ELF section name table index out of range")
    names_offset = headers[names_index][4]
    for name, kind, _flags, _addr, offset, size, _link, _info in headers:
        if kind != _SHT_NOBITS:
            yield _Section(_c_string(data, names_offset + name), offset, size)


def _section_headers(path: Path, data: mmap.mmap) -> tuple[list[tuple[int, ...]], int]:
    """Every section header (name, type, flags, addr, offset, size, link, info), and the name table's index.

    Both ELF classes and byte orders are read: the layout is the same, only
    the field widths differ.
    """
    if data[:4] != b"\x7fELF":
        raise BinaryFormatError(path, "not an ELF file (no \\x7fELF magic); expected a .so, .o or executable")
    elf_class, byte_order = data[4], data[5]
    if elf_class not in (1, 2) or byte_order not in (1, 2):
        raise BinaryFormatError(path, f"unknown ELF class {elf_class} or byte order {byte_order}")
    end = "<" if byte_order == 1 else ">"
    if elf_class == 2:
        (table,) = struct.unpack_from(end + "Q", data, 0x28)
        entry_size, count, names_index = struct.unpack_from(end + "HHH", data, 0x3A)
        header = struct.Struct(end + "IIQQQQII")
    else:
        (table,) = struct.unpack_from(end + "I", data, 0x20)
        entry_size, count, names_index = struct.unpack_from(end + "HHH", data, 0x2E)
        header = struct.Struct(end + "IIIIIIII")
    if table == 0:
        return [], 0
    # Every count and size below comes from the file: each is bounded by the file's own size
    # before anything is read or allocated from it (a 200-byte file may claim 2^40 sections).
    if entry_size < header.size:
        raise BinaryFormatError(path, f"ELF section headers of {entry_size} bytes, fewer than the "
                                f"{header.size} each one takes: a damaged or crafted file")
    headers = [_section_header(path, data, header, table, 0)]
    # Extended numbering: past 0xff00 sections the real values live in section 0.
    count = count or headers[0][5]
    names_index = headers[0][6] if names_index == _SHN_XINDEX else names_index
    if count > _MAX_SECTIONS:
        raise BinaryFormatError(path, f"{count} ELF sections, more than any shared object has: a damaged "
                                "or crafted file")
    if table + count * entry_size > len(data):
        raise BinaryFormatError(path, f"truncated ELF file: {count} section headers of {entry_size} bytes "
                                f"at {table:#x} run past its {len(data)} bytes")
    headers += [_section_header(path, data, header, table + i * entry_size, i) for i in range(1, count)]
    return headers, names_index


def _section_header(
    path: Path, data: mmap.mmap, header: struct.Struct, offset: int, index: int
) -> tuple[int, ...]:
    if offset + header.size > len(data):
        raise BinaryFormatError(path, f"truncated ELF file: section header {index} is past the end")
    fields: tuple[int, ...] = header.unpack_from(data, offset)
    return fields


def _c_string(data: mmap.mmap, offset: int) -> str:
    stop = data.find(b"\0", offset)
    return data[offset:stop if stop >= 0 else len(data)].decode("ascii", "replace")


def _containers(path: Path, data: mmap.mmap, section: _Section) -> Iterator[list[tuple[int, str]]]:
    """(kind, arch name) of every entry, container by container, in ``section``."""
    position, end = section.offset, section.offset + section.size
    if end > len(data):
        raise BinaryFormatError(path, f"truncated ELF file: {section.name} runs past the end")
    while position + _CONTAINER.size <= end:
        magic, _version, header_size, entries_size = _CONTAINER.unpack_from(data, position)
        if magic == 0:
            position += 4  # the linker's zero padding between objects' containers
            continue
        if magic != FATBIN_MAGIC or header_size < _CONTAINER.size:
            raise BinaryFormatError(
                path, f"{section.name}: no fatbin container header at offset {position - section.offset:#x}"
            )
        first, position = position + header_size, position + header_size + entries_size
        if position > end:
            raise BinaryFormatError(path, f"{section.name}: a fatbin container runs past the section")
        yield list(_container_entries(path, data, first, position))


def _container_entries(path: Path, data: mmap.mmap, position: int, end: int) -> Iterator[tuple[int, str]]:
    while position < end:
        if position + _ENTRY_MIN_SIZE > end:
            raise BinaryFormatError(path, f"truncated fatbin entry header at file offset {position:#x}")
        kind, _version, header_size, payload_size = _ENTRY.unpack_from(data, position)
        if header_size < _ENTRY_MIN_SIZE:
            raise BinaryFormatError(path, f"fatbin entry header too short at file offset {position:#x}")
        (arch,) = _ENTRY_ARCH.unpack_from(data, position + 28)
        (flags,) = _ENTRY_FLAGS.unpack_from(data, position + 40)
        yield kind, _entry_name(kind, arch, flags)
        position += header_size + payload_size


def _entry_name(kind: int, arch: int, flags: int) -> str:
    prefix = {KIND_ELF: "sm", KIND_PTX: "compute", KIND_LTO: "lto"}.get(kind, f"kind{kind}")
    suffix = "a" if flags & FLAG_ARCH_SPECIFIC else "f" if flags & FLAG_FAMILY else ""
    return f"{prefix}_{arch}{suffix}"


# -- cuobjdump -----------------------------------------------------------------

#: Where cuobjdump lands inside a site-packages directory: the
#: nvidia-cuda-cuobjdump wheel (13.x installs ``nvidia/cu13/bin``; PyPI has
#: no 12.x one) and the copy triton bundles with CUDA torch.
_WHEEL_GLOB = "nvidia/cu[0-9]*/bin/cuobjdump"
_TRITON_PATH = "triton/backends/nvidia/bin/cuobjdump"


def find_cuobjdump(
    extra_dirs: Iterable[Path | str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    system_root: Path | str = "/usr/local",
) -> Path | None:
    """The first executable cuobjdump found, or ``None``.

    Looks, in order, in each of ``extra_dirs`` (a ``bin`` directory or a
    site-packages holding the nvidia-cuda-cuobjdump wheel or triton; the
    caller names them because it knows which environment it is checking),
    on ``PATH``, in ``$CUDA_HOME/bin`` and ``$CUDA_PATH/bin``, then in
    ``/usr/local/cuda/bin`` and ``/usr/local/cuda-X.Y/bin``, newest first.
    """
    environ = os.environ if environ is None else environ
    for candidate in _cuobjdump_candidates(extra_dirs, environ, Path(system_root)):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _cuobjdump_candidates(
    extra_dirs: Iterable[Path | str], environ: Mapping[str, str], system_root: Path
) -> Iterator[Path]:
    for directory in map(Path, extra_dirs):
        yield directory / "cuobjdump"
        yield from sorted(directory.glob(_WHEEL_GLOB), key=_wheel_cuda_major, reverse=True)
        yield directory / _TRITON_PATH
    on_path = shutil.which("cuobjdump", path=environ.get("PATH", ""))
    if on_path:
        yield Path(on_path)
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(variable):
            yield Path(environ[variable]) / "bin" / "cuobjdump"
    yield system_root / "cuda" / "bin" / "cuobjdump"
    for root in sorted(system_root.glob("cuda-*"), key=_toolkit_version, reverse=True):
        yield root / "bin" / "cuobjdump"


def _wheel_cuda_major(tool: Path) -> int:
    """13 for .../nvidia/cu13/bin/cuobjdump."""
    digits = tool.parent.parent.name.removeprefix("cu")
    return int(digits) if digits.isdigit() else 0


def _toolkit_version(root: Path) -> tuple[int, ...]:
    """(13, 0) for /usr/local/cuda-13.0, so 12.10 sorts after 12.9."""
    parts = root.name.removeprefix("cuda-").split(".")
    return tuple(int(part) for part in parts if part.isdigit())


_LISTED = re.compile(r"^(ELF|PTX) file\s+[0-9]+:\s+.*\.(sm_[0-9]+[af]?)\.(cubin|ptx)\s*$",
                     re.MULTILINE | re.ASCII)
_NO_DEVICE_CODE = "does not contain device code"


def list_elf(path: Path | str, cuobjdump: Path | str, runner: Runner | None = None) -> frozenset[str]:
    """``{"sm_80", "sm_90"}``: the cubins ``cuobjdump --list-elf`` reports."""
    return _cuobjdump_list(path, cuobjdump, "ELF", runner)


def list_ptx(path: Path | str, cuobjdump: Path | str, runner: Runner | None = None) -> frozenset[str]:
    """``{"compute_90"}``: the PTX ``cuobjdump --list-ptx`` reports, named as nvcc does."""
    return frozenset(
        "compute_" + name.removeprefix("sm_") for name in _cuobjdump_list(path, cuobjdump, "PTX", runner)
    )


def _cuobjdump_list(
    path: Path | str, cuobjdump: Path | str, kind: str, runner: Runner | None
) -> frozenset[str]:
    runner = bounded(runner or SubprocessRunner(), query_timeout())
    try:
        output = runner([str(cuobjdump), f"--list-{kind.lower()}", str(path)])
    except CommandError as exc:
        # cuobjdump exits 255 for a host-only object; that is an answer, not a failure.
        if _NO_DEVICE_CODE in exc.tail:
            return frozenset()
        raise
    return frozenset(match.group(2) for match in _LISTED.finditer(output) if match.group(1) == kind)
