"""The whole check: for each catalog extension, get the build files of the versions worth reading,
derive their facts and compare them with the catalog.

A package whose source cannot be had (NVIDIA apex is git-only; an index that
does not answer) is reported as not checked, with the reason, and the others go
on: nothing fails silently and nothing stops the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gpuenv.catalogcheck.compare import Row, compare, versions_to_check
from gpuenv.catalogcheck.sdists import (
    Project,
    build_files_of_archive,
    build_files_of_tree,
    download,
    read_project,
)
from gpuenv.errors import GpuenvError, InputError
from gpuenv.plan.buildfiles.derive import derive
from gpuenv.plan.buildfiles.facts import BuildFacts
from gpuenv.plan.catalog import Catalog, shipped

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CheckOptions:
    #: The extensions to check (empty: all the catalog knows).
    only: tuple[str, ...] = ()
    #: Local trees or sdists to read instead of the index, by extension.
    sources: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    #: More versions to read from the index, by extension.
    also: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: The simple-API roots to ask.
    indexes: tuple[str, ...] = ()
    cert: str | None = None
    cache: Path = Path(".")
    timeout: float = 30.0
    #: The catalog checked (None: the one gpuenv ships).
    catalog: Catalog | None = None


@dataclass(frozen=True)
class Checked:
    """One version whose build files were read."""

    extension: str
    version: str
    why: str
    #: Where the files came from: the sdist and its sha256, or the local path.
    origin: str
    facts: BuildFacts
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class NotChecked:
    extension: str
    reason: str


@dataclass
class CheckResult:
    date: str
    indexes: tuple[str, ...]
    checked: list[Checked] = field(default_factory=list)
    not_checked: list[NotChecked] = field(default_factory=list)

    @property
    def rows(self) -> list[Row]:
        return [r for c in self.checked for r in c.rows]

    @property
    def disagreements(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "DISAGREE"]


def run_check(options: CheckOptions, *, date: str, progress: Progress | None = None) -> CheckResult:
    say = progress or (lambda _: None)
    result = CheckResult(date=date, indexes=options.indexes)
    catalog = options.catalog or shipped()
    for name in options.only or tuple(catalog.names):
        try:
            if name in options.sources:
                result.checked += [_local(catalog, name, path, say) for path in options.sources[name]]
            else:
                _from_index(catalog, name, options, result, say)
        except GpuenvError as exc:
            result.not_checked.append(NotChecked(name, f"not checked: {exc}"))
    return result


def _local(catalog: Catalog, name: str, path: Path, say: Progress) -> Checked:
    say(f"{name}: reading {path}")
    files = build_files_of_archive(path) if path.is_file() else build_files_of_tree(path)
    facts = derive(files)
    label = f"{facts.declared_version or '?'} ({path.name})"
    return Checked(name, label, "given with --source", str(path), facts,
                   tuple(compare(catalog, name, facts.declared_version, facts, label)))


def _from_index(catalog: Catalog, name: str, options: CheckOptions, result: CheckResult,
                say: Progress) -> None:
    say(f"{name}: asking {', '.join(options.indexes) or 'no index'}")
    project = read_project(name, list(options.indexes), timeout=options.timeout, cert=options.cert)
    for answer in project.asked:
        say(f"  {answer}")
    picked = versions_to_check(catalog.version_ranges(name), project.sdists)
    picked += [(v, "asked for with --also") for v in options.also.get(name, ())
               if v not in {p for p, _ in picked}]
    if not picked:
        result.not_checked.append(NotChecked(name, _unreachable(name, project)))
        return
    for version, why in picked:
        file = project.sdists.get(version)
        if file is None:
            result.not_checked.append(
                NotChecked(name, f"not checked: {version}: no sdist on the configured indexes"))
            continue
        say(f"{name} {version}: reading {file.filename}")
        archive = download(file, options.cache, timeout=options.timeout, cert=options.cert, progress=say)
        files = build_files_of_archive(archive, options.cache / "build-files" / f"{project.name}-{version}")
        facts = derive(files)
        if not _builds_torch_extension(facts):
            result.not_checked.append(NotChecked(
                name, f"not checked: source not reachable (give --source {name}=PATH): {file.filename} "
                      "on the index builds no torch extension (another project of that name?)"))
            return
        origin = f"{file.filename} (sha256 {file.sha256 or 'not given by the index'})"
        rows = tuple(compare(catalog, name, version, facts))
        result.checked.append(Checked(name, version, why, origin, facts, rows))


def _builds_torch_extension(facts: BuildFacts) -> bool:
    return bool(facts.cuda_extensions) or facts.ninja.where is not None


def _unreachable(name: str, project: Project) -> str:
    return (f"not checked: source not reachable (give --source {name}=PATH): "
            f"no release sdist on the {len(project.asked)} indexes pip is configured with")


def parse_assignments(values: Sequence[str], *, option: str, separator: str) -> dict[str, list[str]]:
    """``["apex=/src/apex", "apex=/src/old"]`` → ``{"apex": ["/src/apex", "/src/old"]}``."""
    found: dict[str, list[str]] = {}
    for value in values:
        name, sep, rest = value.partition(separator)
        if not sep or not name.strip() or not rest.strip():
            example = "/path/to/apex" if separator == "=" else "2.7.3"
            raise InputError(f"{option} {value!r}: write NAME{separator}VALUE",
                             hint=f"e.g. {option} apex{separator}{example}")
        found.setdefault(name.strip(), []).append(rest.strip())
    return found
