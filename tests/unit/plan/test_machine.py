"""Which hardware a plan is made for: --gpu, --arch, --hardware files and the JSON contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gpuenv.errors import HardwareFileError, InputError
from gpuenv.load.hardware import load_hardware_file
from gpuenv.plan.hardware import Gpu, Hardware, Toolkit, hardware_from_json, with_arch_override
from gpuenv.probe.machine import describe_machine, with_gpu_override

HOST = Hardware(
    driver_version="580.95.05",
    cuda_driver_version="13.0",
    gpus=(Gpu(0, "NVIDIA T4", "GPU-1", "7.5", 15360),),
    cpu_count=32,
    memory_total_mib=128 * 1024,
    memory_available_mib=100 * 1024,
    toolkits=(Toolkit("/usr/local/cuda-13.0/bin/nvcc", "13.0", "/usr/local/cuda-13.0"),),
)

NO_GPU_HOST = Hardware(None, None, (), 2, 8192, 4096, (Toolkit("/opt/cuda/bin/nvcc", "13.0"),))


# -- --gpu -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "ccs"),
    [
        ("H100", ["9.0"]),
        ("h100", ["9.0"]),
        ("RTX 4090", ["8.9"]),
        ("rtx4090", ["8.9"]),
        ("NVIDIA GeForce RTX 4090", ["8.9"]),
        ("8xA100", ["8.0"] * 8),
        ("2 x L4", ["8.9"] * 2),
        ("H100,A100", ["9.0", "8.0"]),
        ("V100, RTX 5090", ["7.0", "12.0"]),
    ],
)
def test_gpu_override(names: str, ccs: list[str]) -> None:
    hw = with_gpu_override(HOST, names)
    assert [g.compute_capability for g in hw.gpus] == ccs
    assert [g.index for g in hw.gpus] == list(range(len(ccs)))
    assert all(g.name and g.memory_total_mib > 0 for g in hw.gpus)
    # The driver of the machine that will run them is unknown; this host's build facts stay.
    assert hw.driver_version is None and hw.cuda_driver_version is None
    assert (hw.cpu_count, hw.memory_available_mib, hw.toolkits) == (32, 100 * 1024, HOST.toolkits)
    assert names in hw.source


def test_gpu_override_names_the_model() -> None:
    (gpu,) = with_gpu_override(HOST, "h100").gpus
    assert "H100" in gpu.name


@pytest.mark.parametrize(
    ("name", "suggestion"), [("H1000", "H100"), ("A10O", "A100"), ("rtx 4900", "RTX 4090")]
)
def test_gpu_override_unknown_suggests(name: str, suggestion: str) -> None:
    with pytest.raises(InputError) as info:
        with_gpu_override(HOST, name)
    assert info.value.exit_code == 2
    assert name in str(info.value)
    assert "did you mean" in str(info.value) and suggestion in str(info.value)
    assert info.value.hint


@pytest.mark.parametrize("names", ["", " , ", "Voodoo5"])
def test_gpu_override_nothing_usable(names: str) -> None:
    with pytest.raises(InputError) as info:
        with_gpu_override(HOST, names)
    assert info.value.exit_code == 2


# -- --arch ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("archs", "ccs"),
    [
        ("9.0", ["9.0"]),
        ("9.0,8.0", ["8.0", "9.0"]),
        ("9.0,8.0,9.0", ["8.0", "9.0"]),
        ("8.0;9.0", ["8.0", "9.0"]),
        ("sm_90", ["9.0"]),
        ("sm_90, 86", ["8.6", "9.0"]),
        ("12.0,10.0,8.9", ["8.9", "10.0", "12.0"]),
    ],
)
def test_arch_override(archs: str, ccs: list[str]) -> None:
    hw = with_arch_override(HOST, archs)
    assert [g.compute_capability for g in hw.gpus] == ccs
    assert hw.driver_version is None and hw.cuda_driver_version is None
    assert hw.toolkits == HOST.toolkits


@pytest.mark.parametrize("archs", ["9.x", "", "hopper", "9.10", "sm_9x"])
def test_arch_override_bad(archs: str) -> None:
    with pytest.raises(InputError) as info:
        with_arch_override(HOST, archs)
    assert info.value.exit_code == 2
    assert "--arch" in str(info.value)


# -- describe_machine ----------------------------------------------------------------------------


def test_describe_machine_probes_by_default() -> None:
    assert describe_machine(prober=lambda: HOST) == HOST


def test_describe_machine_gpu_replaces_probed_gpus() -> None:
    hw = describe_machine(gpu="H100", prober=lambda: NO_GPU_HOST)
    assert [g.compute_capability for g in hw.gpus] == ["9.0"]
    assert hw.toolkits == NO_GPU_HOST.toolkits


def test_describe_machine_gpu_and_arch_conflict() -> None:
    with pytest.raises(InputError) as info:
        describe_machine(gpu="H100", arch="9.0", prober=lambda: HOST)
    assert info.value.exit_code == 2


def test_describe_machine_from_file(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_text(json.dumps(HOST.to_json()))

    def no_probe() -> Hardware:
        raise AssertionError("a hardware file replaces the probe")

    hw = describe_machine(hardware_file=path, prober=no_probe)
    assert hw.gpus == HOST.gpus
    assert str(path) in hw.source
    local = describe_machine(hardware_file=path, prober=lambda: NO_GPU_HOST, local_host=True)
    assert local.gpus == HOST.gpus
    assert (local.cpu_count, local.toolkits) == (NO_GPU_HOST.cpu_count, NO_GPU_HOST.toolkits)


# -- the hardware JSON contract ------------------------------------------------------------------


def test_hardware_json_shape() -> None:
    data = json.loads(json.dumps(HOST.to_json()))
    assert set(data) >= {"driver_version", "cuda_driver_version", "gpus", "cpu_count", "memory_total_mib",
                         "memory_available_mib", "toolkits"}
    assert data["gpus"] == [{"index": 0, "name": "NVIDIA T4", "uuid": "GPU-1", "compute_capability": "7.5",
                             "memory_total_mib": 15360}]
    assert data["toolkits"][0]["nvcc"] == "/usr/local/cuda-13.0/bin/nvcc"
    assert data["toolkits"][0]["version"] == "13.0"


@pytest.mark.parametrize("hw", [HOST, NO_GPU_HOST], ids=["gpu", "no-gpu"])
def test_hardware_json_round_trip(hw: Hardware) -> None:
    back = hardware_from_json(json.loads(json.dumps(hw.to_json())))
    assert back.to_json() == hw.to_json()
    assert back.gpus == hw.gpus
    assert [t.root for t in back.toolkits] == [t.root for t in hw.toolkits]


def test_hardware_round_trip_equal_when_homes_known() -> None:
    assert hardware_from_json(HOST.to_json()) == HOST


def test_hardware_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "hw.json"
    path.write_text(json.dumps(HOST.to_json(), indent=2))
    assert load_hardware_file(path) == HOST


def test_hardware_json_optional_parts() -> None:
    data: dict[str, Any] = {**HOST.to_json(), "gpus": [{"compute_capability": "9.0"}]}
    del data["toolkits"]
    hw = hardware_from_json(data)
    assert hw.toolkits == ()
    assert hw.gpus[0].index == 0 and hw.gpus[0].compute_capability == "9.0"


def _with(**changes: Any) -> dict[str, Any]:
    data = HOST.to_json()
    for key, value in changes.items():
        if value is _DROP:
            del data[key]
        else:
            data[key] = value
    return data


_DROP = object()


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ([], "JSON object"),
        ("H100", "JSON object"),
        (_with(gpus=_DROP), "gpus"),
        (_with(cpu_count=_DROP, memory_total_mib=_DROP), "cpu_count, memory_total_mib"),
        (_with(driver_version=_DROP), "driver_version"),
        (_with(driver_version=535), "driver_version"),
        (_with(cuda_driver_version="twelve"), "cuda_driver_version"),
        (_with(cpu_count="8"), "cpu_count"),
        (_with(cpu_count=True), "cpu_count"),
        (_with(memory_available_mib=-1), "memory_available_mib"),
        (_with(gpus={"0": {}}), "gpus"),
        (_with(gpus=["H100"]), "gpus[0]"),
        (_with(gpus=[{"name": "H100"}]), "compute_capability"),
        (_with(gpus=[{"compute_capability": 9.0}]), "compute_capability"),
        (_with(gpus=[{"compute_capability": "nine"}]), "compute_capability"),
        (_with(gpus=[{"compute_capability": "9.0", "index": "0"}]), "index"),
        (_with(gpus=[{"compute_capability": "9.0", "memory_total_mib": 8.5}]), "memory_total_mib"),
        (_with(toolkits="/usr/local/cuda"), "toolkits"),
        (_with(toolkits=[{"nvcc": "/usr/local/cuda/bin/nvcc"}]), "toolkits[0]"),
        (_with(toolkits=[{"nvcc": "/usr/local/cuda/bin/nvcc", "version": 13.0}]), "toolkits[0]"),
    ],
)
def test_malformed_hardware_file(tmp_path: Path, data: Any, phrase: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(HardwareFileError) as info:
        load_hardware_file(path)
    assert info.value.exit_code == 2
    assert str(path) in str(info.value)
    assert phrase in str(info.value)
    assert "gpuenv probe --json" in (info.value.hint or "")


@pytest.mark.parametrize(("text", "phrase"), [("{not json", "not valid JSON"), ("", "not valid JSON")])
def test_hardware_file_not_json(tmp_path: Path, text: str, phrase: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(HardwareFileError) as info:
        load_hardware_file(path)
    assert info.value.exit_code == 2 and phrase in str(info.value)


def test_hardware_file_missing(tmp_path: Path) -> None:
    with pytest.raises(HardwareFileError) as info:
        load_hardware_file(tmp_path / "nope.json")
    assert info.value.exit_code == 2
    assert "cannot read" in str(info.value)
