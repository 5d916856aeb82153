"""What a repository's conda environment files add to the recipe.

A conda file is one route to the environment (``conda env create -f``; a
``pixi.toml`` is read as one, :mod:`gpuenv.init.pixi`). Its
torch pin, CUDA build (``pytorch-cuda=11.8``, ``cudatoolkit=11.3``, a build
string ``py3.9_cuda11.8_cudnn8_0``), Python and extensions (``pytorch-scatter``
is torch-scatter) are read always. Its other packages, and its ``pip:`` list,
are placed only when the repository has no pip route of its own (no install
requirements file, no package metadata listing dependencies); otherwise they
are checked against the pip route (a conflict is reported) and left to conda.
Conda packages gpuenv cannot map to PyPI are named in one line per file. A file
whose path says it serves the docs, a demo or the tests (``docs/environment.yml``)
is accounted for with that role and not read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gpuenv.errors import InputError
from gpuenv.init.conda import CondaEnv, MatchSpec, conda_name, read_environment
from gpuenv.init.pathwords import role_by_words
from gpuenv.init.pixi import is_pixi, read_pixi
from gpuenv.init.placing import CONDA, Candidate, Finding, TorchClaim
from gpuenv.init.requirements_files import FileAccount, relative
from gpuenv.load.pipline import ParsedRequirement
from gpuenv.load.requirements import index_variant
from gpuenv.plan import catalog

_SHOWN = 6
#: What a conda file's path may say it is for, besides the env: such a file is another job's env (the docs
#: build, a notebook's, the tests'), accounted for and not read. "dev" and "cpu" are not among them: an
#: environment-dev.yml is often the only env, and a CPU env file is a route of its own.
_SIDE_ROLES = ("docs", "demo", "test")


@dataclass
class CondaFindings:
    candidates: list[Candidate] = field(default_factory=list)
    claims: list[TorchClaim] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    accounts: list[FileAccount] = field(default_factory=list)
    #: (specifier, origin) of the first file that names Python.
    python: tuple[str, str] | None = None


def read_all(root: Path, paths: list[Path], *, pip_route: bool) -> CondaFindings:
    found = CondaFindings()
    for path in paths:
        rel = relative(root, path)
        try:
            env = read_pixi(path) if is_pixi(path) else read_environment(path)
        except InputError as exc:
            if "not a conda environment file" not in str(exc):
                found.accounts.append(FileAccount(rel, "unreadable", str(exc)))
            continue
        if not env.specs and not env.pip.requirements:
            continue
        side = role_by_words(rel, _SIDE_ROLES)
        if side is not None:
            found.accounts.append(
                FileAccount(
                    rel, side[0], f"a conda environment whose {side[1]} says {side[0]}: not read for the env"
                )
            )
            continue
        _read(root, rel, env, found, pip_route)
    return found


def _read(root: Path, rel: str, env: CondaEnv, found: CondaFindings, pip_route: bool) -> None:
    torch: MatchSpec | None = None
    cuda: tuple[str, str] | None = None
    toolkit: tuple[str, str] | None = None
    cpu: str | None = None
    unknown: list[str] = []
    placed = 0
    for spec in env.specs:
        where = f"{rel}:{spec.lineno}"
        name = conda_name(spec.name)
        if name is None:
            unknown.append(spec.name)
            continue
        if name.role == "python":
            if found.python is None and spec.specifier:
                found.python = (spec.specifier, where)
        elif name.role == "torch":
            torch = torch or spec
            cpu = cpu or (where if name.cpu else None)
            if spec.cuda and cuda is None:
                cuda = (spec.cuda, f"{where} (build {spec.build})")
            found.candidates.append(_candidate("torch", spec, where, place=True))
        elif name.role == "cuda" and cuda is None and _single(spec.version):
            cuda = (_release(spec.version or ""), f"{where} ({spec.name})")
        elif name.role == "toolkit" and toolkit is None:
            version = spec.version if _single(spec.version) else _label_version(spec.channel)
            if version:
                toolkit = (
                    _release(version),
                    f"{where} ({spec.name}"
                    + (f" from {spec.channel}" if spec.channel and not spec.version else "")
                    + ")",
                )
        elif name.role == "cpu":
            cpu = where
        elif name.role == "pypi" and name.pypi:
            extension = catalog.catalog_entry(name.pypi).known
            keep = extension or not pip_route
            found.candidates.append(_candidate(name.pypi, spec, where, place=keep))
            placed += keep
    version = torch.specifier if torch is not None else ""
    build = cuda or toolkit
    if cpu is not None:
        found.claims.append(TorchClaim(version or "", "cpu", cpu, CONDA))
    elif build is not None:
        found.claims.append(TorchClaim(version or "", build[0], build[1], CONDA))
    elif torch is not None:
        found.claims.append(TorchClaim(version or "", None, f"{rel}:{torch.lineno}", CONDA))
    pip_placed = _pip(rel, env, found, pip_route)
    found.accounts.append(
        FileAccount(
            rel,
            "conda",
            _why(env, torch, build, unknown, pip_route, placed, pip_placed),
            used=placed + pip_placed > 0,
        )
    )
    if unknown:
        found.findings.append(
            Finding(
                "left",
                f"{len(unknown)} conda package{'s' if len(unknown) > 1 else ''}",
                rel,
                _unknown_note(env, unknown),
            )
        )
    for line, item, why in env.skipped:
        found.findings.append(Finding("unplaced", item, f"{rel}:{line}", why))


def _pip(rel: str, env: CondaEnv, found: CondaFindings, pip_route: bool) -> int:
    for line in env.pip.requirements:
        where = f"{rel}:{line.lineno}"
        variant = next((v for v in (index_variant(u) for u in line.line_indexes) if v), None)
        found.candidates.append(
            Candidate(
                line.text,
                where,
                CONDA,
                line.parsed,
                variant=variant,
                place=not pip_route or _is_extension(line.name),
            )
        )
    for line, why in env.pip.invalid:
        found.findings.append(
            Finding("unplaced", line.text, f"{rel}:{line.lineno}", f"pip refuses it: {why}")
        )
    return 0 if pip_route else len(env.pip.requirements)


def _is_extension(name: str | None) -> bool:
    return name is not None and catalog.catalog_entry(name).known


def _candidate(pypi: str, spec: MatchSpec, where: str, *, place: bool) -> Candidate:
    specifier = spec.specifier or ""
    parsed = ParsedRequirement(pypi, specifier)
    return Candidate(f"{pypi}{specifier}", where, CONDA, parsed, place=place)


def _single(version: str | None) -> bool:
    """A version spec that names one CUDA release ("11.8", "11.8*", "12.1.0"), not a range (">=11.7")."""
    import re

    return version is not None and re.fullmatch(r"=*\d+\.\d+(\.\d+)*\.?\*?", version) is not None


def _release(version: str) -> str:
    """ "11.8*" / "11.8.0" / "==12.1" → "11.8", "12.1"."""
    parts = version.lstrip("=<>~!").rstrip("*").rstrip(".").split(".")
    return ".".join(parts[:2])


def _label_version(channel: str | None) -> str | None:
    """nvidia/label/cuda-11.6.0 → "11.6.0": the nvidia channel's label names the toolkit's release."""
    import re

    match = re.search(r"label/cuda-(\d+\.\d+(?:\.\d+)?)", channel or "")
    return match[1] if match else None


def _why(
    env: CondaEnv,
    torch: MatchSpec | None,
    build: tuple[str, str] | None,
    unknown: list[str],
    pip_route: bool,
    placed: int,
    pip_placed: int,
) -> str:
    kind = "a 'conda env export'" if env.exported else "a conda environment"
    kind = "a pixi manifest (conda packages)" if env.pixi else kind
    if env.platform and env.exported:
        kind += f" made on {env.platform}"
    parts = []
    if torch is not None:
        parts.append(f"pytorch{torch.specifier or ''}")
    if build is not None:
        parts.append(f"CUDA {build[0]}")
    what = f" ({', '.join(parts)})" if parts else ""
    if pip_route:
        use = (
            "its torch, CUDA, Python and extensions are read; its other packages are the conda route's "
            "(the repository's pip files are used), checked for conflicts"
        )
    else:
        use = f"the repository's only install route: {placed + pip_placed} of its packages placed"
    return f"{kind}{what}: {use}"


def _unknown_note(env: CondaEnv, unknown: list[str]) -> str:
    shown = ", ".join(unknown[:_SHOWN]) + (
        f", … ({len(unknown) - _SHOWN} more)" if len(unknown) > _SHOWN else ""
    )
    if env.exported and env.platform and env.platform != "Linux":
        return f"builds of a 'conda env export' made on {env.platform}, left to conda ({shown})"
    if env.exported:
        return f"the packages of a 'conda env export', left to conda ({shown})"
    return (
        f"conda packages gpuenv does not map to PyPI, left to conda ({shown}): add their PyPI names to "
        "[packages] if the env needs them"
    )
