"""Building through pyproject-hooks in the target env's interpreter, with in-tree toy backends."""

from __future__ import annotations

import json
import os
import textwrap
import venv
from pathlib import Path

import pytest

from gpuenv.env.targetenv import TargetEnv
from gpuenv.errors import BuildError, StepError
from gpuenv.runner import ANSWER_MARK, SubprocessRunner
from gpuenv.setup.builder import (
    LEGACY_BACKEND,
    LEGACY_REQUIRES,
    BuildSystem,
    build_environ,
    build_wheel,
    compiler_step,
    install_build_requirements,
    read_build_system,
    requirements_to_install,
)
from tests.fakes import FakeInstaller, FakeRunner

MARKERS_311 = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux"}


# -- [build-system] --------------------------------------------------------------------


def test_a_tree_without_pyproject_gets_the_setuptools_legacy_backend(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("import torch\n")
    assert read_build_system(tmp_path) == BuildSystem(LEGACY_REQUIRES, LEGACY_BACKEND, legacy=True)


def test_a_pyproject_without_build_system_gets_the_legacy_backend(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.black]\nline-length = 100\n")
    assert read_build_system(tmp_path).backend == LEGACY_BACKEND


def test_requires_without_a_backend_keep_their_requires(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=61", "torch"]\n')
    expected = BuildSystem(("setuptools>=61", "torch"), LEGACY_BACKEND, legacy=True)
    assert read_build_system(tmp_path) == expected


def test_a_pyproject_that_is_not_utf8_is_a_step_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_bytes(b"# caf\xe9\n[build-system]\nrequires = []\n")
    with pytest.raises(StepError, match=r"pyproject\.toml: not UTF-8 text"):
        read_build_system(tmp_path)


def test_a_declared_backend_is_used(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["tools"]\n')
    assert read_build_system(tmp_path) == BuildSystem((), "backend", ("tools",))


# -- build requirements ------------------------------------------------------------------


def test_torch_satisfied_and_foreign_requirements_are_not_installed() -> None:
    installed = {"torch": "2.13.0+cpu", "setuptools": "80.9.0", "packaging": "21.0", "wheel": "0.45.1"}
    wanted = ["torch>=2.1", "setuptools>=64", "packaging>=22", "wheel", "ninja",
              'tomli; python_version < "3.11"', "Torch", "rich[jupyter]", "ninja"]
    missing = requirements_to_install(wanted, installed, MARKERS_311)
    assert missing == ["packaging>=22", "ninja", "rich[jupyter]"]


def test_build_requirements_are_installed_with_torch_pinned() -> None:
    def answer(cmd: list[str]) -> str:
        if "importlib.metadata" in cmd[-1]:
            data: object = {"torch": "2.13.0+cpu", "setuptools": "80.0"}
        else:
            data = {"version": "3.11.7", "python_tag": "cp311", "abi_tag": "cp311",
                    "platform_tag": "linux_x86_64", "purelib": "/e/lib", "markers": MARKERS_311}
        return ANSWER_MARK + json.dumps(data)

    installer = FakeInstaller()
    seen: list[list[str]] = []
    installed = install_build_requirements(
        TargetEnv("/e"), ["setuptools>=64", "torch", "psutil"], installer=installer,
        runner=FakeRunner(answer=answer), on_install=seen.append)
    assert installed == seen[0] == ["psutil"]
    assert installer.installs == [(["psutil"], ["torch==2.13.0+cpu"])]


# -- the build environment and progress ----------------------------------------------------


def test_the_build_environment_puts_the_env_and_the_toolkit_first_on_path() -> None:
    env = TargetEnv("/work/venv")
    environ = build_environ(env, {"CUDA_HOME": "/usr/local/cuda-13.0", "TORCH_CUDA_ARCH_LIST": "9.0"},
                            base={"PATH": "/usr/bin:/bin"})
    assert environ["PATH"] == os.pathsep.join(["/work/venv/bin", "/usr/local/cuda-13.0/bin", "/usr/bin:/bin"])
    assert environ["TORCH_CUDA_ARCH_LIST"] == "9.0"
    assert environ["VIRTUAL_ENV"] == "/work/venv"
    assert environ["PIP_NO_BUILD_ISOLATION"] == "0"  # sic: pip reads it inverted


@pytest.mark.parametrize(("line", "step"), [
    ("[3/10] /usr/local/cuda/bin/nvcc --generate-dependencies-with-compile -c /s/csrc/flash_fwd.cu "
     "-o /b/flash_fwd.o -gencode=arch=compute_90,code=sm_90", "[3/10] compiling flash_fwd.cu"),
    ("x86_64-linux-gnu-g++ -pthread -fPIC -I/t/include -c csrc/scatter.cpp -o build/temp/scatter.o",
     "compiling scatter.cpp"),
    ("[10/10] c++ /b/a.o /b/b.o -shared -L/t/lib -o /b/lib/flash_attn_2_cuda.so",
     "[10/10] linking flash_attn_2_cuda.so"),
    ("copying flash_attn/__init__.py -> build/lib/flash_attn", None),
    ("running bdist_wheel", None),
])
def test_compiler_lines_become_short_phases(line: str, step: str | None) -> None:
    assert compiler_step(line) == step


# -- real hooks, toy backends -------------------------------------------------------------------

BACKEND = textwrap.dedent("""
    import os, sys, zipfile

    def get_requires_for_build_wheel(config_settings=None):
        return []

    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        print("[1/2] /usr/local/cuda/bin/nvcc -c /src/kernel.cu -o kernel.o", flush=True)
        print("[2/2] c++ kernel.o -shared -o demo_ext.so", flush=True)
        print("ARCHS=" + os.environ.get("TORCH_CUDA_ARCH_LIST", ""), flush=True)
        print("PATH=" + os.environ["PATH"], flush=True)
        print("PYTHON=" + sys.prefix, flush=True)
        if os.environ.get("DEMO_FAIL"):
            print("nvcc fatal   : Unsupported gpu architecture 'compute_35'", flush=True)
            raise SystemExit(1)
        name = "demo_ext-1.0-py3-none-any.whl"
        with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
            zf.writestr("demo_ext/__init__.py", "")
        return name
""")


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory: pytest.TempPathFactory) -> TargetEnv:
    """A venv without pip: enough for backends that need nothing installed."""
    path = tmp_path_factory.mktemp("bare") / "venv"
    venv.create(path, with_pip=False)
    return TargetEnv(path)


def toy_tree(root: Path, backend: str = BACKEND, name: str = "toy_backend") -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text(
        f'[build-system]\nrequires = []\nbuild-backend = "{name}"\nbackend-path = ["."]\n')
    (root / "toy_backend.py").write_text(backend)
    return root


def build(tree: Path, env: TargetEnv, tmp_path: Path, phases: list[str], **build_env: str) -> Path:
    return build_wheel(
        tree, env=env, installer=FakeInstaller(), runner=SubprocessRunner(), name="demo-ext",
        build_env={"TORCH_CUDA_ARCH_LIST": "8.0;9.0", "CUDA_HOME": "/usr/local/cuda-13.0", **build_env},
        out_dir=tmp_path / "wheels", log_path=tmp_path / "build.log", on_phase=phases.append,
    )


def test_a_build_runs_in_the_env_with_the_planned_environment(bare_env: TargetEnv, tmp_path: Path) -> None:
    phases: list[str] = []
    wheel = build(toy_tree(tmp_path / "src"), bare_env, tmp_path, phases)
    assert wheel == tmp_path / "wheels" / "demo_ext-1.0-py3-none-any.whl" and wheel.is_file()
    assert phases == ["checking build requirements", "getting build requirements", "compiling",
                      "[1/2] compiling kernel.cu", "[2/2] linking demo_ext.so"]
    log = (tmp_path / "build.log").read_text()
    assert "ARCHS=8.0;9.0" in log
    assert f"PATH={bare_env.bin_dir}{os.pathsep}/usr/local/cuda-13.0/bin{os.pathsep}" in log
    assert f"PYTHON={bare_env.path}" in log


def test_a_failed_build_is_one_build_error_with_tail_log_and_hint(
    bare_env: TargetEnv, tmp_path: Path
) -> None:
    with pytest.raises(BuildError) as info:
        build(toy_tree(tmp_path / "src"), bare_env, tmp_path, [], DEMO_FAIL="1")
    error = info.value
    assert error.name == "demo-ext" and error.log_path == tmp_path / "build.log"
    assert error.problem == "compiling failed (exit code 1)"
    assert "Unsupported gpu architecture 'compute_35'" in error.tail
    assert error.hint is not None and "--arch" in error.hint
    assert str(error.log_path) in str(error)


def test_a_backend_that_does_not_import_is_a_build_error(bare_env: TargetEnv, tmp_path: Path) -> None:
    tree = toy_tree(tmp_path / "src", name="no_such_backend")
    with pytest.raises(BuildError, match="cannot be imported"):
        build(tree, bare_env, tmp_path, [])


def test_a_backend_without_build_wheel_is_a_build_error(bare_env: TargetEnv, tmp_path: Path) -> None:
    tree = toy_tree(tmp_path / "src", backend="def get_requires_for_build_wheel(c=None):\n    return []\n")
    with pytest.raises(BuildError) as info:
        build(tree, bare_env, tmp_path, [])
    assert "has no attribute 'build_wheel'" in info.value.tail


# Like NVIDIA apex (every release): the extension is compiled only when its option is on the
# command line, and the option is removed before setuptools parses it.
ARGV_SETUP = '''
import sys
from setuptools import Extension, setup

ext_modules = []
if "--cpp_ext" in sys.argv:
    sys.argv.remove("--cpp_ext")
    ext_modules.append(Extension("argv_ext_c", ["argv.c"]))
setup(name="argv-ext", version="1.0", py_modules=["argv_ext"], ext_modules=ext_modules)
'''
