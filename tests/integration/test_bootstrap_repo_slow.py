"""A research repository as people have them, bootstrapped by `gpuenv init` and set up by its nox session.

The repo has a requirements file with -r, a pyproject with extras, a local CUDA
extension folder, a stale .gitmodules entry and a kernel it compiles when it
runs (torch.utils.cpp_extension.load). After `nox -s gpu-env -- --arch 8.0` the
repo is installed editable, its extension holds sm_80 only, and the kernel
compiled at run time holds sm_80 only too, whether the env is activated or its
python is run by path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from gpuenv.probe.binaries import find_cuobjdump, list_elf, read_cuda_code
from tests.integration.support import CUDA_EXT, clean_env, env_python

JIT_KERNEL = """\
#include <cuda_runtime.h>
__global__ void twice(float* x, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= 2;
}
extern "C" void research_twice(float* x, int n) { twice<<<(n + 255) / 256, 256>>>(x, n); }
"""

JIT_BUILD = """\
import sys
import torch.utils.cpp_extension as ext
ext.load(name="research_jit", sources=[sys.argv[1]], build_directory=sys.argv[2], is_python_module=False)
"""


def make_research_repo(root: Path) -> Path:
    (root / "requirements").mkdir(parents=True)
    (root / "requirements.txt").write_text("-r requirements/base.txt\ntorch==2.14.1\n-e .[train]\n")
    (root / "requirements" / "base.txt").write_text("ninja\n")
    (root / "pyproject.toml").write_text(textwrap.dedent("""\
        [project]
        name = "research"
        version = "0.1"
        dependencies = ["packaging"]
        [project.optional-dependencies]
        train = ["six"]
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"
        [tool.setuptools]
        packages = ["research"]
    """))
    (root / "research").mkdir()
    (root / "research" / "__init__.py").write_text("")
    (root / "research" / "twice.cu").write_text(JIT_KERNEL)
    shutil.copytree(CUDA_EXT, root / "kernels" / "myext")
    (root / "third_party" / "raster").mkdir(parents=True)
    (root / ".gitmodules").write_text(
        '[submodule "third_party/raster"]\n\tpath = third_party/raster\n\turl = https://x.invalid/raster\n')
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def test_init_then_nox_sets_up_the_repo_its_extension_and_its_run_time_kernels(tmp_path: Path) -> None:
    repo = make_research_repo(tmp_path / "research")
    venv = tmp_path / "venv"
    init = subprocess.run([sys.executable, "-m", "gpuenv", "init"], cwd=repo, capture_output=True, text=True,
                          env=clean_env(), timeout=120)
    assert init.returncode == 0, init.stderr
    assert "requirements.txt:2: torch==2.14.1 -> [torch]" in init.stdout
    assert "./kernels/myext -> [[extensions]]" in init.stdout
    # .gitmodules lists third_party/raster, the git index holds no gitlink there: git never fills it.
    assert "third_party/raster is listed but no gitlink in the git index" in init.stdout
    assert ".venv/" in (repo / ".gitignore").read_text()
    nox = subprocess.run(
        [sys.executable, "-m", "nox", "--envdir", str(tmp_path / "nox"), "-s", "gpu-env", "--",
         "--arch", "8.0", "--venv", str(venv), "--torch-index", "config",
         "--cache-dir", str(tmp_path / "cache")],
        cwd=repo, capture_output=True, text=True, env=clean_env(), timeout=2400)
    try:
        assert nox.returncode == 0, nox.stdout[-4000:] + nox.stderr[-4000:]
        _check_env(repo, venv, tmp_path)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # 5.4 GB


def _check_env(repo: Path, venv: Path, tmp_path: Path) -> None:
    python = str(env_python(venv))
    where = subprocess.run([python, "-c", "import research, six; print(research.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(repo / "research" / "__init__.py"), "the repo itself, editable, with its extra"
    site = next((venv / "lib").glob("python3*/site-packages"))
    cuobjdump = find_cuobjdump(extra_dirs=[site])
    assert cuobjdump is not None
    sos = sorted(site.glob("gpuenv_test_cuda_ext*/**/*.so")) + sorted(site.glob("gpuenv_test_cuda_ext*.so"))
    assert sos and {str(s) for so in sos for s in list_elf(so, cuobjdump)} == {"sm_80"}
    source = repo / "research" / "twice.cu"
    # Run by path, not activated: the env's own runtime file gives the plan to the build.
    direct = tmp_path / "jit-direct"
    direct.mkdir()
    clean = {k: v for k, v in clean_env().items() if k not in ("CUDA_HOME", "TORCH_CUDA_ARCH_LIST")}
    done = subprocess.run([python, "-c", JIT_BUILD, str(source), str(direct)], capture_output=True, text=True,
                          env=clean, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert read_cuda_code(direct / "research_jit.so").sass == frozenset({"sm_80"})
    # Activated, as a user's shell would be.
    activated = tmp_path / "jit-activated"
    activated.mkdir()
    script = f". {venv}/bin/activate && python -c '{JIT_BUILD}' {source} {activated}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=clean, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {str(s) for s in list_elf(activated / "research_jit.so", cuobjdump)} == {"sm_80"}
    assert (repo / "envs" / "gpuenv.lock").is_file()
