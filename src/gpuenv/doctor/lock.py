"""The doctor's lock check: is the env's torch the one gpuenv.lock built its extensions against?"""

from __future__ import annotations

from gpuenv.doctor.report import Check
from gpuenv.env.targetenv import TorchInfo
from gpuenv.lock.lockfile import LockedEnv


def lock_check(locked: LockedEnv | None, torch: TorchInfo | None, has_extensions: bool) -> Check:
    if locked is None:
        if has_extensions:
            return Check("lock", "warn", "none for this env: which torch its extensions were built against "
                         "cannot be told", fix="'gpuenv setup' writes gpuenv.lock next to the recipe")
        return Check("lock", "skip", "none for this env (nothing built to compare)")
    if locked.edited is not None:
        return Check("lock", "warn", f"env '{locked.name}': gpuenv.lock was edited by hand "
                     f"({locked.edited}); its records are not trusted",
                     fix="'gpuenv setup' writes a new entry")
    if torch is None or torch_differs(locked, torch) is None:
        return Check("lock", "ok", f"env '{locked.name}' ({locked.recipe}): torch {locked.abi.torch_version}")
    return Check(
        "lock", "warn",
        f"env '{locked.name}' locked torch {locked.abi.torch_version}, the env has {torch.version}: "
        "something replaced it",
        fix=f"'gpuenv setup --locked' restores torch {locked.abi.torch_version} and what was built for it; "
        f"'gpuenv setup' rebuilds the extensions for torch {torch.version}",
    )


def torch_differs(locked: LockedEnv, torch: TorchInfo) -> str | None:
    """"2.13.0+cpu → 2.14.1+cu130" when the env's torch is not the one the lock built against."""
    before = (locked.abi.torch_version, locked.abi.torch_cuda, locked.abi.cxx11_abi)
    now = (torch.version, torch.cuda, torch.cxx11_abi)
    if before == now:
        return None
    if locked.abi.torch_version != torch.version:
        return f"{locked.abi.torch_version} → {torch.version}"
    return f"{_build_of(*before)} → {_build_of(*now)}"


def _build_of(version: str, cuda: str | None, abi: bool) -> str:
    return f"{version} ({'CPU' if cuda is None else 'CUDA ' + cuda}, {'C++11' if abi else 'pre-C++11'} ABI)"
