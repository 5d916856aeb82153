"""What the recipe says, decided from everything the repository declares, and checked by the recipe
loader itself before it is written.

torch: the pins of the install sources together (the package metadata, the file for one CUDA build,
the install files; a conda file's pin only where none of them pins torch, as the conda route's); its
CUDA build: from the best source that states one, unless another source contradicts it (another
CUDA, or a torch pin that cannot hold with its own), and only a build some torch release has. Python:
the metadata's requires-python, else a conda file's. Whatever the loader refuses is not written.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from gpuenv.init.placing import CONDA, INSTALL, LOCK, RECORD, Finding, Placer
from gpuenv.init.repofacts import loader_refusal
from gpuenv.plan import knowledge

# -- what the recipe loader accepts -----------------------------------------------------------


def _table(place: str, text: str) -> dict[str, object] | None:
    """The recipe table ``text`` is written into for a finding of ``place``, or None (not written as is)."""
    if place == "package":
        return {"packages": {"requirements": [text]}}
    if place == "extension":
        return {"extensions": [{"requirement": text}]}
    if place == "paired":
        return {"torch": {"version": ">=2", "packages": [text]}}
    return None


def loader_checked(root: Path, findings: list[Finding]) -> list[Finding]:
    """Findings that go into the recipe as written, checked by the recipe loader itself: what it
    refuses is not written (init never writes a recipe its own loader refuses), and says why."""
    checked = []
    for f in findings:
        table = _table(f.place, f.text)
        if table is not None and f.kept_in is None:
            refusal = loader_refusal(root, table)
            if refusal is not None:
                hint = " (write it as 'NAME @ URL' in [packages] by hand)" if "://" in f.text else ""
                f = Finding("unplaced", f.text, f.origin, f"the recipe cannot hold it: {refusal}{hint}")
        checked.append(f)
    return checked


def checked_values(
    root: Path, torch_version: str | None, cuda: str | None, python: str | None, notes: list[str]
) -> tuple[str | None, str | None, str | None]:
    if torch_version and loader_refusal(root, {"torch": {"version": torch_version}}):
        notes.append(f"torch{torch_version}: not a version the recipe can hold; left to the default")
        torch_version = None
    if cuda is not None:
        allowed = knowledge.torch_candidates(SpecifierSet(torch_version or ""))
        if allowed and not any(cuda in release.variants for release, _ in allowed):
            notes.append(
                f"{cuda}: no torch release{' the files allow' if torch_version else ''} has a {cuda} "
                "build: CUDA left to the machine"
            )
            cuda = None
    if python and loader_refusal(root, {"env": {"python": python}}):
        notes.append(f"python {python}: not a Python version the recipe can hold; left out")
        python = None
    return torch_version, cuda, python


# -- torch, CUDA, python ----------------------------------------------------------------------------


def decide_torch(placer: Placer, notes: list[str]) -> tuple[str | None, str | None, str]:
    """The torch specifier the recipe asks for, the CUDA build and where it comes from."""
    claims = sorted(placer.claims, key=lambda c: c.rank)
    installing = [c for c in claims if c.rank <= INSTALL]
    pool = installing or [c for c in claims if c.rank == CONDA][:1]
    spec = SpecifierSet()
    for claim in [*pool, *placer.folder_claims]:
        public = _public(claim.specifier)
        try:
            spec &= SpecifierSet(public)
        except InvalidSpecifier:
            continue
    exact = [s for s in spec if s.operator == "==" and "*" not in s.version]
    version = (
        str(exact[0]) if exact and all(s.contains(exact[0].version) for s in spec) else str(spec)
    ) or None
    # A lock (this repository's own frozen env) tells the CUDA only where nothing else does.
    with_cuda = [c for c in claims if c.cuda is not None and c.rank < LOCK] or [
        c for c in claims if c.cuda is not None and c.rank == LOCK
    ]
    if not with_cuda:
        return version, None, ""
    chosen = with_cuda[0]
    variant = knowledge.normalize_variant(chosen.cuda or "") or chosen.cuda
    pin = _public(chosen.specifier)
    disagree = []
    for other in claims:
        other_variant = knowledge.normalize_variant(other.cuda or "") if other.cuda else None
        if (
            other is chosen or other.rank == RECORD
        ):  # another build's file is an alternative, not a contradiction
            continue
        if other_variant is not None and other_variant != variant:
            disagree.append(f"{other.origin} asks for {other_variant}")
        elif pin and other.specifier and _clashes(pin, _public(other.specifier)):
            disagree.append(f"{other.origin} pins torch{other.specifier}")
    if pin and version and _clashes(version, pin):
        disagree.append(f"its torch{chosen.specifier} is not the torch{version} the install files ask for")
    if disagree:
        notes.append(
            f"CUDA left to the machine: {chosen.origin} asks for {variant}, but "
            f"{'; '.join(dict.fromkeys(disagree))}"
        )
        return version, None, ""
    return version, variant, chosen.origin


def _public(spec: str) -> str:
    """ "==2.0.1+cu118" → "==2.0.1": the variant is the plan's choice."""
    return re.sub(r"\+[A-Za-z0-9.]+", "", spec)


def _clashes(a: str, b: str) -> bool:
    from gpuenv.plan.pins import conflict

    return conflict(a, b)


def decide_python(declared: str | None, conda_python: tuple[str, str] | None) -> str | None:
    """The metadata's requires-python (``declared``), else the first conda file's python."""
    if declared is not None:
        return _python_value(declared)
    if conda_python is not None:
        return _python_value(conda_python[0])
    return None


def _python_value(text: str) -> str | None:
    """What the recipe's [env] python says: "3.10" for 3.10.*, else a specifier the loader reads."""
    text = text.strip()
    if re.fullmatch(r"\d+\.\d+(\.\d+)?", text):
        return ".".join(text.split(".")[:2]) if text.count(".") == 1 else f"=={text}"
    match = re.fullmatch(r"==\s*(\d+\.\d+)\.\*", text)
    if match:
        return match[1]
    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        return None
    return text or None
