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


#: The CUDA builds of each release that PyTorch validates and advertises, as pytorch/test-infra states
#: them on the release's own branch: tools/scripts/generate_binary_build_matrix.py, CUDA_ARCHES_DICT["test"]
#: (the channel of the release's candidates). Transcribed 2026-12-04 from the repository's snapshot:
#: release branch -> (commit, line, CUDA versions). torch.toml's variants must be these; builds PyTorch
#: made without advertising them (cu129 of 2.9-2.14) are named in the release's `unverified`.
TEST_INFRA_RELEASE_CUDA = {
    "2.1": ("5c9a8cd2", 30, ("11.8", "12.1")),
    "2.2": ("594c42b7", 30, ("11.8", "12.1")),
    "2.3": ("8eb9c9e5", 30, ("11.8", "12.1")),
    "2.4": ("c6b59bac", 28, ("11.8", "12.1", "12.4")),
    "2.5": ("b6da80aa", 28, ("11.8", "12.1", "12.4")),
    "2.6": ("89df92f1", 32, ("11.8", "12.4", "12.6")),
    "2.7": ("b4870dd2", 31, ("11.8", "12.6", "12.8")),
    "2.8": ("e521879f", 31, ("12.6", "12.8", "12.9")),
    "2.9": ("f3ee5ce0", 31, ("12.6", "12.8", "13.0")),
    "2.10": ("f8efba23", 31, ("12.6", "12.8", "13.0")),
    "2.11": ("2121ac63", 39, ("12.6", "12.8", "13.0")),
    "2.12": ("a0027c56", 39, ("12.6", "13.0", "13.2")),
    "2.13": ("d499353b", 54, ("12.6", "13.0", "13.2")),
    "2.14": ("c840391a", 48, ("12.6", "13.0", "13.2")),
}


@pytest.mark.parametrize("release", sorted(TEST_INFRA_RELEASE_CUDA))
def test_the_variants_of_a_release_are_those_its_release_matrix_advertises(release: str) -> None:
    commit, line, cuda = TEST_INFRA_RELEASE_CUDA[release]
    table = shipped_data()["releases"][release]
    assert set(table["variants"]) == {"cu" + v.replace(".", "") for v in cuda}
    # The table cites the branch, commit and line it was checked against.
    assert any(f"pytorch/test-infra@release/{release} ({commit})" in s and f".py:{line}," in s
               for s in table["sources"]), release


def test_every_release_with_a_build_matrix_branch_is_checked_against_it() -> None:
    # 1.13 and 2.0 predate test-infra's release branches (their variants: RELEASE.md's matrix); 2.15 has
    # none in the snapshot read, and its variants are marked unverified.
    unchecked = set(shipped_data()["releases"]) - set(TEST_INFRA_RELEASE_CUDA)
    assert unchecked == {"1.13", "2.0", "2.15"}
    assert any(u.startswith("variants") for u in shipped_data()["releases"]["2.15"]["unverified"])
