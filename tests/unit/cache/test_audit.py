"""The audit of prebuilt wheels, on small binaries compiled here: a stand-in libtorch (g++), extensions
built against it with either C++11 ABI or calling what it does not define, and CUDA extensions
(nvcc) with code for some archs. A find-links page of such wheels stands in for the hosts
publishers put theirs on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gpuenv.cache.audit import NameScheme, Target, audit, binary_problem, name_problem
from gpuenv.cache.prebuilt import find_prebuilt
from gpuenv.cache.remote import IndexClient
from gpuenv.plan.catalog import PrebuiltSource, catalog_entry
from tests.unit.cache.wheelmaker import make_wheel

PY = f"cp{sys.version_info.major}{sys.version_info.minor}"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
SCHEME = NameScheme("cu{cuda_major}torch{torch_release}cxx11abi{cxx11_abi}")
TARGET = Target(name="flash-attn", specifier="", python_version=PYTHON, abi_tag=PY,
                torch_version="2.14.1+cu130", torch_cuda="13.0", cxx11_abi=True, arch_list=("9.0",))
LABEL = "cu13torch2.14cxx11abiTRUE"

TORCH = """
#include <string>
namespace c10 {
std::string demangle(const std::string& s) { return s + "!"; }
int version() { return 214; }
}
"""
EXTENSION = """
#include <string>
namespace c10 { std::string demangle(const std::string& s); int version(); int gone(); }
extern "C" int run() { return (int)c10::demangle("x").size() + c10::version() CALL_GONE; }
"""
KERNEL = """
namespace c10 { int version(); }
__global__ void add(float* x) { x[threadIdx.x] += 1.0f; }
extern "C" int launch(float* x) { add<<<1, 32>>>(x); return c10::version(); }
"""


def name(label: str = LABEL, version: str = "2.8.3") -> str:
    return f"flash_attn-{version}+{label}-{PY}-{PY}-linux_x86_64.whl"


def _nvcc() -> str | None:
    home = os.environ.get("CUDA_HOME")
    if home and os.access(os.path.join(home, "bin", "nvcc"), os.X_OK):
        return os.path.join(home, "bin", "nvcc")
    found = sorted(Path("/usr/local").glob("cuda*/bin/nvcc"))
    return shutil.which("nvcc") or (str(found[-1]) if found else None)


def _run(cmd: Sequence[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nvcc = _nvcc()
    if nvcc is None or shutil.which("g++") is None:
        pytest.skip("needs nvcc and g++ to compile the fixtures")
    out = tmp_path_factory.mktemp("audit")
    (out / "torch.cpp").write_text(TORCH)
    (out / "ext.cpp").write_text(EXTENSION.replace("CALL_GONE", ""))
    (out / "gone.cpp").write_text(EXTENSION.replace("CALL_GONE", "+ c10::gone()"))
    (out / "kernel.cu").write_text(KERNEL)
    gxx = ["g++", "-shared", "-fPIC", "-O1"]
    cu = [nvcc, "-shared", "-Xcompiler", "-fPIC", "-cudart", "shared"]
    jobs = [
        [*gxx, "torch.cpp", "-o", "libc10.so"],
        [*gxx, "ext.cpp", "-o", "ext.so"],
        [*gxx, "-D_GLIBCXX_USE_CXX11_ABI=0", "ext.cpp", "-o", "old_abi.so"],
        [*gxx, "gone.cpp", "-o", "gone.so"],
        [*cu, "-gencode", "arch=compute_90,code=sm_90", "kernel.cu", "-o", "sm90.so"],
        [*cu, "-gencode", "arch=compute_80,code=sm_80", "kernel.cu", "-o", "sm80.so"],
        [*cu, "-gencode", "arch=compute_80,code=compute_80", "kernel.cu", "-o", "ptx80.so"],
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda cmd: _run(cmd, out), jobs))
    return out


def wheel(built: Path, out: Path, file_name: str, *binaries: str) -> Path:
    files = {f"flash_attn/{b}": (built / b).read_bytes() for b in binaries}
    files["flash_attn/__init__.py"] = b""
    return make_wheel(out, file_name, files)


def libs(built: Path) -> list[Path]:
    return [built / "libc10.so"]


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("file_name", "problem"), [
    (name(), None),
    (name(LABEL.replace("cu13", "cu12")), "built for CUDA 12, torch here has 13"),
    (name(LABEL.replace("TRUE", "FALSE")), "built with C++11 ABI FALSE, torch here has TRUE"),
    (name(LABEL.replace("2.14", "2.13")), "built for torch 2.13, torch here is 2.14.1+cu130"),
    (name("cu13torch2.14"), "does not follow the publisher's scheme"),
    (name().replace(f"{PY}-{PY}", "cp30-cp30"), "do not install on this env"),
    (name().replace("linux_x86_64", "win_amd64"), "do not install on this env"),
    ("torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl", "a wheel of torch-scatter, not flash-attn"),
])
def test_a_name_that_cannot_fit_is_refused_before_downloading(file_name: str, problem: str | None) -> None:
    found = name_problem(file_name, TARGET, SCHEME)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_manylinux_wheel_installs_on_this_linux() -> None:
    manylinux = f"flash_attn-2.8.3+{LABEL}-{PY}-{PY}-manylinux_2_17_x86_64.whl"
    assert name_problem(manylinux, TARGET, SCHEME) is None


def test_the_requirements_version_is_kept() -> None:
    pinned = Target(**{**TARGET.__dict__, "specifier": "==2.8.2"})
    assert "version 2.8.3 is not ==2.8.2" in (name_problem(name(), pinned, SCHEME) or "")


def test_a_stable_abi_wheel_fits_every_torch_at_or_above_its_floor() -> None:
    stable = Target(**{**TARGET.__dict__, "stable_abi": "2.10"})
    assert name_problem(name(LABEL.replace("2.14", "2.12")), stable, SCHEME) is None
    older = Target(**{**stable.__dict__, "torch_version": "2.9.1+cu130"})
    assert "stable ABI of 2.10" in (name_problem(name(LABEL.replace("2.14", "2.9")), older, SCHEME) or "")


def test_the_catalogs_naming_schemes_parse_the_names_their_setup_py_builds() -> None:
    (source,) = catalog_entry("flash-attn", "2.8.3").prebuilt
    tail = f"/v{{version}}/flash_attn-{{version}}+{source.local}-{{python}}-{{python}}-{{platform}}.whl"
    assert source.url.endswith(tail)
    url = source.url.format(**TARGET.fields(), version="2.8.3")
    assert url.rsplit("/", 1)[1] == name(LABEL, "2.8.3")
    assert name_problem(url.rsplit("/", 1)[1], TARGET, NameScheme(source.local)) is None
    assert catalog_entry("flash-attn", "2.5.0").prebuilt == (), "an older naming scheme is not claimed"


# -- binaries ---------------------------------------------------------------------------------


def test_a_wheel_built_against_this_torch_for_these_archs_passes(built: Path, tmp_path: Path) -> None:
    verdict = audit(wheel(built, tmp_path, name(), "ext.so", "sm90.so"), TARGET, SCHEME, libs(built))
    assert verdict.problem is None
    assert "its 2 libtorch symbols resolve in the torch here" in verdict.passed
    assert "device code runs on 9.0" in verdict.passed


def test_ptx_the_driver_compiles_forward_covers_a_newer_arch(built: Path, tmp_path: Path) -> None:
    assert audit(wheel(built, tmp_path, name(), "ptx80.so"), TARGET, SCHEME, libs(built)).problem is None


@pytest.mark.parametrize(("binaries", "problem"), [
    (("old_abi.so", "sm90.so"), "1 of its 2 libtorch symbols are not in the torch here (built against "
                                "another torch or C++11 ABI), e.g. _ZN3c108demangleERKSs"),
    (("gone.so", "sm90.so"), "e.g. _ZN3c104goneEv"),
    (("sm80.so",), "flash_attn/sm80.so has no code for sm_90 (it holds sm_80)"),
    (("ext.so",), "it holds no CUDA device code (a CPU build)"),
])
def test_a_wheel_that_would_not_load_or_run_here_is_refused_and_says_why(
    built: Path, tmp_path: Path, binaries: tuple[str, ...], problem: str
) -> None:
    verdict = audit(wheel(built, tmp_path, name(), *binaries), TARGET, SCHEME, libs(built))
    assert verdict.problem is not None and problem in verdict.problem


def test_a_wheel_linking_another_cuda_runtime_is_refused(built: Path, tmp_path: Path) -> None:
    cuda12 = Target(**{**TARGET.__dict__, "torch_cuda": "12.8", "torch_version": "2.14.1+cu128"})
    problem, _ = binary_problem(wheel(built, tmp_path, name(), "sm90.so"), cuda12, libs(built))
    assert problem == "flash_attn/sm90.so links libcudart.so.13; torch here is CUDA 12"
    cpu = Target(**{**TARGET.__dict__, "torch_cuda": None, "torch_version": "2.14.1+cpu", "arch_list": ()})
    problem, _ = binary_problem(wheel(built, tmp_path, name(), "sm90.so"), cpu, libs(built))
    assert problem == "flash_attn/sm90.so links libcudart.so.13; torch here is a CPU build"


def test_a_wheel_whose_files_do_not_match_its_record_is_refused(built: Path, tmp_path: Path) -> None:
    good = wheel(built, tmp_path, name(), "sm90.so")
    data = bytearray(good.read_bytes())
    at = data.find(b"\x7fELF")
    data[at + 200] ^= 0xFF  # stored, not deflated: the byte lands in the .so itself
    good.write_bytes(bytes(data))
    verdict = audit(good, TARGET, SCHEME, libs(built))
    assert verdict.problem is not None


# -- a publisher's page -----------------------------------------------------------------------


def test_the_first_candidate_of_a_page_that_passes_is_taken_and_every_refusal_is_said(
    built: Path, tmp_path: Path
) -> None:
    page = tmp_path / "page"
    candidates = {  # newest first: each bad one is downloaded, audited and refused before the good one
        "2.8.9": ("old_abi.so", "sm90.so"), "2.8.8": ("ext.so", "sm80.so"), "2.8.7": ("gone.so", "sm90.so"),
        "2.8.3": ("ext.so", "sm90.so"),
    }
    for version, binaries in candidates.items():
        wheel(built, page, name(version=version), *binaries)
    wheel(built, page, name(LABEL.replace("cu13", "cu12"), "2.9.0"), "ext.so", "sm90.so")  # never downloaded
    links = "\n".join(f'<a href="{p.name.replace("+", "%2B")}">{p.name}</a>'
                      for p in sorted(page.glob("*.whl")))
    (page / "index.html").write_text(f"<html><body>{links}</body></html>")

    source = PrebuiltSource(page.as_uri() + "/index.html", SCHEME.local)
    found = find_prebuilt([source], TARGET, version=None, client=IndexClient(), work_dir=tmp_path / "dl",
                          torch_libs=libs(built))
    assert found.wheel is not None and found.wheel.name == name(version="2.8.3")
    assert [r.split(":")[0] for r in found.refused] == [name(version=v) for v in ("2.8.9", "2.8.8", "2.8.7")]
    assert "C++11 ABI" in found.refused[0] and "no code for sm_90" in found.refused[1]
    assert "_ZN3c104goneEv" in found.refused[2]
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == [name(version="2.8.3")], \
        "refused downloads are removed"


def test_a_publisher_that_cannot_be_reached_is_a_reason_not_a_failure(tmp_path: Path) -> None:
    source = PrebuiltSource("http://127.0.0.1:9/whl/torch-{torch_release}.0+{variant}.html")
    found = find_prebuilt([source], TARGET, version=None, client=IndexClient(timeout=2), work_dir=tmp_path,
                          torch_libs=[])
    assert found.wheel is None
    assert found.why_not().startswith("http://127.0.0.1:9/whl/torch-2.14.0+cu130.html: cannot be reached")
    needs_pin = PrebuiltSource("http://127.0.0.1:9/v{version}/x-{version}.whl")
    assert "needs an exact version" in find_prebuilt(
        [needs_pin], TARGET, version=None, client=IndexClient(), work_dir=tmp_path, torch_libs=[]).why_not()
