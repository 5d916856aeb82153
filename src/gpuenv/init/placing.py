"""Where each requirement a repository declares goes in the recipe, one place per distribution.

Requirements come from several sources, ranked: the package metadata and the
files it reads (0), the file that pins the torch stack for one CUDA (1), the
repository's other install files (2), conda environment files (3). A
distribution is placed once, from its best-ranked source; a pin elsewhere
that cannot hold together with it is reported as a conflict, and the better
source wins. Records of other environments (locks, frozen envs) place nothing:
they only tell which torch and CUDA they were made with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from packaging.utils import canonicalize_name

from gpuenv.load.gitindex import repo_key
from gpuenv.load.pipline import ParsedRequirement
from gpuenv.plan import catalog, knowledge
from gpuenv.plan.pins import conflict

Place = Literal[
    "torch", "paired", "extension", "local-extension", "repo", "package", "python", "unplaced", "left"
]

METADATA, PER_CUDA, INSTALL, CONDA, LOCK, RECORD = 0, 1, 2, 3, 8, 9


@dataclass(frozen=True)
class Finding:
    """One thing the repository declares, where, and where it goes in the recipe."""

    place: Place
    #: What goes into the recipe ("torch==2.0.1", "./submodules/simple-knn", "einops").
    text: str
    #: "requirements.txt:3", "environment.yml:7", "submodules/simple-knn/setup.py".
    origin: str
    note: str = ""
    #: The requirements file of the recipe it stays in (so the recipe does not repeat it), or None.
    kept_in: str | None = None


@dataclass(frozen=True)
class Candidate:
    """A requirement line of some source, before it is placed."""

    text: str
    origin: str
    rank: int
    parsed: ParsedRequirement | None
    #: The requirements file of the recipe the line stays in (read at every plan), or None for an inline line.
    kept_in: str | None = None
    #: Declared by the package metadata: installed with the repository itself.
    metadata: bool = False
    #: The build an index on the line (or a CUDA file) asks for ("cu121").
    variant: str | None = None
    #: False: only checked against what is placed (a conda route's package where pip's files are used).
    place: bool = True


@dataclass(frozen=True)
class TorchClaim:
    """What one source says about torch: its pin, and the CUDA build it asks for."""

    specifier: str
    cuda: str | None
    origin: str
    rank: int


@dataclass
class Placer:
    root: Path
    #: Local extension folders (resolved) → their recipe path ("./csrc/ext").
    local_extensions: dict[Path, str]
    findings: list[Finding] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    claims: list[TorchClaim] = field(default_factory=list)
    #: What local extension folders' own setup.py files require of torch: they narrow the torch.
    folder_claims: list[TorchClaim] = field(default_factory=list)
    #: Extras of the repository its own files install it with ("-e .[train]").
    selected: list[str] = field(default_factory=list)
    _placed: dict[str, tuple[Candidate, int]] = field(default_factory=dict)

    def add(self, c: Candidate) -> None:
        parsed = c.parsed
        if parsed is not None and parsed.local is not None and _is_dir(parsed.local):
            self._local(c, parsed)
            return
        name = parsed.name if parsed is not None else None
        if parsed is not None and parsed.vcs:
            # A VCS URL of a catalogued project's repository is that project, whatever it is named.
            known = catalog.shipped().by_repository(repo_key(parsed.url or ""))
            if known is not None and known != name:
                c = replace(c, text=f"{known} @ {c.text}" if name is None else c.text)
                name = known
            name = name or vcs_name(parsed.url or "")
        if name is None:
            self._package(c)
            return
        if name == "torch":
            spec = parsed.specifier if parsed is not None else ""
            self.claims.append(TorchClaim(spec, c.variant or _local_label(spec), c.origin, c.rank))
            if c.rank < LOCK:
                # Every torch pin is shown: the recipe's torch is what the install sources say together.
                installing = any(claim.rank <= INSTALL for claim in self.claims)
                place: Place = "torch" if c.rank <= INSTALL or not installing else "left"
                note = "" if place == "torch" else "another route's pin: the install files decide torch"
                self.findings.append(Finding(place, c.text, c.origin, note, c.kept_in))
            return
        if c.rank >= LOCK:
            return
        if name in knowledge.paired_packages():
            self._once(c, name, "paired", f"{name} is paired with the chosen torch")
            return
        entry = catalog.catalog_entry(name)
        wheel = parsed is not None and (parsed.url or "").endswith(".whl")
        if entry.known and not wheel and entry.describes(c.text):
            self._once(c, name, "extension", "built without isolation against torch")
            return
        note = ""
        if entry.known and not entry.describes(c.text):
            note = f"not the catalog's {name} ({entry.distribution}): another project of that name"
        elif entry.known and wheel:
            note = "a prebuilt wheel by URL: installed as it is"
        self._once(c, name, "package", note)

    def _local(self, c: Candidate, parsed: ParsedRequirement) -> None:
        assert parsed.local is not None
        tree = _resolved(parsed.local)
        if tree == _resolved(self.root):
            self.selected += parsed.extras
            extras = f"[{','.join(parsed.extras)}]" if parsed.extras else ""
            self.findings.append(Finding("repo", "." + extras, c.origin, ""))
        elif tree in self.local_extensions:
            self.findings.append(
                Finding(
                    "local-extension",
                    self.local_extensions[tree],
                    c.origin,
                    "found as a local extension folder too",
                )
            )
        else:
            self._package(c)

    def _package(self, c: Candidate) -> None:
        if c.rank >= LOCK:
            return
        self.findings.append(
            Finding("repo" if c.metadata else "package", c.text, c.origin, self._kept(c), c.kept_in)
        )

    def _kept(self, c: Candidate) -> str:
        if c.metadata:
            return "a dependency of the package: installed with it"
        return "kept in its requirements file" if c.kept_in else ""

    def _once(self, c: Candidate, name: str, place: Place, note: str) -> None:
        """Place ``name`` from its best source; a later pin that cannot hold with it is a conflict."""
        earlier = self._placed.get(name)
        if earlier is None:
            if not c.place:
                return
            self._placed[name] = (c, len(self.findings))
            if c.metadata and place == "package":
                place, note = "repo", "a dependency of the package: installed with it"
            elif place == "package" and not note:
                note = self._kept(c)
            self.findings.append(Finding(place, c.text, c.origin, note, c.kept_in))
            return
        first, _ = earlier
        ours = c.parsed.specifier if c.parsed is not None else ""
        theirs = first.parsed.specifier if first.parsed is not None else ""
        if conflict(ours, theirs) or (
            c.parsed
            and first.parsed
            and c.parsed.url != first.parsed.url
            and (c.parsed.url or first.parsed.url)
        ):
            winner, loser = (first, c) if first.rank <= c.rank else (c, first)
            self.conflicts.append(
                f"{name}: {loser.text} ({loser.origin}) against {winner.text} ({winner.origin}): "
                f"{winner.origin.split(':')[0]} wins"
            )
            if winner is c and c.place:  # a better source came later (sources come best first: rarely)
                index = earlier[1]
                old = self.findings[index]
                self.findings[index] = Finding("left", old.text, old.origin, f"conflicts with {c.origin}")
                self._placed[name] = (c, len(self.findings))
                self.findings.append(Finding(place, c.text, c.origin, note, c.kept_in))
            elif c.place:
                self.findings.append(
                    Finding(
                        "left", c.text, c.origin, f"conflicts with {first.text} ({first.origin}), which wins"
                    )
                )
        elif c.kept_in is None and not c.metadata and c.place:
            # An inline duplicate (a conda pip: line) adds nothing the better source does not say.
            self.findings.append(Finding("left", c.text, c.origin, f"already from {first.origin}"))


def vcs_name(url: str) -> str | None:
    """The project a VCS URL is named after: #egg=, else the repository's name (…/NVIDIA/apex.git → apex)."""
    egg = re.search(r"[#&]egg=([A-Za-z0-9._-]+)", url)
    if egg:
        return str(canonicalize_name(egg[1]))
    path = url.split("#", 1)[0].split("?", 1)[0]
    path = re.sub(r"@[^/]*$", "", path.rstrip("/"))
    name = path.rsplit("/", 1)[-1].removesuffix(".git")
    return str(canonicalize_name(name)) if re.fullmatch(r"[A-Za-z0-9._-]+", name) else None


def _local_label(spec: str) -> str | None:
    match = re.search(r"\+(cu\d{2,3}|cpu|rocm[\d.]+)", spec)
    return match[1] if match else None


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False
