"""Finding a prebuilt wheel of an extension where its publisher puts them, and auditing it.

A source is a URL template (the catalog's ``prebuilt``, or a recipe's): a
find-links page (``https://data.pyg.org/whl/torch-{torch_release}.0+{variant}.html``),
a simple index, or one wheel's URL as the package's own setup.py builds it
(flash-attn's release files). Its placeholders are filled for the env
(:meth:`~gpuenv.cache.audit.Target.fields`, and ``{version}``, an exact pin's
version); the wheels it lists are sorted by :func:`~gpuenv.cache.audit.name_problem`
(no download for a name that cannot fit), the newest fitting few are
downloaded and audited, and the first that passes is handed back. Every
refusal is kept in words, so the plan and setup can say why gpuenv builds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from gpuenv.cache.audit import NameScheme, Target, Verdict, audit, name_problem
from gpuenv.cache.remote import IndexClient, RemoteError, ServerDown, redact
from gpuenv.plan.catalog import PrebuiltSource
from gpuenv.probe.indexhttp import Link

#: Wheels downloaded and audited per source at most: the newest that fit by name.
MAX_CANDIDATES = 4


@dataclass(frozen=True)
class PrebuiltResult:
    """A wheel that passed the audit (``wheel``), or None and every reason one did not."""

    wheel: Path | None
    verdict: Verdict | None = None
    url: str = ""
    refused: tuple[str, ...] = field(default=())

    def why_not(self) -> str:
        """One line: why no prebuilt wheel is used."""
        if not self.refused:
            return "no source lists a prebuilt wheel of it"
        more = f" (and {len(self.refused) - 3} more)" if len(self.refused) > 3 else ""
        return "; ".join(self.refused[:3]) + more


def source_url(source: PrebuiltSource, target: Target, version: str | None) -> str | None:
    """The source's URL for this env; None when it needs an exact version and the requirement has none."""
    if "{version}" in source.url and not version:
        return None
    try:
        return source.url.format(**target.fields(), version=version or "")
    except (KeyError, IndexError, ValueError):
        return None


def find_prebuilt(
    sources: Sequence[PrebuiltSource], target: Target, *, version: str | None, client: IndexClient,
    work_dir: Path, torch_libs: Sequence[Path], accept: Callable[[Path], str | None] | None = None,
) -> PrebuiltResult:
    """The first wheel of ``sources`` that passes the audit, downloaded into ``work_dir``.

    ``accept`` is the last check (importing it in the env): the problem it returns refuses the wheel.
    """
    refused: list[str] = []
    for source in sources:
        url = source_url(source, target, version)
        if url is None:
            refused.append(f"{source.url} needs an exact version (name==X.Y) to name its wheel")
            continue
        scheme = NameScheme(source.local)
        try:
            links = _links(client, url, target.name)
        except RemoteError as exc:
            refused.append(f"{redact(url)}: {exc.problem}")
            continue
        fitting, unfit = _by_name(links, target, scheme)
        if not fitting:
            refused.append(f"{redact(url)} lists no wheel for this env"
                           + (f" ({unfit[0]})" if unfit else ""))
            continue
        for link in fitting[:MAX_CANDIDATES]:
            verdict, wheel = _try(client, link, target, scheme, work_dir, torch_libs)
            if wheel is not None and verdict is not None and verdict.problem is None and accept is not None:
                problem = accept(wheel)
                if problem is not None:
                    wheel.unlink()
                    verdict, wheel = Verdict(link.file_name, problem, verdict.passed), None
            if wheel is not None and verdict is not None and verdict.problem is None:
                return PrebuiltResult(wheel, verdict, link.url, tuple(refused))
            refused.append(f"{link.file_name}: {verdict.problem if verdict else 'not downloaded'}")
    return PrebuiltResult(None, refused=tuple(refused))


def _links(client: IndexClient, url: str, name: str) -> list[Link]:
    if url.endswith(".whl"):
        return [Link(url.rsplit("/", 1)[-1], url)]
    return client.project_links(url, canonicalize_name(name))


def _by_name(links: Sequence[Link], target: Target, scheme: NameScheme) -> tuple[list[Link], list[str]]:
    """The links whose names fit, newest version first; the reasons of those that do not."""
    fitting, unfit = [], []
    for link in links:
        if link.yanked or not link.file_name.endswith(".whl"):
            continue
        problem = name_problem(link.file_name, target, scheme)
        if problem is None:
            fitting.append(link)
        elif canonicalize_name(link.file_name.split("-")[0]) == canonicalize_name(target.name):
            unfit.append(f"{link.file_name}: {problem}")
    fitting.sort(key=lambda link: _version(link.file_name), reverse=True)
    return fitting, unfit


def _version(file_name: str) -> Version:
    try:
        return parse_wheel_filename(file_name)[1]
    except InvalidWheelFilename:
        return Version("0")


def _try(client: IndexClient, link: Link, target: Target, scheme: NameScheme, work_dir: Path,
         torch_libs: Sequence[Path]) -> tuple[Verdict | None, Path | None]:
    try:
        wheel = client.download(link, work_dir)
    except ServerDown as exc:
        return Verdict(link.file_name, exc.problem), None
    except RemoteError as exc:
        return Verdict(link.file_name, exc.problem), None
    verdict = audit(wheel, target, scheme, torch_libs)
    if verdict.problem is not None:
        with contextlib.suppress(OSError):
            wheel.unlink()
        return verdict, None
    return verdict, wheel
