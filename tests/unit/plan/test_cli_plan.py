"""``gpuenv plan`` end to end: a recipe file, hardware from a file or a shortcut, output, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import gpuenv_main

FLASH_RECIPE = '[torch]\nversion = "2.13.*"\n[[extensions]]\nrequirement = "flash-attn==2.8.3.post2"\n'
GRAPH_RECIPE = (
    '[torch]\nversion = "2.13.*"\n'
    '[[extensions]]\nrequirement = "flash-attn==2.8.3.post2"\n'
    '[[extensions]]\nrequirement = "torch-scatter==2.1.2"\n'
)
TORCH_ONLY = '[torch]\nversion = "2.13.*"\n'


def node(*ccs: str, driver: str | None = "580.95.05", cuda: str | None = "13.0",
         nvcc: tuple[str, ...] = ("13.0",)) -> dict[str, Any]:
    """A 'gpuenv probe --json' of a compute node; the nvcc paths need not exist (plan is pure)."""
    return {
        "driver_version": driver,
        "cuda_driver_version": cuda,
        "gpus": [{"index": i, "name": f"GPU {cc}", "uuid": f"GPU-{i}", "compute_capability": cc,
                  "memory_total_mib": 81559} for i, cc in enumerate(ccs)],
        "cpu_count": 64,
        "memory_total_mib": 512 * 1024,
        "memory_available_mib": 400 * 1024,
        "toolkits": [{"nvcc": f"/opt/cuda-{v}/bin/nvcc", "version": v} for v in nvcc],
    }


@pytest.fixture
def run(tmp_path: Path) -> Any:
    def run(recipe: str, *args: str, hardware: dict[str, Any] | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        (tmp_path / "recipe.toml").write_text(recipe)
        argv = ["plan", "-r", str(tmp_path / "recipe.toml"), *args]
        if hardware is not None:
            (tmp_path / "node.json").write_text(json.dumps(hardware))
            argv += ["--hardware", str(tmp_path / "node.json")]
        environ = {k: v for k, v in os.environ.items() if k != "GPUENV_TORCH_INDEX"}
        environ.update(env or {})
        return gpuenv_main(*argv, cwd=tmp_path, env=environ)

    return run


def _json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _assert_clean_error(proc: subprocess.CompletedProcess[str], code: int) -> list[str]:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and lines[0].startswith("error: "), proc.stderr
    return lines


def test_gpu_shortcut_json(run: Any) -> None:
    data = _json(run(TORCH_ONLY, "--gpu", "H100", "--json"))
    assert data["variant"].startswith("cu13")  # the driver is unknown: the newest build that runs on an H100
    assert data["arch_list"] == ["9.0"]
    assert data["torch"] == "torch==2.13.*"
    assert any("driver is unknown" in w for w in data["warnings"])


def test_hardware_file_json(run: Any) -> None:
    data = _json(run(GRAPH_RECIPE, "--json", hardware=node("9.0", "8.0")))
    assert data["variant"] == "cu130"
    assert data["cuda"] == "13.0"
    assert data["index_url"] is None  # PyPI's default build of torch 2.13
    assert data["arch_list"] == ["8.0", "9.0"]
    assert data["build_env"]["CUDA_HOME"] == "/opt/cuda-13.0"
    assert data["build_env"]["TORCH_CUDA_ARCH_LIST"] == "8.0;9.0"
    fa, scatter = data["extensions"]
    assert (fa["name"], fa["action"]) == ("flash-attn", "build")
    assert fa["env"]["FLASH_ATTN_CUDA_ARCHS"] == "80;90"
    assert fa["env"]["FLASH_ATTENTION_FORCE_BUILD"] == "TRUE"
    assert (scatter["name"], scatter["action"]) == ("torch-scatter", "build")
    assert scatter["env"]["FORCE_CUDA"] == "1"


def test_hardware_file_with_gpu_shortcut(run: Any) -> None:
    data = _json(run(FLASH_RECIPE, "--gpu", "V100", "--json", hardware=node("9.0")))
    assert data["arch_list"] == ["7.0"]
    assert data["extensions"][0]["action"] == "skip"


def test_arch_shortcut(run: Any) -> None:
    data = _json(run(TORCH_ONLY, "--arch", "9.0,8.0", "--json", hardware=node()))
    assert data["arch_list"] == ["8.0", "9.0"]


def test_human_output(run: Any) -> None:
    proc = run(GRAPH_RECIPE, hardware=node("7.0", nvcc=("12.6",)))  # a V100 node: cu126
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "cu126" in out
    assert "https://download.pytorch.org/whl/cu126" in out
    lines = out.splitlines()
    assert any("skip" in line and "flash-attn==2.8.3.post2" in line for line in lines), out
    assert any("build" in line and "torch-scatter==2.1.2" in line for line in lines), out
    assert "Traceback" not in proc.stderr


def test_forced_variant_the_release_lacks(run: Any) -> None:
    proc = run(FLASH_RECIPE, "--cuda", "12.1", hardware=node("9.0"))
    lines = _assert_clean_error(proc, 2)
    assert "cu121" in lines[0]
    assert "cu126" in proc.stderr and "cu130" in proc.stderr
    assert any(line.startswith("hint: ") for line in lines)


def test_missing_toolkit_exits_3(run: Any) -> None:
    proc = run(GRAPH_RECIPE, hardware=node("7.0", nvcc=("13.0",)))
    lines = _assert_clean_error(proc, 3)
    assert "12.x" in lines[0] and "13.0" in lines[0]
    assert any(line.startswith("hint: ") for line in lines)
    # The whole plan is shown before the blockers: planning for a node from a login node works.
    assert "variant     cu126" in proc.stdout and "torch-scatter==2.1.2" in proc.stdout


def test_every_blocker_is_listed_with_its_hint_and_json_carries_them(run: Any) -> None:
    recipe = GRAPH_RECIPE.replace('"flash-attn==2.8.3.post2"\n',
                                  '"flash-attn==2.8.3.post2"\nrequired = true\n')
    proc = run(recipe, "--json", hardware=node("7.0", nvcc=("13.0",)))
    assert proc.returncode == 3, proc.stderr
    data = json.loads(proc.stdout)
    blockers = {b["code"]: b for b in data["blockers"]}
    assert sorted(blockers) == ["required-skipped", "toolkit-missing"]
    assert blockers["required-skipped"]["name"] == "flash-attn" and blockers["required-skipped"]["reason"]
    assert blockers["toolkit-missing"]["needed"] == "12.x"
    assert blockers["toolkit-missing"]["found"] == ["nvcc 13.0 at /opt/cuda-13.0/bin/nvcc"]
    assert [line for line in proc.stderr.splitlines() if line.startswith("error: ")][1:]
    assert proc.stderr.count("hint: ") == 2


def test_a_local_extension_is_planned_by_its_own_name_and_version(run: Any, tmp_path: Path) -> None:
    """A repo's copy of causal-conv1d 1.4 in a folder named otherwise: its 1.4 archs, no 7.5 skip on V100."""
    tree = tmp_path / "vendored" / "conv"
    (tree / "causal_conv1d").mkdir(parents=True)
    (tree / "setup.py").write_text(
        'PACKAGE_NAME = "causal_conv1d"\n'
        "def get_package_version():\n    return '?'\n"
        "setup(name=PACKAGE_NAME, version=get_package_version())\n")
    (tree / "causal_conv1d" / "__init__.py").write_text('__version__ = "1.4.0"\n')
    recipe = '[torch]\nversion = ">=2.1"\n[[extensions]]\nrequirement = "./vendored/conv"\n'
    hardware = node("7.0", driver="560.35.03", cuda="12.6", nvcc=("12.6",))
    data = _json(run(recipe, "--json", hardware=hardware))
    (conv,) = data["extensions"]
    assert conv["action"] == "build", conv["reason"]
    assert conv["catalog"] == "catalog: causal-conv1d 1.4.0"
    assert conv["env"]["CAUSAL_CONV1D_FORCE_BUILD"] == "TRUE"
    assert "7.0" in conv["arch_list"]


def test_cuda_auto_is_accepted(run: Any) -> None:
    data = _json(run('[torch]\nversion = "2.13.*"\ncuda = "cu126"\n', "--cuda", "auto", "--json",
                     hardware=node("9.0")))
    assert data["variant"] == "cu130"


def test_unknown_torch_exits_3_with_a_hint(run: Any) -> None:
    proc = run('[torch]\nversion = "3.0.*"\n', hardware=node("9.0"))
    lines = _assert_clean_error(proc, 3)
    assert any(line.startswith("hint: ") and "--cuda" in line for line in lines)


def test_malformed_hardware_file_exits_2(run: Any) -> None:
    bad = node("9.0")
    del bad["cpu_count"]
    proc = run(TORCH_ONLY, hardware=bad)
    lines = _assert_clean_error(proc, 2)
    assert "cpu_count" in lines[0]


def test_unknown_gpu_exits_2(run: Any) -> None:
    proc = run(TORCH_ONLY, "--gpu", "H1000", hardware=node())
    lines = _assert_clean_error(proc, 2)
    assert "did you mean" in lines[0]


def test_torch_index_config_and_env(run: Any) -> None:
    data = _json(run(TORCH_ONLY, "--torch-index", "config", "--json", hardware=node("7.0")))
    assert (data["variant"], data["index_url"]) == ("cu126", None)
    data = _json(run(TORCH_ONLY, "--json", hardware=node("7.0"),
                     env={"GPUENV_TORCH_INDEX": "https://mirror.example/{variant}"}))
    assert data["index_url"] == "https://mirror.example/cu126"


# -- --toolkit and GPUENV_TOOLKIT (issue 12) -------------------------------------------------------


def test_toolkit_pypi_plans_cuda_13_into_the_toolkit_cache(run: Any, tmp_path: Path) -> None:
    data = _json(run(GRAPH_RECIPE, "--json", "--toolkit", "pypi", "--cache-dir", str(tmp_path / "c"),
                     hardware=node("9.0")))
    assert data["toolkit"]["source"] == "pypi" and data["toolkit"]["version"] == "13.0"
    assert data["build_env"]["CUDA_HOME"] == str(tmp_path / "c" / "toolkits" / "v1" / "cuda-13.0")


def test_toolkit_system_from_the_environment_never_downloads(run: Any) -> None:
    proc = run(GRAPH_RECIPE, hardware=node("9.0", nvcc=()), env={"GPUENV_TOOLKIT": "system"})
    lines = _assert_clean_error(proc, 3)
    assert "GPUENV_TOOLKIT=system" in lines[0] and "no CUDA toolkit" in lines[0]
    assert "--toolkit auto" in proc.stderr


def test_toolkit_given_by_a_path_that_is_no_toolkit_exits_2(run: Any, tmp_path: Path) -> None:
    lines = _assert_clean_error(run(GRAPH_RECIPE, "--toolkit", str(tmp_path), hardware=node("9.0")), 2)
    assert "not a CUDA toolkit root" in lines[0]
