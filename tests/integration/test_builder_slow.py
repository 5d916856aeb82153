"""The slow tests of tests/unit/setup/test_builder.py.

Real venvs, installs and compiles: tests/integration is the slow tier, by folder.
"""

from __future__ import annotations

import venv
import zipfile
from pathlib import Path

from gpuenv.env.targetenv import TargetEnv
from gpuenv.runner import SubprocessRunner
from gpuenv.setup.builder import (
    build_wheel,
)
from gpuenv.setup.installer import PipInstaller
from tests.unit.setup.test_builder import ARGV_SETUP


def test_build_options_reach_a_setup_py_that_reads_them_from_the_command_line(tmp_path: Path) -> None:
    # The catalog's build_options (apex's --cpp_ext/--cuda_ext) go through pyproject-hooks as the config
    # setting --build-option, which setuptools' backend puts on the command line the setup.py reads.
    path = tmp_path / "venv"
    venv.create(path, with_pip=True)
    env = TargetEnv(path)
    runner = SubprocessRunner(log_path=tmp_path / "install.log")
    PipInstaller(runner).install(env, ["setuptools", "wheel"])
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "setup.py").write_text(ARGV_SETUP)
    (tree / "argv_ext.py").write_text("")
    (tree / "argv.c").write_text(
        '#include <Python.h>\nstatic struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "argv_ext_c"};\n'
        "PyMODINIT_FUNC PyInit_argv_ext_c(void) { return PyModule_Create(&m); }\n")
    wheels = {}
    for name, settings in (("with", {"--build-option": ["--cpp_ext"]}), ("without", None)):
        wheels[name] = build_wheel(
            tree, env=env, installer=PipInstaller(runner), runner=SubprocessRunner(), name="argv-ext",
            build_env={}, out_dir=tmp_path / name, log_path=tmp_path / f"{name}.log",
            config_settings=settings,
        )
    with zipfile.ZipFile(wheels["with"]) as z:
        assert any(n.startswith("argv_ext_c") and n.endswith(".so") for n in z.namelist())
    with zipfile.ZipFile(wheels["without"]) as z:
        assert not any(n.endswith(".so") for n in z.namelist())
