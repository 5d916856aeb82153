"""torch.toml: every fact says where it comes from (a repository at a tag and path, a PR, a release table,
a wheel read on a date), or says that no source was found."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gpuenv.plan.releases import shipped_data

#: The keys of a table that say where its facts come from, not facts.
PROVENANCE = {"sources", "unverified"}
#: What a source names: a repository at a ref and path, a PR or issue, the release matrix, a wheel read.
LOCATOR = re.compile(r"[\w.-]+/[\w.-]+@[\w./-]+(:| \()|\bPR \d+|\bissue \d+|RELEASE\.md|PyPI (wheel|index)|"
                     r"measured in|wheel torch-|METADATA")


def fact_tables() -> list[tuple[str, dict[str, Any]]]:
    data = shipped_data()
    return [(f"{group}.{name}", table) for group in ("arch_sets", "releases", "companions")
            for name, table in data[group].items()]


def covered(entry: str, facts: set[str]) -> set[str]:
    """The facts a source entry is for: the keys it starts with ("pypi_default, python: …"), else all."""
    keys = {k.strip() for k in entry.partition(":")[0].split(",")}
    return keys if keys <= facts else set(facts)


@pytest.mark.parametrize(("name", "table"), fact_tables(), ids=[name for name, _ in fact_tables()])
def test_every_fact_names_its_source_or_says_it_is_unverified(name: str, table: dict[str, Any]) -> None:
    sources, unverified = list(table.get("sources", [])), list(table.get("unverified", []))
    assert all(isinstance(s, str) and s.strip() for s in sources + unverified), name
    facts = set(table) - PROVENANCE
    found = set().union(*(covered(s, facts) for s in sources))
    # An unverified fact is named by the entry's first word: "variants (…)".
    found |= {f for f in facts for u in unverified if u.split(" ", 1)[0].strip(":,") == f}
    assert found >= facts, f"{name}: no source for {sorted(facts - found)}"
    for entry in sources:
        assert LOCATOR.search(entry), f"{name}: {entry!r} names no source"


def test_the_data_says_when_it_was_checked() -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(shipped_data()["checked"]))


def test_every_arch_set_is_used_and_every_release_names_known_sets() -> None:
    data = shipped_data()
    used = {s for r in data["releases"].values()
            for s in [*r["variants"].values(), r.get("pypi_arch_set")] if s}
    assert used == set(data["arch_sets"])
