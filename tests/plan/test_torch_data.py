"""torch.toml: every fact says where it comes from (a repository at a tag and path, a PR, a release table,
a wheel read on a date), or says that no source was found."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gpuenv.plan.releases import shipped_data

#: The keys of a table that describe the data itself, not a fact about torch.
NOT_FACTS = {"source", "sources"}
#: What a source names: a repository at a ref and path, a PR or issue, the release matrix, a wheel read.
LOCATOR = re.compile(r"[\w.-]+/[\w.-]+@[\w./-]+(:| \()|\bPR \d+|\bissue \d+|RELEASE\.md|PyPI (wheel|index)|"
                     r"measured in|wheel torch-|METADATA")


def fact_tables() -> list[tuple[str, dict[str, Any]]]:
    data = shipped_data()
    return [(f"{group}.{name}", table) for group in ("arch_sets", "releases", "companions")
            for name, table in data[group].items()]


def sources_of(table: dict[str, Any]) -> list[str]:
    if "source" in table:
        return [table["source"]]
    return list(table.get("sources", []))


@pytest.mark.parametrize(("name", "table"), fact_tables(), ids=[name for name, _ in fact_tables()])
def test_every_fact_names_its_source(name: str, table: dict[str, Any]) -> None:
    sources = sources_of(table)
    assert sources and all(isinstance(s, str) and s.strip() for s in sources), f"{name} has no source"
    facts = set(table) - NOT_FACTS
    if "source" in table:
        covered = facts
    else:
        covered = set()
        for entry in sources:
            keys, _, _ = entry.partition(":")
            words = [k.strip() for k in keys.split(",")]
            if words == ["unverified"]:
                covered |= {f for f in facts if entry.removeprefix("unverified:").strip().startswith(f)}
            else:
                assert set(words) <= facts, f"{name}: {entry!r} names keys the table does not have"
                covered |= set(words)
    assert covered >= facts, f"{name}: no source for {sorted(facts - covered)}"
    for entry in sources:
        assert entry.startswith("unverified:") or LOCATOR.search(entry), f"{name}: {entry!r} names no source"


def test_the_data_says_when_it_was_checked() -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(shipped_data()["checked"]))


def test_every_arch_set_is_used_and_every_release_names_known_sets() -> None:
    data = shipped_data()
    used = {s for r in data["releases"].values()
            for s in [*r["variants"].values(), r.get("pypi_arch_set")] if s}
    assert used == set(data["arch_sets"])
