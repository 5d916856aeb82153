"""Hand-made stand-ins for the doctor's fast tests: machines, torch builds, site-packages, an env.

:class:`FakeEnvRunner` answers the questions :class:`gpuenv.env.targetenv.TargetEnv`
and the doctor ask an environment's interpreter (it implements the Runner
interface, as the real :class:`~gpuenv.runner.SubprocessRunner` does), so a
whole diagnosis runs against a directory that only looks like a venv.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gpuenv.env.abi import EnvAbi
from gpuenv.env.targetenv import IMPORTING_MARK, TorchInfo
from gpuenv.lock.lockfile import LockedEnv, LockedExtension
from gpuenv.plan.hardware import Gpu, Hardware, Toolkit
from gpuenv.runner import ANSWER_MARK

#: The arch list torch 2.14.1+cu130 from PyPI reports.
CU130_ARCHS = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")

GPUS = {
    "H100": ("NVIDIA H100 80GB HBM3", "9.0", 81559),
    "A100": ("NVIDIA A100-SXM4-80GB", "8.0", 81920),
    "V100": ("Tesla V100-SXM2-32GB", "7.0", 32768),
}


def machine(*names: str, driver: str | None = "580.65.06", cuda: str | None = "13.0",
            toolkits: Sequence[str] = (), source: str = "nvml") -> Hardware:
    """A machine with these GPUs ("H100", "V100"…), driver and nvcc versions; none: no driver either.

    ``source`` says where the GPUs come from: "nvml" (probed here) or an override ("--gpu H100").
    """
    gpus = tuple(
        Gpu(index=i, name=GPUS[n][0], uuid=f"GPU-{i}", compute_capability=GPUS[n][1],
            memory_total_mib=GPUS[n][2])
        for i, n in enumerate(names)
    )
    return Hardware(
        driver_version=driver if gpus else None,
        cuda_driver_version=cuda if gpus else None,
        gpus=gpus,
        cpu_count=8,
        memory_total_mib=64000,
        memory_available_mib=60000,
        toolkits=tuple(Toolkit(nvcc=f"/usr/local/cuda-{v}/bin/nvcc", version=v,
                               home=f"/usr/local/cuda-{v}") for v in toolkits),
        source=source,
    )


def cpu_torch(version: str = "2.13.0+cpu") -> TorchInfo:
    return TorchInfo(version=version, cuda=None, cxx11_abi=True, arch_list=())


def cuda_torch(version: str = "2.14.1+cu130", cuda: str = "13.0",
               arch_list: Sequence[str] = CU130_ARCHS) -> TorchInfo:
    return TorchInfo(version=version, cuda=cuda, cxx11_abi=True, arch_list=tuple(arch_list))


def locked_env(torch: TorchInfo, extensions: Sequence[tuple[str, str]] = (),
               knobs: Mapping[str, str] | None = None) -> LockedEnv:
    """A lock entry built against ``torch`` with these (name, version) extensions."""
    return LockedEnv(
        name="default", recipe="default.toml", recipe_sha256="0" * 64, fingerprint="f" * 64,
        variant=torch.variant, cuda=torch.cuda, index_url=None, torch_requirement=f"torch=={torch.version}",
        arch_list=(), toolkit=None,
        abi=EnvAbi(python_tag="cp311", platform="linux_x86_64", torch_version=torch.version,
                   torch_cuda=torch.cuda, cxx11_abi=torch.cxx11_abi),
        extensions=tuple(
            LockedExtension(name=n, version=v, requirement=n, cache_key="k" * 64, wheel=f"{n}.whl",
                            wheel_sha256="0" * 64, source="s", arch_list=("9.0",), knobs=dict(knobs or {}))
            for n, v in extensions
        ),
        distributions={},
    )


def add_distribution(site: Path, name: str, version: str, files: Mapping[str, bytes]) -> None:
    """Install ``files`` (path in site-packages → content) as the distribution ``name`` with a RECORD."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    for relative, data in files.items():
        target = site / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    top = sorted({relative.split("/")[0] for relative in files})
    (dist_info / "top_level.txt").write_text("\n".join(top) + "\n")
    record = [f"{relative},," for relative in files]
    record += [f"{dist_info.name}/METADATA,,", f"{dist_info.name}/RECORD,,"]
    (dist_info / "RECORD").write_text("\n".join(record) + "\n")


def fake_venv(root: Path) -> tuple[Path, Path]:
    """A directory shaped like a venv (bin/python exists), and its site-packages."""
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    site = venv / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    return venv, site


class FakeEnvRunner:
    """Answers the env queries of TargetEnv and the doctor from the facts it is given."""

    def __init__(self, site: Path, *, torch: TorchInfo | None, installed: Mapping[str, str] | None = None,
                 failing_imports: Mapping[str, str] | None = None,
                 cuda: Mapping[str, Any] | None = None) -> None:
        self.site = site
        self.torch = torch
        self.installed = dict(installed or {})
        self.failing_imports = dict(failing_imports or {})
        self.cuda = cuda or {"available": True, "count": 1, "reason": None}
        self.calls: list[list[str]] = []
        self.checked: list[list[str]] = []

    def __call__(self, cmd: Sequence[str], cwd: str | None = None,
                 extra_environ: Mapping[str, str] | None = None) -> str:
        self.calls.append(list(cmd))
        at = list(cmd).index("-c")
        script, args = cmd[at + 1], list(cmd[at + 2:])
        if IMPORTING_MARK in script:
            return ANSWER_MARK + json.dumps(self._check(args)) + "\n"
        return ANSWER_MARK + json.dumps(self._answer(script)) + "\n"

    def _check(self, modules: list[str]) -> Any:
        self.checked.append(modules)
        return {"torch": self._answer("get_arch_list"), "installed": self._answer("distributions()"),
                "failures": {m: self.failing_imports[m] for m in modules if m in self.failing_imports}}

    def _answer(self, script: str) -> Any:
        if "is_available" in script:
            return self.cuda
        if "get_arch_list" in script:
            t = self.torch
            return None if t is None else {"version": t.version, "cuda": t.cuda, "cxx11_abi": t.cxx11_abi,
                                           "arch_list": list(t.arch_list)}
        if "distributions()" in script:
            return {**({"torch": self.torch.version} if self.torch else {}), **self.installed}
        if "sysconfig" in script:
            return {"version": "3.11.7", "python_tag": "cp311", "abi_tag": "cp311",
                    "platform_tag": "linux_x86_64", "purelib": str(self.site), "markers": {}}
        raise AssertionError(f"unexpected query: {script[:80]}")

    def imported(self) -> list[str]:
        """The modules the doctor imported, through setup's one check (one interpreter, torch first)."""
        return [m for modules in self.checked for m in modules]
