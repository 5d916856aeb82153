"""Whether two requirements of one distribution can hold together (``supervision==0.6.0`` and
``supervision>=0.22.0`` cannot).

Without an index to list the versions, the versions the two specifiers name
are the candidates: if none of them (nor a version just above each) satisfies
both, no version does, for every specifier PEP 440 allows except contrived
ranges between two adjacent releases.
"""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version


def conflict(first: str, second: str) -> bool:
    """Whether no version satisfies both specifiers ("==0.6.0", ">=0.22.0"); "" allows every version."""
    try:
        a, b = SpecifierSet(first), SpecifierSet(second)
    except InvalidSpecifier:
        return False
    if not str(a) or not str(b):
        return False
    candidates: list[Version] = []
    for spec in (*a, *b):
        text = spec.version.removesuffix(".*")
        try:
            version = Version(text)
        except ValueError:  # InvalidVersion, or more digits than int() converts
            return False  # "===anything": cannot reason about it
        candidates += [version, _next(version)]
        if version.post is None and version.dev is None and version.local is None:
            candidates.append(Version(f"{version.public}.post9999"))
    both = a & b
    return not any(both.contains(v, prereleases=True) for v in candidates)


def _next(version: Version) -> Version:
    """A version above every release of ``version``'s series (2.0 → 2.1 … for "==2.0.*" against ">=2.0.5")."""
    release = list(version.release) or [0]
    release[-1] += 1
    return Version(".".join(str(p) for p in release))
