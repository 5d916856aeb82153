"""The arch list a plan builds extensions for, and its checks against torch and nvcc.

The GPUs' own compute capabilities, each replaced by the newest one torch's
``TORCH_CUDA_ARCH_LIST`` accepts of the same major where torch does not accept it
(a cubin for X.Y runs on X.Z, Z ≥ Y); without GPUs, what torch's wheels carry.
Part of the pure planner (:mod:`gpuenv.plan.planner`).
"""

from __future__ import annotations

from gpuenv.errors import ArchError
from gpuenv.plan import knowledge
from gpuenv.plan.hardware import ComputeCapability, Hardware, Toolkit
from gpuenv.plan.releases import TorchRelease, TorchReleases


def arch_list_for(release: TorchRelease, variant: str, hardware: Hardware) -> tuple[str, ...]:
    """The archs to build for on ``release``'s ``variant``: the GPUs', else what its wheels carry."""
    if variant == "cpu":
        return ()
    if hardware.gpus:
        return tuple(dict.fromkeys(buildable(str(cc), release.release)
                                   for cc in sorted({g.cc for g in hardware.gpus})))
    wheel = release.archs(variant, from_pypi=variant == release.pypi_default)
    return tuple(a.removesuffix("+PTX") for a in wheel)


def buildable(arch: str, release: str) -> str:
    """The arch extensions are built for so that a GPU of ``arch`` runs them, on torch ``release``.

    ``arch`` itself when torch's TORCH_CUDA_ARCH_LIST accepts it; else the newest arch
    it accepts of the same major and not newer (a cubin for X.Y runs on X.Z, Z ≥ Y:
    torch 1.13 builds 8.6 for an 8.9 GPU); else ``arch``, which the plan then refuses.
    """
    support = knowledge.arch_support(arch)
    if support is None or support.torch_accepts(release):
        return arch
    cc = ComputeCapability.parse(arch)
    same_major = [a for a in knowledge.torch_archs(release)
                  if ComputeCapability.parse(a).major == cc.major and ComputeCapability.parse(a) <= cc]
    return same_major[-1] if same_major else arch


def substitutions(arch_list: tuple[str, ...], hardware: Hardware, release: TorchRelease | None) -> list[str]:
    """A warning for each GPU whose own arch the plan replaces by an older one of the same major."""
    if release is None:
        return []
    notes = []
    for cc in sorted({str(g.cc) for g in hardware.gpus}):
        built = buildable(cc, release.release)
        if built != cc and built in arch_list:
            names = ", ".join(sorted({g.name for g in hardware.gpus if str(g.cc) == cc}))
            notes.append(f"torch {release.release}'s TORCH_CUDA_ARCH_LIST does not accept {cc} ({names}): "
                         f"extensions are built for {built}, whose code runs on {cc}")
    return notes


def arch_not_accepted(arch_list: tuple[str, ...], release: TorchRelease,
                       releases: TorchReleases) -> ArchError | None:
    """An arch torch's TORCH_CUDA_ARCH_LIST of ``release`` rejects, when extensions compile for it."""
    for arch in arch_list:
        support = knowledge.arch_support(arch)
        if support is None:
            return ArchError(
                f"compute capability {arch} is not in gpuenv's data "
                f"(it knows {', '.join(knowledge.known_archs())})",
                hint="add it to gpuenv/plan/data/cuda.toml", code="arch-unknown", arch=arch,
            )
        if not support.torch_accepts(release.release):
            accepting = [r for r in releases.releases if support.torch_accepts(r)]
            return ArchError(
                f"torch {release.release} cannot build extensions for compute capability {arch}: "
                f"its TORCH_CUDA_ARCH_LIST accepts {arch} from torch {support.torch_first}"
                + (f" to {support.torch_last}" if support.torch_last else ""),
                hint=f"allow a torch release that supports this GPU in the recipe "
                f"({', '.join(accepting[-3:]) or 'none known'})",
                code="arch-not-accepted", arch=arch, torch=release.release,
            )
    return None


def check_toolkit_archs(
    arch_list: tuple[str, ...], toolkit: Toolkit, hardware: Hardware, warnings: list[str]
) -> tuple[str, ...]:
    """``arch_list`` as ``toolkit``'s nvcc can compile it: a wheel's arch it cannot is left out (said in
    ``warnings``), a GPU's is an ArchError."""
    support = {a: knowledge.arch_support(a) for a in arch_list}
    cannot = [a for a, s in support.items() if s is not None and not s.nvcc_can_compile(toolkit.version)]
    if not cannot:
        return arch_list
    if not hardware.gpus:
        # The list came from the wheel, not from GPUs: drop what this nvcc cannot compile.
        warnings.append(f"nvcc {toolkit.version} cannot compile for {', '.join(cannot)}: left out")
        return tuple(a for a in arch_list if a not in cannot)
    details = "; ".join(_nvcc_range(a) for a in cannot)
    raise ArchError(
        f"nvcc {toolkit.version} ({toolkit.nvcc}) cannot compile for compute capability "
        f"{', '.join(cannot)}: {details}",
        hint="install a CUDA toolkit that supports these GPUs and set CUDA_HOME, "
        "or force a matching variant with --cuda",
        code="arch-not-compiled", archs=cannot, nvcc=toolkit.version,
    )


def _nvcc_range(arch: str) -> str:
    support = knowledge.arch_support(arch)
    assert support is not None
    return f"{arch} needs nvcc {support.nvcc_first or 'any'} to {support.nvcc_last or 'newest'}"
