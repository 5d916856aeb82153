"""What the package indexes say about torch today: read before planning, like the probe, and cached.

For torch, torchvision and torchaudio, each ordinary index (pip's index-url
and extra-index-urls) is asked for the project's page (PEP 691 JSON, or PEP
503 HTML); each variant index the plan may use (the recipe's or
``--torch-index`` template, one per variant) is asked for torch's. From the
pages: which versions exist and which Pythons and platforms each has wheels
for. From inside a few wheels, by HTTP Range (:mod:`gpuenv.probe.remotezip`),
only for what the shipped data does not know: a new torch release's
``torch/version.py`` (its PyPI variant) and ``all.h`` (its C++ standard), a
new torchvision's or torchaudio's METADATA (its ``Requires-Dist`` on torch).

The cache (``CACHE_DIR/index/torch-index.json``, written atomically) keeps
each page's summary with the time it was read, refreshed when older than
``ttl`` or on ``refresh``, and each wheel's facts for good (a file on an index
never changes). An index that does not answer costs its timeout once, gives
one warning, and is not asked again for ``retry_after``; its last listing, else
the shipped data, is used. ``offline`` asks nothing and uses the cache as it is.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from gpuenv.errors import OutputError
from gpuenv.inputs import UnreadableInput, parse_json, parse_python, read_input
from gpuenv.outputs import path_inside, write_atomic
from gpuenv.plan.indexfacts import PROJECTS, FileFacts, IndexFacts, Listing, platform_of, python_of
from gpuenv.plan.releases import LINUX_X86_64, NEVER, KnowledgeSource, TorchReleases
from gpuenv.probe.indexhttp import PageError, get_page, parse_links
from gpuenv.probe.remotezip import RangeSource, RemoteZipError, read_members

CACHE_SCHEMA = 1
#: The files read inside a torch wheel: its build's version and CUDA, and the C++ standard its headers need.
VERSION_PY = "torch/version.py"
ALL_H = "torch/include/torch/csrc/api/include/torch/all.h"
#: At most this many wheels are opened per refresh (the newest first): a burst of releases stays cheap.
MAX_NEW_FILES = 12


@dataclass(frozen=True)
class IndexQuery:
    """The indexes to ask: the ordinary ones, and the variant indexes the plan may use."""

    ordinary: tuple[str, ...]
    #: The variant index template ("https://download.pytorch.org/whl/{variant}"), or None for none.
    variant_template: str | None = None
    variants: tuple[str, ...] = ()
    #: A CA bundle (pip's ``cert``).
    cafile: str | None = None

    def group(self, page: tuple[str, str, str | None]) -> str:
        """The index a page is shown under: its own, or the variant template for a variant index's."""
        return self.variant_template if page[2] is not None and self.variant_template else page[0]

    def pages(self) -> list[tuple[str, str, str | None]]:
        """(index, project, variant) of every page to read."""
        pages: list[tuple[str, str, str | None]] = [(url, p, None) for url in self.ordinary for p in PROJECTS]
        if self.variant_template:
            pages += [(self.variant_template.replace("{variant}", v), "torch", v) for v in self.variants]
        return pages


@dataclass(frozen=True)
class ReadOptions:
    #: Where the cache file goes: the wheel cache's directory (``index/`` below it).
    cache_dir: Path
    refresh: bool = False
    offline: bool = False
    #: Seconds one index may take to answer.
    timeout: float = 4.0
    ttl: timedelta = timedelta(hours=24)
    retry_after: timedelta = timedelta(hours=1)
    now: datetime | None = None
    #: Told what is being read when the network is asked (a line each).
    progress: Callable[[str], None] | None = None
    opener: Callable[..., Any] | None = field(default=None, compare=False)


def cache_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / "index" / "torch-index.json"


def torch_releases(query: IndexQuery, shipped: TorchReleases, options: ReadOptions) -> TorchReleases:
    """The shipped releases with what the indexes say (read, or cached): what the planner takes."""
    from gpuenv.plan.indexfacts import merge_index_facts

    return merge_index_facts(shipped, read_index_facts(query, shipped, options))


def read_index_facts(query: IndexQuery, shipped: TorchReleases, options: ReadOptions) -> IndexFacts:
    now = (options.now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    cache = _Cache.load(cache_path(options.cache_dir))
    warnings = list(cache.warnings)
    pages = query.pages()
    due = [] if options.offline else [p for p in pages if cache.due(p[:2], now, options)]
    answers: dict[tuple[str, str], Listing | PageError] = {}
    if due:
        _say(options, f"reading torch releases from {len(due)} page(s) of "
                      f"{', '.join(sorted({query.group(p) for p in due}))}")
        floors = _floors(shipped)
        answers = _run_all({p[:2]: partial(_read_listing, p, floors, query, options, now) for p in due},
                           options.timeout + 1.0)
    listings, notes = [], {}
    failed: dict[str, tuple[str, list[str]]] = {}
    for index, project, variant in pages:
        key = (index, project)
        answer = answers.get(key) if key in {p[:2] for p in due} else None
        if key in {p[:2] for p in due} and answer is None:
            answer = PageError(f"no answer within {options.timeout:g} s")
        if isinstance(answer, Listing):
            cache.listings[key] = answer
            cache.failures.pop(key, None)
            notes[key] = "read now"
        elif isinstance(answer, PageError):
            cache.failures[key] = (_iso(now), answer.problem)
            failed.setdefault(query.group((index, project, variant)), (answer.problem, []))[1].append(index)
            notes[key] = f"did not answer: {answer.problem}"
        elif options.offline:
            notes[key] = "offline: the cached listing" if key in cache.listings else "offline: not read"
        elif key in cache.failures:
            notes[key] = f"did not answer at {cache.failures[key][0]}: not asked again until " \
                         f"{_iso(_parse_time(cache.failures[key][0]) + options.retry_after)}"
        else:
            notes[key] = "cached"
        if key in cache.listings:
            listings.append(replace(cache.listings[key], variant=variant))
    for group, (problem, indexes) in failed.items():
        cached = any(k[0] in indexes and k in cache.listings for k in notes)
        fallback = "what it said when last read" if cached else \
            f"gpuenv's shipped data (checked {shipped.sources[0].date if shipped.sources else 'unknown'})"
        warnings.append(f"the index {group} did not answer ({problem}): planning with {fallback}; "
                        f"gpuenv asks it again in {_hours(options.retry_after)}, or now with --refresh")
    files = dict(cache.files)
    wanted = [] if options.offline else _new_files(listings, shipped, files)
    if wanted:
        _say(options, f"reading {len(wanted)} new wheel file(s) by range requests")
        tasks = {(url, kind): partial(_read_file, url, kind, options, query.cafile) for url, kind in wanted}
        read = _run_all(tasks, 3 * options.timeout + 1.0)
        for (url, _), result in read.items():
            if isinstance(result, FileFacts):
                files[url] = cache.files[url] = result
        unread = [url for url, kind in wanted if not isinstance(read.get((url, kind)), FileFacts)]
        if unread:
            problems = {str(read.get((u, k)) or f"no answer within {3 * options.timeout + 1.0:g} s")
                        for u, k in wanted if u in unread}
            warnings.append(f"could not read inside {len(unread)} wheel(s) ({'; '.join(sorted(problems))}): "
                            "their facts are assumed from the nearest release gpuenv knows")
    if due or wanted or cache.warnings:
        cache.save()
    return IndexFacts(tuple(listings), files, _sources(query, pages, cache, notes), tuple(warnings))


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


def _say(options: ReadOptions, text: str) -> None:
    if options.progress is not None:
        options.progress(text)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a time without its zone")
    return moment


def _floors(shipped: TorchReleases) -> dict[str, Version]:
    """The oldest version of each project worth listing: older ones pair with no torch gpuenv knows."""
    floors = {"torch": min(Version(r) for r in shipped.releases)}
    for name, companions in shipped.companions.items():
        floors[name] = min(Version(c.version) for c in companions)
    return floors


def _run_all(tasks: Mapping[Any, Callable[[], Any]], deadline_s: float) -> dict[Any, Any]:
    """Run every task at once in daemon threads; what has not finished by the deadline is left out."""
    results: dict[Any, Any] = {}

    def run(key: Any, task: Callable[[], Any]) -> None:
        try:
            results[key] = task()
        except (PageError, RemoteZipError) as exc:
            results[key] = exc
        except Exception as exc:  # an answer no index should give (not JSON, not a zip): its words
            results[key] = PageError(f"an answer gpuenv cannot read ({type(exc).__name__}: {exc})")

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in tasks.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + deadline_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(results)


# -- the pages ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    filename: str
    url: str


def _read_listing(page: tuple[str, str, str | None], floors: Mapping[str, Version], query: IndexQuery,
                  options: ReadOptions, now: datetime) -> Listing:
    index, project, variant = page
    url = index.rstrip("/") + f"/{project}/"
    try:
        answer = get_page(url, timeout=options.timeout, cafile=query.cafile)
    except PageError as exc:
        if not exc.missing:
            raise
        return Listing(index, project, variant, _iso(now))  # the index answered: it has no such project
    # A file on disk only from an index on disk: a remote page cannot send the reader to local files.
    local = answer.url.startswith("file:")
    files = [f for f in _parse_page(answer.body, answer.content_type, answer.url)
             if f.url.startswith("file:") == local and f.url.startswith(("http:", "https:", "file:"))]
    return _summary(index, project, variant, files, floors.get(project), _iso(now))


def _parse_page(body: bytes, content_type: str, url: str) -> list[_File]:
    links = parse_links(body, content_type, url)
    return [_File(link.file_name, link.url) for link in links if not link.yanked]


def _summary(index: str, project: str, variant: str | None, files: list[_File], floor: Version | None,
             read: str) -> Listing:
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    versions: dict[str, dict[str, set[str]]] = {}
    samples: dict[str, tuple[int, str, str]] = {}
    for file in files:
        try:
            name, version, _, tags = parse_wheel_filename(file.filename)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if canonicalize_name(name) != canonicalize_name(project) or version.is_prerelease or \
                version.is_devrelease or (floor is not None and version < floor):
            continue
        public = str(Version(version.public))
        platforms = versions.setdefault(public, {})
        linux = False
        for tag in tags:
            platform = platform_of(tag.platform)
            python = python_of(tag.interpreter, tag.abi)
            into = platforms.setdefault(platform, set())
            if python is not None:
                into.add(python)
            linux = linux or platform == LINUX_X86_64
        # The file read for the version: a Linux x86_64 wheel (torch's CUDA build), else any.
        rank = (0 if linux else 1, file.filename, file.url)
        if public not in samples or rank < samples[public]:
            samples[public] = rank
    wheels = {v: {p: frozenset(py) for p, py in platforms.items()} for v, platforms in versions.items()}
    return Listing(index, project, variant, read, wheels, {v: rank[2] for v, rank in samples.items()})


# -- inside the wheels -----------------------------------------------------------------------------------


def _new_files(listings: list[Listing], shipped: TorchReleases, known: Mapping[str, FileFacts]
               ) -> list[tuple[str, str]]:
    """(url, project) of each wheel whose insides the shipped data lacks and the cache does not hold."""
    from packaging.utils import canonicalize_name

    newest_release = max(Version(r) for r in shipped.releases)
    newest_pair = {name: max(Version(c.version) for c in cs) for name, cs in shipped.companions.items()}
    wanted: dict[str, tuple[Version, str]] = {}
    newest_of_release: dict[str, tuple[Version, str]] = {}
    for listing in listings:
        if listing.variant is not None:
            continue
        project = canonicalize_name(listing.project)
        for text, url in listing.samples.items():
            version = Version(text)
            if project == "torch" and Version(f"{version.major}.{version.minor}") > newest_release:
                minor = f"{version.major}.{version.minor}"
                if minor not in newest_of_release or version > newest_of_release[minor][0]:
                    newest_of_release[minor] = (version, url)
            elif project in newest_pair and version > newest_pair[project]:
                wanted[url] = (version, project)
    for version, url in newest_of_release.values():
        wanted[url] = (version, "torch")
    fresh = [(v, url, project) for url, (v, project) in wanted.items() if url not in known]
    return [(url, project) for _, url, project in sorted(fresh, reverse=True)[:MAX_NEW_FILES]]


def _read_file(url: str, project: str, options: ReadOptions, cafile: str | None) -> FileFacts:
    source = RangeSource(url, timeout=options.timeout, cafile=cafile, opener=options.opener)
    if project == "torch":
        members = read_members(source, lambda name: name in (VERSION_PY, ALL_H))
        if VERSION_PY not in members:
            raise RemoteZipError(f"{url.rsplit('/', 1)[-1]} has no {VERSION_PY}")
        values = version_py_values(members[VERSION_PY].decode("utf-8", "replace"))
        return FileFacts(torch_version=values.get("__version__"), cuda=values.get("cuda"),
                         cxx_standard=cxx_standard(members.get(ALL_H, b"").decode("utf-8", "replace")))
    members = read_members(source, lambda name: re.fullmatch(r"[^/]+\.dist-info/METADATA", name) is not None,
                           limit=1)
    if not members:
        raise RemoteZipError(f"{url.rsplit('/', 1)[-1]} has no METADATA")
    return FileFacts(requires_torch=requires_torch(next(iter(members.values())).decode("utf-8", "replace")))


def version_py_values(text: str) -> dict[str, str]:
    """The string constants torch/version.py assigns (``__version__``, ``cuda``), read without running it."""
    import ast

    try:
        tree = parse_python(text, "version.py")
    except SyntaxError:
        return {}
    values = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            for target in targets:
                if isinstance(target, ast.Name):
                    values[target.id] = value.value
    return values


def cxx_standard(all_h: str) -> int | None:
    """The standard ``#error C++NN or later compatible compiler is required`` in torch's all.h names."""
    match = re.search(r"#\s*error\s+\"?C\+\+([0-9]{2}) or later", all_h)
    return int(match.group(1)) if match else None


def requires_torch(metadata: str) -> str:
    """What a METADATA requires of torch ("==2.5.1", ">=2.14.0"; "" when nothing)."""
    from email.parser import HeaderParser

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    for line in HeaderParser().parsestr(metadata).get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        applies = req.marker is None or req.marker.evaluate({"extra": ""})
        if canonicalize_name(req.name) == "torch" and applies:
            return str(req.specifier)
    return ""


# -- the cache --------------------------------------------------------------------------------------------


@dataclass
class _Cache:
    path: Path
    listings: dict[tuple[str, str], Listing] = field(default_factory=dict)
    #: (index, project) → (when it was last tried, why it did not answer).
    failures: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    files: dict[str, FileFacts] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> _Cache:
        cache = cls(path)
        try:
            data = parse_json(read_input(path))  # bounded: no 1e999, no recursion
            if not isinstance(data, dict) or data.get("schema") != CACHE_SCHEMA:
                raise ValueError("not a cache file of this gpuenv")
            for raw in data.get("listings", []):
                listing = Listing.from_json(raw)
                _parse_time(listing.read)
                cache.listings[(listing.index, listing.project)] = listing
            for raw in data.get("failures", []):
                index, project, tried, problem = (str(x) for x in raw)
                _parse_time(tried)
                cache.failures[(index, project)] = (tried, problem)
            for url, raw in dict(data.get("files", {})).items():
                cache.files[str(url)] = FileFacts.from_json(raw)
        except UnreadableInput as exc:
            if not exc.missing:
                cache.warnings.append(f"ignored the index cache {path}: {exc.problem}")
            return cls(path, warnings=cache.warnings)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return cls(path, warnings=[f"ignored the index cache {path}: {exc or type(exc).__name__}"])
        return cache

    def due(self, key: tuple[str, str], now: datetime, options: ReadOptions) -> bool:
        """Whether the page ``key`` is to be read now."""
        if options.refresh:
            return True
        failure = self.failures.get(key)
        if failure is not None and now - _parse_time(failure[0]) < options.retry_after:
            return False
        listing = self.listings.get(key)
        return listing is None or not timedelta(0) <= now - _parse_time(listing.read) < options.ttl

    def save(self) -> None:
        data = {
            "schema": CACHE_SCHEMA,
            "listings": [x.to_json() for x in self.listings.values()],
            "failures": [[i, p, t, why] for (i, p), (t, why) in self.failures.items()],
            "files": {url: facts.to_json() for url, facts in self.files.items()},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # In its folder of the cache, not through a link out of it (a shared cache's other users).
            target = path_inside(self.path.parent, self.path.name)
            write_atomic(target, json.dumps(data, separators=(",", ":")).encode("utf-8"))
        except (OSError, OutputError):
            # A read-only cache directory: the facts are still used, just not kept.
            pass


def _sources(query: IndexQuery, pages: list[tuple[str, str, str | None]], cache: _Cache,
             notes: Mapping[tuple[str, str], str]) -> tuple[KnowledgeSource, ...]:
    """One source per ordinary index and one for the variant indexes, with the oldest date used."""
    groups: dict[str, list[tuple[str, str, str | None]]] = {}
    for page in pages:
        groups.setdefault(query.group(page), []).append(page)
    sources = []
    for where, members in groups.items():
        used = [cache.listings[p[:2]].read for p in members if p[:2] in cache.listings]
        summary = sorted({notes[p[:2]] for p in members})
        if any(p[2] for p in members):
            variants = ", ".join(p[2] or "" for p in members)
            summary = [f"{variants}: {'; '.join(summary)}"]
        sources.append(KnowledgeSource("index", where, min(used) if used else NEVER, "; ".join(summary)))
    return tuple(sources)
