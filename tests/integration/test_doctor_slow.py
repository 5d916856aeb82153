"""The slow tests of tests/unit/doctor/test_doctor.py.

Real venvs, installs and compiles: tests/integration is the slow tier, by folder.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gpuenv.doctor.diagnosis import (
    diagnose,
    recipe_and_lock,
)
from gpuenv.doctor.extensions import (
    read_binaries,
)
from gpuenv.doctor.report import report_text
from gpuenv.load.recipe import load_recipe
from gpuenv.probe.binaries import find_cuobjdump
from tests.unit.doctor.conftest import PROBE_DIST, PROBE_MODULE
from tests.unit.doctor.support import (
    add_distribution,
)
from tests.unit.doctor.test_doctor import _gpu_less_probe, _probe_recipe_and_lock, check_named, write_recipe


def test_real_env_on_this_gpu_less_machine_passes(torch_venv: Path, tmp_path: Path) -> None:
    recipe_path, _ = _probe_recipe_and_lock(tmp_path, "2.13.0+cpu")
    recipe, lock = recipe_and_lock(recipe_path, start=tmp_path)
    report = diagnose(torch_venv, hardware=_gpu_less_probe(), recipe=recipe, locked=lock)
    text = report_text(report)
    assert report.exit_code == 0, text
    assert "skip gpus none (no NVIDIA driver is loaded)" in text  # a check not made says skip
    assert "ok   torch 2.13.0+cpu, a CPU build, C++11 ABI" in text
    assert f"ok   {PROBE_DIST} import {PROBE_MODULE} works" in text
    assert f"skip {PROBE_DIST} archs sm_90 in 1 compiled file; no GPU to check them against" in text
    assert f"ok   {PROBE_DIST} built against torch 2.13.0+cpu, the one installed" in text


def test_real_extension_that_needs_torch_loaded_first_passes_as_in_setups_verify(
    torch_venv: Path, tmp_path: Path
) -> None:
    # What every plain CppExtension does: link libc10.so, which only `import torch` puts in the process.
    site = next((torch_venv / "lib").glob("python3*/site-packages"))
    add_distribution(site, "needs-torch-first", "1.0",
                     {"needs_torch_first.py": b"import ctypes\nctypes.CDLL('libc10.so')\n"})
    try:
        alone = subprocess.run([str(torch_venv / "bin" / "python"), "-c", "import needs_torch_first"],
                               capture_output=True, text=True, check=False)
        assert alone.returncode != 0 and "libc10.so" in alone.stderr, "the module cannot be imported alone"
        recipe = load_recipe(write_recipe(tmp_path, '[torch]\nversion = "2.13.0"\n'
                                          '[[extensions]]\nrequirement = "needs-torch-first"\n'
                                          'import = "needs_torch_first"\n'))
        report = diagnose(torch_venv, hardware=_gpu_less_probe(), recipe=recipe)
        check = check_named(report, "needs-torch-first import")
        assert check.verdict == "ok", report_text(report)
    finally:
        shutil.rmtree(site / "needs_torch_first-1.0.dist-info")
        (site / "needs_torch_first.py").unlink()


def test_real_env_whose_torch_changed_since_the_build_fails(torch_venv: Path, tmp_path: Path) -> None:
    recipe_path, _ = _probe_recipe_and_lock(tmp_path, "2.12.0+cpu")
    recipe, lock = recipe_and_lock(recipe_path, start=tmp_path)
    report = diagnose(torch_venv, hardware=_gpu_less_probe(), recipe=recipe, locked=lock)
    assert report.exit_code == 1
    check = check_named(report, f"{PROBE_DIST} built against")
    assert check.verdict == "fail" and "2.12.0+cpu → 2.13.0+cpu" in check.detail
    assert check.fix is not None and f"-r {recipe_path}" in check.fix


def test_real_env_missing_a_recipe_extension_fails(torch_venv: Path, tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path, '[torch]\nversion = "2.13.0"\n'
                                      '[[extensions]]\nrequirement = "torch-scatter==2.1.2"\n'))
    report = diagnose(torch_venv, hardware=_gpu_less_probe(), recipe=recipe)
    assert report.exit_code == 1
    check = check_named(report, "torch-scatter")
    assert check.verdict == "fail" and "not installed" in check.detail


def test_real_env_not_made_by_gpuenv_is_checked_without_recipe_or_lock(torch_venv: Path) -> None:
    report = diagnose(torch_venv, hardware=_gpu_less_probe())
    assert report.exit_code == 0, report_text(report)
    lock = check_named(report, "lock")
    assert (lock.verdict, lock.detail) == ("skip", "none for this env (nothing built to compare)")


def test_real_env_without_torch_fails(bare_venv: Path) -> None:
    report = diagnose(bare_venv, hardware=_gpu_less_probe())
    assert report.exit_code == 1
    check = check_named(report, "torch")
    assert check.verdict == "fail" and "not installed" in check.detail
    assert report.to_json()["exit_code"] == 1


def test_real_cuobjdump_agrees_when_one_is_installed(sm90_so: Path, tmp_path: Path) -> None:
    tool = find_cuobjdump([])
    if tool is None:
        pytest.skip("no cuobjdump on this machine")
    (binary,) = read_binaries([sm90_so], tool)
    assert binary.cuobjdump_sass == frozenset({"sm_90"})
