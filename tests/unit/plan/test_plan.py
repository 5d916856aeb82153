"""The planner as a table: hardware profile x recipe (x options) -> decisions.

Every row builds its Recipe and Hardware directly (no files, no probe) and
states what the plan must decide, or which error it must raise. Expected
values come from the rules of the planner issue and the published compatibility
tables, not from running the planner.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gpuenv.errors import (
    ArchError,
    GpuenvError,
    InputError,
    NoVariantError,
    PlanBlockedError,
    RequiredSkipError,
    ToolkitError,
    UnknownTorchError,
)
from gpuenv.plan import catalog, knowledge
from gpuenv.plan.envplan import Plan
from gpuenv.plan.extensionspec import CatalogOverrides, ExtensionSpec, ProjectFacts
from gpuenv.plan.hardware import Gpu, Hardware, Toolkit
from gpuenv.plan.planner import PlanOptions, make_plan, plan
from gpuenv.plan.recipespec import Recipe
from gpuenv.plan.toolkitchoice import ToolkitPolicy
from gpuenv.plan.torchspec import DEFAULT_INDEX, TorchSpec
from tests.unit.plan.test_cli_plan import node

# -- building blocks ------------------------------------------------------------------

GiB = 1024  # in MiB

# GPUs as NVML names them, with their compute capability.
V100 = ("Tesla V100-SXM2-32GB", "7.0")
T4 = ("Tesla T4", "7.5")
A100 = ("NVIDIA A100-SXM4-80GB", "8.0")
L4 = ("NVIDIA L4", "8.9")
H100 = ("NVIDIA H100 80GB HBM3", "9.0")
B200 = ("NVIDIA B200", "10.0")
RTX5090 = ("NVIDIA GeForce RTX 5090", "12.0")
GB10 = ("NVIDIA GB10", "12.1")

# Drivers: (driver version, the CUDA version NVML says it supports).
D470 = ("470.82.01", "11.4")
D520 = ("520.61.05", "11.8")
D535 = ("535.104.05", "12.2")
D550 = ("550.54.15", "12.4")
D560 = ("560.35.03", "12.6")
D570 = ("570.124.06", "12.8")
D580 = ("580.95.05", "13.0")
NO_DRIVER: tuple[str | None, str | None] = (None, None)


def machine(
    *gpus: tuple[str, str],
    driver: tuple[str | None, str | None] = NO_DRIVER,
    nvcc: tuple[str, ...] = (),
    cpus: int = 16,
    mem_gib: int = 64,
) -> Hardware:
    """A machine with these GPUs, driver, nvcc releases (at /usr/local/cuda-X.Y), CPUs and free memory."""
    return Hardware(
        driver_version=driver[0],
        cuda_driver_version=driver[1],
        gpus=tuple(
            Gpu(index=i, name=name, uuid=f"GPU-{i:04d}", compute_capability=cc, memory_total_mib=16 * GiB)
            for i, (name, cc) in enumerate(gpus)
        ),
        cpu_count=cpus,
        memory_total_mib=2 * mem_gib * GiB,
        memory_available_mib=mem_gib * GiB,
        toolkits=tuple(Toolkit(nvcc=f"/usr/local/cuda-{v}/bin/nvcc", version=v) for v in nvcc),
    )


def ext(requirement: str, *, required: bool = False, **env: str) -> ExtensionSpec:
    return ExtensionSpec(
        requirement=requirement,
        name=canonicalize_name(Requirement(requirement).name),
        env=tuple(env.items()),
        required=required,
    )


def recipe(version: str, *extensions: ExtensionSpec, cuda: str = "auto", index: str | None = None) -> Recipe:
    torch = TorchSpec(version=version, cuda=cuda, index=index or DEFAULT_INDEX, index_given=index is not None)
    return Recipe(path=Path("/work/envs/test.toml"), name="test", description="", torch=torch,
                  extensions=extensions)


def idx(variant: str) -> str:
    return f"https://download.pytorch.org/whl/{variant}"


FA = ext("flash-attn==2.8.3.post2")
SCATTER = ext("torch-scatter==2.1.2")
APEX = ext("apex @ git+https://github.com/NVIDIA/apex")
CONV1D = ext("causal-conv1d==1.7.0")
MAMBA = ext("mamba-ssm==2.3.2.post1")
TE = ext("transformer-engine-torch==2.20.2")
XFORMERS = ext("xformers==0.0.35")
MINE = ext("my-kernels==0.1")  # not in the catalog


# -- expectations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ext:
    """One extension's expected decision."""

    action: str
    #: Must be set exactly so in the extension's env.
    env: Mapping[str, str] = field(default_factory=dict)
    #: Must not be set in the extension's env.
    absent: tuple[str, ...] = ()
    #: A phrase of the reason.
    reason: str = ""


@dataclass(frozen=True)
class Expect:
    variant: str
    index: str | None
    torch: str
    #: The arch list as TORCH_CUDA_ARCH_LIST spells it; "" for none.
    archs: str
    #: The nvcc release chosen (CUDA_HOME /usr/local/cuda-X.Y), or None for no toolkit.
    nvcc: str | None = None
    ext: Mapping[str, Ext] = field(default_factory=dict)
    #: One phrase per warning the plan must give, and no other warnings.
    warns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fails:
    error: type[GpuenvError]
    exit_code: int
    #: Phrases the message (or, if given, the hint) must contain.
    phrases: tuple[str, ...]
    hint: tuple[str, ...] = ()


Outcome = Union[Expect, Fails]


def row(
    id: str,
    rec: Recipe,
    hw: Hardware,
    outcome: Outcome,
    options: PlanOptions | None = None,
    bug: str | None = None,
) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {bug}")] if bug else []
    return pytest.param(rec, hw, options or PlanOptions(), outcome, id=id, marks=marks)


FA_BUILD = {"FLASH_ATTENTION_FORCE_BUILD": "TRUE"}
CUDA_ONLY = ("FORCE_ONLY_CPU",)
CPU_ONLY = ("FORCE_CUDA", "TORCH_CUDA_ARCH_LIST", "CUDA_HOME")

SCENARIOS = [
    # -- driver ages ---------------------------------------------------------------------
    row("535-cuda12.2/A100/torch2.4 -> cu121 from PyPI",
        recipe("==2.4.*", FA), machine(A100, driver=D535, nvcc=("12.1",)),
        Expect("cu121", None, "torch==2.4.*", "8.0", nvcc="12.1",
               ext={"flash-attn": Ext("build", {**FA_BUILD, "FLASH_ATTN_CUDA_ARCHS": "80"})})),
    row("535-cuda12.2/A100/torch2.13 -> cu126 by minor-version compatibility",
        recipe("==2.13.*", SCATTER), machine(A100, driver=D535, nvcc=("12.6",)),
        Expect("cu126", idx("cu126"), "torch==2.13.*", "8.0", nvcc="12.6",
               ext={"torch-scatter": Ext("build", {"FORCE_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "8.0"})},
               warns=("minor-version compatibility",))),
    row("535 driver without a CUDA version: inferred 12.2 -> cu121",
        recipe("==2.4.*"), machine(A100, driver=("535.104.05", None)),
        Expect("cu121", None, "torch==2.4.*", "8.0")),
    row("550-cuda12.4/H100/torch2.5 -> cu124, PyPI's default",
        recipe("==2.5.*", FA), machine(H100, driver=D550, nvcc=("12.4",)),
        Expect("cu124", None, "torch==2.5.*", "9.0", nvcc="12.4",
               ext={"flash-attn": Ext("build", {"FLASH_ATTN_CUDA_ARCHS": "90",
                                                "CUDA_HOME": "/usr/local/cuda-12.4"})})),
    row("550-cuda12.4/H100/torch2.4 -> cu124 from the PyTorch index",
        recipe("==2.4.*"), machine(H100, driver=D550),
        Expect("cu124", idx("cu124"), "torch==2.4.*", "9.0")),
    row("550-cuda12.4/H100/torch2.7 -> cu118: the newest not newer than the driver beats minor compat",
        recipe("==2.7.*", SCATTER), machine(H100, driver=D550, nvcc=("11.8", "12.8")),
        Expect("cu118", idx("cu118"), "torch==2.7.*", "9.0", nvcc="11.8",
               ext={"torch-scatter": Ext("build", {"CUDA_HOME": "/usr/local/cuda-11.8"})})),
    row("560-cuda12.6/A100/torch2.13 -> cu126",
        recipe("==2.13.*"), machine(A100, driver=D560),
        Expect("cu126", idx("cu126"), "torch==2.13.*", "8.0")),
    row("570-cuda12.8/H100/torch2.9 -> cu128 from PyPI",
        recipe("==2.9.*", FA), machine(H100, driver=D570, nvcc=("12.8",)),
        Expect("cu128", None, "torch==2.9.*", "9.0", nvcc="12.8",
               ext={"flash-attn": Ext("build", {"FLASH_ATTN_CUDA_ARCHS": "90"})})),
    row("580-cuda13.0/H100/torch2.13 -> cu130 from PyPI, flash-attn + torch-scatter",
        recipe("==2.13.*", FA, SCATTER), machine(H100, driver=D580, nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.13.*", "9.0", nvcc="13.0",
               ext={"flash-attn": Ext("build", {**FA_BUILD, "FLASH_ATTN_CUDA_ARCHS": "90",
                                                "CUDA_HOME": "/usr/local/cuda-13.0"}, CUDA_ONLY),
                    "torch-scatter": Ext("build", {"FORCE_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "9.0"},
                                         CUDA_ONLY)})),
    row("470-cuda11.4/H100/torch2.13: driver older than every build",
        recipe("==2.13.*"), machine(H100, driver=D470),
        Fails(NoVariantError, 3, ("470.82.01", "11.4"), hint=("upgrade the NVIDIA driver",))),
    row("520-cuda11.8/A100/torch2.8: 12.x builds need driver >= 525.60.13",
        recipe("==2.8.*"), machine(A100, driver=D520),
        Fails(NoVariantError, 3, ("520.61.05",), hint=("525.60.13",))),
    row("470-cuda11.4/H100/torch2.4 -> cu118 by 11.x minor-version compatibility",
        recipe("==2.4.*"), machine(H100, driver=D470),
        Expect("cu118", idx("cu118"), "torch==2.4.*", "9.0", warns=("minor-version compatibility",))),
    row("470 driver without a CUDA version is still older than every torch 2.13 build",
        recipe("==2.13.*"), machine(H100, driver=("470.82.01", None)),
        Fails(NoVariantError, 3, ("470.82.01",))),
    row("440 driver is older than any CUDA release gpuenv knows",
        recipe("==2.13.*"), machine(H100, driver=("440.33.01", None)),
        Fails(NoVariantError, 3, ("440.33.01", "older than any CUDA release"))),
    row("560-cuda12.6/RTX 5090/torch2.7 -> cu128 by minor-version compatibility",
        recipe("==2.7.*", FA), machine(RTX5090, driver=D560, nvcc=("12.8",)),
        Expect("cu128", idx("cu128"), "torch==2.7.*", "12.0", nvcc="12.8",
               ext={"flash-attn": Ext("build", {"FLASH_ATTN_CUDA_ARCHS": "120"})},
               warns=("minor-version compatibility",))),
    row("unknown driver (--gpu H100) -> PyPI's default build, with a warning",
        recipe("==2.13.*"), machine(H100),
        Expect("cu130", None, "torch==2.13.*", "9.0",
               warns=("cu130 needs a driver that supports CUDA 13.0 (at least 580",))),
    row("unknown driver (--gpu V100) -> PyPI's default lacks sm_70: the newest that covers it",
        recipe("==2.13.*"), machine(V100),
        Expect("cu126", idx("cu126"), "torch==2.13.*", "7.0", warns=("driver is unknown",))),
    # -- GPUs ------------------------------------------------------------------------------
    row("V100/torch2.13 -> cu126 (cu130 lacks sm_70); flash-attn skipped",
        recipe("==2.13.*", FA, SCATTER), machine(V100, driver=D580, nvcc=("12.6", "13.0")),
        Expect("cu126", idx("cu126"), "torch==2.13.*", "7.0", nvcc="12.6",
               ext={"flash-attn": Ext("skip", reason="compute capability ≥ 8.0"),
                    "torch-scatter": Ext("build", {"FORCE_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "7.0",
                                                   "CUDA_HOME": "/usr/local/cuda-12.6"})})),
    row("V100/torch2.12 -> cu126",
        recipe("==2.12.*"), machine(V100, driver=D580),
        Expect("cu126", idx("cu126"), "torch==2.12.*", "7.0")),
    row("V100/torch2.9 -> cu128 (still has sm_70), PyPI's default",
        recipe("==2.9.*"), machine(V100, driver=D580),
        Expect("cu128", None, "torch==2.9.*", "7.0")),
    row("V100/torch2.11 -> cu126 (2.11's cu128 dropped Volta)",
        recipe("==2.11.*"), machine(V100, driver=D580),
        Expect("cu126", idx("cu126"), "torch==2.11.*", "7.0")),
    row("T4/torch2.13 -> cu130; flash-attn skipped, causal-conv1d builds its fixed archs",
        recipe("==2.13.*", FA, CONV1D), machine(T4, driver=D580, nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.13.*", "7.5", nvcc="13.0",
               ext={"flash-attn": Ext("skip", reason="8.0"),
                    "causal-conv1d": Ext("build", {"CAUSAL_CONV1D_FORCE_BUILD": "TRUE"}, reason="fixed")})),
    row("V100/torch2.13: causal-conv1d needs 7.5 -> skipped",
        recipe("==2.13.*", CONV1D), machine(V100, driver=D580, nvcc=("12.6",)),
        Expect("cu126", idx("cu126"), "torch==2.13.*", "7.0",
               ext={"causal-conv1d": Ext("skip", reason="7.5")})),
    row("A100/torch2.13 -> cu130, FLASH_ATTN_CUDA_ARCHS=80",
        recipe("==2.13.*", FA), machine(A100, A100, driver=D580, nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.13.*", "8.0", nvcc="13.0",
               ext={"flash-attn": Ext("build", {"FLASH_ATTN_CUDA_ARCHS": "80",
                                                "TORCH_CUDA_ARCH_LIST": "8.0"})})),
    row("L4 (8.9) runs sm_86 code -> cu130; flash-attn's 80 kernels serve 8.9",
        recipe("==2.13.*", FA, SCATTER), machine(L4, driver=D580, nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.13.*", "8.9", nvcc="13.0",
               ext={"flash-attn": Ext("build", {"FLASH_ATTN_CUDA_ARCHS": "80"}),
                    "torch-scatter": Ext("build", {"TORCH_CUDA_ARCH_LIST": "8.9"})})),
    row("B200 (10.0)/570/torch2.8 -> cu128 (cu129 is newer than the driver)",
        recipe("==2.8.*", FA, TE), machine(B200, driver=D570, nvcc=("12.8",)),
        Expect("cu128", None, "torch==2.8.*", "10.0", nvcc="12.8",
               ext={"flash-attn": Ext("build", {"FLASH_ATTN_CUDA_ARCHS": "100"}),
                    "transformer-engine-torch": Ext("build", {"NVTE_CUDA_ARCHS": "100",
                                                              "NVTE_FRAMEWORK": "pytorch"})})),
    row("RTX 5090 (12.0)/torch2.13 -> cu130, FLASH_ATTN_CUDA_ARCHS=120",
        recipe("==2.13.*", FA), machine(RTX5090, driver=D580, nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.13.*", "12.0", nvcc="13.0",
               ext={"flash-attn": Ext("build", {"FLASH_ATTN_CUDA_ARCHS": "120"})})),
    row("RTX 5090/torch2.4: no build carries sm_120",
        recipe("==2.4.*"), machine(RTX5090, driver=D580),
        Fails(NoVariantError, 3, ("torch 2.4", "RTX 5090"), hint=("2.7",))),
    row("GB10 (12.1) runs sm_120 code -> cu130",
        recipe("==2.13.*", FA), machine(GB10, driver=D580, nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.13.*", "12.1", nvcc="13.0",
               ext={"flash-attn": Ext("build", {"FLASH_ATTN_CUDA_ARCHS": "120"})})),
    row("mixed V100+A100/torch2.13 -> cu126 for both; flash-attn for 8.0 only",
        recipe("==2.13.*", FA, SCATTER), machine(V100, A100, driver=D580, nvcc=("12.6",)),
        Expect("cu126", idx("cu126"), "torch==2.13.*", "7.0;8.0", nvcc="12.6",
               ext={"flash-attn": Ext("build", {"FLASH_ATTN_CUDA_ARCHS": "80"}, reason="8.0"),
                    "torch-scatter": Ext("build", {"TORCH_CUDA_ARCH_LIST": "7.0;8.0"})},
               warns=("flash-attn: not for",))),
    row("mixed H100,A100,H100 -> sorted distinct arch list 8.0;9.0",
        recipe("==2.13.*", FA, TE), machine(H100, A100, H100, driver=D580, nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.13.*", "8.0;9.0", nvcc="13.0",
               ext={"flash-attn": Ext("build", {"FLASH_ATTN_CUDA_ARCHS": "80;90"}),
                    "transformer-engine-torch": Ext("build", {"NVTE_CUDA_ARCHS": "80;90"})})),
    row("nvcc 12.6 cannot compile B200's 10.0 -> ArchError",
        recipe("==2.8.*", SCATTER), machine(B200, driver=D570, nvcc=("12.6",)),
        Fails(ArchError, 3, ("nvcc 12.6", "10.0"))),
    # -- no GPU ----------------------------------------------------------------------------
    row("no GPU -> cpu; torch-scatter CPU-only, flash-attn skipped, no toolkit",
        recipe("==2.13.*", FA, SCATTER), machine(nvcc=("13.0",)),
        Expect("cpu", idx("cpu"), "torch==2.13.*", "", nvcc=None,
               ext={"flash-attn": Ext("skip", reason="no GPU"),
                    "torch-scatter": Ext("build", {"FORCE_ONLY_CPU": "1"}, CPU_ONLY)})),
    row("no GPU -> cpu; unknown, xformers and deepspeed build without CUDA knobs",
        recipe("==2.4.*", MINE, XFORMERS, ext("deepspeed==0.19.8")), machine(),
        Expect("cpu", idx("cpu"), "torch==2.4.*", "",
               ext={"my-kernels": Ext("build", {"MAX_JOBS": "16"}, CPU_ONLY),
                    "xformers": Ext("build", absent=CPU_ONLY),
                    "deepspeed": Ext("build", absent=CPU_ONLY)})),
    row("FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE builds without CUDA, even on a cpu plan",
        recipe("==2.13.*", ext("flash-attn==2.8.3.post2", FLASH_ATTENTION_SKIP_CUDA_BUILD="TRUE")),
        machine(),
        Expect("cpu", idx("cpu"), "torch==2.13.*", "",
               ext={"flash-attn": Ext("build", {"FLASH_ATTENTION_SKIP_CUDA_BUILD": "TRUE"},
                                      ("FLASH_ATTN_CUDA_ARCHS", *CPU_ONLY))})),
    row("no GPU + forced cu130 -> the wheel's archs (no +PTX), with a warning",
        recipe("==2.13.*", SCATTER, cuda="cu130"), machine(nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.13.*", "7.5;8.0;8.6;9.0;10.0;12.0", nvcc="13.0",
               ext={"torch-scatter": Ext("build", {"TORCH_CUDA_ARCH_LIST": "7.5;8.0;8.6;9.0;10.0;12.0",
                                                   "FORCE_CUDA": "1"})},
               warns=("no GPU given",))),
    row("no GPU + forced cu128 with nvcc 12.6 -> wheel archs minus 10.0 and 12.0",
        recipe("==2.9.*", SCATTER), machine(nvcc=("12.6",)),
        Expect("cu128", None, "torch==2.9.*", "7.0;7.5;8.0;8.6;9.0", nvcc="12.6",
               ext={"torch-scatter": Ext("build", {"TORCH_CUDA_ARCH_LIST": "7.0;7.5;8.0;8.6;9.0"})},
               warns=("no GPU given", "minors differ", "cannot compile for 10.0, 12.0")),
        options=PlanOptions(cuda="12.8")),
    # -- forced variants ---------------------------------------------------------------------
    row("--cuda 12.1 on torch2.4 -> cu121, PyPI's default: no extra index",
        recipe("==2.4.*", SCATTER), machine(H100, driver=D550, nvcc=("12.1", "12.4")),
        Expect("cu121", None, "torch==2.4.*", "9.0", nvcc="12.1",
               ext={"torch-scatter": Ext("build", {"CUDA_HOME": "/usr/local/cuda-12.1"})}),
        options=PlanOptions(cuda="12.1")),
    row("recipe cuda=cu121 on torch2.4 -> cu121",
        recipe("==2.4.*", cuda="cu121"), machine(H100, driver=D550),
        Expect("cu121", None, "torch==2.4.*", "9.0")),
    row("recipe cuda=cpu on an H100 -> cpu; flash-attn skipped, torch-scatter CPU-only",
        recipe("==2.13.*", FA, SCATTER, cuda="cpu"), machine(H100, driver=D580, nvcc=("13.0",)),
        Expect("cpu", idx("cpu"), "torch==2.13.*", "",
               ext={"flash-attn": Ext("skip", reason="CPU build"),
                    "torch-scatter": Ext("build", {"FORCE_ONLY_CPU": "1"}, CPU_ONLY)})),
    row("--cuda cpu wins over the recipe's cu130",
        recipe("==2.13.*", cuda="cu130"), machine(H100, driver=D580),
        Expect("cpu", idx("cpu"), "torch==2.13.*", ""),
        options=PlanOptions(cuda="cpu")),
    row("--cuda 12.1 on torch2.13: no such build -> InputError listing what it has",
        recipe("==2.13.*"), machine(H100, driver=D580),
        Fails(InputError, 2, ("cu121", "cpu, cu126, cu130, cu132")),
        options=PlanOptions(cuda="12.1")),
    row("recipe cuda=cu118 on torch2.9 -> InputError",
        recipe("==2.9.*", cuda="cu118"), machine(H100, driver=D580),
        Fails(InputError, 2, ("cu118", "cu126, cu128, cu130"))),
    row("--cuda banana -> InputError",
        recipe("==2.13.*"), machine(H100, driver=D580),
        Fails(InputError, 2, ("banana",)),
        options=PlanOptions(cuda="banana")),
    row("forced cu130 on a V100 -> a warning (no sm_70 in the wheels)",
        recipe("==2.13.*"), machine(V100, driver=D580),
        Expect("cu130", None, "torch==2.13.*", "7.0", warns=("carry no code for",)),
        options=PlanOptions(cuda="cu130")),
    row("forced cu130 + torch-scatter on a V100: nvcc 13 cannot compile 7.0",
        recipe("==2.13.*", SCATTER), machine(V100, driver=D580, nvcc=("13.0",)),
        Fails(ArchError, 3, ("nvcc 13.0", "7.0")),
        options=PlanOptions(cuda="cu130")),
    row("forced cu130 on a 12.4 driver -> a warning that it will not run",
        recipe("==2.13.*"), machine(H100, driver=D550),
        Expect("cu130", None, "torch==2.13.*", "9.0", warns=("will not run on this driver",)),
        options=PlanOptions(cuda="13.0")),
    row("forced cu126 on an RTX 5090 with torch2.6: torch cannot build for 12.0, nor nvcc 12.6: both said",
        recipe("==2.6.*", SCATTER, cuda="cu126"), machine(RTX5090, driver=D580, nvcc=("12.6",)),
        Fails(PlanBlockedError, 3, ("2 things stop this plan", "torch 2.6", "12.0", "nvcc 12.6"))),
    # -- index ---------------------------------------------------------------------------------
    row("--torch-index config -> no index URL",
        recipe("==2.13.*"), machine(V100, driver=D580),
        Expect("cu126", None, "torch==2.13.*", "7.0"),
        options=PlanOptions(torch_index="config")),
    row("--torch-index template -> {variant} replaced",
        recipe("==2.13.*"), machine(V100, driver=D580),
        Expect("cu126", "https://mirror.example/torch/cu126/simple", "torch==2.13.*", "7.0"),
        options=PlanOptions(torch_index="https://mirror.example/torch/{variant}/simple")),
    row("recipe index template -> {variant} replaced",
        recipe("==2.4.*", index="https://mirror.example/{variant}"), machine(H100, driver=D550),
        Expect("cu124", "https://mirror.example/cu124", "torch==2.4.*", "9.0")),
    row("recipe index template, PyPI's default variant -> the ordinary index",
        recipe("==2.13.*", index="https://mirror.example/{variant}"), machine(H100, driver=D580),
        Expect("cu130", None, "torch==2.13.*", "9.0")),
    # -- toolkits -------------------------------------------------------------------------------
    row("cu126 plan with only nvcc 13.0 -> ToolkitError naming both",
        recipe("==2.13.*", SCATTER), machine(V100, driver=D580, nvcc=("13.0",)),
        Fails(ToolkitError, 3, ("12.x", "13.0"))),
    row("cu130 plan with no toolkit at all, --toolkit system -> ToolkitError",
        recipe("==2.13.*", SCATTER), machine(H100, driver=D580),
        Fails(ToolkitError, 3, ("no CUDA toolkit",), hint=("--toolkit auto",)),
        PlanOptions(toolkit=ToolkitPolicy("system"))),
    row("cu130 plan with only nvcc 13.1 -> same major, a warning",
        recipe("==2.13.*", SCATTER), machine(H100, driver=D580, nvcc=("13.1",)),
        Expect("cu130", None, "torch==2.13.*", "9.0", nvcc="13.1", warns=("minors differ",))),
    row("apex needs nvcc 13.0 exactly; 13.1 will not do (--toolkit system)",
        recipe("==2.13.*", APEX), machine(H100, driver=D580, nvcc=("13.1",)),
        Fails(ToolkitError, 3, ("apex", "13.0", "13.1")), PlanOptions(toolkit=ToolkitPolicy("system"))),
    row("apex picks the exact nvcc among several, no FORCE_CUDA",
        recipe("==2.13.*", APEX), machine(H100, driver=D580, nvcc=("13.1", "13.0", "12.6")),
        Expect("cu130", None, "torch==2.13.*", "9.0", nvcc="13.0",
               ext={"apex": Ext("build", {"TORCH_CUDA_ARCH_LIST": "9.0"}, ("FORCE_CUDA",))})),
    row("mamba-ssm + causal-conv1d: their own fixed archs, force-build flags",
        recipe("==2.13.*", CONV1D, MAMBA), machine(H100, driver=D580, nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.13.*", "9.0", nvcc="13.0",
               ext={"causal-conv1d": Ext("build", {"CAUSAL_CONV1D_FORCE_BUILD": "TRUE"}),
                    "mamba-ssm": Ext("build", {"MAMBA_FORCE_BUILD": "TRUE"})})),
    # -- skips ----------------------------------------------------------------------------------
    row("required flash-attn on a V100 -> RequiredSkipError",
        recipe("==2.13.*", ext("flash-attn==2.8.3.post2", required=True)),
        machine(V100, driver=D580, nvcc=("12.6",)),
        Fails(RequiredSkipError, 3, ("flash-attn", "8.0"))),
    row("required flash-attn with no GPU -> RequiredSkipError",
        recipe("==2.13.*", ext("flash-attn==2.8.3.post2", required=True)), machine(nvcc=("13.0",)),
        Fails(RequiredSkipError, 3, ("flash-attn",))),
    row("flash-attn 2.8.3.post2 cannot build against torch 2.14 (C++20) -> skip, no toolkit needed",
        recipe("==2.14.*", FA), machine(H100, driver=D580),
        Expect("cu130", None, "torch==2.14.*", "9.0", nvcc=None,
               ext={"flash-attn": Ext("skip", reason="C++20")})),
    row("flash-attn 2.8.4 (newer than the catalog's tables) is planned with its newest: -std=c++17 on 2.14",
        recipe("==2.14.*", ext("flash-attn==2.8.4")), machine(H100, driver=D580, nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.14.*", "9.0",
               ext={"flash-attn": Ext("skip", reason="-std=c++17")})),
    # -- torch versions ---------------------------------------------------------------------------
    row("unknown torch 3.0 -> UnknownTorchError with a hint naming --cuda",
        recipe("==3.0.*"), machine(H100, driver=D580),
        Fails(UnknownTorchError, 3, ("3.0",), hint=("--cuda",))),
    row("unknown torch 3.0 with a forced variant -> a warning",
        recipe("==3.0.*", SCATTER, cuda="cu130"), machine(H100, driver=D580, nvcc=("13.0",)),
        Expect("cu130", idx("cu130"), "torch==3.0.*", "9.0", nvcc="13.0",
               ext={"torch-scatter": Ext("build", {"TORCH_CUDA_ARCH_LIST": "9.0"})},
               warns=("not in gpuenv's data",))),
    row("an unknown patch of a known minor (2.4.7) plans as 2.4",
        recipe("==2.4.7"), machine(H100, driver=D535),
        Expect("cu121", None, "torch==2.4.7", "9.0")),
    row(">=2.4 -> the newest known release, pinned to its minor",
        recipe(">=2.4"), machine(H100, driver=D580),
        Expect("cu130", idx("cu130"), "torch==2.15.*,>=2.4", "9.0")),
    # -- resolution over releases (the resolver issue) ---------------------------------------------
    row(">=2.1 on a driver-470 V100: 2.8-2.15 passed over, torch 2.7 with cu118",
        recipe(">=2.1", SCATTER), machine(V100, driver=D470, nvcc=("11.8",)),
        Expect("cu118", idx("cu118"), "torch==2.7.*,>=2.1", "7.0", nvcc="11.8",
               ext={"torch-scatter": Ext("build", {"TORCH_CUDA_ARCH_LIST": "7.0"})},
               warns=("minor-version compatibility",))),
    row(">=2.1 with --cuda 12.1: the newest release with a cu121 build, 2.5",
        recipe(">=2.1"), machine(H100, driver=D580),
        Expect("cu121", idx("cu121"), "torch==2.5.*,>=2.1", "9.0"),
        options=PlanOptions(cuda="12.1")),
    row(">=2.1 with flash-attn 2.8.3 on an H100: 2.15 and 2.14 passed over (C++20), 2.13 builds it",
        recipe(">=2.1", FA), machine(H100, driver=D580, nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.13.*,>=2.1", "9.0", nvcc="13.0",
               ext={"flash-attn": Ext("build", {"FLASH_ATTN_CUDA_ARCHS": "90"})})),
    row("torch 2.0 is known: cu118 on a driver-520 A100",
        recipe("==2.0.*"), machine(A100, driver=D520),
        Expect("cu118", idx("cu118"), "torch==2.0.*", "8.0")),
    row("torch 1.13 is known: cu117 is PyPI's build, under 11.x minor-version compatibility on driver 470",
        recipe("==1.13.1"), machine(V100, driver=D470),
        Expect("cu117", None, "torch==1.13.1", "7.0", warns=("minor-version compatibility",))),
    row("torch 2.0 has no cu121: the hint names the releases that have it and --cuda auto",
        recipe("==2.0.*"), machine(A100, driver=D580),
        Fails(InputError, 2, ("torch 2.0 has no cu121 build", "cu117, cu118"),
              hint=("2.1 to 2.5", "--cuda auto")),
        options=PlanOptions(cuda="12.1")),
    row("--cuda auto beats the recipe's cuda",
        recipe("==2.13.*", cuda="cu126"), machine(H100, driver=D580),
        Expect("cu130", None, "torch==2.13.*", "9.0"),
        options=PlanOptions(cuda="auto")),
    row("--arch 11.0 (Jetson Thor): no x86_64 wheel carries it, and the message says what each carries",
        recipe("==2.13.*"), machine(("sm_110", "11.0")),
        Fails(NoVariantError, 3, ("no CUDA build of torch 2.13 runs on sm_110 (11.0)", "cu130 7.5"),
              hint=("no torch release gpuenv knows",))),
    row("a recipe pinned to a torch the driver cannot run: the hint names the newest that would",
        recipe("==2.13.*"), machine(V100, driver=D470),
        Fails(NoVariantError, 3, ("470.82.01",), hint=("the newest torch that runs here is 2.7.1 (cu118)",))),
    row("required flash-attn with >=2.13 on an H100: 2.14 passed over, 2.13 builds it",
        recipe(">=2.13", ext("flash-attn==2.8.3.post2", required=True)),
        machine(H100, driver=D580, nvcc=("13.0",)),
        Expect("cu130", None, "torch==2.13.*,>=2.13", "9.0", nvcc="13.0",
               ext={"flash-attn": Ext("build")})),
    row("required flash-attn with ==2.14.*: no release builds it -> RequiredSkipError",
        recipe("==2.14.*", ext("flash-attn==2.8.3.post2", required=True)), machine(H100, driver=D580),
        Fails(RequiredSkipError, 3, ("flash-attn", "C++20"))),
    # -- build knobs ------------------------------------------------------------------------------
    row("unknown extension -> generic knobs",
        recipe("==2.13.*", MINE), machine(H100, driver=D580, nvcc=("13.0",), cpus=8, mem_gib=64),
        Expect("cu130", None, "torch==2.13.*", "9.0", nvcc="13.0",
               ext={"my-kernels": Ext("build", {"TORCH_CUDA_ARCH_LIST": "9.0", "FORCE_CUDA": "1",
                                                "MAX_JOBS": "8", "CUDA_HOME": "/usr/local/cuda-13.0"})})),
    row("MAX_JOBS from memory: two archs, NVCC_THREADS 2 compiles both at once: 20 GiB / (5 GiB x 2) = 2",
        recipe("==2.13.*", FA), machine(A100, H100, driver=D580, nvcc=("13.0",), cpus=64, mem_gib=20),
        Expect("cu130", None, "torch==2.13.*", "8.0;9.0", nvcc="13.0",
               ext={"flash-attn": Ext("build", {"MAX_JOBS": "2", "NVCC_THREADS": "2"})})),
    row("MAX_JOBS from memory: one arch leaves nvcc's threads nothing to share: 20 GiB / 5 GiB = 4",
        recipe("==2.13.*", FA), machine(H100, driver=D580, nvcc=("13.0",), cpus=64, mem_gib=20),
        Expect("cu130", None, "torch==2.13.*", "9.0", nvcc="13.0",
               ext={"flash-attn": Ext("build", {"MAX_JOBS": "4", "NVCC_THREADS": "2"})})),
    row("MAX_JOBS with NVCC_THREADS=4 from the recipe and two archs: 64 GiB / (5 GiB x 2) = 6",
        recipe("==2.13.*", ext("flash-attn==2.8.3.post2", NVCC_THREADS="4")),
        machine(A100, H100, driver=D580, nvcc=("13.0",), cpus=64, mem_gib=64),
        Expect("cu130", None, "torch==2.13.*", "8.0;9.0", nvcc="13.0",
               ext={"flash-attn": Ext("build", {"MAX_JOBS": "6", "NVCC_THREADS": "4"})})),
    row("MAX_JOBS is at least 1 on a tiny machine",
        recipe("==2.13.*", FA, SCATTER), machine(H100, driver=D580, nvcc=("13.0",), cpus=2, mem_gib=1),
        Expect("cu130", None, "torch==2.13.*", "9.0", nvcc="13.0",
               ext={"flash-attn": Ext("build", {"MAX_JOBS": "1"}),
                    "torch-scatter": Ext("build", absent=("MAX_JOBS",), reason="one file at a time")})),
    row("MAX_JOBS is capped by the CPUs",
        recipe("==2.13.*", MINE), machine(H100, driver=D580, nvcc=("13.0",), cpus=4, mem_gib=256),
        Expect("cu130", None, "torch==2.13.*", "9.0", nvcc="13.0",
               ext={"my-kernels": Ext("build", {"MAX_JOBS": "4"})})),
    row("torch-scatter's setup.py builds without ninja: no MAX_JOBS promised, and the plan says so",
        recipe("==2.13.*", SCATTER), machine(H100, driver=D580, nvcc=("13.0",), cpus=16, mem_gib=64),
        Expect("cu130", None, "torch==2.13.*", "9.0", nvcc="13.0",
               ext={"torch-scatter": Ext("build", absent=("MAX_JOBS",),
                                         reason="one file at a time (its setup.py builds without ninja")})),
    row("MAX_JOBS from the recipe env wins (and fills every jobs knob)",
        recipe("==2.13.*", ext("flash-attn==2.8.3.post2", MAX_JOBS="3"), ext("transformer-engine-torch",
                                                                              MAX_JOBS="5")),
        machine(H100, driver=D580, nvcc=("13.0",), cpus=64, mem_gib=20),
        Expect("cu130", None, "torch==2.13.*", "9.0", nvcc="13.0",
               ext={"flash-attn": Ext("build", {"MAX_JOBS": "3"}),
                    "transformer-engine-torch": Ext("build", {"MAX_JOBS": "5",
                                                              "NVTE_BUILD_MAX_JOBS": "5"})})),
]


def _check_invariants(result: Plan) -> None:
    """What holds for every plan, whatever the row."""
    if result.variant == "cpu":
        assert result.cuda is None
        assert result.arch_list == ()
        assert result.toolkit is None
        assert "TORCH_CUDA_ARCH_LIST" not in result.build_env
    else:
        assert result.cuda == knowledge.variant_cuda(result.variant)
    if result.toolkit is None:
        assert "CUDA_HOME" not in result.build_env
    else:
        assert result.build_env["CUDA_HOME"] == result.toolkit.root
    for e in result.extensions:
        if e.action == "skip":
            assert e.reason, e.name
            continue
        entry = catalog.catalog_entry(e.name)
        if entry.ignores_jobs:
            # Its setup.py builds one file at a time: the plan promises no job count.
            assert "MAX_JOBS" not in e.env and "one file at a time" in e.reason, e.name
        else:
            for knob in entry.jobs_knobs:
                assert e.env[knob].isdigit() and int(e.env[knob]) >= 1, (e.name, knob)
        if e.compiles_cuda:
            assert result.toolkit is not None
            assert e.env["CUDA_HOME"] == result.toolkit.root
            archs = e.env.get("TORCH_CUDA_ARCH_LIST")
            if archs is not None:
                assert archs and set(archs.split(";")) <= set(result.arch_list), (e.name, archs)
        else:
            assert "TORCH_CUDA_ARCH_LIST" not in e.env, e.name


@pytest.mark.parametrize(("rec", "hw", "options", "outcome"), SCENARIOS)
def test_scenario(rec: Recipe, hw: Hardware, options: PlanOptions, outcome: Outcome) -> None:
    if isinstance(outcome, Fails):
        with pytest.raises(outcome.error) as info:
            plan(rec, hw, options)
        assert info.value.exit_code == outcome.exit_code
        for phrase in outcome.phrases:
            assert phrase in str(info.value)
        for phrase in outcome.hint:
            assert phrase in (info.value.hint or "")
        return

    result = plan(rec, hw, options)
    assert result.variant == outcome.variant
    assert result.index_url == outcome.index
    assert result.torch == outcome.torch
    assert ";".join(result.arch_list) == outcome.archs
    if outcome.archs and result.variant != "cpu":
        assert result.build_env["TORCH_CUDA_ARCH_LIST"] == outcome.archs
    if outcome.nvcc is None:
        assert result.toolkit is None
    else:
        assert result.toolkit is not None and result.toolkit.version == outcome.nvcc
        assert result.build_env["CUDA_HOME"] == f"/usr/local/cuda-{outcome.nvcc}"

    by_name = {e.name: e for e in result.extensions}
    assert [e.name for e in result.extensions] == [e.name for e in rec.extensions]  # recipe order
    for name, want in outcome.ext.items():
        got = by_name[name]
        assert got.action == want.action, got.reason
        assert {k: got.env.get(k) for k in want.env} == dict(want.env), name
        assert not set(want.absent) & set(got.env), (name, got.env)
        assert want.reason in got.reason
        if got.action == "skip":
            assert got.env == {}

    assert len(result.warnings) == len(outcome.warns), result.warnings
    for phrase in outcome.warns:
        assert any(phrase in w for w in result.warnings), (phrase, result.warnings)
    _check_invariants(result)


def test_table_is_large_enough() -> None:
    assert len(SCENARIOS) >= 30


# -- a CUDA build always gets an arch list -----------------------------------------------------


def test_no_cuda_build_without_an_arch_list() -> None:
    rec = recipe("==3.0.*", SCATTER, FA, cuda="cu130")
    try:
        result = plan(rec, machine(nvcc=("13.0",)))
    except GpuenvError as exc:  # refusing is fine, if it says how to give the archs
        assert "--arch" in f"{exc} {exc.hint}"
        return
    for e in result.extensions:
        if e.compiles_cuda:
            assert e.env.get("TORCH_CUDA_ARCH_LIST") or e.arch_list, e.name


def test_skip_cuda_knob_is_read_as_the_package_reads_it() -> None:
    rec = recipe("==2.13.*", ext("flash-attn==2.8.3.post2", FLASH_ATTENTION_SKIP_CUDA_BUILD="1"))
    (fa,) = plan(rec, machine()).extensions
    # Either the plan sees what flash-attn will do (a CUDA build: skipped on a cpu plan),
    # or it passes the knob on in the spelling flash-attn understands.
    assert fa.action == "skip" or fa.env.get("FLASH_ATTENTION_SKIP_CUDA_BUILD") == "TRUE", fa


# -- purity ------------------------------------------------------------------------------------


def _forbidden(*args: object, **kwargs: object) -> Any:
    raise AssertionError(f"plan() did I/O: {args!r}")


def _run(rec: Recipe, hw: Hardware, options: PlanOptions) -> Plan | str:
    try:
        return plan(rec, hw, options)
    except GpuenvError as exc:
        return f"{type(exc).__name__}: {exc}"


def test_plan_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [p.values for p in SCENARIOS]
    warm = [_run(*values[:3]) for values in rows]  # the data files are read lazily, once
    for target, name in [(builtins, "open"), (io, "open"), (os, "open"), (subprocess, "Popen"),
                         (socket, "socket"), (os, "system")]:
        monkeypatch.setattr(target, name, _forbidden)
    again = [_run(*values[:3]) for values in rows]
    monkeypatch.undo()
    assert again == warm


# -- the JSON contract --------------------------------------------------------------------------


def test_plan_json_contract() -> None:
    result = plan(recipe("==2.13.*", FA, SCATTER), machine(V100, A100, driver=D580, nvcc=("12.6",)))
    data = json.loads(json.dumps(result.to_json()))
    assert data["variant"] == "cu126"
    assert data["cuda"] == "12.6"
    assert data["index_url"] == idx("cu126")
    assert data["torch"] == "torch==2.13.*"
    assert data["arch_list"] == ["7.0", "8.0"]
    assert isinstance(data["build_env"], dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in data["build_env"].items())
    assert isinstance(data["warnings"], list) and all(isinstance(w, str) for w in data["warnings"])
    assert [e["name"] for e in data["extensions"]] == ["flash-attn", "torch-scatter"]
    for e in data["extensions"]:
        assert {"name", "requirement", "action", "reason", "env"} <= set(e)
        assert e["action"] in ("build", "cached", "skip")
        assert isinstance(e["reason"], str) and e["reason"]
        assert isinstance(e["env"], dict)
    assert data["extensions"][0]["requirement"] == "flash-attn==2.8.3.post2"


def test_plan_json_cpu_nulls() -> None:
    data = plan(recipe("==2.13.*", cuda="cpu"), machine()).to_json()
    assert data["variant"] == "cpu"
    assert data["cuda"] is None
    assert data["arch_list"] == []
    assert data["toolkit"] is None
    json.dumps(data)


def test_cached_extension() -> None:
    options = PlanOptions(cached={"torch-scatter": "wheel abc123 in the cache"})
    result = plan(recipe("==2.13.*", SCATTER, FA), machine(H100, driver=D580, nvcc=("13.0",)), options)
    actions = {e.name: (e.action, e.reason) for e in result.extensions}
    assert actions["torch-scatter"] == ("cached", "wheel abc123 in the cache")
    assert actions["flash-attn"][0] == "build"


def test_build_requires_merge_catalog_and_recipe_without_torch() -> None:
    spec = ExtensionSpec("flash-attn==2.8.3.post2", "flash-attn", build_requires=("einops>=0.8", "torch"))
    result = plan(recipe("==2.13.*", spec), machine(H100, driver=D580, nvcc=("13.0",)))
    requires = result.extensions[0].build_requires
    assert "einops>=0.8" in requires and "einops" not in requires
    assert "psutil" in requires
    assert not any(canonicalize_name(Requirement(r).name) == "torch" for r in requires)


def test_plan_is_deterministic_across_processes(tmp_path: Path) -> None:
    """Two processes with different string hashing (set and dict order) print the same plan, byte for byte."""
    (tmp_path / "recipe.toml").write_text(
        '[torch]\nversion = "2.13.*"\npackages = ["torchvision", "torchaudio"]\n'
        '[[extensions]]\nrequirement = "flash-attn==2.8.3.post2"\n'
        '[[extensions]]\nrequirement = "torch-scatter==2.1.2"\n'
        '[[extensions]]\nrequirement = "torch-sparse"\n'
        '[[extensions]]\nrequirement = "mamba-ssm==2.3.2.post1"\n'
        '[[extensions]]\nrequirement = "my-kernels==0.1"\n')
    (tmp_path / "node.json").write_text(json.dumps(node("7.0", "8.0", "9.0", nvcc=("12.6", "13.0"))))

    def plan_json(seed: str) -> str:
        environ = {k: v for k, v in os.environ.items() if k != "GPUENV_TORCH_INDEX"}
        environ["PYTHONHASHSEED"] = seed
        cmd = [sys.executable, "-m", "gpuenv", "plan", "-r", "recipe.toml", "--hardware", "node.json",
               "--no-cache", "--json"]
        proc = subprocess.run(cmd, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    first, second = plan_json("1"), plan_json("4242")
    assert json.loads(first)["extensions"], first
    assert first == second


# -- the resolver: passed over, paired packages, blockers, catalog per version ----------------------


def torch_recipe(version: str, *extensions: ExtensionSpec, packages: tuple[str, ...] = ()) -> Recipe:
    torch = TorchSpec(version=version, packages=packages)
    return Recipe(path=Path("/work/envs/test.toml"), name="test", description="", torch=torch,
                  extensions=extensions)


def test_each_newer_release_passed_over_is_named_with_its_reason() -> None:
    result = plan(recipe(">=2.1"), machine(V100, driver=D470))
    assert result.torch_version == "2.7.1" and result.variant == "cu118"
    passed = {line.split(":")[0] for line in result.passed_over}
    assert passed == {"torch 2.15.0", "torch 2.14.1", "torch 2.13.0", "torch 2.12.1", "torch 2.11.0",
                      "torch 2.10.0", "torch 2.9.1", "torch 2.8.0"}
    assert all("driver 470.82.01 supports CUDA 11.4" in line for line in result.passed_over)


def test_passed_over_names_the_extension_a_newer_torch_rules_out() -> None:
    result = plan(recipe(">=2.1", FA), machine(H100, driver=D580, nvcc=("13.0",)))
    assert result.torch_version == "2.13.0"
    newest, line = result.passed_over
    assert newest.startswith("torch 2.15.0: flash-attn 2.8.3.post2 compiles with -std=c++17 and "
                             "torch 2.15.0's headers require C++20")
    assert line.startswith("torch 2.14.1: flash-attn 2.8.3.post2 compiles with -std=c++17 and torch 2.14.1's "
                           "headers require C++20")


def test_optional_extension_skipped_on_every_release_is_said_once() -> None:
    # flash-attn 2.8.3 cannot build on 2.14, and the recipe allows nothing older: it is skipped there.
    result = plan(recipe("==2.14.*", FA), machine(H100, driver=D580))
    assert result.torch_version == "2.14.1"
    assert result.extensions[0].action == "skip" and "C++20" in result.extensions[0].reason


def test_unpinned_paired_packages_get_the_pair_of_the_chosen_torch() -> None:
    rec = torch_recipe(">=2.1", packages=("torchvision", "torchaudio", "einops"))
    result = plan(rec, machine(H100, driver=D580), PlanOptions(cuda="12.1"))
    assert result.torch_version == "2.5.1" and result.torch_build == "2.5.1+cu121"
    assert result.torch_packages == ("torchvision==0.20.1", "torchaudio==2.5.1", "einops")


def test_torch_2_1_2_gets_torchvision_0_16_2() -> None:
    result = plan(torch_recipe("==2.1.2", packages=("torchvision",)), machine(A100, driver=D535))
    assert result.torch_packages == ("torchvision==0.16.2",)


def test_a_paired_pin_narrows_torch_to_the_versions_it_pairs_with() -> None:
    result = plan(torch_recipe(">=2.1", packages=("torchvision==0.17.1",)), machine(A100, driver=D535))
    assert result.torch == "torch==2.2.1" and result.torch_packages == ("torchvision==0.17.1",)


def test_a_pin_that_pairs_with_no_allowed_torch_is_an_error_naming_the_pairs() -> None:
    with pytest.raises(InputError) as info:
        plan(torch_recipe("==2.1.2", packages=("torchvision==0.17.0",)), machine(A100, driver=D535))
    message = str(info.value)
    assert "torchvision==0.17.0 is released with torch 2.2.0" in message
    assert "torch 2.1.2 with torchvision 0.16.2" in message
    assert info.value.exit_code == 2 and "unpinned" in (info.value.hint or "")


def test_make_plan_shows_the_whole_plan_then_every_blocker() -> None:
    """--gpu V100 from a login node whose only nvcc is 13.0: the plan is still shown."""
    result = make_plan(recipe("==2.13.*", SCATTER, ext("flash-attn==2.8.3.post2", required=True)),
                       machine(V100, nvcc=("13.0",)))
    assert result.variant == "cu126" and result.arch_list == ("7.0",)
    assert [e.action for e in result.extensions] == ["build", "skip"]
    kinds = sorted(type(b.error).__name__ for b in result.blockers)
    assert kinds == ["RequiredSkipError", "ToolkitError"]
    with pytest.raises(PlanBlockedError) as info:
        result.raise_for_blockers()
    assert "2 things stop this plan" in str(info.value) and "12.x" in str(info.value)
    assert "flash-attn" in str(info.value) and info.value.exit_code == 3


def test_torch_version_option_plans_exactly_that_version() -> None:
    result = plan(torch_recipe(">=2.1", packages=("torchvision",)), machine(H100, driver=D580),
                  PlanOptions(torch_version="2.9.0"))
    assert result.torch_version == "2.9.0" and result.torch == "torch==2.9.0"
    assert result.torch_packages == ("torchvision==0.24.0",) and result.passed_over == ()


LOCAL_CONV1D = ExtensionSpec("./third_party/causal-conv1d", "causal-conv1d", path=Path("/repo/causal-conv1d"))
LOCAL_MAMBA = ExtensionSpec("./mamba", "mamba", path=Path("/repo/mamba"))


def test_a_local_copy_is_planned_with_the_catalog_entry_of_its_own_version() -> None:
    facts = {"causal-conv1d": ProjectFacts("causal-conv1d", "1.4.0", "setup.py"),
             "mamba": ProjectFacts("mamba-ssm", "2.2.2", "setup.py")}
    result = plan(recipe("==2.7.*", LOCAL_CONV1D, LOCAL_MAMBA), machine(V100, driver=D560, nvcc=("12.6",)),
                  PlanOptions(sources=facts))
    conv1d, mamba = result.extensions
    assert conv1d.action == "build", conv1d.reason  # 1.4 compiles sm_70: no "needs ≥ 7.5" skip
    assert conv1d.arch_list == ("5.3", "6.2", "7.0", "7.2", "8.0", "8.7", "9.0")
    assert "catalog: causal-conv1d 1.4.0" in conv1d.catalog
    assert mamba.action == "build" and mamba.env["MAMBA_FORCE_BUILD"] == "TRUE"
    assert "catalog: mamba-ssm 2.2.2" in mamba.catalog


def test_a_local_tree_the_catalog_does_not_know_gets_generic_knobs_and_a_note() -> None:
    spec = ExtensionSpec("./kernels", "kernels", path=Path("/repo/kernels"))
    result = plan(recipe("==2.13.*", spec), machine(H100, driver=D580, nvcc=("13.0",)),
                  PlanOptions(sources={"kernels": ProjectFacts("my-kernels", "0.1", "pyproject.toml")}))
    (kernels,) = result.extensions
    assert kernels.env["TORCH_CUDA_ARCH_LIST"] == "9.0" and kernels.env["FORCE_CUDA"] == "1"
    assert "my-kernels is not in gpuenv's catalog: generic knobs" in kernels.reason


def test_recipe_keys_override_the_catalog() -> None:
    spec = ExtensionSpec(
        "causal-conv1d==1.7.0", "causal-conv1d",
        overrides=CatalogOverrides(min_cc="7.0", fixed_archs=("7.0", "8.0"),
                                   force_build=(("CAUSAL_CONV1D_FORCE_BUILD", "TRUE"), ("X", "1"))),
    )
    result = plan(recipe("==2.13.*", spec), machine(V100, driver=D580, nvcc=("12.6",)))
    (conv1d,) = result.extensions
    assert conv1d.action == "build" and conv1d.arch_list == ("7.0", "8.0")
    assert conv1d.env["X"] == "1" and "recipe overrides" in conv1d.catalog
    knob = ExtensionSpec("my-kernels==0.1", "my-kernels",
                         overrides=CatalogOverrides(arch_knob="MY_ARCHS", arch_format="nodot"))
    (mine,) = plan(recipe("==2.13.*", knob), machine(A100, H100, driver=D580, nvcc=("13.0",))).extensions
    assert mine.env["MY_ARCHS"] == "80;90"


def test_min_nvcc_skips_a_build_whose_setup_py_refuses_the_toolkit() -> None:
    spec = ExtensionSpec("my-kernels==0.1", "my-kernels", overrides=CatalogOverrides(min_nvcc="12.8"))
    (mine,) = plan(recipe("==2.13.*", spec), machine(V100, driver=D580, nvcc=("12.6",))).extensions
    assert mine.action == "skip" and "needs nvcc ≥ 12.8; the plan's is nvcc 12.6" in mine.reason


def test_plan_json_carries_the_resolution() -> None:
    data = make_plan(recipe(">=2.1", SCATTER), machine(V100, driver=D470)).to_json()
    data = json.loads(json.dumps(data))
    assert data["torch_version"] == "2.7.1"
    assert len(data["passed_over"]) == 8 and all(isinstance(line, str) for line in data["passed_over"])
    (blocker,) = data["blockers"]
    # A stable code and the data the message is made from, not the Python class name.
    assert blocker["code"] == "toolkit-missing" and blocker["message"] and blocker["hint"]
    assert blocker["needed"] == "11.x" and blocker["found"] == [] and "kind" not in blocker


def test_a_blocked_plan_still_plans_the_extensions_for_the_gpus_it_was_asked_for() -> None:
    """--arch 11.0: no wheel runs there (a blocker), and flash-attn is not 'skipped as too old' for it."""
    result = make_plan(recipe("==2.13.*", FA), machine(("sm_110", "11.0"), nvcc=("13.0",)))
    assert result.arch_list == ("11.0",)
    assert [type(b.error).__name__ for b in result.blockers] == ["NoVariantError"]
    (fa,) = result.extensions
    assert "older" not in fa.reason, fa.reason


def test_the_toolkit_hint_names_only_variants_that_run_here() -> None:
    """V100 + nvcc 13.0 only: cu130 has no sm_70 code, so '--cuda 13.0' is no way out."""
    result = make_plan(recipe("==2.13.*", SCATTER), machine(V100, driver=D580, nvcc=("13.0",)))
    (blocker,) = result.blockers
    assert "--cuda 13.0" not in (blocker.error.hint or ""), blocker.error.hint
    ok = make_plan(recipe("==2.13.*", SCATTER), machine(H100, driver=D580, nvcc=("13.0",)),
                   PlanOptions(cuda="12.6", toolkit=ToolkitPolicy(mode="system", chosen_by="test")))
    (blocker,) = ok.blockers
    assert "plan for the toolkit you have with --cuda 13.0" in (blocker.error.hint or "")


def test_a_build_variable_the_user_exported_that_the_builds_replace_is_said() -> None:
    environ = {"TORCH_CUDA_ARCH_LIST": "5.2 6.0 7.0 8.0 9.0+PTX", "CUDA_HOME": "/opt/cuda-12.4",
               "FORCE_CUDA": "1", "HOME": "/home/me"}
    result = make_plan(recipe("==2.14.*", SCATTER), machine(H100, driver=D580, nvcc=("13.0",)),
                       PlanOptions(environ=environ))
    said = {w.split("=", 1)[0]: w for w in result.warnings if "is set in this environment" in w}
    assert set(said) == {"TORCH_CUDA_ARCH_LIST", "CUDA_HOME"}, "FORCE_CUDA=1 is what the build gets too"
    assert said["TORCH_CUDA_ARCH_LIST"] == (
        "TORCH_CUDA_ARCH_LIST=5.2 6.0 7.0 8.0 9.0+PTX is set in this environment; gpuenv's builds get "
        "TORCH_CUDA_ARCH_LIST=9.0 (the plan's): pass --arch X.Y (or --gpu NAME) to build for other GPUs, "
        'or keep yours with env = { TORCH_CUDA_ARCH_LIST = "..." } in the extension\'s recipe table')
    assert "--toolkit PATH" in said["CUDA_HOME"] and result.toolkit is not None
    assert f"CUDA_HOME={result.toolkit.root} (the plan's)" in said["CUDA_HOME"]
    quiet = make_plan(recipe("==2.14.*", SCATTER), machine(H100, driver=D580, nvcc=("13.0",)),
                      PlanOptions(environ=dict(result.build_env)))
    assert not [w for w in quiet.warnings if "is set in this environment" in w]
    # Kept for the one build by the recipe (as NGC and HPC images export 9.0a for Hopper's own
    # instructions): nothing gpuenv builds gets another value, so nothing is said.
    kept = ext("torch-scatter==2.1.2", TORCH_CUDA_ARCH_LIST="9.0a")
    mine = make_plan(recipe("==2.14.*", kept), machine(H100, driver=D580, nvcc=("13.0",)),
                     PlanOptions(environ={"TORCH_CUDA_ARCH_LIST": "9.0a"}))
    assert mine.extensions[0].env["TORCH_CUDA_ARCH_LIST"] == "9.0a"
    assert not [w for w in mine.warnings if "is set in this environment" in w]
    nothing_built = make_plan(recipe("==2.14.*"), machine(H100, driver=D580, nvcc=("13.0",)),
                              PlanOptions(environ=environ))
    assert not [w for w in nothing_built.warnings if "is set in this environment" in w]
