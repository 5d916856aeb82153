"""The doctor's machine checks: the NVIDIA driver and the CUDA it supports, then each GPU (or none)."""

from __future__ import annotations

from gpuenv.doctor.report import Check
from gpuenv.env.targetenv import TorchInfo
from gpuenv.plan.hardware import Gpu, Hardware


def machine_checks(hardware: Hardware, torch: TorchInfo | None) -> list[Check]:
    """The driver and the CUDA it supports, then one line per GPU (or one saying there is none)."""
    if not hardware.gpus:
        return [_no_gpu_check(hardware, torch)]
    checks = [_driver_check(hardware)]
    checks += [_gpu_check(gpu) for gpu in hardware.gpus]
    return checks


def _no_gpu_check(hardware: Hardware, torch: TorchInfo | None) -> Check:
    why = (
        f"the driver {hardware.driver_version} is loaded but shows no GPU"
        if hardware.driver_version else "no NVIDIA driver is loaded"
    )
    if torch is not None and torch.cuda is None:
        return Check("gpus", "skip", f"none ({why}); torch is {torch.build}: the GPU checks are skipped")
    return Check(
        "gpus", "warn", f"none ({why}): the GPU checks are skipped",
        fix="run 'gpuenv doctor' on a machine with the GPUs to check them; 'nvidia-smi' shows what it sees",
    )


def _driver_check(hardware: Hardware) -> Check:
    if hardware.driver_version is None:
        return Check("driver", "skip", f"not probed: the GPUs are described ({hardware.source})")
    cuda = hardware.cuda_driver_version or "an unknown CUDA version"
    return Check("driver", "ok", f"{hardware.driver_version}, supports CUDA {cuda}")


def _gpu_check(gpu: Gpu) -> Check:
    memory = f", {gpu.memory_total_mib} MiB" if gpu.memory_total_mib else ""
    return Check(f"gpu {gpu.index}", "ok", f"{gpu.name}, compute capability {gpu.compute_capability}{memory}")
