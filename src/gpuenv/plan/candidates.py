"""The torch versions a plan may choose: what the recipe allows, paired as it pins, installable in the env.

The resolver (:mod:`gpuenv.plan.planner`) tries the releases :func:`torch_candidates`
returns, newest first. Before it does, a version is dropped when a package
paired with torch is pinned to a release that does not go with it
(``torchvision==0.17.0`` allows only torch 2.2.0), when the installer's
constraint files exclude it (pip's ``constraint``: ``torch<=2.14.1``), and when
it has no wheel for the env's Python or platform (torch 2.15 has none for
Python 3.10): each release dropped for the last two reasons is passed over with
the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from gpuenv.errors import InputError, UnsatisfiableError
from gpuenv.plan.releases import Companion, TorchRelease, TorchReleases


@dataclass(frozen=True)
class Constraint:
    """A requirement the installer holds every install to (a line of pip's constraint file)."""

    requirement: str
    #: Where it is written (the constraint file).
    source: str

    def text(self) -> str:
        return f"{self.requirement} ({self.source})"


@dataclass(frozen=True)
class WheelTarget:
    """The env torch is installed into, as far as its wheels and its installer care."""

    #: Its Python ("3.11", "3.14t"), where known.
    python: str | None = None
    #: The recipe's ``[env] python`` (a specifier), used when ``python`` is unknown.
    python_spec: str | None = None
    #: Its platform ("linux_x86_64"), where known.
    platform: str | None = None
    #: The installer's constraints on torch and the packages paired with it.
    constraints: tuple[Constraint, ...] = ()

    def limit(self, package: str) -> tuple[SpecifierSet, list[Constraint]]:
        """What the constraints allow of ``package``, and the constraints that say so."""
        spec, named = SpecifierSet(), []
        for constraint in self.constraints:
            req = Requirement(constraint.requirement)
            if canonicalize_name(req.name) == canonicalize_name(package):
                spec &= req.specifier
                named.append(constraint)
        return spec, named

    def describe(self) -> str:
        python = f"Python {self.python}" if self.python else \
            f"a Python the recipe allows (python {self.python_spec})" if self.python_spec else "this Python"
        return python + (f" on {self.platform}" if self.platform else "")


@dataclass(frozen=True)
class Candidates:
    #: (release, its newest candidate version, every candidate version of it), newest release first.
    releases: list[tuple[TorchRelease, str, tuple[str, ...]]]
    #: (version, why) of each release passed over for want of a wheel, newest first.
    no_wheel: list[tuple[str, str]]


def torch_candidates(
    spec: SpecifierSet, packages: tuple[str, ...], releases: TorchReleases, target: WheelTarget
) -> Candidates | None:
    """The versions to try, grouped by release; None when ``spec`` admits no version gpuenv knows.

    Raises InputError when a pin of a paired package pairs with no version
    the recipe allows, and UnsatisfiableError when none of them has a wheel
    for ``target``.
    """
    found = releases.candidates(spec)
    if not found:
        return None
    dropped: dict[str, tuple[str, str]] = {}
    found = _constrained(found, spec, target, dropped)
    found = _paired(found, packages, spec, releases, target)
    kept: list[tuple[TorchRelease, str]] = []
    for release, version in found:
        problem = wheel_problem(release, version, target)
        if problem is None:
            kept.append((release, version))
        else:
            dropped.setdefault(release.release, (version, problem))
    if not kept:
        lines = "; ".join(f"torch {v}: {why}" for v, why in dropped.values())
        raise UnsatisfiableError(
            f"no torch release the recipe allows (torch{spec}) has a wheel for {target.describe()}: {lines}",
            hint="use a Python these releases have wheels for ([env] python in the recipe, or another "
            "--venv), or allow other torch releases in the recipe's torch.version",
        )
    tried = {release.release for release, _ in kept}
    return Candidates(_per_release(kept), [pair for name, pair in dropped.items() if name not in tried])


def _constrained(found: list[tuple[TorchRelease, str]], spec: SpecifierSet, target: WheelTarget,
                 dropped: dict[str, tuple[str, str]]) -> list[tuple[TorchRelease, str]]:
    """The candidates the installer's constraints on torch allow; each release they exclude: ``dropped``."""
    limit, named = target.limit("torch")
    if not named:
        return found
    kept = [(r, v) for r, v in found if limit.contains(Version(v).public, prereleases=True)]
    words = ", ".join(c.text() for c in named)
    for release, version in found:
        if (release, version) not in kept:
            dropped.setdefault(release.release, (version, f"the installer's constraint {words} excludes it"))
    if not kept:
        raise UnsatisfiableError(
            f"the installer's constraint {words} allows no torch the recipe allows (torch{spec})",
            hint="allow a torch the constraint allows in the recipe's torch.version, or lift the constraint "
            "(pip config list shows where it is set)",
        )
    return kept


def wheel_problem(release: TorchRelease, version: str, target: WheelTarget) -> str | None:
    """Why ``version`` cannot be installed into ``target`` (no wheel for its Python or platform), or None."""
    try:
        key = str(Version(version).public)
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return None
    platforms = release.wheels.get(key)
    if not platforms or (target.python is None and target.python_spec is None and target.platform is None):
        return None
    if target.platform is not None:
        pythons = platforms.get(target.platform)
        if pythons is None:
            if key in release.listed:
                return f"no wheel for {target.platform} (it has wheels for {', '.join(sorted(platforms))})"
            return None
    else:
        pythons = frozenset().union(*platforms.values())
    if target.python is not None:
        if target.python in pythons:
            return None
    elif target.python_spec is None or any(_allows(target.python_spec, p) for p in pythons):
        return None
    where = f" on {target.platform}" if target.platform else ""
    return f"no wheel for {target.describe()} (it has wheels for Python {_listing(pythons)}{where})"


def _allows(spec: str, python: str) -> bool:
    """Whether a release of Python ``python`` ("3.9": a cp39 wheel serves every 3.9.x) satisfies ``spec``."""
    base = python.removesuffix("t")
    try:
        allowed = SpecifierSet(spec)
    except ValueError:
        return True
    return any(allowed.contains(v, prereleases=True) for v in (base, *(f"{base}.{n}" for n in range(40))))


def _listing(pythons: frozenset[str]) -> str:
    def key(p: str) -> tuple[int, ...]:
        return (*(int(x) for x in p.removesuffix("t").split(".")), p.endswith("t"))

    return ", ".join(sorted(pythons, key=key))


def _per_release(
    candidates: list[tuple[TorchRelease, str]],
) -> list[tuple[TorchRelease, str, tuple[str, ...]]]:
    by_release: dict[str, tuple[TorchRelease, list[str]]] = {}
    for release, version in candidates:
        by_release.setdefault(release.release, (release, []))[1].append(version)
    return [(release, versions[0], tuple(versions)) for release, versions in by_release.values()]


# -- the torch packages paired with torch ------------------------------------------------------


def _paired(
    candidates: list[tuple[TorchRelease, str]], packages: tuple[str, ...], spec: SpecifierSet,
    releases: TorchReleases, target: WheelTarget,
) -> list[tuple[TorchRelease, str]]:
    """The candidates whose paired packages satisfy the recipe's pins of them (torchvision==0.17.0) and
    the installer's constraints."""
    for text in packages:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        wanted = req.specifier & target.limit(name)[0]
        if name not in releases.packages or not wanted:
            continue
        # A release of the package the pin allows must go with the torch: pin it, or admit it.
        allowed = [c for c in releases.companions.get(name, ())
                   if wanted.contains(c.version, prereleases=True)]
        kept = [(r, v) for r, v in candidates
                if releases.paired_version(v, name) is None or _goes_with(allowed, v)]
        if not kept:
            raise _no_pair(text, name, wanted, candidates, spec, releases)
        candidates = kept
    return candidates


def _no_pair(text: str, name: str, pin: SpecifierSet, candidates: list[tuple[TorchRelease, str]],
             spec: SpecifierSet, releases: TorchReleases) -> InputError:
    fitting = [f"torch {t} with {name} {p}" for t, p in releases.pairs_of(name)
               if pin.contains(p, prereleases=True)]
    allowed = [f"torch {v} with {name} {p}" for _, v in candidates[:4]
               if (p := releases.paired_version(v, name)) is not None]
    pairs = f"{text} is released with {', '.join(fitting[:4])}" if fitting else \
        f"no torch release gpuenv knows is paired with {text}"
    return InputError(
        f"torch.packages: {pairs}, which the recipe's torch{spec} does not allow; "
        f"the pairs it allows: {', '.join(allowed) or 'none known'}",
        hint=f"pin {name} to the pair of a torch the recipe allows, or leave it unpinned "
        f"(\"{name}\"): gpuenv pins the version released with the chosen torch",
    )


def _goes_with(companions: list[Companion], torch_version: str) -> bool:
    torch = Version(Version(torch_version).public)
    return any(c.pins(torch) or c.admits(torch) for c in companions)


def pin_pairs(packages: tuple[str, ...], torch_version: str | None, releases: TorchReleases,
              target: WheelTarget | None = None) -> tuple[str, ...]:
    """Unpinned paired packages get the version paired with ``torch_version`` (that the constraints allow)."""
    if torch_version is None:
        return packages
    pinned = []
    for text in packages:
        req = Requirement(text)
        within = target.limit(req.name)[0] if target is not None else None
        pair = releases.paired_version(torch_version, req.name, within=within or None)
        if pair is not None and not req.specifier and not req.url:
            req.specifier = SpecifierSet(f"=={pair}")
            text = str(req)
        pinned.append(text)
    return tuple(pinned)
