"""What ``gpuenv plan`` can say about the wheel cache before anything is fetched.

The exact cache key needs the source's sha256 and the installed torch, which
only ``setup`` has; the plan predicts a hit from the parts it knows (name,
version pin, torch release and CUDA, archs, nvcc, knobs) and says so.
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from gpuenv.cache.entry import CacheEntry
from gpuenv.cache.key import binary_knobs
from gpuenv.cache.wheels import WheelCache
from gpuenv.plan.buildplan import ExtensionPlan, pinned_version
from gpuenv.plan.envplan import Plan
from gpuenv.plan.hardware import Toolkit


def predicted_hits(plan: Plan, cache: WheelCache) -> dict[str, str]:
    """Extension name → why the cache probably holds its wheel."""
    entries = cache.entries() if cache.path.exists() else []
    hits = {}
    for ext in plan.extensions:
        if ext.action == "skip":
            continue
        match = next((e for e in entries if _fits(e, ext, plan)), None)
        if match is not None:
            key = match.key
            archs = f"archs {';'.join(key.arch_list)}" if key.arch_list else "no CUDA code"
            hits[ext.name] = (
                f"the cache has {ext.name} {key.version or match.wheel.name} built for torch "
                f"{key.abi.torch_version} ({archs}), key {match.digest[:12]}; setup confirms the source hash"
            )
    return hits


def _fits(entry: CacheEntry, ext: ExtensionPlan, plan: Plan) -> bool:
    key = entry.key
    if key.name != ext.name or dict(key.knobs) != dict(binary_knobs(ext.env, ext.build_options)):
        return False
    if tuple(key.arch_list) != (ext.arch_list if ext.compiles_cuda else ()):
        return False
    if plan.cuda is not None and key.abi.torch_cuda != plan.cuda:
        return False
    if ext.compiles_cuda and (plan.toolkit is None or not _same_nvcc(key.nvcc_version, plan.toolkit)):
        return False
    if ext.stable_abi and key.abi.torch_version != ext.stable_abi:  # keyed by the stable ABI's floor
        return False
    try:
        if not ext.stable_abi and not SpecifierSet(plan.torch.removeprefix("torch")).contains(
                Version(key.abi.torch_version)):
            return False
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return False
    pinned = pinned_version(ext.requirement)
    return pinned is None or not key.version or key.version == pinned



def _same_nvcc(cached: str | None, toolkit: Toolkit) -> bool:
    """The key's nvcc is the plan's; a toolkit still to be provisioned says only its release ("13.0")."""
    if toolkit.release:
        return cached == toolkit.release
    return cached is not None and (cached == toolkit.version or cached.startswith(f"{toolkit.version}."))
