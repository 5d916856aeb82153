"""Hand-made stand-ins for the doctor's fast tests: machines, torch builds, site-packages, an env.

The env's interpreter is :class:`tests.fakes.FakeEnvRunner` (facts per question), so a
whole diagnosis runs against a directory that only looks like a venv.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from gpuenv.env.abi import EnvAbi
from gpuenv.env.targetenv import TorchInfo
from gpuenv.lock.lockfile import LockedEnv, LockedExtension
from gpuenv.plan.hardware import Gpu, Hardware, Toolkit

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
