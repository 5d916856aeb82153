"""gpuenv doctor: the verdict rules on synthetic machines and builds.

The fast tests feed the checks hand-made hardware, torch builds, lock entries
and a fake site-packages holding a real sm_90 shared object compiled by nvcc;
whole diagnoses run through :class:`FakeEnvRunner`. The slow tests, in
tests/integration/test_doctor_slow.py, diagnose real venvs made with
``python -m venv`` and pip on this GPU-less machine.
"""

from __future__ import annotations

import json
import shutil
import stat
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from gpuenv.doctor import diagnosis
from gpuenv.doctor.diagnosis import (
    diagnose,
    recipe_and_lock,
)
from gpuenv.doctor.extensions import (
    Binary,
    ExtensionTarget,
    archs_check,
    built_against_check,
    distribution_files,
    extension_targets,
    import_check,
    read_binaries,
)
from gpuenv.doctor.lock import lock_check
from gpuenv.doctor.machine import machine_checks
from gpuenv.doctor.report import Check, Report, report_text
from gpuenv.doctor.toolkit import runtime_check, toolkit_check
from gpuenv.doctor.torchwheel import (
    cuda_available_check,
    torch_code,
    torch_data_check,
    torch_driver_check,
    torch_kernels_check,
)
from gpuenv.load.recipe import load_recipe
from gpuenv.lock.lockfile import LockedEnv, lock_path_for, write_lock
from gpuenv.plan.giventorch import TorchFacts
from gpuenv.plan.hardware import Hardware
from gpuenv.probe.binaries import CudaCode
from gpuenv.probe.host import probe
from gpuenv.setup.runtime import write_runtime_env
from tests.fakes import FakeEnvRunner
from tests.unit.doctor.conftest import PROBE_DIST, PROBE_MODULE, PROBE_VERSION
from tests.unit.doctor.support import (
    add_distribution,
    cpu_torch,
    cuda_torch,
    fake_venv,
    locked_env,
    machine,
)

NO_KERNEL = "no kernel image is available for execution on the device"


def verdicts(report: Report) -> dict[str, str]:
    return {c.name: c.verdict for c in report.checks}


def check_named(report: Report, name: str) -> Check:
    return next(c for c in report.checks if c.name == name)


def write_recipe(directory: Path, body: str, name: str = "default") -> Path:
    path = directory / "envs" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


# -- the report ------------------------------------------------------------------------------


def test_exit_code_is_1_only_when_a_check_fails() -> None:
    ok = Check("torch", "ok", "2.13.0+cpu, a CPU build")
    warn = Check("lock", "warn", "none", fix="run setup")
    fail = Check("flash-attn", "fail", "is not installed", fix="run setup")
    assert Report(Path("v"), (ok, warn)).exit_code == 0
    assert Report(Path("v"), (ok, warn, fail)).exit_code == 1


def test_text_has_one_line_per_check_and_fixes_indented_under_them() -> None:
    report = Report(Path("/v"), (Check("torch", "ok", "2.13.0+cpu, a CPU build"),
                                 Check("flash-attn", "fail", "is not installed", fix="run 'gpuenv setup'")))
    lines = report_text(report).splitlines()
    assert lines[0] == "ok   torch 2.13.0+cpu, a CPU build"
    assert lines[1] == "fail flash-attn is not installed"
    assert lines[2] == "     fix: run 'gpuenv setup'"
    assert lines[-1] == "/v: 1 failed, 0 warnings"


def test_json_carries_every_check_and_the_exit_code() -> None:
    report = Report(Path("/v"), (Check("lock", "warn", "none", fix="x"),))
    data = json.loads(json.dumps(report.to_json()))
    assert data == {"venv": "/v", "exit_code": 0,
                    "checks": [{"name": "lock", "verdict": "warn", "detail": "none", "fix": "x"}]}


# -- the machine -------------------------------------------------------------------------------


def test_no_gpu_with_a_cpu_torch_skips_the_gpu_checks_and_says_why() -> None:
    (check,) = machine_checks(machine(), cpu_torch())
    assert (check.name, check.verdict) == ("gpus", "skip")
    assert "no NVIDIA driver" in check.detail and "skipped" in check.detail


def test_no_gpu_with_a_cuda_torch_warns() -> None:
    (check,) = machine_checks(machine(), cuda_torch())
    assert check.verdict == "warn" and "skipped" in check.detail and check.fix


def test_driver_and_each_gpu_get_a_line() -> None:
    checks = machine_checks(machine("H100", "A100", driver="570.124.06", cuda="12.8"), cuda_torch())
    assert [c.name for c in checks] == ["driver", "gpu 0", "gpu 1"]
    assert checks[0].detail == "570.124.06, supports CUDA 12.8"
    assert "compute capability 9.0" in checks[1].detail and "81559 MiB" in checks[1].detail


# -- torch ------------------------------------------------------------------------------------------


def test_v100_with_a_cu130_torch_predicts_no_kernel_image_and_names_the_variant_to_use() -> None:
    hardware = machine("V100", driver="580.65.06", cuda="13.0")
    torch = cuda_torch()
    code, source = torch_code(torch, Path("/nonexistent"))
    check = torch_kernels_check(torch, code, source, hardware)
    assert check.verdict == "fail"
    assert NO_KERNEL in check.detail and "Tesla V100" in check.detail and "(7.0)" in check.detail
    assert check.fix is not None and "cu126" in check.fix and "--cuda 12.6" in check.fix


def test_h100_with_a_cu130_torch_is_covered() -> None:
    torch = cuda_torch()
    code, source = torch_code(torch, Path("/nonexistent"))
    check = torch_kernels_check(torch, code, source, machine("H100"))
    assert check.verdict == "ok" and "sm_90" in check.detail


def test_ptx_covers_newer_gpus() -> None:
    torch = cuda_torch(arch_list=("sm_80", "compute_80"))
    code, _ = torch_code(torch, Path("/nonexistent"))
    assert torch_kernels_check(torch, code, "x", machine("H100")).verdict == "ok"


def test_without_an_arch_list_the_kernels_are_read_from_libtorch_cuda(tmp_path: Path, sm90_so: Path) -> None:
    (tmp_path / "torch" / "lib").mkdir(parents=True)
    shutil.copy(sm90_so, tmp_path / "torch" / "lib" / "libtorch_cuda.so")
    torch = cuda_torch("2.12.0+cu130", arch_list=())  # ≤ 2.12 reports [] without a GPU
    code, source = torch_code(torch, tmp_path)
    assert code == CudaCode(sass=frozenset({"sm_90"})) and source.endswith("libtorch_cuda.so")
    assert torch_kernels_check(torch, code, source, machine("H100")).verdict == "ok"
    check = torch_kernels_check(torch, code, source, machine("A100"))
    assert check.verdict == "fail" and NO_KERNEL in check.detail


def test_the_installed_torch_is_compared_with_gpuenvs_data_as_setup_compares_it() -> None:
    pypi = TorchFacts("2.14.1+cu130", "13.0", ("7.5", "8.0", "8.6", "9.0", "10.0", "12.0"), True, 20,
                      "2.14.1", arch_source="torch.cuda.get_arch_list()")
    agrees = torch_data_check(pypi)
    assert agrees.verdict == "ok" and 'torch.toml releases."2.14" agrees' in agrees.detail
    differs = torch_data_check(replace(pypi, arch_list=("9.0",), cxx_standard=17))
    assert differs.verdict == "warn"
    assert 'torch.toml releases."2.14" cu130 (PyPI\'s wheel): data says archs 7.5' in differs.detail
    assert "the installed wheel carries 9.0 (torch.cuda.get_arch_list())" in differs.detail
    assert "data says C++20, the installed wheel's headers require C++17" in differs.detail
    assert differs.fix and "builds for the installed torch" in differs.fix
    ngc = torch_data_check(TorchFacts("2.5.0a0+872d972e41.nv24.08", "12.6", ("9.0",)))
    assert ngc.verdict == "skip" and "torch.toml does not list 2.5.0a0" in ngc.detail
    conda = torch_data_check(replace(pypi, version="2.14.1", cuda="12.9", arch_list=("9.0",),
                                     installer="conda"))
    assert conda.verdict == "skip" and "is a conda package" in conda.detail


def test_a_cuda_torch_on_a_gpu_less_machine_reports_its_archs_and_skips() -> None:
    torch = cuda_torch()
    code, source = torch_code(torch, Path("/nonexistent"))
    check = torch_kernels_check(torch, code, source, machine())
    assert check.verdict == "skip" and "sm_75" in check.detail and "no GPU to check" in check.detail


def test_a_cpu_torch_on_a_gpu_machine_warns_that_the_gpus_go_unused() -> None:
    check = torch_kernels_check(cpu_torch(), None, "", machine("H100"))
    assert check.verdict == "warn" and "torch is a CPU build and the 1 GPU goes unused" in check.detail


def test_a_rocm_torch_on_an_nvidia_machine_fails_the_kernel_check_by_its_name() -> None:
    rocm = replace(cpu_torch(), version="2.4.1+rocm6.0", hip="6.0.32830")
    check = torch_kernels_check(rocm, None, "", machine("H100"))
    assert check.verdict == "fail" and "torch is a ROCm build (HIP 6.0.32830)" in check.detail
    assert torch_kernels_check(rocm, None, "", machine()).detail == (
        "not needed: torch is a ROCm build (HIP 6.0.32830)")


def test_a_driver_older_than_torchs_cuda_major_fails() -> None:
    check = torch_driver_check(cuda_torch(), machine("H100", driver="570.124.06", cuda="12.8"))
    assert check is not None and check.verdict == "fail"
    assert "is_available() will be False" in check.detail
    assert check.fix is not None and "upgrade the NVIDIA driver" in check.fix and "cu126" in check.fix


def test_a_driver_that_supports_torchs_cuda_is_ok() -> None:
    check = torch_driver_check(cuda_torch(), machine("H100", driver="580.65.06", cuda="13.0"))
    assert check is not None and check.verdict == "ok"
    assert torch_driver_check(cpu_torch(), machine("H100")) is None
    assert torch_driver_check(cuda_torch(), machine()) is None


def test_cuda_unavailable_with_gpus_fails_with_the_reason() -> None:
    answer = {"available": False, "count": 0, "reason": "The NVIDIA driver on your system is too old"}
    check = cuda_available_check(cuda_torch(), machine("H100"), answer)
    assert check.verdict == "fail" and "too old" in check.detail
    assert check.fix is not None and "driver" in check.fix


def test_cuda_available_is_only_checked_where_there_are_gpus() -> None:
    no_gpu = cuda_available_check(cuda_torch(), machine(), None)
    assert no_gpu.verdict == "skip" and "no GPU" in no_gpu.detail
    described = cuda_available_check(cuda_torch(), machine("H100", source="--gpu H100"), None)
    assert described.verdict == "skip" and "--gpu H100" in described.detail
    ok = cuda_available_check(cuda_torch(), machine("H100"), {"available": True, "count": 1})
    assert ok.verdict == "ok" and "1 device" in ok.detail


# -- the toolkit ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("torch_cuda", "toolkits", "exact_for", "verdict", "words"),
    [
        ("13.0", ["13.0"], [], "ok", "matches"),
        ("13.0", ["13.1"], [], "warn", "minors"),
        ("13.0", ["13.1"], ["apex"], "fail", "apex"),
        ("13.0", ["12.8"], [], "fail", "The detected CUDA version (12.8) mismatches"),
        ("13.0", [], [], "warn", "none found"),
    ],
)
def test_toolkit_versus_torchs_cuda(torch_cuda: str, toolkits: list[str], exact_for: list[str],
                                    verdict: str, words: str) -> None:
    torch = cuda_torch(cuda=torch_cuda)
    check = toolkit_check(torch, machine("H100", toolkits=toolkits), exact_for=exact_for)
    assert check is not None and check.verdict == verdict and words in check.detail


def test_a_cpu_torch_needs_no_toolkit() -> None:
    check = toolkit_check(cpu_torch(), machine())
    assert check is not None and check.verdict == "ok" and "not needed" in check.detail


# -- the lock and the torch an extension was built against ---------------------------------------------


def test_an_extension_built_against_another_torch_fails_naming_both() -> None:
    target = ExtensionTarget("flash-attn", locked=locked_env(cpu_torch("2.13.0+cpu"),
                                                             [("flash-attn", "2.8.3")]).extensions[0])
    lock = locked_env(cpu_torch("2.13.0+cpu"), [("flash-attn", "2.8.3")])
    check = built_against_check(target, "2.8.3", lock, cuda_torch("2.14.1+cu130"))
    assert check.verdict == "fail"
    assert "2.13.0+cpu → 2.14.1+cu130" in check.detail and "undefined symbol" in check.detail
    assert check.fix is not None and "gpuenv setup" in check.fix


def test_a_different_cxx11_abi_is_a_torch_change_too() -> None:
    lock = locked_env(replace(cpu_torch(), cxx11_abi=False), [("x", "1")])
    target = ExtensionTarget("x", locked=lock.extensions[0])
    check = built_against_check(target, "1", lock, cpu_torch())
    assert check.verdict == "fail" and "pre-C++11 ABI" in check.detail


def test_the_same_torch_is_ok_and_no_lock_cannot_tell() -> None:
    lock = locked_env(cpu_torch(), [("x", "1")])
    assert built_against_check(ExtensionTarget("x", locked=lock.extensions[0]), "1", lock,
                               cpu_torch()).verdict == "ok"
    unknown = built_against_check(ExtensionTarget("x"), "1", None, cpu_torch())
    assert unknown.verdict == "warn" and "unknown torch" in unknown.detail


def test_another_version_than_the_locked_one_cannot_be_told() -> None:
    lock = locked_env(cpu_torch(), [("x", "1")])
    check = built_against_check(ExtensionTarget("x", locked=lock.extensions[0]), "2", lock, cpu_torch())
    assert check.verdict == "warn" and "records 1" in check.detail


def test_lock_line() -> None:
    assert lock_check(None, cpu_torch(), has_extensions=False).verdict == "skip"
    assert lock_check(None, cpu_torch(), has_extensions=True).verdict == "warn"
    changed = lock_check(locked_env(cpu_torch("2.12.0+cpu")), cpu_torch(), has_extensions=False)
    assert changed.verdict == "warn" and "2.12.0+cpu" in changed.detail and "2.13.0+cpu" in changed.detail


def test_extensions_come_from_the_recipe_then_the_lock(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path, textwrap.dedent("""
        [torch]
        version = "2.14.*"
        [[extensions]]
        requirement = "flash-attn==2.8.3.post2"
        env = { FLASH_ATTENTION_SKIP_CUDA_BUILD = "TRUE" }
        [[extensions]]
        requirement = "torch-scatter"
        import = "torch_scatter"
    """)))
    lock = locked_env(cpu_torch(), [("flash-attn", "2.8.3.post2"), ("mamba-ssm", "2.2.4")],
                      knobs={"MAMBA_SKIP_CUDA_BUILD": "TRUE"})
    targets = extension_targets(recipe, lock)
    assert [t.name for t in targets] == ["flash-attn", "torch-scatter", "mamba-ssm"]
    assert targets[0].locked is not None and targets[1].locked is None
    assert targets[0].skip_cuda_knob == "FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE"
    assert targets[2].skip_cuda_knob == "MAMBA_SKIP_CUDA_BUILD=TRUE"
    assert targets[1].module == "torch_scatter" and targets[1].skip_cuda_knob is None


def test_import_failures_name_the_error_and_the_fix() -> None:
    error = ("Traceback (most recent call last):\n  File \"<string>\", line 1\n"
             "ImportError: /x/flash_attn_2_cuda.so: undefined symbol: _ZN3c105ErrorC2E")
    check = import_check(ExtensionTarget("flash-attn"), "flash_attn", error)
    assert check.verdict == "fail" and check.detail.startswith("flash_attn fails: ImportError")
    assert check.fix is not None and "rebuilds it" in check.fix
    missing = import_check(ExtensionTarget("foo"), "foo", "ModuleNotFoundError: No module named 'foo'")
    assert missing.fix is not None and 'import = "..."' in missing.fix
    skipped = import_check(ExtensionTarget("flash-attn", env={"FLASH_ATTENTION_SKIP_CUDA_BUILD": "TRUE"}),
                           "flash_attn", None)
    assert skipped.verdict == "skip" and "no compiled module" in skipped.detail


# -- an extension's compiled files ---------------------------------------------------------------------


def test_an_sm90_extension_covers_h100_not_a100(tmp_path: Path, sm90_so: Path) -> None:
    add_distribution(tmp_path, "my-ext", "1.0",
                     {"my_ext/__init__.py": b"", "my_ext/_C.so": sm90_so.read_bytes()})
    files, top = distribution_files(tmp_path, "my_ext")
    assert files == [tmp_path / "my_ext" / "_C.so"] and top == "my_ext"
    binaries = read_binaries(files)
    target = ExtensionTarget("my-ext")
    covered = archs_check(target, binaries, machine("H100"))
    assert covered.verdict == "ok" and "sm_90" in covered.detail
    missing = archs_check(target, binaries, machine("H100", "A100"))
    assert missing.verdict == "fail" and NO_KERNEL in missing.detail
    assert "A100" in missing.detail and "H100" not in missing.detail.split("no code for")[1]
    no_gpu = archs_check(target, binaries, machine())
    assert no_gpu.verdict == "skip" and "sm_90" in no_gpu.detail and "no GPU to check" in no_gpu.detail


def test_host_only_code_is_a_cpu_build(tmp_path: Path) -> None:
    binaries = [Binary(tmp_path / "_C.so", CudaCode())]
    assert archs_check(ExtensionTarget("torch-scatter"), binaries, machine()).verdict == "ok"
    assert archs_check(ExtensionTarget("torch-scatter"), binaries, machine("H100")).verdict == "warn"
    assert archs_check(ExtensionTarget("flash-attn"), binaries, machine("H100")).verdict == "fail"
    assert archs_check(ExtensionTarget("six"), [], machine("H100")).detail == "none: no compiled files"


def _fake_cuobjdump(directory: Path, listed: str) -> Path:
    tool = directory / "cuobjdump"
    tool.write_text(f"#!/bin/sh\necho 'ELF file    1: x.1.{listed}.cubin'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool


def test_cuobjdump_cross_checks_the_fatbin_reader(tmp_path: Path, sm90_so: Path) -> None:
    agree = read_binaries([sm90_so], _fake_cuobjdump(tmp_path, "sm_90"))
    assert agree[0].cuobjdump_sass == frozenset({"sm_90"})
    assert "cuobjdump agrees" in archs_check(ExtensionTarget("x"), agree, machine("H100")).detail
    (tmp_path / "other").mkdir()
    disagree = read_binaries([sm90_so], _fake_cuobjdump(tmp_path / "other", "sm_80"))
    check = archs_check(ExtensionTarget("x"), disagree, machine("H100"))
    assert check.verdict == "warn" and "cuobjdump lists sm_80" in check.detail


# -- whole diagnoses of a fake env -------------------------------------------------------------------


def test_a_gpu_machine_whose_env_covers_its_gpus_passes(tmp_path: Path, sm90_so: Path) -> None:
    venv, site = fake_venv(tmp_path)
    add_distribution(site, "my-ext", "1.0", {"my_ext/__init__.py": b"", "my_ext/_C.so": sm90_so.read_bytes()})
    toolkit = tmp_path / "cuda-13.0"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "bin" / "nvcc").write_text("")
    write_runtime_env(site, {"CUDA_HOME": str(toolkit), "TORCH_CUDA_ARCH_LIST": "9.0"})
    torch = cuda_torch()
    runner = FakeEnvRunner(site, torch=torch, installed={"my-ext": "1.0"})
    report = diagnose(venv, hardware=machine("H100", toolkits=["13.0"]),
                      locked=locked_env(torch, [("my-ext", "1.0")]), runner=runner, cuobjdump=False)
    assert report.exit_code == 0, report_text(report)
    assert verdicts(report) == {
        "driver": "ok", "gpu 0": "ok", "env": "ok", "torch": "ok", "torch vs gpuenv's data": "ok",
        "torch CUDA 13.0": "ok", "torch kernels": "ok", "torch.cuda.is_available()": "ok", "toolkit": "ok",
        "runtime builds": "ok",
        "lock": "ok", "my-ext": "ok", "my-ext import": "ok", "my-ext archs": "ok",
        "my-ext built against": "ok",
    }
    assert runner.imported() == ["my_ext"]


def test_an_a100_fails_on_the_same_env_and_fixes_name_the_setup_command(
    tmp_path: Path, sm90_so: Path
) -> None:
    venv, site = fake_venv(tmp_path)
    add_distribution(site, "my-ext", "1.0", {"my_ext/_C.so": sm90_so.read_bytes()})
    torch = cuda_torch()
    runner = FakeEnvRunner(site, torch=torch, installed={"my-ext": "1.0"})
    report = diagnose(venv, hardware=machine("A100", toolkits=["13.0"]),
                      locked=locked_env(torch, [("my-ext", "1.0")]), runner=runner, cuobjdump=False)
    assert report.exit_code == 1
    check = check_named(report, "my-ext archs")
    assert check.verdict == "fail" and check.fix is not None and f"--venv {venv}" in check.fix


def test_cuda_unavailable_is_asked_of_the_env_where_there_are_gpus(tmp_path: Path) -> None:
    venv, site = fake_venv(tmp_path)
    runner = FakeEnvRunner(site, torch=cuda_torch(), cuda={"available": False, "count": 0,
                                                           "reason": "CUDA driver initialization failed"})
    report = diagnose(venv, hardware=machine("H100", toolkits=["13.0"]), runner=runner)
    check = check_named(report, "torch.cuda.is_available()")
    assert check.verdict == "fail" and "initialization failed" in check.detail and report.exit_code == 1


def test_gpus_described_by_an_override_are_not_asked_of_the_env(tmp_path: Path) -> None:
    venv, site = fake_venv(tmp_path)
    runner = FakeEnvRunner(site, torch=cuda_torch(), cuda={"available": False, "count": 0, "reason": "x"})
    report = diagnose(venv, hardware=machine("H100", source="--gpu H100"), runner=runner)
    assert not any("is_available" in c[-1] for c in runner.calls)
    assert check_named(report, "torch kernels").verdict == "ok" and report.exit_code == 0


def test_an_extension_built_with_its_skip_cuda_knob_is_not_imported(tmp_path: Path) -> None:
    venv, site = fake_venv(tmp_path)
    add_distribution(site, "flash-attn", "2.8.3.post2", {"flash_attn/__init__.py": b"import torch\n"})
    recipe = load_recipe(write_recipe(tmp_path, '[torch]\nversion = "2.13.*"\n[[extensions]]\n'
                                      'requirement = "flash-attn"\n'
                                      'env = { FLASH_ATTENTION_SKIP_CUDA_BUILD = "TRUE" }\n'))
    runner = FakeEnvRunner(site, torch=cpu_torch(), installed={"flash-attn": "2.8.3.post2"})
    report = diagnose(venv, hardware=machine(), recipe=recipe, runner=runner, cuobjdump=False)
    assert runner.imported() == []
    assert "FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE" in check_named(report, "flash-attn archs").detail
    assert check_named(report, "flash-attn built against").verdict == "warn"  # no lock
    assert report.exit_code == 0


def test_a_local_tree_is_looked_for_under_the_distribution_it_declares(tmp_path: Path) -> None:
    """The recipe names a local tree by its folder ("ops"); it installs what its pyproject declares
    ("mmcv-ops"): the doctor finds that, with or without a lock, and checks it once."""
    ops = tmp_path / "envs" / "ops"  # beside the recipe, which write_recipe puts in envs/
    ops.mkdir(parents=True)
    (ops / "pyproject.toml").write_text('[project]\nname = "mmcv_ops"\nversion = "1.0"\n')
    venv, site = fake_venv(tmp_path)
    add_distribution(site, "mmcv-ops", "1.0", {"mmcv_ops/__init__.py": b""})
    recipe = load_recipe(write_recipe(tmp_path, '[torch]\nversion = "2.13.*"\n[[extensions]]\n'
                                      'requirement = "./ops"\n'))
    torch = cpu_torch()
    lock = locked_env(torch, [("mmcv-ops", "1.0")])
    lock = replace(lock, extensions=(replace(lock.extensions[0], requirement="./ops"),))
    for locked in (None, lock):
        runner = FakeEnvRunner(site, torch=torch, installed={"mmcv-ops": "1.0"})
        report = diagnose(venv, hardware=machine(), recipe=recipe, locked=locked, runner=runner,
                          cuobjdump=False)
        assert check_named(report, "ops").verdict == "ok", report_text(report)
        assert check_named(report, "ops import").verdict == "ok" and runner.imported() == ["mmcv_ops"]
        assert not any(c.name.startswith("mmcv-ops") for c in report.checks), "checked once, by its name"
        assert report.exit_code == 0, report_text(report)


def test_a_directory_that_is_not_a_venv_fails_at_once(tmp_path: Path) -> None:
    report = diagnose(tmp_path / "nowhere", hardware=machine(), runner=FakeEnvRunner(tmp_path, torch=None))
    assert [c.name for c in report.checks] == ["gpus", "env"]
    assert report.checks[1].verdict == "fail" and report.exit_code == 1


def test_recipe_and_lock_are_found_from_the_project(tmp_path: Path) -> None:
    assert recipe_and_lock(None, start=tmp_path) == (None, None)
    recipe_path = write_recipe(tmp_path, '[torch]\nversion = "2.13.0"\n')
    recipe, lock = recipe_and_lock(None, start=tmp_path)
    assert recipe is not None and recipe.path == recipe_path and lock is None
    write_lock(lock_path_for(recipe_path), locked_env(cpu_torch()))
    _, lock = recipe_and_lock(recipe_path, start=Path("/"))
    assert lock is not None and lock.abi.torch_version == "2.13.0+cpu"


def test_setup_command_names_the_recipe_and_venv(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path, '[torch]\nversion = "2.13.0"\n', name="llm"))
    assert diagnosis.setup_command(Path(".venv"), recipe) == f"gpuenv setup -r {recipe.path} --venv .venv"
    assert diagnosis.setup_command(Path("/my env"), None) == "gpuenv setup --venv '/my env'"


def test_report_text_of_a_whole_diagnosis(tmp_path: Path) -> None:
    venv, site = fake_venv(tmp_path)
    report = diagnose(venv, hardware=machine(), runner=FakeEnvRunner(site, torch=cpu_torch()))
    assert report_text(report).splitlines()[:3] == [
        "skip gpus none (no NVIDIA driver is loaded); torch is a CPU build: the GPU checks are skipped",
        f"ok   env {venv}: Python 3.11.7",
        "ok   torch 2.13.0+cpu, a CPU build, C++11 ABI",
    ]


# -- real venvs (slow) -------------------------------------------------------------------------------------


def _gpu_less_probe() -> Hardware:
    hardware = probe()
    if hardware.gpus:
        pytest.skip("these checks are of a machine without GPUs")
    return hardware


def _probe_recipe_and_lock(tmp_path: Path, torch_version: str) -> tuple[Path, LockedEnv]:
    recipe = write_recipe(tmp_path, f"""[torch]
version = "2.13.0"

[[extensions]]
requirement = "{PROBE_DIST}"
import = "{PROBE_MODULE}"
""")
    lock = locked_env(cpu_torch(torch_version), [(PROBE_DIST, PROBE_VERSION)])
    write_lock(lock_path_for(recipe), lock)
    return recipe, lock


def test_doctor_reports_what_kernels_compiled_at_run_time_get(tmp_path: Path) -> None:
    torch = cuda_torch()
    missing = runtime_check(None, torch)
    assert missing.verdict == "warn" and missing.fix == "run 'gpuenv setup' to write it"
    # Setup writes no .pth into an env it did not create (a container's, as the H200 run showed): the
    # fix cannot be to run it again.
    adopted = runtime_check(None, torch, ours=False)
    assert adopted.verdict == "warn" and adopted.fix and "export the CUDA_HOME" in adopted.fix
    assert runtime_check({"CUDA_HOME": str(tmp_path / "gone")}, torch).verdict == "fail"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvcc").write_text("")
    check = runtime_check({"CUDA_HOME": str(tmp_path), "TORCH_CUDA_ARCH_LIST": "8.0"}, torch)
    assert check.verdict == "ok" and "TORCH_CUDA_ARCH_LIST=8.0" in check.detail


def test_doctor_says_which_toolkit_the_extensions_were_built_with(tmp_path: Path) -> None:
    from gpuenv.doctor.toolkit import built_with_check

    assert built_with_check(tmp_path) is None, "no state file: nothing to say"
    home = tmp_path / "toolkits" / "v1" / "cuda-13.0"
    (tmp_path / "gpuenv-state.json").write_text(json.dumps({"toolkit": {
        "version": "13.0", "release": "13.0.88", "source": "pypi", "home": str(home)}}))
    check = built_with_check(tmp_path)
    assert check is not None and check.verdict == "ok"
    assert "CUDA 13.0 from PyPI" in check.detail and "nvcc 13.0.88" in check.detail
    assert "gone since" in check.detail, "the toolkit was pruned"
