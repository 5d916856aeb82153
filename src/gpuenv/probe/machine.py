"""Which hardware a command plans for: the probe, a hardware file, or a shortcut.

``--hardware FILE`` replaces the probe entirely; ``--gpu NAME`` and ``--arch
X.Y`` replace only the GPUs (and leave the driver unknown), so a GPU-less
login node can plan and build for the compute nodes with its own toolkits,
CPUs and memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from gpuenv.errors import InputError
from gpuenv.load.hardware import load_hardware_file
from gpuenv.plan import knowledge
from gpuenv.plan.hardware import Gpu, Hardware, with_arch_override

Prober = Callable[[], Hardware]

#: More GPUs than any one machine holds: a plan is for one node.
MAX_GPUS = 1024


def _default_probe() -> Hardware:
    from gpuenv.probe.host import probe

    return probe()


def describe_machine(
    *,
    hardware_file: Path | str | None = None,
    gpu: str | None = None,
    arch: str | None = None,
    prober: Prober = _default_probe,
    local_host: bool = False,
) -> Hardware:
    """The hardware to plan for.

    ``local_host`` keeps this machine's CPUs, memory and toolkits even when the
    GPUs come from a file (``setup`` builds here, whatever it builds for).
    """
    if gpu is not None and arch is not None:
        raise InputError("--gpu and --arch both describe the GPUs: give one of them",
                         hint="e.g. --gpu 8xH100, or --arch 9.0")
    if hardware_file is not None:
        hardware = load_hardware_file(hardware_file)
        if local_host:
            hardware = hardware.with_host(prober())
    else:
        hardware = prober()
    if gpu is not None:  # "" is a mistake to report, not "no override"
        hardware = with_gpu_override(hardware, gpu)
    elif arch is not None:
        hardware = with_arch_override(hardware, arch)
        _check_archs_exist(hardware, arch)
    return hardware


def _check_archs_exist(hardware: Hardware, given: str) -> None:
    """``--arch`` names compute capabilities NVIDIA made: one its compilers do not know is a typo."""
    known = knowledge.known_archs()
    unknown = [g.compute_capability for g in hardware.gpus if g.compute_capability not in known]
    if unknown:
        raise InputError(
            f"--arch {given}: no NVIDIA GPU has compute capability {', '.join(unknown)}; "
            f"those that exist: {', '.join(known)}",
            hint="'gpuenv gpus' lists GPU names with their compute capability; e.g. --arch 9.0 for an H100",
        )


def gpu_models_matching(substring: str) -> list[knowledge.GpuModel]:
    """The GPU models ``--gpu`` accepts whose name contains ``substring``, by compute capability."""
    # The same normalisation --gpu matches names with (case, spaces, dashes, an NVIDIA prefix).
    wanted = knowledge.gpu_key(substring) if substring.strip() else ""
    models = [m for key, m in knowledge.gpu_models().items() if wanted in key]
    return sorted(models, key=lambda m: (knowledge.version_tuple(m.cc), m.name))


def with_gpu_override(hardware: Hardware, names: str) -> Hardware:
    """Replace the GPUs with the named models: "H100", "H100,A100", "8xH100"."""
    gpus: list[Gpu] = []
    for part in (p.strip() for p in names.split(",")):
        if not part:
            continue
        count, name = _count_and_name(part)
        model = knowledge.find_gpu_model(name)
        if model is None:
            close = knowledge.close_gpu_names(name)
            raise InputError(
                f"--gpu {part}: unknown GPU"
                + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""),
                hint=f"'gpuenv gpus {name.split()[0]}' lists the GPU names it knows; or give the compute "
                "capability, e.g. --arch 9.0",
            )
        if count > MAX_GPUS - len(gpus):
            raise InputError(f"--gpu {part}: more than {MAX_GPUS} GPUs in one machine",
                             hint="describe one node, e.g. --gpu 8xH100")
        for _ in range(count):
            gpus.append(
                Gpu(index=len(gpus), name=f"NVIDIA {model.name}", uuid="", compute_capability=model.cc,
                    memory_total_mib=model.memory_mib)
            )
    if not gpus:
        raise InputError("--gpu: no GPU named", hint="e.g. --gpu H100 or --gpu 8xA100")
    return replace(hardware, gpus=tuple(gpus), driver_version=None, cuda_driver_version=None,
                   source=f"--gpu {names}")


def _count_and_name(part: str) -> tuple[int, str]:
    match = re.fullmatch(r"([0-9]+)\s*x\s*(.+)", part, flags=re.IGNORECASE | re.ASCII)
    if not match:
        return 1, part
    digits = match.group(1).lstrip("0")
    if not digits or len(digits) > len(str(MAX_GPUS)):
        what = "no GPU" if not digits else "more GPUs than a machine holds"
        raise InputError(f"--gpu {part}: {what}", hint="e.g. --gpu H100 or --gpu 8xH100")
    return int(digits), match.group(2)
