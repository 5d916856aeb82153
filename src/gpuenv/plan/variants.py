"""Which CUDA variant of one torch release runs here: the GPUs' archs and the driver decide.

Pure functions of the compatibility data and the :class:`Hardware`. A variant
that cannot run is not raised here: it comes back as a problem (an
:class:`~gpuenv.errors.UnsatisfiableError` or :class:`~gpuenv.errors.InputError`
instance) so the resolver can pass the release over and try an older one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.specifiers import SpecifierSet

from gpuenv.errors import GpuenvError, InputError, NoVariantError
from gpuenv.plan import knowledge
from gpuenv.plan.hardware import Gpu, Hardware
from gpuenv.plan.releases import TorchRelease, TorchReleases, shipped_releases


@dataclass(frozen=True)
class VariantChoice:
    #: The variant: the rule's choice, or (with a problem) the one the plan would show.
    variant: str
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: Why this release cannot run here (None: it can).
    problem: GpuenvError | None = field(default=None, compare=False)


def gpu_names(gpus: tuple[Gpu, ...]) -> str:
    return ", ".join(f"{g.name} ({g.compute_capability})" for g in gpus)


def covers(release: TorchRelease, variant: str, gpus: tuple[Gpu, ...]) -> bool:
    archs = release.archs(variant, from_pypi=variant == release.pypi_default)
    return all(knowledge.runs_on(archs, g.cc) for g in gpus)


def by_cuda(variants: list[str]) -> list[str]:
    """Newest CUDA first."""
    return sorted(variants, key=lambda v: knowledge.version_tuple(knowledge.variant_cuda(v) or "0"),
                  reverse=True)


def choose_variant(
    release: TorchRelease, forced: str | None, forced_by: str, hardware: Hardware,
    known: Mapping[str, TorchRelease] | None = None,
) -> VariantChoice:
    """The variant of ``release`` for ``hardware`` (or the forced one, checked); ``known``: every release the
    plan may choose (for the hints), by default the shipped data's."""
    if forced is not None:
        return _check_forced(release, forced, forced_by, hardware, known)
    if not hardware.gpus:
        return VariantChoice("cpu", (f"no GPU detected ({hardware.source}): the CPU build of torch",))
    covering = by_cuda([v for v in release.variants if covers(release, v, hardware.gpus)])
    if not covering:
        return VariantChoice(release.pypi_default, problem=no_variant_for_gpus(release, hardware.gpus, known))
    reason = f"torch {release.release} builds that run on {gpu_names(hardware.gpus)}: {', '.join(covering)}"
    return _pick_for_driver(release, covering, hardware, reason)


def _check_forced(release: TorchRelease, forced: str, forced_by: str, hardware: Hardware,
                  known: Mapping[str, TorchRelease] | None) -> VariantChoice:
    reasons = (f"{forced} forced by {forced_by}",)
    if forced == "cpu":
        return VariantChoice(forced, reasons)
    if forced not in release.variants:
        have = ", ".join(["cpu", *sorted(release.variants)])
        return VariantChoice(forced, reasons, problem=InputError(
            f"torch {release.release} has no {forced} build ({forced_by}); it has: {have}",
            hint=forced_hint(forced, known)))
    warnings = []
    missing = [g for g in hardware.gpus if not covers(release, forced, (g,))]
    if missing:
        warnings.append(
            f"{forced} wheels of torch {release.release} carry no code for {gpu_names(tuple(missing))}: "
            "expect 'no kernel image is available for execution on the device'"
        )
    driver_cuda = driver_cuda_of(hardware)
    cuda = knowledge.variant_cuda(forced) or ""
    if driver_cuda is not None and knowledge.version_tuple(cuda) > knowledge.version_tuple(driver_cuda):
        warnings.append(
            f"{forced} is newer than the CUDA {driver_cuda} the driver {hardware.driver_version} supports"
            + ("" if minor_compatible(hardware, cuda) else ": it will not run on this driver")
        )
    return VariantChoice(forced, reasons, tuple(warnings))


def _known(known: Mapping[str, TorchRelease] | None) -> Mapping[str, TorchRelease]:
    return known if known is not None else shipped_releases().releases


def forced_hint(forced: str, known: Mapping[str, TorchRelease] | None = None) -> str:
    """Where a forced variant exists: the releases that have it, and the way back to automatic."""
    having = [r.release for r in _known(known).values() if forced in r.variants]
    where = (f"torch {_span(having)} {'has' if len(having) == 1 else 'have'} {forced} builds: allow one in "
             "the recipe's torch.version, " if having else f"no torch release gpuenv knows has {forced}: ")
    return where + "or let gpuenv choose with --cuda auto"


def _span(releases: list[str]) -> str:
    return releases[0] if len(releases) == 1 else f"{releases[0]} to {releases[-1]}"


def no_variant_for_gpus(release: TorchRelease, gpus: tuple[Gpu, ...],
                        known: Mapping[str, TorchRelease] | None = None) -> NoVariantError:
    carried = "; ".join(
        f"{v} {' '.join(release.archs(v, from_pypi=v == release.pypi_default))}"
        for v in by_cuda(list(release.variants))
    )
    others = [
        f"{r.release} ({', '.join(by_cuda([v for v in r.variants if covers(r, v, gpus)]))})"
        for r in _known(known).values()
        if any(covers(r, v, gpus) for v in r.variants)
    ]
    hint = (
        f"torch releases whose wheels run on these GPUs: {', '.join(others)}"
        if others else "no torch release gpuenv knows has wheels with code for these GPUs; "
        "plan the CPU build with --cuda cpu"
    )
    return NoVariantError(
        f"no CUDA build of torch {release.release} runs on {gpu_names(gpus)}; its builds carry: {carried}",
        hint=hint, torch=release.release, gpus=sorted({str(g.cc) for g in gpus}),
    )


def driver_cuda_of(hardware: Hardware) -> str | None:
    if hardware.cuda_driver_version:
        return hardware.cuda_driver_version
    if hardware.driver_version:
        return knowledge.cuda_for_driver(hardware.driver_version)
    return None


def driver_runs(hardware: Hardware, cuda: str) -> bool | None:
    """Whether the driver runs CUDA ``cuda`` (None when the driver is unknown)."""
    driver_cuda = driver_cuda_of(hardware)
    if driver_cuda is None:
        return None
    if knowledge.version_tuple(cuda) <= knowledge.version_tuple(driver_cuda):
        return True
    return minor_compatible(hardware, cuda)


def minor_compatible(hardware: Hardware, cuda: str) -> bool:
    """NVIDIA minor-version compatibility: same major, driver ≥ the major's minimum."""
    driver_cuda = driver_cuda_of(hardware)
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
    release: TorchRelease, newest_first: list[str], hardware: Hardware, covering: str
) -> VariantChoice:
    driver_cuda = driver_cuda_of(hardware)
    if driver_cuda is None and hardware.driver_version is not None:
        return VariantChoice(newest_first[-1], (covering,), problem=NoVariantError(
            f"driver {hardware.driver_version} is older than any CUDA release gpuenv knows "
            f"(CUDA 11.0 needs {knowledge.toolkit_driver('11.0')})",
            hint="upgrade the NVIDIA driver, or plan the CPU build with --cuda cpu",
            code="driver-too-old", driver=hardware.driver_version, driver_cuda=None, needed=["11.0"],
        ))
    if driver_cuda is None:
        # Nothing to fit: take the build most machines run, PyPI's, if it covers the GPUs.
        default = release.pypi_default
        chosen = default if default in newest_first else newest_first[0]
        major = knowledge.version_tuple(knowledge.variant_cuda(chosen) or "0")[0]
        which = "PyPI's default build" if chosen == default else "the newest"
        return VariantChoice(chosen, (covering, f"driver unknown: {which}, {chosen}"), (
            f"the driver is unknown (GPUs from {hardware.source}): {chosen} needs a driver that supports "
            f"CUDA {knowledge.variant_cuda(chosen)} (at least {knowledge.driver_minimum(major)}) "
            "on the machines that will run it",))
    limit = knowledge.version_tuple(driver_cuda)
    fits = [v for v in newest_first if knowledge.version_tuple(knowledge.variant_cuda(v) or "") <= limit]
    if fits:
        return VariantChoice(fits[0], (covering, f"driver {hardware.driver_version} supports CUDA "
                                                 f"{driver_cuda}: the newest not newer is {fits[0]}"))
    compatible = [v for v in newest_first if minor_compatible(hardware, knowledge.variant_cuda(v) or "")]
    if compatible:
        chosen = compatible[0]
        return VariantChoice(chosen, (covering, f"minor-version compatibility: {chosen}"), (
            f"driver {hardware.driver_version} supports CUDA {driver_cuda}, older than every build of torch "
            f"{release.release}; {chosen} runs under NVIDIA's minor-version compatibility with a limited "
            "feature set (no JIT of newer PTX): upgrade the driver when you can",))
    oldest = newest_first[-1]
    major = knowledge.version_tuple(knowledge.variant_cuda(oldest) or "0")[0]
    needs = ", ".join(knowledge.variant_cuda(v) or v for v in newest_first)
    return VariantChoice(oldest, (covering,), problem=NoVariantError(
        f"driver {hardware.driver_version} supports CUDA {driver_cuda}; the CUDA builds of torch "
        f"{release.release} that run on these GPUs need {needs}",
        hint=f"upgrade the NVIDIA driver (CUDA {major}.x needs ≥ {knowledge.driver_minimum(major)}), "
        "allow an older torch in the recipe, or plan the CPU build with --cuda cpu",
        code="driver-too-old", driver=hardware.driver_version, driver_cuda=driver_cuda, torch=release.release,
        needed=[knowledge.variant_cuda(v) or v for v in newest_first],
    ))


def newest_runnable(hardware: Hardware, forced: str | None,
                    releases: TorchReleases | None = None) -> tuple[str, str] | None:
    """The newest torch version known, and its variant, that runs on ``hardware``; None if none does."""
    releases = releases if releases is not None else shipped_releases()
    for release, version in releases.candidates(SpecifierSet()):
        choice = choose_variant(release, forced, "", hardware, releases.releases)
        if choice.problem is None:
            return version, choice.variant
    return None
