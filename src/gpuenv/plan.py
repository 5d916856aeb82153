"""The planner: a pure function of (Recipe, Hardware, PlanOptions) → Plan.

No I/O, no subprocess, no GPU. Every decision a user sees in ``gpuenv plan``
is made here, from the compatibility data in :mod:`gpuenv.knowledge`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from gpuenv import knowledge
from gpuenv.errors import (
    ArchError,
    InputError,
    NoVariantError,
    RequiredSkipError,
    ToolkitError,
    UnknownTorchError,
)
from gpuenv.hardware import ComputeCapability, Gpu, Hardware, Toolkit
from gpuenv.knowledge import CatalogEntry, TorchRelease
from gpuenv.recipe import ExtensionSpec, Recipe

Action = Literal["build", "cached", "skip"]


@dataclass(frozen=True)
class PlanOptions:
    #: A forced variant from the command line ("12.1", "cu121", "cpu"); wins over the recipe.
    cuda: str | None = None
    #: An index template from --torch-index / GPUENV_TORCH_INDEX; wins over the recipe.
    torch_index: str | None = None
    #: Extensions whose wheel the cache already holds: name → why it matched.
    cached: Mapping[str, str] = field(default_factory=dict)


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
        }


@dataclass(frozen=True)
class Plan:
    recipe: str
    env_name: str
    #: "cu121", "cu130", "cpu".
    variant: str
    #: "12.1" or None for cpu.
    cuda: str | None
    #: The index torch comes from, or None when the ordinary index serves this variant.
    index_url: str | None
    #: Why the index is what it is (e.g. "cu130 is PyPI's default build of torch 2.14").
    index_note: str
    #: The torch requirement that will be installed, e.g. "torch==2.4.*".
    torch: str
    #: The torch minor release planned for, e.g. "2.4".
    torch_release: str
    #: Installed together with torch, from the same index.
    torch_packages: tuple[str, ...]
    arch_list: tuple[str, ...]
    #: The toolkit extensions compile with, or None when nothing compiles CUDA.
    toolkit: Toolkit | None
    #: The environment common to all builds (CUDA_HOME, TORCH_CUDA_ARCH_LIST, …).
    build_env: Mapping[str, str]
    extensions: tuple[ExtensionPlan, ...]
    #: Ordinary requirements, installed last.
    packages: tuple[str, ...]
    warnings: tuple[str, ...]
    #: Why this variant: one line per rule that decided it.
    reasons: tuple[str, ...] = ()
    #: Where the hardware facts came from ("nvml", "--gpu H100", "file nodes.json").
    hardware_source: str = "nvml"

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "env_name": self.env_name,
            "variant": self.variant,
            "cuda": self.cuda,
            "index_url": self.index_url,
            "index_note": self.index_note,
            "torch": self.torch,
            "torch_release": self.torch_release,
            "torch_packages": list(self.torch_packages),
            "arch_list": list(self.arch_list),
            "toolkit": None
            if self.toolkit is None
            else {"nvcc": self.toolkit.nvcc, "version": self.toolkit.version, "home": self.toolkit.root},
            "build_env": dict(self.build_env),
            "extensions": [e.to_json() for e in self.extensions],
            "packages": list(self.packages),
            "warnings": list(self.warnings),
            "reasons": list(self.reasons),
            "hardware_source": self.hardware_source,
        }


# -- the planner ----------------------------------------------------------------

def plan(recipe: Recipe, hardware: Hardware, options: PlanOptions | None = None) -> Plan:
    """Decide everything ``setup`` will do for ``recipe`` on ``hardware``."""
    options = options or PlanOptions()
    warnings: list[str] = []
    reasons: list[str] = []
    spec = SpecifierSet(recipe.torch.version)
    forced, forced_by = _forced_variant(recipe, options)
    resolved = knowledge.resolve_release(spec)
    if resolved is None:
        release, torch_version = None, None
        torch_release = knowledge.release_of_spec(spec) or "unknown"
        if forced is None:
            raise _unknown_torch(recipe.torch.version)
        warnings.append(
            f"torch {recipe.torch.version} is not in gpuenv's data: cannot check that {forced} exists "
            "for it or which GPUs its wheels run on"
        )
    else:
        release, torch_version = resolved
        torch_release = release.release

    variant = _choose_variant(release, forced, forced_by, hardware, reasons, warnings)
    cuda = knowledge.variant_cuda(variant)
    template = options.torch_index or recipe.torch.index
    index_url, index_note = _index(release, variant, template)
    arch_list = _arch_list(release, variant, hardware, warnings)

    drafts = [_draft(ext, variant, arch_list, torch_version, hardware) for ext in recipe.extensions]
    if cuda is not None and not arch_list and any(d.compiles_cuda and d.skip is None for d in drafts):
        raise InputError(
            "no GPU to build for: the CUDA extensions need an arch list",
            hint="say which GPUs the environment is for with --gpu NAME or --arch X.Y",
        )
    toolkit = _choose_toolkit(hardware, variant, cuda, drafts, release, warnings)
    if toolkit is not None:
        arch_list = _check_toolkit_archs(arch_list, toolkit, hardware, warnings)
        drafts = [_narrow(d, arch_list) for d in drafts]

    build_env: dict[str, str] = {}
    if toolkit is not None:
        build_env["CUDA_HOME"] = toolkit.root
    if cuda is not None and arch_list:
        build_env["TORCH_CUDA_ARCH_LIST"] = ";".join(arch_list)

    extensions = tuple(
        _finish(d, build_env, toolkit, hardware, options, warnings) for d in drafts
    )
    for ext in extensions:
        if ext.action == "skip" and ext.required:
            raise RequiredSkipError(ext.name, ext.reason)

    return Plan(
        recipe=str(recipe.path),
        env_name=recipe.name,
        variant=variant,
        cuda=cuda,
        index_url=index_url,
        index_note=index_note,
        torch=_torch_requirement(spec, torch_release, release is not None),
        torch_release=torch_release,
        torch_packages=recipe.torch.packages,
        arch_list=arch_list,
        toolkit=toolkit,
        build_env=build_env,
        extensions=extensions,
        packages=recipe.packages,
        warnings=tuple(warnings),
        reasons=tuple(reasons),
        hardware_source=hardware.source,
    )


def _unknown_torch(version: str) -> UnknownTorchError:
    known = ", ".join(knowledge.torch_releases())
    return UnknownTorchError(
        f"torch {version} is not a release gpuenv knows (it knows {known})",
        hint="force a variant with --cuda 12.1 (or cuda = \"cu121\" in the recipe), "
        "or add the release to gpuenv/data/torch.toml",
    )


def _forced_variant(recipe: Recipe, options: PlanOptions) -> tuple[str | None, str]:
    if options.cuda is not None:
        variant = knowledge.normalize_variant(options.cuda)
        if variant is None:
            raise InputError(
                f"--cuda {options.cuda}: not a CUDA variant",
                hint="give a CUDA version or variant such as 12.1, cu121 or cpu",
            )
        return variant, f"--cuda {options.cuda}"
    if recipe.torch.cuda != "auto":
        return recipe.torch.cuda, f"cuda = \"{recipe.torch.cuda}\" in {recipe.path.name}"
    return None, ""


def _gpu_names(gpus: tuple[Gpu, ...]) -> str:
    return ", ".join(f"{g.name} ({g.compute_capability})" for g in gpus)


def _covers(release: TorchRelease, variant: str, gpus: tuple[Gpu, ...]) -> bool:
    archs = release.archs(variant, from_pypi=variant == release.pypi_default)
    return all(knowledge.runs_on(archs, g.cc) for g in gpus)


def _by_cuda(variants: list[str]) -> list[str]:
    """Newest CUDA first."""
    return sorted(variants, key=lambda v: knowledge.version_tuple(knowledge.variant_cuda(v) or "0"),
                  reverse=True)


def _choose_variant(
    release: TorchRelease | None,
    forced: str | None,
    forced_by: str,
    hardware: Hardware,
    reasons: list[str],
    warnings: list[str],
) -> str:
    if forced is not None:
        return _check_forced(release, forced, forced_by, hardware, reasons, warnings)
    assert release is not None
    if not hardware.gpus:
        reasons.append(f"no GPU detected ({hardware.source}): the CPU build of torch")
        return "cpu"
    covering = [v for v in release.variants if _covers(release, v, hardware.gpus)]
    if not covering:
        raise _no_variant_for_gpus(release, hardware.gpus)
    reasons.append(
        f"torch {release.release} builds that run on {_gpu_names(hardware.gpus)}: "
        + ", ".join(_by_cuda(covering))
    )
    return _pick_for_driver(release, _by_cuda(covering), hardware, reasons, warnings)


def _check_forced(
    release: TorchRelease | None,
    forced: str,
    forced_by: str,
    hardware: Hardware,
    reasons: list[str],
    warnings: list[str],
) -> str:
    reasons.append(f"{forced} forced by {forced_by}")
    if release is None or forced == "cpu":
        return forced
    if forced not in release.variants:
        have = ", ".join(["cpu", *sorted(release.variants)])
        raise InputError(
            f"torch {release.release} has no {forced} build ({forced_by}); it has: {have}",
            hint="pick one of those, or \"auto\" to let gpuenv choose",
        )
    missing = [g for g in hardware.gpus if not _covers(release, forced, (g,))]
    if missing:
        warnings.append(
            f"{forced} wheels of torch {release.release} carry no code for {_gpu_names(tuple(missing))}: "
            "expect 'no kernel image is available for execution on the device'"
        )
    driver_cuda = _driver_cuda(hardware)
    cuda = knowledge.variant_cuda(forced) or ""
    if driver_cuda is not None and knowledge.version_tuple(cuda) > knowledge.version_tuple(driver_cuda):
        warnings.append(
            f"{forced} is newer than the CUDA {driver_cuda} the driver {hardware.driver_version} supports"
            + ("" if _minor_compatible(hardware, cuda) else ": it will not run on this driver")
        )
    return forced


def _no_variant_for_gpus(release: TorchRelease, gpus: tuple[Gpu, ...]) -> NoVariantError:
    lines = [
        f"  {v}: {' '.join(release.archs(v, from_pypi=v == release.pypi_default))}"
        for v in _by_cuda(list(release.variants))
    ]
    others = [
        r.release for r in knowledge.torch_releases().values()
        if any(_covers(r, v, gpus) for v in r.variants)
    ]
    hint = (
        f"torch releases whose wheels run on these GPUs: {', '.join(others)}"
        if others else "no torch release gpuenv knows runs on these GPUs"
    )
    return NoVariantError(
        f"no CUDA build of torch {release.release} runs on {_gpu_names(gpus)}; its builds carry:\n"
        + "\n".join(lines),
        hint=hint,
    )


def _driver_cuda(hardware: Hardware) -> str | None:
    if hardware.cuda_driver_version:
        return hardware.cuda_driver_version
    if hardware.driver_version:
        return knowledge.cuda_for_driver(hardware.driver_version)
    return None


def driver_runs(hardware: Hardware, cuda: str) -> bool | None:
    """Whether the driver runs CUDA ``cuda`` (None when the driver is unknown)."""
    driver_cuda = _driver_cuda(hardware)
    if driver_cuda is None:
        return None
    if knowledge.version_tuple(cuda) <= knowledge.version_tuple(driver_cuda):
        return True
    return _minor_compatible(hardware, cuda)


def _minor_compatible(hardware: Hardware, cuda: str) -> bool:
    """NVIDIA minor-version compatibility: same major, driver ≥ the major's minimum."""
    driver_cuda = _driver_cuda(hardware)
    if driver_cuda is None or hardware.driver_version is None:
        return False
    major = knowledge.version_tuple(cuda)[0]
    minimum = knowledge.driver_minimum(major)
    return (
        knowledge.version_tuple(driver_cuda)[0] == major
        and minimum is not None
        and knowledge.version_tuple(hardware.driver_version) >= knowledge.version_tuple(minimum)
    )


def _pick_for_driver(
    release: TorchRelease,
    newest_first: list[str],
    hardware: Hardware,
    reasons: list[str],
    warnings: list[str],
) -> str:
    driver_cuda = _driver_cuda(hardware)
    if driver_cuda is None and hardware.driver_version is not None:
        raise NoVariantError(
            f"driver {hardware.driver_version} is older than any CUDA release gpuenv knows "
            f"(CUDA 11.0 needs {knowledge.toolkit_driver('11.0')})",
            hint="upgrade the NVIDIA driver, or plan the CPU build with --cuda cpu",
        )
    if driver_cuda is None:
        # Nothing to fit: take the build most machines run, PyPI's, if it covers the GPUs.
        default = release.pypi_default
        chosen = default if default in newest_first else newest_first[0]
        major = knowledge.version_tuple(knowledge.variant_cuda(chosen) or "0")[0]
        warnings.append(
            f"the driver is unknown (GPUs from {hardware.source}): {chosen} needs a driver that supports "
            f"CUDA {knowledge.variant_cuda(chosen)} (at least {knowledge.driver_minimum(major)}) "
            "on the machines that will run it"
        )
        which = "PyPI's default build" if chosen == default else "the newest"
        reasons.append(f"driver unknown: {which}, {chosen}")
        return chosen
    limit = knowledge.version_tuple(driver_cuda)
    fits = [v for v in newest_first if knowledge.version_tuple(knowledge.variant_cuda(v) or "") <= limit]
    if fits:
        reasons.append(
            f"driver {hardware.driver_version} supports CUDA {driver_cuda}: the newest not newer is {fits[0]}"
        )
        return fits[0]
    compatible = [v for v in newest_first if _minor_compatible(hardware, knowledge.variant_cuda(v) or "")]
    if compatible:
        chosen = compatible[0]
        warnings.append(
            f"driver {hardware.driver_version} supports CUDA {driver_cuda}, older than every build of torch "
            f"{release.release}; {chosen} runs under NVIDIA's minor-version compatibility with a limited "
            "feature set (no JIT of newer PTX): upgrade the driver when you can"
        )
        reasons.append(f"minor-version compatibility: {chosen}")
        return chosen
    oldest = newest_first[-1]
    major = knowledge.version_tuple(knowledge.variant_cuda(oldest) or "0")[0]
    needs = ", ".join(knowledge.variant_cuda(v) or v for v in newest_first)
    raise NoVariantError(
        f"driver {hardware.driver_version} supports CUDA {driver_cuda}; the CUDA builds of torch "
        f"{release.release} that run on these GPUs need {needs}",
        hint=f"upgrade the NVIDIA driver (CUDA {major}.x needs ≥ {knowledge.driver_minimum(major)}), "
        "pick an older torch in the recipe, or plan the CPU build with --cuda cpu",
    )


def _index(release: TorchRelease | None, variant: str, template: str) -> tuple[str | None, str]:
    if template == "config":
        return None, "torch comes from the installer's own configuration (--torch-index config)"
    if release is not None and variant == release.pypi_default:
        return None, (
            f"{variant} is the build PyPI serves for torch {release.release}: "
            "torch comes from the ordinary index, no extra index needed"
        )
    return template.replace("{variant}", variant), f"{variant} builds come from the PyTorch index"


def _arch_list(
    release: TorchRelease | None, variant: str, hardware: Hardware, warnings: list[str]
) -> tuple[str, ...]:
    if variant == "cpu":
        return ()
    if hardware.gpus:
        ccs = sorted({g.cc for g in hardware.gpus})
        archs = tuple(str(cc) for cc in ccs)
        for arch in archs:
            _check_arch_known(arch, release)
        return archs
    if release is None:
        return ()
    wheel = release.archs(variant, from_pypi=variant == release.pypi_default)
    archs = tuple(a.removesuffix("+PTX") for a in wheel)
    warnings.append(
        f"no GPU given: extensions are built for every architecture torch's {variant} wheels carry "
        f"({', '.join(archs)}); pass --gpu or --arch to build only what your GPUs need"
    )
    return archs


def _check_arch_known(arch: str, release: TorchRelease | None) -> None:
    support = knowledge.arch_support(arch)
    if support is None:
        raise ArchError(
            f"compute capability {arch} is not in gpuenv's data "
            f"(it knows {', '.join(knowledge.known_archs())})",
            hint="add it to gpuenv/data/cuda.toml",
        )
    if release is not None and not support.torch_accepts(release.release):
        raise ArchError(
            f"torch {release.release} cannot build extensions for compute capability {arch}: "
            f"its TORCH_CUDA_ARCH_LIST accepts {arch} from torch {support.torch_first}"
            + (f" to {support.torch_last}" if support.torch_last else ""),
            hint="pick a torch release that supports this GPU in the recipe",
        )


def _check_toolkit_archs(
    arch_list: tuple[str, ...], toolkit: Toolkit, hardware: Hardware, warnings: list[str]
) -> tuple[str, ...]:
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
    )


def _nvcc_range(arch: str) -> str:
    support = knowledge.arch_support(arch)
    assert support is not None
    return f"{arch} needs nvcc {support.nvcc_first or 'any'} to {support.nvcc_last or 'newest'}"


def _torch_requirement(spec: SpecifierSet, torch_release: str, known: bool) -> str:
    """The recipe's specifier, narrowed to the release the plan was made for."""
    if known and knowledge.release_of_spec(spec) != torch_release:
        spec = spec & SpecifierSet(f"=={torch_release}.*")
    return f"torch{spec}"


# -- extensions ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Draft:
    spec: ExtensionSpec
    entry: CatalogEntry
    skip: str | None
    compiles_cuda: bool
    arch_list: tuple[str, ...]
    note: str


def _draft(
    ext: ExtensionSpec,
    variant: str,
    arch_list: tuple[str, ...],
    torch_version: str | None,
    hardware: Hardware,
) -> _Draft:
    entry = knowledge.catalog_entry(ext.name)
    skip_cuda = entry.skips_cuda(ext.env_dict)
    wants_cuda = entry.cuda != "none" and not skip_cuda

    def skipped(reason: str) -> _Draft:
        return _Draft(ext, entry, reason, False, (), "")

    if entry.cuda == "required" and wants_cuda and variant == "cpu":
        why = "no GPU detected" if not hardware.gpus else "the plan is the CPU build"
        return skipped(f"{ext.name} needs a CUDA build of torch and {why}")
    clash = _incompatibility(ext, entry, torch_version) if wants_cuda else None
    if clash:
        return skipped(clash)
    compiles_cuda = wants_cuda and variant != "cpu"
    if not compiles_cuda:
        note = f"{entry.skip_cuda_knob} set: no CUDA code" if skip_cuda else "a build without CUDA"
        return _Draft(ext, entry, None, False, (), note)
    archs = arch_list
    note = ""
    if entry.min_cc is not None:
        minimum = ComputeCapability.parse(entry.min_cc)
        archs = tuple(a for a in arch_list if ComputeCapability.parse(a) >= minimum)
        too_old = [a for a in arch_list if a not in archs]
        if not archs:
            return skipped(
                f"{ext.name} needs compute capability ≥ {entry.min_cc}; "
                f"{_names_for(too_old, hardware)} {'is' if len(too_old) == 1 else 'are'} older"
            )
        if too_old:
            note = f"not for {_names_for(too_old, hardware)} (needs ≥ {entry.min_cc}); "
    if entry.fixed_archs:
        note += f"it builds its own fixed arch list ({', '.join(entry.fixed_archs)}) whatever gpuenv sets; "
        archs = entry.fixed_archs
    return _Draft(ext, entry, None, True, archs, note)


def _narrow(draft: _Draft, arch_list: tuple[str, ...]) -> _Draft:
    """Keep only the archs the chosen nvcc compiles (a fixed list is the package's own)."""
    if not draft.compiles_cuda or draft.entry.fixed_archs:
        return draft
    return replace(draft, arch_list=tuple(a for a in draft.arch_list if a in arch_list))


def _names_for(archs: list[str], hardware: Hardware) -> str:
    names = [g.name for g in hardware.gpus if g.compute_capability in archs]
    return ", ".join(sorted(set(names))) or ", ".join(archs)


def pinned_version(requirement: str) -> str | None:
    """The version an exact pin (==X, ===X) in ``requirement`` names, else None."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return None
    pins = [s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
    return pins[0] if pins else None


def _incompatibility(ext: ExtensionSpec, entry: CatalogEntry, torch_version: str | None) -> str | None:
    version = pinned_version(ext.requirement)
    if version is None or torch_version is None:
        return None
    for clash in entry.incompatible:
        if clash.extension.contains(version, prereleases=True) and clash.torch.contains(
            torch_version, prereleases=True
        ):
            return f"{ext.name} {version} cannot build against torch {torch_version}: {clash.reason}"
    return None


def _choose_toolkit(
    hardware: Hardware,
    variant: str,
    cuda: str | None,
    drafts: list[_Draft],
    release: TorchRelease | None,
    warnings: list[str],
) -> Toolkit | None:
    builders = [d for d in drafts if d.skip is None and d.compiles_cuda]
    if cuda is None or not builders:
        return None
    exact = [d.spec.name for d in builders if d.entry.toolkit_match == "minor"]
    want = knowledge.version_tuple(cuda)
    same_major = [t for t in hardware.toolkits if t.version_tuple[0] == want[0]]
    matching = [t for t in same_major if t.version_tuple == want]
    if matching:
        return matching[0]
    if same_major and not exact:
        # nvcc and torch differing in the minor only warns in torch's own check.
        chosen = min(same_major, key=lambda t: abs(t.version_tuple[1] - want[1]))
        warnings.append(f"nvcc {chosen.version} builds for torch's CUDA {cuda}: same major, minors differ")
        return chosen
    raise _no_toolkit(variant, cuda, builders, exact, hardware, release)


def _no_toolkit(
    variant: str,
    cuda: str,
    builders: list[_Draft],
    exact: list[str],
    hardware: Hardware,
    release: TorchRelease | None,
) -> ToolkitError:
    needed = cuda if exact else f"{knowledge.version_tuple(cuda)[0]}.x"
    found = [f"nvcc {t.version} at {t.nvcc}" for t in hardware.toolkits]
    names = ", ".join(d.spec.name for d in builders)
    why = f" ({', '.join(exact)} needs exactly {cuda})" if exact else ""
    message = (
        f"the {variant} plan compiles CUDA for {names} and needs nvcc {needed}{why}; "
        f"found: {'; '.join(found) if found else 'no CUDA toolkit'}"
    )
    alternatives = []
    if release is not None:
        for t in hardware.toolkits:
            v = f"cu{t.version.replace('.', '')}"
            if v in release.variants and v != variant:
                alternatives.append(f"--cuda {t.version}")
    hint = f"install CUDA toolkit {needed} and set CUDA_HOME to its root"
    if alternatives:
        hint += f", or plan for the toolkit you have with {' or '.join(alternatives)}"
    return ToolkitError(message, needed=needed, found=found, hint=hint)


def _jobs(draft: _Draft, env: Mapping[str, str], hardware: Hardware) -> int:
    entry = draft.entry
    per_job = entry.job_memory_mib if draft.compiles_cuda else entry.cpu_job_memory_mib
    threads = env.get(entry.threads_knob or "", "")
    if draft.compiles_cuda and threads.isdigit() and int(threads) > 0:
        per_job *= int(threads)
    by_memory = hardware.memory_available_mib // per_job if hardware.memory_available_mib else 1
    return max(1, min(hardware.cpu_count or 1, by_memory))


def _arch_value(entry: CatalogEntry, archs: tuple[str, ...]) -> str:
    if entry.arch_format == "torch":
        return ";".join(archs)
    values: list[str] = []
    for arch in archs:
        cc = ComputeCapability.parse(arch)
        if entry.arch_choices:
            # The package has kernels for a few archs; X.Z runs X.Y code for Y ≤ Z.
            fits = [c for c in entry.arch_choices
                    if ComputeCapability.parse(c).major == cc.major and ComputeCapability.parse(c) <= cc]
            if not fits:
                continue
            value = max(fits, key=ComputeCapability.parse)
        else:
            value = cc.sm
        if value not in values:
            values.append(value)
    return ";".join(values)


def _finish(
    draft: _Draft,
    build_env: Mapping[str, str],
    toolkit: Toolkit | None,
    hardware: Hardware,
    options: PlanOptions,
    warnings: list[str],
) -> ExtensionPlan:
    ext, entry = draft.spec, draft.entry
    requires = _build_requires(entry.build_requires, ext.build_requires)
    common = {
        "name": ext.name,
        "requirement": ext.requirement,
        "build_requires": requires,
        "import_name": ext.import_name or entry.import_name,
        "required": ext.required,
        "path": str(ext.path) if ext.path is not None else None,
    }
    if draft.skip is not None:
        return ExtensionPlan(action="skip", reason=draft.skip, env={}, **common)  # type: ignore[arg-type]
    env = dict(build_env)
    env.update(entry.env)
    if draft.compiles_cuda:
        env.update(entry.cuda_env)
        if entry.arch_knob:
            env[entry.arch_knob] = _arch_value(entry, draft.arch_list)
    else:
        env.update(entry.cpu_env)
        env.pop("TORCH_CUDA_ARCH_LIST", None)
    env.update(ext.env_dict)
    # A job count the recipe gives is the user's call; otherwise fill every knob.
    jobs = ext.env_dict.get("MAX_JOBS") or str(_jobs(draft, env, hardware))
    for knob in entry.jobs_knobs:
        if knob not in ext.env_dict:
            env[knob] = jobs
    if draft.note.startswith("not for"):
        warnings.append(f"{ext.name}: {draft.note.rstrip('; ')}")
    if ext.name in options.cached:
        return ExtensionPlan(action="cached", reason=options.cached[ext.name], env=env,
                             compiles_cuda=draft.compiles_cuda, arch_list=draft.arch_list, **common)  # type: ignore[arg-type]
    if draft.compiles_cuda:
        assert toolkit is not None
        archs = ", ".join(draft.arch_list)
        reason = f"{draft.note}build for {archs} with nvcc {toolkit.version}, {jobs} parallel jobs"
    else:
        reason = f"{draft.note}, {jobs} parallel jobs"
    return ExtensionPlan(action="build", reason=reason, env=env, compiles_cuda=draft.compiles_cuda,
                         arch_list=draft.arch_list, **common)  # type: ignore[arg-type]


def _build_requires(catalog_requires: tuple[str, ...], recipe_requires: tuple[str, ...]) -> tuple[str, ...]:
    """Catalog then recipe requirements, one per distribution (the recipe's wins), never torch."""
    by_name: dict[str, str] = {}
    for text in (*catalog_requires, *recipe_requires):
        name = canonicalize_name(Requirement(text).name)
        if name != "torch":
            by_name[name] = text
    return tuple(by_name.values())
