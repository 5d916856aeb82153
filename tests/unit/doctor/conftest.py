"""Fixtures of the doctor tests: a real sm_90 shared object, and (slow) a real torch venv.

The shared object is compiled once per session with the machine's nvcc (about
a second); the slow venv holds torch 2.13.0 (CPU) from the installer's own
sources and a small hand-made wheel whose package ships that shared object,
so doctor reads real GPU code out of a real install.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gpuenv.probe.toolkitroots import find_toolkits

KERNEL = """
__global__ void add_one(float* x, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += 1.0f;
}
extern "C" void launch_add_one(float* x, int n) { add_one<<<(n + 255) / 256, 256>>>(x, n); }
"""

#: The distribution of the slow venv that stands in for a built extension.
PROBE_DIST = "doctor-probe-ext"
PROBE_MODULE = "doctor_probe_ext"
PROBE_VERSION = "1.0"


@pytest.fixture(scope="session")
def nvcc() -> str:
    toolkits = find_toolkits()
    if not toolkits:
        pytest.skip("no CUDA toolkit (nvcc) on this machine")
    return toolkits[0].nvcc


@pytest.fixture(scope="session")
def sm90_so(nvcc: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shared object holding SASS for sm_90 only (no PTX)."""
    out = tmp_path_factory.mktemp("sm90")
    (out / "kernel.cu").write_text(KERNEL, encoding="utf-8")
    cmd = [nvcc, "-shared", "-Xcompiler", "-fPIC", "-gencode", "arch=compute_90,code=sm_90",
           "-o", "libkernel_sm90.so", "kernel.cu"]
    done = subprocess.run(cmd, cwd=out, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "libkernel_sm90.so"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_probe_wheel(directory: Path, so_file: Path) -> Path:
    """A py3-none-any wheel of doctor-probe-ext: a package that ships ``so_file`` as _kernels.so."""
    dist_info = f"{PROBE_MODULE}-{PROBE_VERSION}.dist-info"
    files = {
        f"{PROBE_MODULE}/__init__.py": b"KERNELS = '_kernels.so'\n",
        f"{PROBE_MODULE}/_kernels.so": so_file.read_bytes(),
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {PROBE_DIST}\nVersion: {PROBE_VERSION}\n"
        ).encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: gpuenv-tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n",
        f"{dist_info}/top_level.txt": f"{PROBE_MODULE}\n".encode(),
    }
    record = [_record_line(name, data) for name, data in files.items()] + [f"{dist_info}/RECORD,,"]
    wheel = directory / f"{PROBE_MODULE}-{PROBE_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture(scope="session")
def torch_venv(tmp_path_factory: pytest.TempPathFactory, sm90_so: Path) -> Path:
    """A venv with torch 2.13.0 (CPU) and doctor-probe-ext, whose .so holds sm_90 code."""
    root = tmp_path_factory.mktemp("doctor-venv")
    wheel = build_probe_wheel(root, sm90_so)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    # No route to the PyTorch index here: pip's own configured sources give the CPU wheel.
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "torch==2.13.0", str(wheel)],
        capture_output=True, text=True, check=False, timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return venv


@pytest.fixture(scope="session")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with nothing in it (not even pip): no torch."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   capture_output=True)
    return venv
