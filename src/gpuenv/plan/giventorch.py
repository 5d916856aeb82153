"""Planning for a torch that is already there: observed facts instead of the shipped data.

Two callers hand the planner a :class:`TorchFacts` (``PlanOptions.given_torch``):
setup, right after torch landed in an env it made, so the extensions are built
for the torch that really landed; and every command pointed at an env gpuenv
adopts (a container's Python, a conda env), whose torch is never replaced.
Either way the plan is made for exactly that torch: its release is the nearest
one the data knows (for what the env does not say), its variant comes from its
CUDA, its arch list is checked against the GPUs (a torch without kernels for
them is a blocker that names them), the driver against its CUDA, and the
extension drafts get its C++ standard.

:func:`data_disagreements` says where the installed torch contradicts
``torch.toml``, naming the entry, so setup and ``gpuenv doctor`` say it the
same way. Pure: no I/O (the facts are read by :mod:`gpuenv.env.observed`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from gpuenv.errors import GivenTorchError, InputError
from gpuenv.plan import knowledge
from gpuenv.plan.hardware import ComputeCapability, Hardware
from gpuenv.plan.releases import TorchRelease, TorchReleases
from gpuenv.plan.variants import VariantChoice, driver_cuda_of, driver_runs, gpu_names, minor_compatible

#: What a hint tells the user whose given torch cannot serve the plan.
NEVER_REPLACED = ("gpuenv never replaces a torch it did not install: put a torch build that fits into "
                  "the env yourself, or let gpuenv make an env of its own (without --python, and with "
                  "use = \"install\" in the recipe's [torch])")


@dataclass(frozen=True)
class TorchFacts:
    """What an installed torch is, as read from its files (not from gpuenv's data)."""

    #: ``torch.__version__`` with its local label: "2.14.1+cu130", "2.5.0a0+872d972e41.nv24.08".
    version: str
    #: ``torch.version.cuda`` ("12.6"); None for a CPU build.
    cuda: str | None
    #: The archs its wheel carries, in TORCH_CUDA_ARCH_LIST spelling ("9.0", "12.0+PTX"); empty: unknown.
    arch_list: tuple[str, ...] = ()
    #: ``torch._C._GLIBCXX_USE_CXX11_ABI``; None: unknown.
    cxx11_abi: bool | None = None
    #: The C++ standard its headers require of an extension (17, 20); None: unknown.
    cxx_standard: int | None = None
    #: The installed distribution's version, what installers compare ("2.14.1" for PyPI's cu130 wheel).
    distribution: str = ""
    #: Where it was observed: "the torch in /opt/conda (Python 3.10)".
    where: str = ""
    #: Where the arch list was read: "torch.cuda.get_arch_list()" or the library whose fat binary holds it.
    arch_source: str = ""
    #: The packages released with torch that the env holds (torchvision, torchaudio): name → version.
    paired: Mapping[str, str] = field(default_factory=dict)
    #: ``torch.version.hip`` of a ROCm build (for AMD GPUs); None for CUDA and CPU builds.
    hip: str | None = None
    #: Who installed it ("pip", "uv", "conda"); "" if unknown.
    installer: str = ""

    @property
    def variant(self) -> str:
        return variant_of(self.cuda)

    @property
    def public(self) -> str:
        """The version without its local label ("2.5.0a0")."""
        return _public(self.version)

    @property
    def requirement(self) -> str:
        """The pin that keeps exactly this torch, by its distribution version."""
        return f"torch=={self.distribution or self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version, "cuda": self.cuda, "arch_list": list(self.arch_list),
            "cxx11_abi": self.cxx11_abi, "cxx_standard": self.cxx_standard, "distribution": self.distribution,
            "where": self.where, "arch_source": self.arch_source, "paired": dict(self.paired),
        }


def _public(version: str) -> str:
    try:
        return Version(version).public
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return version.partition("+")[0]


def variant_of(cuda: str | None) -> str:
    """"cpu" for None; "12.6" (or "12.6.3") → "cu126"."""
    if cuda is None:
        return "cpu"
    parts = re.findall(r"\d+", cuda)
    return f"cu{parts[0]}{parts[1] if len(parts) > 1 else '0'}" if parts else "cpu"


def arch_list_from_names(names: Iterable[str]) -> tuple[str, ...]:
    """``["sm_80", "sm_90", "compute_90"]`` (nvcc's and get_arch_list()'s names) → ``("8.0", "9.0+PTX")``.

    Arch-specific (``sm_90a``) and family (``sm_103f``) code is left out where the
    plain code of that arch is there; alone, it stands for its arch.
    """
    sass: set[ComputeCapability] = set()
    ptx: set[ComputeCapability] = set()
    special: set[ComputeCapability] = set()
    for name in names:
        match = re.fullmatch(r"(sm|compute)_(\d+)([af]?)", name.strip())
        if match is None:
            continue
        cc = ComputeCapability.parse(match[2])
        if match[3]:
            special.add(cc)
        else:
            (sass if match[1] == "sm" else ptx).add(cc)
    sass |= {cc for cc in special if cc not in sass and cc not in ptx}
    return tuple(f"{cc}+PTX" if cc in ptx else str(cc) for cc in sorted(sass | ptx))


# -- the release the data knows nearest to the given torch -----------------------------------------


@dataclass(frozen=True)
class GivenRelease:
    """The given torch as a :class:`TorchRelease` the planner can plan with, and how it was made."""

    #: The release to plan with: the nearest known one, with the observed facts in place of its data.
    release: TorchRelease
    #: The release of the data it stands on.
    nearest: TorchRelease
    #: What was taken from the data rather than observed, one line each.
    assumed: tuple[str, ...] = ()


def nearest_release(version: str, known: TorchReleases | None = None) -> tuple[TorchRelease, bool]:
    """The release of ``version`` in ``known`` (default: the shipped data) (True), else the nearest older
    one, else the oldest (False)."""
    releases = known.releases if known is not None else knowledge.torch_releases()
    try:
        parsed = Version(version)
    except ValueError:  # InvalidVersion, or more digits than int() converts
        parsed = Version("0")
    minor = f"{parsed.major}.{parsed.minor}"
    if minor in releases:
        return releases[minor], True
    ordered = sorted(releases.values(), key=lambda r: r.version)
    older = [r for r in ordered if r.version <= parsed]
    return (older[-1] if older else ordered[0]), False


def _from_pypi(facts: TorchFacts, release: TorchRelease) -> bool | None:
    """Whether the facts are PyPI's build of the release rather than the PyTorch index's; None: cannot tell.

    PyPI's cu130 wheel is the distribution "2.14.1" whose ``torch.__version__`` is
    "2.14.1+cu130"; the index's is the distribution "2.14.1+cu130".
    """
    if facts.variant != release.pypi_default:
        return False
    if facts.distribution:
        return "+" not in facts.distribution
    return None if "+" in facts.version else True


def given_release(facts: TorchFacts, known: TorchReleases | None = None) -> GivenRelease:
    """The release to plan ``facts`` with: observed facts first, the nearest release's data for the rest
    (of ``known``: the shipped data with what the index says; default the shipped data)."""
    nearest, same_minor = nearest_release(facts.version, known)
    assumed: list[str] = []
    if not same_minor:
        assumed.append(f"torch {facts.version} is not a release gpuenv's data knows: planned with the data "
                       f"of torch {nearest.release}, the nearest it knows")
    variant = facts.variant
    archs = facts.arch_list
    if not archs and variant != "cpu":
        archs = nearest.archs(variant, from_pypi=_from_pypi(facts, nearest) is not False)
        if archs:
            assumed.append(f"the arch list of the torch in the env could not be read: assumed to be what "
                           f"torch.toml says of torch {nearest.release} {variant} ({', '.join(archs)})")
    cxx = facts.cxx_standard
    if cxx is None and nearest.cxx_standard is not None:
        cxx = nearest.cxx_standard
        assumed.append(f"the C++ standard torch's headers require could not be read: assumed C++{cxx} "
                       f"(torch.toml releases.\"{nearest.release}\")")
    release = replace(
        nearest,
        versions=(facts.public,),
        pypi_default=variant,
        variants={} if variant == "cpu" else {variant: tuple(archs)},
        pypi_archs=None,
        cxx_standard=cxx,
    )
    return GivenRelease(release, nearest, tuple(assumed))


# -- what the data says against what was observed -------------------------------------------------


def not_in_data(facts: TorchFacts) -> str | None:
    """Why ``torch.toml`` does not describe the installed torch, or None when it does.

    The data describes the wheels of PyPI and the PyTorch index, of the versions it lists. Another build
    of such a version (NVIDIA's ``2.5.0a0+…nv24.08``, a ROCm build, a conda package, whose variants are
    its channel's) is not what it describes.
    """
    nearest, same_minor = nearest_release(facts.version)
    if not same_minor or facts.public not in nearest.versions:
        return f"torch.toml does not list {facts.public}"
    if facts.hip:
        return (f"torch {facts.version} is a ROCm build (HIP {facts.hip}); torch.toml describes CUDA and "
                "CPU builds")
    if facts.installer == "conda":
        return (f"torch {facts.version} is a conda package: its builds are its channel's, torch.toml "
                "describes the wheels of PyPI and the PyTorch index")
    return None


def data_disagreements(facts: TorchFacts) -> tuple[str, ...]:
    """Where ``torch.toml`` says otherwise than the installed torch, one line each, naming the entry.

    The shipped data, whatever an index added to the plan's; only a torch it describes
    (:func:`not_in_data`).
    """
    if not_in_data(facts) is not None:
        return ()
    nearest, _ = nearest_release(facts.version)
    variant = facts.variant
    entry = f'torch.toml releases."{nearest.release}"'
    found: list[str] = []
    if variant != "cpu" and variant not in nearest.variants:
        found.append(f"{entry}: data says it has no {variant} build, the installed wheel {facts.version} "
                     f"is one (CUDA {facts.cuda})")
    elif variant != "cpu" and facts.arch_list:
        from_pypi = _from_pypi(facts, nearest)
        builds = {pypi: nearest.archs(variant, from_pypi=pypi) for pypi in (True, False)
                  if from_pypi is None or from_pypi == pypi}
        if all(set(data) != set(facts.arch_list) for data in builds.values()):
            pypi = next(iter(builds))
            which = variant + (" (PyPI's wheel)" if pypi and nearest.pypi_archs is not None else "")
            found.append(f"{entry} {which}: data says archs {', '.join(builds[pypi])}, the installed wheel "
                         f"carries {', '.join(facts.arch_list)} ({facts.arch_source or 'observed'})")
    if facts.cxx_standard is not None and nearest.cxx_standard is not None \
            and facts.cxx_standard != nearest.cxx_standard:
        found.append(f"{entry} cxx_standard: data says C++{nearest.cxx_standard}, the installed wheel's "
                     f"headers require C++{facts.cxx_standard}")
    return tuple(found)


# -- the variant of a given torch: it is not chosen, it is checked -----------------------------------


def given_choice(facts: TorchFacts, given: GivenRelease, hardware: Hardware) -> VariantChoice:
    """The given torch's variant, checked against the GPUs and the driver (a problem where it cannot run)."""
    variant = facts.variant
    where = facts.where or "the env"
    said = f"torch {facts.version} is given ({where}): the plan is for it, not chosen"
    if facts.hip:
        return VariantChoice("cpu", (said,), (), problem=GivenTorchError(
            f"the given torch {facts.version} ({where}) is a ROCm build (HIP {facts.hip}), for AMD GPUs: "
            "gpuenv builds extensions against CUDA builds of torch, for NVIDIA GPUs",
            hint=NEVER_REPLACED, code="given-torch-rocm", torch=facts.version, hip=facts.hip))
    if variant == "cpu":
        unused = (f"the given torch {facts.version} is a CPU build: {_gpus_go_unused(hardware)} and "
                  "extensions are built without CUDA",) if hardware.gpus else ()
        return VariantChoice("cpu", (said,), unused)
    reasons = (said, f"its CUDA {facts.cuda} is the {variant} variant")
    warnings: list[str] = list(given.assumed)
    archs = given.release.archs(variant, from_pypi=False)
    missing = tuple(g for g in hardware.gpus if archs and not knowledge.runs_on(archs, g.cc))
    if missing:
        source = f" (read from {facts.arch_source})" if facts.arch_source else ""
        return VariantChoice(variant, reasons, tuple(warnings), problem=GivenTorchError(
            f"the given torch {facts.version} ({where}) carries no kernels for {gpu_names(missing)}: its "
            f"wheel holds {', '.join(archs)}{source}; expect 'no kernel image is available for execution "
            "on the device'", hint=NEVER_REPLACED, code="given-torch-no-kernels", torch=facts.version,
            gpus=sorted({str(g.cc) for g in missing}), archs=list(archs)))
    if hardware.gpus and not archs:
        warnings.append(f"which GPUs the given torch {facts.version} has kernels for is unknown: "
                        "not checked against the GPUs")
    cuda = facts.cuda or ""
    runs = driver_runs(hardware, cuda) if hardware.gpus else True
    if runs is False:
        major = knowledge.version_tuple(cuda)[0]
        minimum = knowledge.driver_minimum(major)
        return VariantChoice(variant, reasons, tuple(warnings), problem=GivenTorchError(
            f"driver {hardware.driver_version} (CUDA {driver_cuda_of(hardware)}) cannot run the given torch "
            f"{facts.version} ({where}), built with CUDA {cuda}",
            hint=f"upgrade the NVIDIA driver (CUDA {major}.x needs ≥ {minimum}); " + NEVER_REPLACED,
            code="given-torch-driver-too-old", torch=facts.version, driver=hardware.driver_version,
            driver_cuda=driver_cuda_of(hardware), needed=cuda))
    driver_cuda = driver_cuda_of(hardware)
    if runs is None and hardware.gpus:
        warnings.append(f"the driver is unknown (GPUs from {hardware.source}): the given torch needs one "
                        f"that supports CUDA {cuda}")
    elif driver_cuda is not None and knowledge.version_tuple(cuda) > knowledge.version_tuple(driver_cuda) \
            and minor_compatible(hardware, cuda):
        warnings.append(f"the given torch's CUDA {cuda} is newer than the CUDA {driver_cuda} driver "
                        f"{hardware.driver_version} supports: it runs under NVIDIA's minor-version "
                        "compatibility (no JIT of newer PTX)")
    return VariantChoice(variant, reasons, tuple(warnings))


def _gpus_go_unused(hardware: Hardware) -> str:
    """"the GPU goes unused", "the 2 GPUs go unused"."""
    n = len(hardware.gpus)
    return "the GPU goes unused" if n == 1 else f"the {n} GPUs go unused"


def check_forced(facts: TorchFacts, forced: str | None, forced_by: str) -> None:
    """A forced variant must be the given torch's own: gpuenv does not change it."""
    if forced is not None and forced != facts.variant:
        raise InputError(
            f"{forced_by} asks for {forced}, but the torch is given: {facts.version} "
            f"({facts.where or 'the env'}) is {facts.variant}",
            hint="drop the forced variant (--cuda auto); " + NEVER_REPLACED)


def version_problem(facts: TorchFacts, spec: SpecifierSet, recipe_name: str) -> GivenTorchError | None:
    """The recipe's torch.version against the given torch (a blocker: it is never replaced)."""
    try:
        allowed = not str(spec) or spec.contains(Version(facts.version), prereleases=True) \
            or spec.contains(Version(facts.public), prereleases=True)
    except ValueError:  # InvalidVersion, or more digits than int() converts
        allowed = False
    if allowed:
        return None
    return GivenTorchError(
        f"the given torch {facts.version} ({facts.where or 'the env'}) does not satisfy torch{spec} of "
        f"{recipe_name}", hint="allow it in the recipe's torch.version (or leave version out with "
        "use = \"existing\"); " + NEVER_REPLACED, code="given-torch-not-allowed", torch=facts.version,
        needed=f"torch{spec}")


# -- the plan's torch fields for a given torch ---------------------------------------------------------


def torch_packages(
    facts: TorchFacts, packages: tuple[str, ...], known: TorchReleases | None = None
) -> tuple[tuple[str, ...], list[GivenTorchError]]:
    """The recipe's torch packages still to install beside a given torch, and the pins it contradicts.

    A package the env already holds is kept as it is (setup pins it); one it
    lacks is installed with torch pinned, at the version released with it where
    the data knows one.
    """
    present = {canonicalize_name(k): v for k, v in facts.paired.items()}
    missing: list[str] = []
    problems: list[GivenTorchError] = []
    for text in packages:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            missing.append(text)
            continue
        name = canonicalize_name(req.name)
        if name in present:
            if req.specifier and not req.specifier.contains(present[name], prereleases=True):
                problems.append(GivenTorchError(
                    f"torch.packages asks for {text}; the env beside the given torch {facts.version} holds "
                    f"{req.name} {present[name]}",
                    hint=f"allow {req.name} {present[name]} in torch.packages; gpuenv does not replace what "
                    "was released with a given torch", code="given-torch-pair-conflict", name=req.name,
                    needed=text, found=present[name]))
            continue
        pair = (known.paired_version(facts.public, name) if known is not None
                else knowledge.paired_version(facts.public, name))
        if pair is not None and not req.specifier and not req.url:
            req.specifier = SpecifierSet(f"=={pair}")
        missing.append(str(req))
    return tuple(missing), problems


def index_note(facts: TorchFacts) -> str:
    return f"torch is given ({facts.where or 'the env'}): gpuenv installs no torch and never replaces it"
