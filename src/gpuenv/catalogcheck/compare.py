"""The catalog against the build files: which versions to read, and the rows for one version.

:func:`versions_to_check` picks the versions worth reading (the newest, and both sides of
every edge of a version range the catalog names); :func:`compare` sets a version's
:class:`~gpuenv.plan.buildfiles.facts.BuildFacts` against the catalog's entry for it (read through
:mod:`~gpuenv.catalogcheck.catalogview`, the one adapter to the catalog's schema), one
:class:`~gpuenv.catalogcheck.rows.Row` per fact (:mod:`~gpuenv.catalogcheck.rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from gpuenv.catalogcheck.catalogview import catalog_view
from gpuenv.catalogcheck.rows import VERDICTS, FactRows, Row, Verdict
from gpuenv.plan.buildfiles.facts import BuildFacts
from gpuenv.plan.catalog import Catalog

__all__ = ["VERDICTS", "Row", "Verdict", "compare", "versions_to_check"]


def versions_to_check(ranges: Sequence[str], available: Iterable[str]) -> list[tuple[str, str]]:
    """(version, why) for the newest release and, for every range, the versions on both sides of each edge."""
    ordered = sorted({v for v in available if _release(v)}, key=Version)
    if not ordered:
        return []
    picked: dict[str, list[str]] = {ordered[-1]: ["newest"]}
    for text in ranges:
        try:
            spec = SpecifierSet(text)
        except InvalidSpecifier:
            continue
        if not text:
            continue
        for older, newer in zip(ordered, ordered[1:]):
            inside_older = spec.contains(older, prereleases=True)
            if inside_older == spec.contains(newer, prereleases=True):
                continue
            picked.setdefault(older, []).append(f"last {'in' if inside_older else 'before'} {text}")
            picked.setdefault(newer, []).append(f"first {'after' if inside_older else 'in'} {text}")
    return [(v, "; ".join(picked[v])) for v in sorted(picked, key=Version, reverse=True)]


def _release(text: str) -> bool:
    try:
        return not Version(text).is_prerelease
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return False


def compare(catalog: Catalog, name: str, version: str | None, facts: BuildFacts,
            label: str | None = None) -> list[Row]:
    """Rows for every fact of ``facts`` against ``catalog``'s entry for ``name`` ``version``."""
    view = catalog_view(catalog, name, version)
    shown = label or version or "?"
    if not view.known:
        return [Row(name, shown, "catalog entry", "no table describes this version", "-",
                    "not in catalog", "-")]
    rows = FactRows(name, shown, view, facts)
    for fact in (rows.arch, rows.fixed_archs, rows.min_nvcc, rows.cxx_std, rows.stable_abi,
                 rows.switches, rows.env, rows.extensions, rows.jobs, rows.threads, rows.gpu, rows.toolkit,
                 rows.options):
        fact()
    return rows.rows


