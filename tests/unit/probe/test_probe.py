"""The probe, through the real nvidia-ml-py, against the fake libnvidia-ml.so.1."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

from gpuenv.probe.host import cuda_version_text, parse_meminfo, probe_host

from .conftest import RunProbe

TWO_GPUS = """
    driver 570.124.06
    cuda 12080
    gpu NVIDIA H100 80GB HBM3 | GPU-5d3f1ad6-1111-2222-3333-444455556666 | 9.0 | 81559
    gpu NVIDIA L4 | GPU-0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff | 8.9 | 23034
"""

MIG_A100 = """
    driver 550.54.15
    cuda 12040
    gpu NVIDIA A100-SXM4-40GB | GPU-a100 | 8.0 | 40960
    mig 0 | NVIDIA A100-SXM4-40GB MIG 3g.20gb | MIG-slot0 | 19968
    mig 2 | NVIDIA A100-SXM4-40GB MIG 1g.5gb | MIG-slot2 | 4864
    gpu Tesla T4 | GPU-t4 | 7.5 | 15360
    migmode 0 0
"""


def hardware(run_probe: RunProbe, config: str | None) -> dict[str, object]:
    finished = run_probe(config)
    assert finished.returncode == 0, finished.stderr
    assert "Traceback" not in finished.stderr
    result = finished.json()
    assert "hardware" in result, result
    return result["hardware"]  # type: ignore[no-any-return]


def probe_error(run_probe: RunProbe, config: str) -> dict[str, object]:
    finished = run_probe(config)
    assert finished.returncode == 0, finished.stderr
    result = finished.json()
    assert "error" in result, result
    assert result["error"]["type"] == "ProbeError"
    return result["error"]  # type: ignore[no-any-return]


def gpu_summary(hw: dict[str, object]) -> list[tuple[object, ...]]:
    gpus = hw["gpus"]
    assert isinstance(gpus, list)
    return [(g["index"], g["name"], g["uuid"], g["compute_capability"], g["memory_total_mib"])
            for g in gpus]


# -- GPUs, driver, CUDA -----------------------------------------------------------


def test_reports_driver_cuda_and_every_gpu(run_probe: RunProbe) -> None:
    hw = hardware(run_probe, TWO_GPUS)
    assert hw["driver_version"] == "570.124.06"
    assert hw["cuda_driver_version"] == "12.8"
    assert gpu_summary(hw) == [
        (0, "NVIDIA H100 80GB HBM3", "GPU-5d3f1ad6-1111-2222-3333-444455556666", "9.0", 81559),
        (1, "NVIDIA L4", "GPU-0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff", "8.9", 23034),
    ]


def test_driver_without_gpus(run_probe: RunProbe) -> None:
    hw = hardware(run_probe, "driver 580.95.05\ncuda 13000\n")
    assert (hw["driver_version"], hw["cuda_driver_version"], hw["gpus"]) == ("580.95.05", "13.0", [])


def test_cuda_version_prefers_v2(run_probe: RunProbe) -> None:
    hw = hardware(run_probe, "cuda_v1 12020\ncuda_v2 12040\n")
    assert hw["cuda_driver_version"] == "12.4"


@pytest.mark.parametrize("code", [12, 13], ids=["libcuda-missing", "old-driver"])
def test_cuda_version_falls_back_to_v1(run_probe: RunProbe, code: int) -> None:
    config = f"cuda_v1 12020\ncuda_v2 12040\nfail nvmlSystemGetCudaDriverVersion_v2 {code}\n"
    assert hardware(run_probe, config)["cuda_driver_version"] == "12.2"


def test_cuda_version_unknown_when_neither_call_exists(run_probe: RunProbe) -> None:
    config = ("fail nvmlSystemGetCudaDriverVersion_v2 13\n"
              "fail nvmlSystemGetCudaDriverVersion 13\ngpu Tesla T4 | GPU-t4 | 7.5 | 15360\n")
    hw = hardware(run_probe, config)
    assert hw["cuda_driver_version"] is None
    assert len(hw["gpus"]) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "text"), [(12040, "12.4"), (12080, "12.8"), (11080, "11.8"),
                                             (13000, "13.0"), (12090, "12.9")])
def test_cuda_version_text(value: int, text: str) -> None:
    assert cuda_version_text(value) == text


# -- MIG ------------------------------------------------------------------------------


def test_mig_devices_replace_their_parent_with_its_compute_capability(run_probe: RunProbe) -> None:
    # The fake answers compute capability on MIG handles with NOT_SUPPORTED, and
    # slot 1 is empty (NOT_FOUND): both must be handled.
    hw = hardware(run_probe, MIG_A100)
    assert gpu_summary(hw) == [
        (0, "NVIDIA A100-SXM4-40GB MIG 3g.20gb", "MIG-slot0", "8.0", 19968),
        (0, "NVIDIA A100-SXM4-40GB MIG 1g.5gb", "MIG-slot2", "8.0", 4864),
        (1, "Tesla T4", "GPU-t4", "7.5", 15360),
    ]


def test_mig_capable_gpu_with_mig_off_is_itself(run_probe: RunProbe) -> None:
    config = "gpu NVIDIA H100 PCIe | GPU-h100 | 9.0 | 81559\nmigmode 0 1\n"
    assert gpu_summary(hardware(run_probe, config)) == [(0, "NVIDIA H100 PCIe", "GPU-h100", "9.0", 81559)]


def test_mig_mode_without_instances_reports_the_parent(run_probe: RunProbe) -> None:
    config = "gpu NVIDIA H100 80GB HBM3 | GPU-h100 | 9.0 | 81559\nmigmode 1 1\n"
    assert gpu_summary(hardware(run_probe, config)) == [
        (0, "NVIDIA H100 80GB HBM3", "GPU-h100", "9.0", 81559)
    ]


def test_lost_mig_device_is_an_error(run_probe: RunProbe) -> None:
    error = probe_error(run_probe, MIG_A100 + "fail nvmlDeviceGetUUID 15 0:2\n")
    assert error["code"] == 15
    assert error["call"] == "nvmlDeviceGetUUID on GPU 0 MIG slot 2"


# -- no GPU -------------------------------------------------------------------------


def test_no_nvml_library_means_no_gpu(run_probe: RunProbe) -> None:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        pass
    else:
        pytest.skip("this machine has a real libnvidia-ml.so.1")
    hw = hardware(run_probe, None)
    assert (hw["driver_version"], hw["cuda_driver_version"], hw["gpus"]) == (None, None, [])
    assert isinstance(hw["cpu_count"], int) and hw["cpu_count"] >= 1


def test_driver_not_loaded_means_no_gpu(run_probe: RunProbe) -> None:
    hw = hardware(run_probe, TWO_GPUS + "fail nvmlInit 9\n")
    assert (hw["driver_version"], hw["cuda_driver_version"], hw["gpus"]) == (None, None, [])


# -- errors ---------------------------------------------------------------------------


def test_no_permission(run_probe: RunProbe) -> None:
    error = probe_error(run_probe, TWO_GPUS + "fail nvmlInit 4\n")
    assert error["code"] == 4
    assert error["call"] == "nvmlInit"
    assert str(error["message"]).startswith("NVML nvmlInit failed: no permission")
    assert "/dev/nvidia" in str(error["hint"]) and "video" in str(error["hint"])


def test_gpu_lost_names_the_gpu_and_the_call(run_probe: RunProbe) -> None:
    error = probe_error(run_probe, TWO_GPUS + "fail nvmlDeviceGetName 15 1\n")
    assert error["code"] == 15
    assert error["call"] == "nvmlDeviceGetName on GPU 1"
    assert "fallen off the bus" in str(error["message"])
    assert "GPU is lost" in str(error["message"])
    assert "dmesg" in str(error["hint"]) and "reboot" in str(error["hint"])


def test_gpu_lost_while_getting_its_handle(run_probe: RunProbe) -> None:
    error = probe_error(run_probe, TWO_GPUS + "fail nvmlDeviceGetHandleByIndex_v2 15 0\n")
    assert (error["code"], error["call"]) == (15, "nvmlDeviceGetHandleByIndex on GPU 0")


def test_driver_library_mismatch_suggests_reboot(run_probe: RunProbe) -> None:
    error = probe_error(run_probe, TWO_GPUS + "fail nvmlInit 18\n")
    assert error["code"] == 18
    assert "reboot" in str(error["hint"])


def test_unknown_error_is_reported_with_its_code(run_probe: RunProbe) -> None:
    error = probe_error(run_probe, TWO_GPUS + "fail nvmlDeviceGetCount_v2 999\n")
    assert (error["code"], error["call"]) == (999, "nvmlDeviceGetCount")
    assert "NVML error 999" in str(error["message"])


def test_a_failing_shutdown_does_not_hide_the_answer(run_probe: RunProbe) -> None:
    hw = hardware(run_probe, TWO_GPUS + "fail nvmlShutdown 999\n")
    assert len(hw["gpus"]) == 2  # type: ignore[arg-type]


@pytest.mark.parametrize("extra", ["", "fail nvmlDeviceGetName 15 1\n"], ids=["ok", "gpu-lost"])
def test_nvml_is_shut_down_after_the_probe(run_probe: RunProbe, extra: str) -> None:
    script = (
        "import contextlib, pynvml\n"
        "from gpuenv.errors import ProbeError\n"
        "from gpuenv.probe.host import probe_gpus\n"
        "with contextlib.suppress(ProbeError):\n"
        "    probe_gpus()\n"
        "print(pynvml._nvmlLib_refcount)\n"
    )
    finished = run_probe(TWO_GPUS + extra, "-c", script)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "0"


def test_import_touches_no_nvml() -> None:
    script = "import sys, gpuenv.probe.host; print('pynvml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the CLI's error boundary --------------------------------------------------------


def test_cli_probe_json_without_gpu(run_probe: RunProbe) -> None:
    finished = run_probe("fail nvmlInit 9\n", "-m", "gpuenv", "probe", "--json")
    assert finished.returncode == 0, finished.stderr
    data = json.loads(finished.stdout)
    assert (data["driver_version"], data["gpus"]) == (None, [])


def test_cli_probe_json_with_gpus(run_probe: RunProbe) -> None:
    finished = run_probe(MIG_A100, "-m", "gpuenv", "probe", "--json")
    assert finished.returncode == 0, finished.stderr
    data = json.loads(finished.stdout)
    assert [g["compute_capability"] for g in data["gpus"]] == ["8.0", "8.0", "7.5"]


def test_cli_probe_text_names_the_gpus(run_probe: RunProbe) -> None:
    finished = run_probe(TWO_GPUS, "-m", "gpuenv", "probe")
    assert finished.returncode == 0, finished.stderr
    assert "NVIDIA H100 80GB HBM3" in finished.stdout


def test_cli_probe_gpu_lost_is_an_error_line_not_a_traceback(run_probe: RunProbe) -> None:
    finished = run_probe(TWO_GPUS + "fail nvmlDeviceGetMemoryInfo 15 1\n", "-m", "gpuenv", "probe", "--json")
    assert finished.returncode == 1
    assert "Traceback" not in finished.stderr
    lines = finished.stderr.splitlines()
    assert lines[0].startswith("error: NVML nvmlDeviceGetMemoryInfo on GPU 1 failed")
    assert any(line.startswith("hint: ") and "dmesg" in line for line in lines)
    assert finished.stdout == ""


# -- host -----------------------------------------------------------------------------


def test_probe_host_on_this_machine() -> None:
    cpus, total, available = probe_host()
    expected_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cpus == expected_cpus
    assert total > 0
    assert 0 < available <= total


def test_parse_meminfo() -> None:
    text = "MemTotal:       24684096 kB\nMemFree:        1000000 kB\nMemAvailable:   20480000 kB\n"
    assert parse_meminfo(text) == (24105, 20000)


def test_parse_meminfo_before_memavailable_existed() -> None:
    text = "MemTotal: 2097152 kB\nMemFree: 524288 kB\nBuffers: 102400 kB\nCached: 421888 kB\n"
    assert parse_meminfo(text) == (2048, 1024)


def test_parse_meminfo_without_total() -> None:
    assert parse_meminfo("garbage\n") is None
