"""benchmarks/gpu_check.py, the offline acceptance run on a GPU machine, run for real on this one.

This machine has no GPU, no driver and no nvidia-smi: the script runs as it would on any such
node and must skip every GPU step with its reason. The probe tests' fake libnvidia-ml.so.1 and an
nvidia-smi script on PATH then stand in for the driver this machine cannot have, to check the
comparison of the two. No test here builds anything (tests/integration/test_gpu_check_slow.py does).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import clean_env

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"

#: The rows that need a GPU or a CUDA torch: on a GPU-less machine each is a skip with a reason.
GPU_ROWS = [
    "probe: GPU count", "probe: driver", "probe: CUDA version",
    "torch: GPUs", "cuda_ext: build", "cuda_ext: .so archs (fatbin)", "cuda_ext: .so archs (cuobjdump)",
    "cuda_ext: kernels vs torch", "runtime .pth: cpp_extension.load", "runtime .pth: kernel vs torch",
    "doctor: torch env", "doctor: scratch env",
]
RECIPES = sorted(p.stem for p in (REPO / "envs").glob("*.toml"))
CHECK_KEYS = {"name", "expected", "seen", "verdict", "reason", "seconds", "log"}
REPORT_KEYS = {"schema", "date", "elapsed_s", "machine", "gpuenv", "torch_env", "memory_tolerance_mib",
               "checks", "summary", "exit_code"}

H100 = """
    driver 550.54.15
    cuda 12040
    gpu NVIDIA H100 80GB HBM3 | GPU-5d3f1ad6-1111-2222-3333-444455556666 | 9.0 | 81559
"""

MIG_H100 = H100 + """
    mig 0 | NVIDIA H100 80GB HBM3 MIG 3g.40gb | MIG-slot0 | 40192
    mig 1 | NVIDIA H100 80GB HBM3 MIG 3g.40gb | MIG-slot1 | 40192
"""


def gpu_here() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()


pytestmark = pytest.mark.skipif(gpu_here(), reason="for machines without a GPU: on one, run nox -s gpu-check")


def environ(**extra: str) -> dict[str, str]:
    env = clean_env(keep_offline=False, **extra)
    for name in ("LD_LIBRARY_PATH", "FAKE_NVML_CONFIG", "VIRTUAL_ENV", "CONDA_PREFIX"):
        if name not in extra:
            env.pop(name, None)
    return env


def run_check(out: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # --python: this test's own interpreter, which has no torch (asserted below), so the torch
    # steps are skipped whatever Pythons this machine holds.
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--python", sys.executable, *args],
                          capture_output=True, text=True, env=env or environ(), cwd=out.parent, timeout=300,
                          check=False)


def report(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return data


def rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in data["checks"]}


def fake_smi(directory: Path, *, query: str, cuda: str) -> dict[str, str]:
    """An nvidia-smi on PATH that prints ``query`` for --query-gpu and a header with ``cuda`` otherwise."""
    directory.mkdir()
    script = directory / "nvidia-smi"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case "$*" in
          *--query-gpu=index,name,compute_cap,memory.total,driver_version*--format=csv,noheader,nounits*)
            printf '%s\\n' '{query}' ;;
          *--query-gpu*) echo "unexpected query: $*" >&2; exit 2 ;;
          *) echo "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: {cuda}     |" ;;
        esac
        """), encoding="utf-8")
    script.chmod(0o755)
    return {"PATH": f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"}


def with_fake_nvml(fake_nvml_dir: Path, tmp_path: Path, config: str) -> dict[str, str]:
    path = tmp_path / "fake_nvml.conf"
    path.write_text(textwrap.dedent(config), encoding="utf-8")
    return {"LD_LIBRARY_PATH": str(fake_nvml_dir), "FAKE_NVML_CONFIG": str(path)}


def test_without_a_gpu_every_gpu_step_is_skipped_with_its_reason(tmp_path: Path) -> None:
    assert importlib.util.find_spec("torch") is None, "the test's interpreter must hold no torch"
    out = tmp_path / "report"
    done = run_check(out)
    assert done.returncode == 0, done.stdout + done.stderr
    data = report(out)
    assert set(data) == REPORT_KEYS
    assert data["exit_code"] == 0 and data["summary"]["fail"] == 0
    assert re.fullmatch(r"[0-9a-f]{40}", data["gpuenv"]["commit"] or "0" * 40)
    assert data["machine"]["gpus"] == [] and data["machine"]["archs"] == []
    assert data["torch_env"]["python"] == sys.executable and data["torch_env"]["torch"] is None
    for check in data["checks"]:
        assert set(check) == CHECK_KEYS
        assert check["verdict"] in ("pass", "skip"), check
        if check["verdict"] == "skip":
            assert check["reason"].strip(), f"{check['name']} is skipped without a reason"
    found = rows(data)
    assert found["probe"]["verdict"] == "pass", "the probe runs on any machine"
    for name in [*GPU_ROWS, *(f"plan envs/{r}.toml: arch list" for r in RECIPES)]:
        assert found[name]["verdict"] == "skip", found[name]
    assert "nvidia-smi" in found["probe: driver"]["reason"]
    assert f"no torch in {sys.executable}" in found["cuda_ext: build"]["reason"]
    # The plans ran (a CPU plan each) though there was nothing to compare their arch lists with.
    assert all("(cpu, torch " in found[f"plan envs/{r}.toml: arch list"]["seen"] for r in RECIPES)

    text = (out / "report.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0].split() == ["check", "expected", "seen", "verdict"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    for check in data["checks"]:
        assert any(line.startswith(check["name"] + "  ") for line in lines[2:]), check["name"]
    counts = data["summary"]
    assert lines[-1].startswith(f"{counts['pass']} passed, 0 failed, {counts['skip']} skipped")
    assert text.strip() in done.stdout.strip() or lines[0] in done.stdout, "the table is printed too"
    assert (out / "logs" / "probe.json").is_file()


def test_an_h100_whose_nvidia_smi_agrees_passes_every_comparison(fake_nvml_dir: Path, tmp_path: Path) -> None:
    # nvidia-smi rounds MiB where gpuenv floors NVML's bytes: 1 MiB apart is within the tolerance.
    smi = fake_smi(tmp_path / "bin", query="0, NVIDIA H100 80GB HBM3, 9.0, 81560, 550.54.15", cuda="12.4")
    out = tmp_path / "report"
    done = run_check(out, env=environ(**smi, **with_fake_nvml(fake_nvml_dir, tmp_path, H100)))
    assert done.returncode == 0, done.stdout + done.stderr
    found = rows(report(out))
    for name in ("probe", "probe: GPU count", "probe: GPU 0 name", "probe: GPU 0 compute capability",
                 "probe: GPU 0 memory", "probe: driver", "probe: CUDA version"):
        assert found[name]["verdict"] == "pass", found[name]
    assert found["probe: GPU 0 memory"]["seen"] == "81559 MiB"
    assert found["probe: CUDA version"]["expected"] == "12.4" == found["probe: CUDA version"]["seen"]
    for recipe in RECIPES:
        plan = found[f"plan envs/{recipe}.toml: arch list"]
        assert plan["verdict"] == "pass" and plan["seen"].startswith("['9.0']"), plan
    # Driver 550 runs CUDA 12.4 and this machine's only nvcc is 13.0: the plans that compile
    # extensions are blocked, and the report says so without failing the arch check.
    assert any("blocked:" in found[f"plan envs/{r}.toml: arch list"]["seen"] for r in RECIPES)
    assert report(out)["machine"]["archs"] == ["9.0"]
    assert found["torch: GPUs"]["verdict"] == "skip"


def test_a_disagreeing_nvidia_smi_fails_each_value_that_differs(fake_nvml_dir: Path, tmp_path: Path) -> None:
    smi = fake_smi(tmp_path / "bin", query="0, NVIDIA A100-SXM4-80GB, 8.0, 81561, 535.104.05", cuda="12.2")
    out = tmp_path / "report"
    done = run_check(out, env=environ(**smi, **with_fake_nvml(fake_nvml_dir, tmp_path, H100)))
    assert done.returncode == 1, done.stdout + done.stderr
    data = report(out)
    found = rows(data)
    assert found["probe: GPU count"]["verdict"] == "pass"
    expected_seen = {
        "probe: GPU 0 name": ("NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"),
        "probe: GPU 0 compute capability": ("8.0", "9.0"),
        "probe: driver": ("535.104.05", "550.54.15"),
        "probe: CUDA version": ("12.2", "12.4"),
    }
    for name, (expected, seen) in expected_seen.items():
        row = found[name]
        assert (row["verdict"], row["expected"], row["seen"]) == ("fail", expected, seen)
    memory = found["probe: GPU 0 memory"]
    assert memory["verdict"] == "fail" and "differs by -2 MiB" in memory["reason"], memory
    # The GPUs' capabilities are nvidia-smi's: every plan (made for the probed 9.0) now differs.
    for recipe in RECIPES:
        assert found[f"plan envs/{recipe}.toml: arch list"]["verdict"] == "fail"
    assert data["exit_code"] == 1 and data["summary"]["fail"] == 5 + len(RECIPES)
    assert "FAIL: differs" in (out / "report.txt").read_text(encoding="utf-8")


def test_a_gpu_in_mig_mode_is_compared_by_its_capability(fake_nvml_dir: Path, tmp_path: Path) -> None:
    smi = fake_smi(tmp_path / "bin", query="0, NVIDIA H100 80GB HBM3, 9.0, 81559, 550.54.15", cuda="12.4")
    out = tmp_path / "report"
    done = run_check(out, env=environ(**smi, **with_fake_nvml(fake_nvml_dir, tmp_path, MIG_H100)))
    assert done.returncode == 0, done.stdout + done.stderr
    found = rows(report(out))
    assert found["probe: GPU count"]["verdict"] == "pass", "two MIG devices of one GPU count once"
    assert found["probe: GPU 0 compute capability"]["verdict"] == "pass"
    for name in ("probe: GPU 0 name", "probe: GPU 0 memory"):
        assert found[name]["verdict"] == "skip" and "MIG mode" in found[name]["reason"]


def test_a_spent_time_limit_stops_the_run_and_still_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_check(out, "--time-limit", "0")
    assert done.returncode == 1
    data = report(out)
    assert data["checks"] == [{"name": "probe", "expected": "-", "seen": "-", "verdict": "fail",
                               "reason": "not run: the time limit (0.0 s) was spent", "seconds": None,
                               "log": None}]


def test_a_python_that_does_not_exist_is_bad_input(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--python", str(tmp_path / "nope")],
                          capture_output=True, text=True, env=environ(), cwd=tmp_path, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: --python") and "\nhint: " in done.stderr
    assert not (tmp_path / "benchmarks").exists(), "nothing is written"


def test_the_search_for_torch_says_what_each_python_held() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from gpu_check_cuda import find_torch_python  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    found, tried = find_torch_python([(sys.executable, "test"), ("/nonexistent/python3", "test")])
    assert found is None
    assert tried == [f"{sys.executable}: no torch", "/nonexistent/python3: did not run"]
