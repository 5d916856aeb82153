"""The doctor's torch checks: the build, whether the driver runs its CUDA, whether its wheel holds code
for every GPU (else "no kernel image"), and what ``torch.cuda.is_available()`` says in the env."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gpuenv.doctor.report import Check
from gpuenv.doctor.wording import NO_KERNEL_IMAGE, describe_code, gpu_list, last_error
from gpuenv.env.envqueries import env_query
from gpuenv.env.observed import torch_facts, wheel_archs
from gpuenv.env.targetenv import TargetEnv, TorchInfo
from gpuenv.errors import GpuenvError
from gpuenv.plan import knowledge
from gpuenv.plan.giventorch import TorchFacts, data_disagreements, nearest_release, not_in_data
from gpuenv.plan.hardware import Hardware
from gpuenv.plan.variants import driver_runs
from gpuenv.probe.binaries import CudaCode
from gpuenv.runner import ANSWER_MARK, Runner

_CUDA_SCRIPT = env_query("cuda", f"""
import json, torch
available = torch.cuda.is_available()
reason = None
if not available:
    try:
        torch.cuda.init()
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
print({ANSWER_MARK!r} + json.dumps({{
    "available": available,
    "count": torch.cuda.device_count() if available else 0,
    "reason": reason,
}}))
""")


def torch_of(env: TargetEnv, run: Runner, checks: list[Check]) -> TorchInfo | None:
    """The env's torch; None (and a failed "torch" check) when it is missing or does not import."""
    try:
        torch = env.torch_info(run)
    except GpuenvError as exc:
        checks.append(Check("torch", "fail", f"is installed but does not import: {last_error(str(exc))}",
                            fix="reinstall it: 'gpuenv setup'"))
        return None
    if torch is None:
        checks.append(Check("torch", "fail", f"is not installed in {env.path}",
                            fix="install it: 'gpuenv setup'"))
    return torch


def torch_checks(
    env: TargetEnv, run: Runner, site: Path, torch: TorchInfo, hardware: Hardware
) -> list[Check]:
    """The build, its driver, its kernels and ``torch.cuda.is_available()`` (asked where GPUs are)."""
    checks = [torch_check(torch), torch_data_check(torch_facts(torch, site=site))]
    driver = torch_driver_check(torch, hardware)
    checks += [driver] if driver is not None else []
    code, source = torch_code(torch, site)
    checks.append(torch_kernels_check(torch, code, source, hardware))
    answer = _cuda_answer(env, run) if _gpus_here(hardware) and torch.cuda else None
    checks.append(cuda_available_check(torch, hardware, answer))
    return checks


def _cuda_answer(env: TargetEnv, run: Runner) -> Mapping[str, Any]:
    try:
        answer = env.query(run, _CUDA_SCRIPT)
    except GpuenvError as exc:
        return {"available": False, "count": 0, "reason": last_error(str(exc))}
    return answer if isinstance(answer, Mapping) else {"available": False, "count": 0, "reason": None}


def _torch_build(torch: TorchInfo) -> str:
    abi = "C++11 ABI" if torch.cxx11_abi else "pre-C++11 ABI"
    kind = f"built with CUDA {torch.cuda}" if torch.cuda else torch.build
    return f"{kind}, {abi}"


def torch_check(torch: TorchInfo) -> Check:
    return Check("torch", "ok", f"{torch.version}, {_torch_build(torch)}")


def torch_data_check(facts: TorchFacts) -> Check:
    """The installed torch against what gpuenv's data (torch.toml) says of it: the comparison setup makes."""
    name = "torch vs gpuenv's data"
    nearest, _ = nearest_release(facts.version)
    undescribed = not_in_data(facts)
    if undescribed is not None:
        return Check(name, "skip", f"{undescribed}: gpuenv plans for what is installed (torch "
                     f"{nearest.release}'s data stands in for what its files do not say)")
    found = data_disagreements(facts)
    if found:
        return Check(name, "warn", "; ".join(found),
                     fix="gpuenv plans and builds for the installed torch, not the data; tell gpuenv's "
                     "maintainers which entry is wrong")
    said = ", ".join(facts.arch_list) if facts.cuda else "a CPU build"
    cxx = f", C++{facts.cxx_standard}" if facts.cxx_standard else ""
    return Check(name, "ok", f"torch.toml releases.\"{nearest.release}\" agrees ({said}{cxx})")


def torch_driver_check(torch: TorchInfo, hardware: Hardware) -> Check | None:
    """Whether the driver runs torch's CUDA (None: nothing to check, no GPU or a CPU torch)."""
    if torch.cuda is None or not hardware.gpus:
        return None
    runs = driver_runs(hardware, torch.cuda)
    name = f"torch CUDA {torch.cuda}"
    if runs is None:
        return Check(name, "warn", "cannot be checked against the driver: its version is unknown",
                     fix=f"make sure the driver supports CUDA {torch.cuda} ('nvidia-smi' shows it)")
    driver = f"driver {hardware.driver_version} (CUDA {hardware.cuda_driver_version})"
    if not runs:
        return Check(name, "fail", f"is newer than the {driver}: torch.cuda.is_available() will be False",
                     fix=_driver_fix(torch, hardware))
    if knowledge.version_tuple(torch.cuda) > knowledge.version_tuple(hardware.cuda_driver_version or "0"):
        return Check(name, "warn", f"runs on the {driver} only through NVIDIA's minor-version "
                     "compatibility (no JIT of newer PTX)", fix="upgrade the NVIDIA driver when you can")
    return Check(name, "ok", f"runs on the {driver}")


def _driver_fix(torch: TorchInfo, hardware: Hardware) -> str:
    major = knowledge.version_tuple(torch.cuda or "0")[0]
    minimum = knowledge.driver_minimum(major)
    upgrade = f"upgrade the NVIDIA driver (CUDA {major}.x needs ≥ {minimum})" if minimum else \
        "upgrade the NVIDIA driver"
    variant = suggest_variant(torch.version, hardware)
    return upgrade + (f", or {variant}" if variant else "")


def torch_code(torch: TorchInfo, site: Path) -> tuple[CudaCode | None, str]:
    """The GPU code torch carries, and where that was read: its arch list, else libtorch_cuda.so
    (the reader setup plans with: :func:`gpuenv.env.observed.wheel_archs`)."""
    archs = wheel_archs(torch, site=site)
    if archs.problem:
        return None, archs.problem if archs.source else ""
    if not archs.names:
        return None, ""
    return code_from_arch_list(archs.names), archs.source


def code_from_arch_list(arch_list: Iterable[str]) -> CudaCode:
    """``["sm_80", "sm_90", "compute_90"]`` as :class:`CudaCode`."""
    archs = [a.strip() for a in arch_list]
    return CudaCode(
        sass=frozenset(a for a in archs if a.startswith("sm_")),
        ptx=frozenset(a for a in archs if a.startswith("compute_")),
    )


def torch_kernels_check(torch: TorchInfo, code: CudaCode | None, source: str, hardware: Hardware) -> Check:
    """Whether torch's wheel carries code every GPU can run ("no kernel image …" otherwise)."""
    name = "torch kernels"
    if torch.cuda is None:
        if hardware.gpus:
            # A ROCm build cannot use them at all; a CPU build is a choice.
            return Check(name, "fail" if torch.hip else "warn",
                         f"none: torch is {torch.build} and the {_gpu_count(hardware)} "
                         f"{'goes' if len(hardware.gpus) == 1 else 'go'} unused",
                         fix="install a CUDA build of torch for these GPUs: 'gpuenv setup' plans one")
        return Check(name, "ok", f"not needed: torch is {torch.build}")
    if code is None or code.empty:
        why = source or "torch reports no arch list and has no libtorch_cuda.so"
        return Check(name, "warn", f"cannot be read: {why}")
    archs = describe_code(code)
    if not hardware.gpus:
        return Check(name, "skip", f"{archs} (from {source}); no GPU to check them against")
    missing = [g for g in hardware.gpus if not code.runs_on(g.compute_capability)]
    if not missing:
        return Check(name, "ok", f"{archs} cover {gpu_list(hardware.gpus)}")
    return Check(
        name, "fail",
        f"{archs} hold no code for {gpu_list(missing)}: expect '{NO_KERNEL_IMAGE}'",
        fix=suggest_variant(torch.version, hardware) or f"no torch {_release(torch.version)} build runs on "
        f"{gpu_list(missing)}: choose another torch.version in the recipe",
    )


def suggest_variant(torch_version: str, hardware: Hardware) -> str | None:
    """"use torch 2.14 cu126 (… ): gpuenv setup --cuda 12.6": the build of this release that fits."""
    release = knowledge.torch_releases().get(_release(torch_version))
    if release is None or not hardware.gpus:
        return None
    covering = [
        v for v in release.variants
        if all(knowledge.runs_on(release.archs(v, from_pypi=v == release.pypi_default), g.cc)
               for g in hardware.gpus)
    ]
    newest_first = sorted(covering, key=lambda v: knowledge.version_tuple(knowledge.variant_cuda(v) or "0"),
                          reverse=True)
    fitting = [v for v in newest_first if driver_runs(hardware, knowledge.variant_cuda(v) or "") is not False]
    if not fitting:
        return None
    cuda = knowledge.variant_cuda(fitting[0])
    return f"install the {fitting[0]} build of torch {release.release}, which runs on these GPUs and this " \
        f"driver: 'gpuenv setup --cuda {cuda}'"


def cuda_available_check(torch: TorchInfo, hardware: Hardware, answer: Mapping[str, Any] | None) -> Check:
    """``torch.cuda.is_available()`` where there are GPUs (``answer`` is what the env said)."""
    name = "torch.cuda.is_available()"
    if not hardware.gpus:
        return Check(name, "skip", "no GPU")
    if not _gpus_here(hardware):
        return Check(name, "skip", f"the GPUs are described ({hardware.source}), not probed here")
    if torch.cuda is None:
        return Check(name, "ok", "False, as expected of a CPU build (see 'torch kernels')")
    if answer is not None and answer.get("available"):
        return Check(name, "ok", f"True, {answer.get('count', 0)} device(s) visible")
    reason = answer.get("reason") if answer is not None else None
    return Check(
        name, "fail", f"False although there {_are(hardware)}" + (f": {reason}" if reason else ""),
        fix=_unavailable_fix(torch, hardware, str(reason or "")),
    )


def _gpus_here(hardware: Hardware) -> bool:
    """Whether the GPUs were probed on this machine (not described by --gpu, --arch or a file)."""
    return bool(hardware.gpus) and hardware.source == "nvml"


def _unavailable_fix(torch: TorchInfo, hardware: Hardware, reason: str) -> str:
    if "too old" in reason or (torch.cuda and driver_runs(hardware, torch.cuda) is False):
        return _driver_fix(torch, hardware)
    return ("check that 'nvidia-smi' works for this user and that CUDA_VISIBLE_DEVICES does not hide "
            "the GPUs")


def _gpu_count(hardware: Hardware) -> str:
    n = len(hardware.gpus)
    return f"{n} GPU{'s' if n != 1 else ''}"


def _are(hardware: Hardware) -> str:
    n = len(hardware.gpus)
    return f"{'is' if n == 1 else 'are'} {_gpu_count(hardware)}"


def _release(version: str) -> str:
    parts = re.findall(r"\d+", version)
    return ".".join(parts[:2])
