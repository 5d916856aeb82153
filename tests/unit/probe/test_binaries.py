"""read_cuda_code against real nvcc output, and cuobjdump as the second opinion.

The session fixture compiles small ``.cu`` files with the machine's nvcc (in
parallel, a few seconds) in the ways device code reaches a binary: ``nvcc
-shared`` (which adds a device-link container), objects linked by g++ (as
torch's CUDAExtension does), ``-rdc``, compressed entries, arch-specific and
family targets, PTX only. cuobjdump comes from the nvidia-cuda-cuobjdump wheel,
installed with pip into a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gpuenv.errors import CommandError
from gpuenv.probe.binaries import (
    BinaryFormatError,
    CudaCode,
    arch_to_capability,
    find_cuobjdump,
    list_elf,
    list_ptx,
    read_cuda_code,
)
from tests.fakes import FakeRunner

KERNEL = """
#include <cuda_runtime.h>
__global__ void KERNEL_NAME(float* x, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += 1.0f;
}
extern "C" int launch_KERNEL_NAME(float* x, int n) {
  KERNEL_NAME<<<(n + 255) / 256, 256>>>(x, n);
  return (int)cudaGetLastError();
}
"""

SM80_SM90_PTX90 = ["-gencode", "arch=compute_80,code=sm_80",
                   "-gencode", "arch=compute_90,code=[sm_90,compute_90]"]
SM86_SM120_PTX120 = ["-gencode", "arch=compute_86,code=sm_86",
                     "-gencode", "arch=compute_120,code=[sm_120,compute_120]"]

#: name -> (sass, ptx) that read_cuda_code must report for the binaries built below.
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "nvcc_shared.so": ({"sm_80", "sm_90"}, {"compute_90"}),
    "a.o": ({"sm_80", "sm_90"}, {"compute_90"}),
    "b_compressed.o": ({"sm_86", "sm_120"}, {"compute_120"}),
    "torch_like.so": ({"sm_80", "sm_90", "sm_86", "sm_120"}, {"compute_90", "compute_120"}),
    # -rdc: the runtime loads the device-linked code, which holds no PTX; the
    # pre-link copy in __nv_relfatbin (with PTX) is ignored, as cuobjdump does.
    "rdc.so": ({"sm_80"}, set()),
    "special.so": ({"sm_90a", "sm_100f"}, {"compute_120"}),
    "ptx_only.so": (set(), {"compute_90"}),
    "host_only.so": (set(), set()),
}


def _nvcc() -> str | None:
    home = os.environ.get("CUDA_HOME")
    if home and os.access(os.path.join(home, "bin", "nvcc"), os.X_OK):
        return os.path.join(home, "bin", "nvcc")
    return shutil.which("nvcc")


def _run(cmd: Sequence[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}{done.stderr}"


def _compile_all(nvcc: str, out: Path) -> None:
    (out / "a.cu").write_text(KERNEL.replace("KERNEL_NAME", "add_a"))
    (out / "b.cu").write_text(KERNEL.replace("KERNEL_NAME", "add_b"))
    (out / "host.c").write_text("int host_only(void) { return 1; }\n")
    pic = ["-Xcompiler", "-fPIC"]
    jobs: list[list[str]] = [
        [nvcc, "-shared", *pic, *SM80_SM90_PTX90, "a.cu", "-o", "nvcc_shared.so"],
        [nvcc, "-c", *pic, *SM80_SM90_PTX90, "a.cu", "-o", "a.o"],
        # size mode compresses the cubins too (the default compresses only PTX).
        [nvcc, "-c", *pic, "--compress-mode=size", *SM86_SM120_PTX120, "b.cu", "-o", "b_compressed.o"],
        [nvcc, "-shared", "-rdc=true", *pic, "-gencode", "arch=compute_80,code=[sm_80,compute_80]",
         "a.cu", "-o", "rdc.so"],
        [nvcc, "-shared", *pic, "-gencode", "arch=compute_90a,code=sm_90a",
         "-gencode", "arch=compute_100f,code=sm_100f", "-gencode", "arch=compute_120,code=compute_120",
         "a.cu", "-o", "special.so"],
        [nvcc, "-shared", *pic, "-gencode", "arch=compute_90,code=compute_90", "a.cu", "-o", "ptx_only.so"],
        ["gcc", "-shared", "-fPIC", "host.c", "-o", "host_only.so"],
    ]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda cmd: _run(cmd, out), jobs))
    # Link two objects the way torch's CUDAExtension does: the host linker
    # concatenates their fatbin containers, no device link. (cudart may stay
    # unresolved: the library is read, never loaded.)
    _run(["g++", "-shared", "a.o", "b_compressed.o", "-o", "torch_like.so"], out)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding every binary of EXPECTED."""
    nvcc = _nvcc()
    if nvcc is None or shutil.which("gcc") is None:
        pytest.skip("needs nvcc (CUDA_HOME or PATH) and gcc to compile device code")
    out = tmp_path_factory.mktemp("cuda_binaries")
    _compile_all(nvcc, out)
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_read_cuda_code_reports_exactly_what_was_compiled(built: Path, name: str) -> None:
    sass, ptx = EXPECTED[name]
    code = read_cuda_code(built / name)
    assert code.sass == sass
    assert code.ptx == ptx
    assert code.lto == frozenset()


def test_compressed_entries_are_read_from_their_headers(built: Path) -> None:
    # The cubins of b_compressed.o are compressed: no ELF image but the
    # object's own header is visible in it, yet their archs are read.
    assert (built / "b_compressed.o").read_bytes().count(b"\x7fELF") == 1
    assert read_cuda_code(built / "b_compressed.o").sass == {"sm_86", "sm_120"}


def test_a_file_that_is_not_elf_is_a_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("this is not a shared object, just some text long enough to be read\n" * 2)
    with pytest.raises(BinaryFormatError, match=r"notes\.txt: not an ELF file") as info:
        read_cuda_code(text)
    assert info.value.path == text


@pytest.mark.parametrize("content", [b"", b"\x7fELF"])
def test_an_empty_or_tiny_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    tiny = tmp_path / "tiny.so"
    tiny.write_bytes(content)
    with pytest.raises(BinaryFormatError, match=r"not an ELF file \(only \d+ bytes\)"):
        read_cuda_code(tiny)


def test_a_truncated_elf_file_is_a_clear_error(built: Path, tmp_path: Path) -> None:
    data = (built / "nvcc_shared.so").read_bytes()
    cut = tmp_path / "cut.so"
    cut.write_bytes(data[: len(data) // 2])  # section headers live at the end
    with pytest.raises(BinaryFormatError, match="truncated ELF file"):
        read_cuda_code(cut)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BinaryFormatError, match="cannot read"):
        read_cuda_code(tmp_path / "missing.so")


def crafted_elf(*, entry_size: int, count: int, count_in_section0: int = 0, table: int = 64,
                size: int = 200) -> bytes:
    """A 64-bit little-endian ELF header whose section header table says what the test wants, and a
    section 0 at ``table`` whose size field carries the extended section count."""
    data = bytearray(size)
    data[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", data, 0x28, table)
    struct.pack_into("<HHH", data, 0x3A, entry_size, count, 0)
    if table + 64 <= size:
        struct.pack_into("<IIQQQQII", data, table, 0, 0, 0, 0, 0, count_in_section0, 0, 0)
    return bytes(data)


@pytest.mark.parametrize(("elf", "problem"), [
    # Zero-sized entries and an extended count of 2^40: all headers at one place, a list of 2^40.
    (crafted_elf(entry_size=0, count=0, count_in_section0=1 << 40), "fewer than the 48 each one takes"),
    (crafted_elf(entry_size=64, count=0, count_in_section0=1 << 40), "more than any shared object has"),
    (crafted_elf(entry_size=64, count=0, count_in_section0=1000), "run past its 200 bytes"),
    (crafted_elf(entry_size=64, count=0xFFFF), "run past its 200 bytes"),
    (crafted_elf(entry_size=1 << 15, count=2), "run past its 200 bytes"),
    (crafted_elf(entry_size=64, count=1, table=(1 << 64) - 8), "past the end"),
])
def test_a_crafted_elf_with_absurd_counts_is_refused_without_allocating(
    tmp_path: Path, elf: bytes, problem: str
) -> None:
    path = tmp_path / "crafted.so"
    path.write_bytes(elf)
    with pytest.raises(BinaryFormatError, match=problem):
        read_cuda_code(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_named_like_an_extension_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "ext.so")
    with pytest.raises(BinaryFormatError, match=r"cannot read: not a regular file \(a FIFO\)"):
        read_cuda_code(tmp_path / "ext.so")


# -- CudaCode helpers -----------------------------------------------------------


def test_arch_names_turn_into_torch_arch_list_spelling() -> None:
    assert arch_to_capability("sm_90") == "9.0"
    assert arch_to_capability("sm_90a") == "9.0a"
    assert arch_to_capability("compute_120") == "12.0"
    assert arch_to_capability("sm_103f") == "10.3f"
    code = CudaCode(sass=frozenset({"sm_80", "sm_90a"}), ptx=frozenset({"compute_90"}))
    assert code.sass_capabilities == {"8.0", "9.0a"}
    assert code.ptx_capabilities == {"9.0"}
    with pytest.raises(ValueError, match="not a CUDA arch name"):
        arch_to_capability("hopper")


@pytest.mark.parametrize(
    ("sass", "ptx", "gpu", "runs"),
    [
        ({"sm_80"}, set(), "8.0", True),
        ({"sm_80"}, set(), "8.6", True),  # same major, newer minor
        ({"sm_86"}, set(), "8.0", False),
        ({"sm_80"}, set(), "9.0", False),  # SASS never crosses a major version
        ({"sm_90a"}, set(), "9.0", True),
        ({"sm_100a"}, set(), "10.3", False),  # arch-specific: exactly its GPU
        ({"sm_100f"}, set(), "10.3", True),  # family: within its major
        (set(), {"compute_80"}, "12.0", True),  # PTX is JIT-compiled for newer GPUs
        (set(), {"compute_90"}, "8.6", False),
        (set(), {"compute_100a"}, "10.3", False),
        (set(), {"compute_100f"}, "12.0", False),
        (set(), set(), "9.0", False),
    ],
)
def test_runs_on_follows_cuda_binary_compatibility(
    sass: set[str], ptx: set[str], gpu: str, runs: bool
) -> None:
    assert CudaCode(sass=frozenset(sass), ptx=frozenset(ptx)).runs_on(gpu) is runs


# -- finding cuobjdump ------------------------------------------------------------


def _fake_tool(path: Path, *, executable: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def test_find_cuobjdump_looks_in_wheel_and_triton_layouts_of_a_site_packages(tmp_path: Path) -> None:
    nothing: Mapping[str, str] = {"PATH": ""}
    wheel = _fake_tool(tmp_path / "wheel-site" / "nvidia" / "cu13" / "bin" / "cuobjdump")
    triton = _fake_tool(tmp_path / "triton-site" / "triton" / "backends" / "nvidia" / "bin" / "cuobjdump")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_cuobjdump([tmp_path / "wheel-site"], environ=nothing, system_root=empty) == wheel
    assert find_cuobjdump([tmp_path / "triton-site"], environ=nothing, system_root=empty) == triton
    assert find_cuobjdump([wheel.parent], environ=nothing, system_root=empty) == wheel
    assert find_cuobjdump([], environ=nothing, system_root=empty) is None
    newer = _fake_tool(tmp_path / "wheel-site" / "nvidia" / "cu14" / "bin" / "cuobjdump")
    assert find_cuobjdump([tmp_path / "wheel-site"], environ=nothing, system_root=empty) == newer


def test_read_cuda_code_rejects_a_damaged_fatbin(built: Path, tmp_path: Path) -> None:
    data = bytearray((built / "nvcc_shared.so").read_bytes())
    magic = (0xBA55ED50).to_bytes(4, "little")
    data[data.index(magic)] ^= 0xFF
    damaged = tmp_path / "damaged.so"
    damaged.write_bytes(bytes(data))
    with pytest.raises(BinaryFormatError, match="no fatbin container header"):
        read_cuda_code(damaged)


def test_find_cuobjdump_order_after_the_given_dirs(tmp_path: Path) -> None:
    on_path = _fake_tool(tmp_path / "path-bin" / "cuobjdump")
    home = _fake_tool(tmp_path / "home" / "bin" / "cuobjdump")
    system = tmp_path / "usr-local"
    old = _fake_tool(system / "cuda-12.9" / "bin" / "cuobjdump")
    new = _fake_tool(system / "cuda-12.10" / "bin" / "cuobjdump")
    env = {"PATH": str(on_path.parent), "CUDA_HOME": str(home.parent.parent)}
    assert find_cuobjdump(environ=env, system_root=system) == on_path
    assert find_cuobjdump(environ={"CUDA_HOME": env["CUDA_HOME"]}, system_root=system) == home
    assert find_cuobjdump(environ={}, system_root=system) == new, "newest toolkit first"
    old.unlink()
    new.chmod(0o644)
    assert find_cuobjdump(environ={}, system_root=system) is None, "a file that cannot run is skipped"


# -- cuobjdump output -------------------------------------------------------------

LISTING = """\
ELF file    1: torch_like.1.sm_80.cubin
ELF file    2: torch_like.2.sm_90.cubin
PTX file    1: torch_like.1.sm_90.ptx
ELF file    3: torch_like.3.sm_90a.cubin
"""


def test_list_elf_and_list_ptx_parse_cuobjdump_listings() -> None:
    runner = FakeRunner(LISTING)
    assert list_elf("x.so", "/opt/cuobjdump", runner) == {"sm_80", "sm_90", "sm_90a"}
    assert runner.commands == [["/opt/cuobjdump", "--list-elf", "x.so"]]
    assert list_ptx("x.so", "/opt/cuobjdump", FakeRunner(LISTING)) == {"compute_90"}


def test_list_elf_of_host_only_code_is_empty_and_other_failures_raise() -> None:
    host_only = CommandError(
        ["cuobjdump"], 255, tail="cuobjdump info    : File 'x.so' does not contain device code"
    )
    assert list_elf("x.so", "cuobjdump", FakeRunner(error=host_only)) == frozenset()
    broken = CommandError(["cuobjdump"], 1, tail="cuobjdump fatal   : Invalid fatbin header in 'x.so'")
    with pytest.raises(CommandError):
        list_elf("x.so", "cuobjdump", FakeRunner(error=broken))


@pytest.fixture(scope="session")
def cuobjdump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cuobjdump of the nvidia-cuda-cuobjdump wheel, pip-installed into a temporary directory."""
    target = tmp_path_factory.mktemp("cuobjdump_wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--target", str(target), "nvidia-cuda-cuobjdump"],
        capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot install nvidia-cuda-cuobjdump from the package index: {done.stderr[-500:]}")
    found = find_cuobjdump([target], environ={"PATH": ""}, system_root=target)
    assert found is not None, f"find_cuobjdump misses the wheel's layout: {sorted(target.rglob('*'))}"
    return found


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cuobjdump_agrees_with_read_cuda_code(built: Path, cuobjdump: Path, name: str) -> None:
    code = read_cuda_code(built / name)
    # cuobjdump --list-elf names a family cubin (sm_100f) without its suffix;
    # its -elf dump and the fatbin entry flags say "sm_100f".
    assert list_elf(built / name, cuobjdump) == {arch.rstrip("f") for arch in code.sass}
    assert list_ptx(built / name, cuobjdump) == code.ptx
