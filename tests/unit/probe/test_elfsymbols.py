"""The dynamic symbols of shared objects the tests compile with g++, checked against binutils' nm."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gpuenv.probe.binaries import BinaryFormatError
from gpuenv.probe.elfsymbols import defined_among, gnu_hash, read_dynamic

LIBRARY = """
#include <string>
namespace c10 {
std::string demangle(const std::string& s) { return s + "!"; }
int version() { return 213; }
}
extern "C" int aoti_torch_abi_version() { return 1; }
"""

USER = """
#include <string>
namespace c10 { std::string demangle(const std::string& s); int version(); }
extern "C" __attribute__((weak)) int maybe_there();
extern "C" int run() { return (int)c10::demangle("x").size() + c10::version() + (maybe_there ? 1 : 0); }
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    out = tmp_path_factory.mktemp("elf")
    (out / "lib.cpp").write_text(LIBRARY)
    (out / "user.cpp").write_text(USER)
    for args in (["lib.cpp", "-o", "libc10.so"], ["lib.cpp", "-Wl,--hash-style=sysv", "-o", "libsysv.so"],
                 ["user.cpp", "-L.", "-lc10", "-o", "user.so"]):
        done = subprocess.run(["g++", "-shared", "-fPIC", "-O1", *args], cwd=out, capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, done.stderr
    return out


def nm(path: Path, *flags: str) -> set[str]:
    done = subprocess.run(["nm", "-D", *flags, str(path)], capture_output=True, text=True, check=True)
    return {line.split()[-1].split("@")[0] for line in done.stdout.splitlines() if line.strip()}


def test_undefined_and_defined_symbols_are_what_nm_says(built: Path) -> None:
    if shutil.which("nm") is None:
        pytest.skip("needs nm")
    info = read_dynamic(built / "user.so")
    weak_undefined = {line.split()[-1] for line in subprocess.run(
        ["nm", "-D", "--undefined-only", str(built / "user.so")], capture_output=True, text=True, check=True,
    ).stdout.splitlines() if line.split()[0] in ("w", "v")}
    assert info.undefined == nm(built / "user.so", "--undefined-only") - weak_undefined
    assert "maybe_there" not in info.undefined, "a weak reference may stay unresolved"
    assert "run" in info.defined and info.defined <= nm(built / "user.so", "--defined-only")
    assert "libc10.so" in info.needed


def test_a_library_defines_what_it_exports_through_its_gnu_hash_table_and_without_one(built: Path) -> None:
    wanted = sorted(read_dynamic(built / "user.so").undefined)
    ours = {n for n in wanted if n.startswith("_ZN3c10")}
    assert len(ours) == 2
    for library in ("libc10.so", "libsysv.so"):
        assert defined_among(built / library, [*wanted, "_ZN3c104gone", "aoti_torch_abi_version"]) == \
            ours | {"aoti_torch_abi_version"}


def test_the_gnu_hash_is_the_loaders() -> None:
    # The values binutils' documentation and glibc's dl-lookup use.
    assert gnu_hash(b"") == 5381
    assert gnu_hash(b"printf") == 0x156B2BB8


def test_a_cut_or_crafted_file_is_an_error_not_a_hang(built: Path, tmp_path: Path) -> None:
    data = (built / "libc10.so").read_bytes()
    cut = tmp_path / "cut.so"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(BinaryFormatError):
        read_dynamic(cut)
    with pytest.raises(BinaryFormatError):
        defined_among(cut, ["_ZN3c107versionEv"])
    text = tmp_path / "text.so"
    text.write_bytes(b"not an ELF file at all, just some text " * 4)
    with pytest.raises(BinaryFormatError, match="not an ELF file"):
        read_dynamic(text)
