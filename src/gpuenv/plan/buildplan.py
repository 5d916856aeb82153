"""How each extension is built: its catalog entry, its skips, its archs, its knobs, for the chosen nvcc.

Part of the pure planner (:mod:`gpuenv.plan.planner`; the nvcc is :mod:`gpuenv.plan.toolkitchoice`'s):
no I/O. The catalog entry of an extension is chosen by its distribution name and, where known, its
version (a local tree's own metadata, read before planning, counts); the recipe's overrides go on top.
A skip says whether it depends on the torch release, so the resolver can try an older torch where a
newer one rules an extension out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from gpuenv.plan import knowledge
from gpuenv.plan.catalog import (
    CatalogEntry,
    PrebuiltSource,
    arch_entries,
    catalog_entry,
    shipped,
    version_ranges,
)
from gpuenv.plan.extensionspec import ExtensionSpec, ProjectFacts
from gpuenv.plan.hardware import ComputeCapability, Hardware, Toolkit

Action = Literal["build", "cached", "skip"]


@dataclass(frozen=True)
class ExtensionPlan:
    name: str
    requirement: str
    action: Action
    reason: str
    #: The complete build environment of this extension (build_env + its own knobs + recipe env).
    env: Mapping[str, str]
    #: Build requirements to install into the target env first (catalog + recipe), never torch.
    build_requires: tuple[str, ...] = ()
    #: Whether this build compiles CUDA code.
    compiles_cuda: bool = False
    #: The architectures this extension is built for (may be narrower than the plan's).
    arch_list: tuple[str, ...] = ()
    import_name: str | None = None
    required: bool = False
    #: A local source directory or archive (resolved against the recipe), or None.
    path: str | None = None
    #: Which catalog entry planned it, and how it was matched (or that none was).
    catalog: str = ""
    #: Options its setup.py reads from the build command (``--cpp_ext``): config setting ``--build-option``.
    build_options: tuple[str, ...] = ()
    #: Where its publisher puts prebuilt wheels (used only after an audit); none for a local or URL source.
    prebuilt: tuple[PrebuiltSource, ...] = ()
    #: The torch release whose stable ABI it builds against: its wheel is keyed by that floor.
    stable_abi: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "requirement": self.requirement,
            "action": self.action,
            "reason": self.reason,
            "env": dict(self.env),
            "build_requires": list(self.build_requires),
            "compiles_cuda": self.compiles_cuda,
            "arch_list": list(self.arch_list),
            "import": self.import_name,
            "required": self.required,
            "catalog": self.catalog,
            "build_options": list(self.build_options),
            "prebuilt": [s.to_json() for s in self.prebuilt],
            "stable_abi": self.stable_abi,
        }


# -- the catalog entry of one extension ----------------------------------------------------


def pinned_version(requirement: str) -> str | None:
    """The version an exact pin (==X, ===X) in ``requirement`` names, else None."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return None
    pins = [s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
    return pins[0] if pins else None


def _is_named(requirement: str) -> bool:
    """A requirement by name and version (``flash-attn==2.8.3``), not a direct or VCS URL."""
    try:
        return Requirement(requirement).url is None
    except InvalidRequirement:
        return False


def entry_for(ext: ExtensionSpec, facts: ProjectFacts | None) -> tuple[CatalogEntry, str]:
    """The catalog entry that plans ``ext`` (recipe overrides applied), and how it was matched."""
    local = ext.path is not None or facts is not None
    name = (facts.name if facts is not None and facts.name else None) or ext.name
    version = facts.version if facts is not None and facts.version else pinned_version(ext.requirement)
    entry = catalog_entry(name, version)
    if entry.known and not local and not entry.describes(ext.requirement):
        # The index's package of this name is another project than the catalog's (PyPI's apex).
        return shipped().generic(name), (f"the catalog's {name} is {entry.distribution}; {ext.requirement} "
                                         "from an index is another project: generic knobs")
    if not entry.known:
        if catalog_entry(name).known:
            match = f"the catalog's {name} entries describe {_ranges(name)}, not {version}: generic knobs"
        elif local:
            match = f"{name} is not in gpuenv's catalog: generic knobs"
        else:
            match = ""
    elif version is None:
        span = f" ({name} {entry.versions})" if entry.versions else ""
        match = f"version unknown: the catalog's knobs for its newest releases{span}" if local else ""
    else:
        match = f"catalog: {name} {version}" if local else ""
    given = ext.overrides.given()
    if given:
        entry = _overridden(entry, ext)
        match = "; ".join(filter(None, (match, f"recipe overrides {', '.join(given)}")))
    return entry, match


def _ranges(name: str) -> str:
    return ", ".join(t for t in version_ranges(name) if t) or "every version"


def _overridden(entry: CatalogEntry, ext: ExtensionSpec) -> CatalogEntry:
    o = ext.overrides
    changes: dict[str, Any] = {}
    if o.fixed_archs is not None:
        changes.update(fixed_archs=arch_entries(list(o.fixed_archs)), arch_knob=None, arch_choices=())
    elif o.arch_knob is not None:
        # A knob the package reads means it builds what gpuenv asks for, not a fixed list.
        changes.update(arch_knob=o.arch_knob, fixed_archs=(), arch_choices=())
    if o.arch_format is not None:
        changes["arch_format"] = o.arch_format
    if o.force_build is not None:
        changes["force_build"] = dict(o.force_build)
    if o.min_cc is not None:
        changes["min_cc"] = o.min_cc
    if o.min_nvcc is not None:
        changes["min_nvcc"] = o.min_nvcc
    if o.build_options is not None:
        changes["build_options"] = o.build_options
    if o.prebuilt is not None:
        changes["prebuilt"] = o.prebuilt
    return replace(entry, **changes)


# -- drafts: what each extension needs, before the toolkit is chosen ------------------------


@dataclass(frozen=True)
class Draft:
    spec: ExtensionSpec
    entry: CatalogEntry
    skip: str | None
    compiles_cuda: bool
    arch_list: tuple[str, ...]
    note: str
    #: The skip depends on the torch release (an older one may do).
    torch_bound: bool = False
    #: How the catalog entry was matched ("" for a plain index requirement).
    catalog: str = ""
    #: The plan's archs (the GPUs') this draft was made for, before the package's own choices.
    gpu_archs: tuple[str, ...] = ()
    #: The nvcc release the arch choices were made for: the toolkit's once chosen, else torch's CUDA.
    nvcc: str | None = None


def draft(
    ext: ExtensionSpec,
    entry: CatalogEntry,
    catalog: str,
    variant: str,
    arch_list: tuple[str, ...],
    torch_version: str | None,
    hardware: Hardware,
    version: str | None,
    *,
    torch_cxx: int | None = None,
) -> Draft:
    """What ``ext`` needs on this plan: a skip, or its CUDA archs for the nvcc of torch's CUDA release.

    ``torch_cxx`` is the C++ standard the torch's headers require (``cxx_standard``
    of the release, or observed): a package that hard-codes an older one cannot build.
    """
    skip_cuda = entry.skips_cuda(ext.env_dict)
    wants_cuda = entry.cuda != "none" and not skip_cuda

    def skipped(reason: str, *, torch_bound: bool = False) -> Draft:
        return Draft(ext, entry, reason, False, (), "", torch_bound, catalog)

    if entry.cuda == "required" and wants_cuda and variant == "cpu":
        why = "no GPU detected" if not hardware.gpus else "the plan is the CPU build"
        return skipped(f"{ext.name} needs a CUDA build of torch and {why}")
    compiles_cuda = wants_cuda and variant != "cpu"
    # The catalog's clashes are those of the CUDA build (its flags, its stable ABI).
    clash = (_incompatibility(ext.name, entry, version, torch_version)
             or _cxx_clash(ext.name, entry, version, torch_version, torch_cxx)) if compiles_cuda else None
    if clash:
        return skipped(clash, torch_bound=True)
    if not compiles_cuda:
        note = f"{entry.skip_cuda_knob} set: no CUDA code" if skip_cuda else "a build without CUDA"
        return Draft(ext, entry, None, False, (), note, catalog=catalog)
    base = Draft(ext, entry, None, True, (), "", catalog=catalog, gpu_archs=arch_list)
    return cuda_archs(base, knowledge.variant_cuda(variant), hardware)


def cuda_archs(d: Draft, nvcc: str | None, hardware: Hardware) -> Draft:
    """The archs ``d`` compiles with an nvcc of release ``nvcc``, or its skip when none runs on the GPUs.

    A package with its own -gencode list compiles that list (what it holds depends
    on nvcc); one whose knob offers a few archs gets, per GPU, the newest offered
    arch of the same major not newer than the GPU (a cubin for X.Y runs on X.Z, Z ≥ Y).
    """
    entry, name = d.entry, d.spec.name
    archs = d.gpu_archs
    note = ""
    with_nvcc = f" with nvcc {nvcc}" if nvcc else ""
    if entry.min_cc is not None:
        minimum = ComputeCapability.parse(entry.min_cc)
        kept = tuple(a for a in archs if ComputeCapability.parse(a) >= minimum)
        too_old = [a for a in archs if a not in kept]
        if not kept:
            return _no_archs(d, nvcc, f"{name} needs compute capability ≥ {entry.min_cc}; "
                             f"{names_for(too_old, hardware)} {'is' if len(too_old) == 1 else 'are'} older")
        if too_old:
            note = f"not for {names_for(too_old, hardware)} (needs ≥ {entry.min_cc}); "
        archs = kept
    if entry.fixed_archs:
        fixed = entry.fixed_archs_for(nvcc)
        covered = tuple(a for a in archs if knowledge.runs_on(fixed, ComputeCapability.parse(a)))
        lacking = [a for a in archs if a not in covered]
        if not covered:
            return _no_archs(d, nvcc, f"{name} compiles its own arch list ({', '.join(fixed)}){with_nvcc}, "
                             f"which has no code for {names_for(lacking, hardware)}")
        if lacking:
            note += (f"not for {names_for(lacking, hardware)} "
                     f"(its own arch list{with_nvcc} has no code for it); ")
        note += f"it builds its own fixed arch list ({', '.join(fixed)}) whatever gpuenv sets; "
        archs = fixed
    elif entry.arch_choices:
        choices = entry.choices_for(nvcc)
        covered = tuple(a for a in archs if _choice_for(choices, a) is not None)
        lacking = [a for a in archs if a not in covered]
        if not covered:
            return _no_archs(d, nvcc, f"{name} has kernels for {', '.join(choices) or 'no arch'}{with_nvcc}, "
                             f"none of which runs on {names_for(lacking, hardware)}")
        if lacking:
            note += f"not for {names_for(lacking, hardware)} (no kernels for it{with_nvcc}); "
        archs = covered
    return replace(d, skip=None, compiles_cuda=True, arch_list=archs, note=note, nvcc=nvcc)


def _no_archs(d: Draft, nvcc: str | None, reason: str) -> Draft:
    return replace(d, skip=reason, compiles_cuda=False, arch_list=(), note="", nvcc=nvcc)


def _choice_for(choices: tuple[str, ...], arch: str) -> str | None:
    """The newest offered arch whose code runs on a GPU of ``arch`` (same major, minor not above)."""
    cc = ComputeCapability.parse(arch)
    fits = [c for c in choices
            if ComputeCapability.parse(c).major == cc.major and ComputeCapability.parse(c) <= cc]
    return max(fits, key=ComputeCapability.parse) if fits else None


def for_toolkit(d: Draft, arch_list: tuple[str, ...], toolkit: Toolkit, hardware: Hardware) -> Draft:
    """``d`` redone for the chosen nvcc: the archs its setup.py compiles with that nvcc, its minimum."""
    if not d.compiles_cuda or d.skip is not None:
        return d
    d = cuda_archs(replace(d, gpu_archs=tuple(a for a in d.gpu_archs if a in arch_list)), toolkit.version,
                   hardware)
    return below_min_nvcc(d, toolkit)


def names_for(archs: list[str], hardware: Hardware) -> str:
    names = [g.name for g in hardware.gpus if g.compute_capability in archs]
    return ", ".join(sorted(set(names))) or ", ".join(archs)


def _incompatibility(
    name: str, entry: CatalogEntry, version: str | None, torch_version: str | None
) -> str | None:
    if version is None or torch_version is None:
        return None
    for clash in entry.incompatible:
        if clash.extension.contains(version, prereleases=True) and clash.torch.contains(
            torch_version, prereleases=True
        ):
            return f"{name} {version} cannot build against torch {torch_version}: {clash.reason}"
    return None


def _cxx_clash(
    name: str, entry: CatalogEntry, version: str | None, torch_version: str | None, torch_cxx: int | None
) -> str | None:
    """Why ``name`` cannot build against this torch: it hard-codes an older C++ standard than torch needs."""
    if entry.stable_abi is not None and torch_version is not None and \
            knowledge.version_tuple(torch_version)[:2] < knowledge.version_tuple(entry.stable_abi)[:2]:
        return (f"{name} {version or ''} builds against torch's stable ABI of {entry.stable_abi} "
                f"(TORCH_TARGET_VERSION) and needs torch ≥ {entry.stable_abi}").replace("  ", " ")
    # Only the stable headers are included under TORCH_STABLE_ONLY: they do not require C++20.
    if entry.stable_abi is not None or entry.cxx_std is None or torch_cxx is None:
        return None
    if entry.cxx_std >= torch_cxx:
        return None
    span = entry.versions or "every release"
    which = f"{name} {version}" if version else f"{name} ({span} per the catalog)"
    torch = f"torch {torch_version}" if torch_version else "this torch"
    return (f"{which} compiles with -std=c++{entry.cxx_std} and {torch}'s headers require C++{torch_cxx} "
            f"('#error C++{torch_cxx} or later compatible compiler is required'); "
            f"use an older torch or a release of {name} that builds with C++{torch_cxx}")


def below_min_nvcc(d: Draft, toolkit: Toolkit | None) -> Draft:
    """Skip a build whose setup.py refuses the chosen nvcc as too old."""
    minimum = d.entry.min_nvcc
    if not d.compiles_cuda or d.skip is not None or toolkit is None or minimum is None:
        return d
    if knowledge.version_tuple(toolkit.version) >= knowledge.version_tuple(minimum):
        return d
    return replace(d, skip=f"{d.spec.name} needs nvcc ≥ {minimum}; the plan's is nvcc {toolkit.version}",
                   compiles_cuda=False, arch_list=())


# -- the finished extension plan ----------------------------------------------------------


def _jobs(d: Draft, env: Mapping[str, str], hardware: Hardware) -> int:
    entry = d.entry
    per_job = entry.job_memory_mib if d.compiles_cuda else entry.cpu_job_memory_mib
    threads = env.get(entry.threads_knob or "", "") or str(entry.nvcc_threads or "")
    if d.compiles_cuda and threads.isdigit() and int(threads) > 0:
        # nvcc's --threads compiles a file's archs in parallel: at most one thread per arch.
        per_job *= max(1, min(int(threads), len(d.arch_list)))
    by_memory = hardware.memory_available_mib // per_job if hardware.memory_available_mib else 1
    return max(1, min(hardware.cpu_count or 1, by_memory))


def arch_value(entry: CatalogEntry, archs: tuple[str, ...], nvcc: str | None = None) -> str:
    """The arch knob's value for ``archs``: "8.0;9.0" or, for a "nodot" knob, the offered archs ("80;90")."""
    if entry.arch_format == "torch":
        return ";".join(archs)
    choices = entry.choices_for(nvcc) if entry.arch_choices else ()
    values: list[str] = []
    for arch in archs:
        chosen = _choice_for(choices, arch) if choices else arch
        if chosen is None:
            continue
        value = ComputeCapability.parse(chosen).sm
        if value not in values:
            values.append(value)
    return ";".join(values)


def finish(
    d: Draft,
    build_env: Mapping[str, str],
    toolkit: Toolkit | None,
    hardware: Hardware,
    cached: Mapping[str, str],
    warnings: list[str],
) -> ExtensionPlan:
    ext, entry = d.spec, d.entry
    requires = _build_requires(entry.build_requires, ext.build_requires)
    common: dict[str, Any] = {
        "name": ext.name,
        "requirement": ext.requirement,
        "build_requires": requires,
        "import_name": ext.import_name or entry.import_name,
        "required": ext.required,
        "path": str(ext.path) if ext.path is not None else None,
        "catalog": d.catalog,
        "build_options": entry.build_options,
        # A tree of one's own, or a URL, is what it is: no publisher's wheel stands in for it.
        "prebuilt": entry.prebuilt if ext.path is None and _is_named(ext.requirement) else (),
        "stable_abi": entry.stable_abi,
    }
    if d.skip is not None:
        return ExtensionPlan(action="skip", reason=d.skip, env={}, **common)
    env = dict(build_env)
    env.update(entry.env)
    env.update(entry.force_build)
    if d.compiles_cuda:
        env.update(entry.cuda_env)
        if entry.arch_knob:
            env[entry.arch_knob] = arch_value(entry, d.arch_list, d.nvcc)
    else:
        env.update(entry.cpu_env)
        env.pop("TORCH_CUDA_ARCH_LIST", None)
    env.update(ext.env_dict)
    given_jobs = ext.env_dict.get("MAX_JOBS")
    if entry.ignores_jobs and given_jobs is None:
        # What the plan says is what the build does: its setup.py compiles one file at a time.
        jobs_text = "one file at a time (its setup.py builds without ninja: MAX_JOBS has no effect)"
    else:
        # A job count the recipe gives is the user's call; otherwise fill every knob.
        jobs = given_jobs or str(_jobs(d, env, hardware))
        for knob in entry.jobs_knobs:
            if knob not in ext.env_dict:
                env[knob] = jobs
        jobs_text = f"{jobs} parallel jobs"
    if d.note.startswith("not for"):
        warnings.append(f"{ext.name}: {d.note.rstrip('; ')}")
    if ext.name in cached:
        return ExtensionPlan(action="cached", reason=cached[ext.name], env=env,
                             compiles_cuda=d.compiles_cuda, arch_list=d.arch_list, **common)
    if d.compiles_cuda:
        archs = ", ".join(d.arch_list)
        nvcc = f"nvcc {toolkit.version}" if toolkit is not None else "no matching nvcc (see the blockers)"
        reason = f"{d.note}build for {archs} with {nvcc}, {jobs_text}"
    else:
        reason = f"{d.note}, {jobs_text}"
    if d.catalog:
        reason += f" [{d.catalog}]"
    return ExtensionPlan(action="build", reason=reason, env=env, compiles_cuda=d.compiles_cuda,
                         arch_list=d.arch_list, **common)


def _build_requires(catalog_requires: tuple[str, ...], recipe_requires: tuple[str, ...]) -> tuple[str, ...]:
    """Catalog then recipe requirements, one per distribution (the recipe's wins), never torch."""
    by_name: dict[str, str] = {}
    for text in (*catalog_requires, *recipe_requires):
        name = canonicalize_name(Requirement(text).name)
        if name != "torch":
            by_name[name] = text
    return tuple(by_name.values())
