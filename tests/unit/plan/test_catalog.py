"""The extension catalog's loader and the provenance of every fact in gpuenv's data files.

The facts themselves are checked against the packages' build files by the knowledge
checker (``python -m gpuenv.catalogcheck``); these tests hold the mechanism that reads
them and the rule that no fact is written down without where it comes from.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

import pytest

from gpuenv.plan.catalog import ArchEntry, Catalog, archs_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATA = resources.files("gpuenv.plan").joinpath("data")
FILES = sorted(p.name for p in DATA.iterdir() if p.name.endswith(".toml"))


def _load(name: str) -> dict[str, Any]:
    return tomllib.loads(DATA.joinpath(name).read_text(encoding="utf-8"))


def _fact_tables(name: str, data: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, table) of every table in a data file that states facts."""
    if name == "extensions.toml":
        for ext, table in data.items():
            yield ext, table
            for i, older in enumerate(table.get("older", [])):
                yield f"{ext}.older[{i}]", older
    elif name == "torch.toml":
        # Each arch set, release and paired package is a table of its own (tests/unit/plan/test_torch_data.py
        # holds each of their facts to a source).
        for key, table in data.items():
            if isinstance(table, Mapping):
                yield from ((f"{key}.{r}", t) for r, t in table.items())
    else:
        yield from ((key, table) for key, table in data.items() if isinstance(table, Mapping))


@pytest.mark.parametrize("name", FILES)
def test_every_fact_table_names_its_source(name: str) -> None:
    data = _load(name)
    unsourced = [where for where, table in _fact_tables(name, data)
                 if not (table.get("sources") or table.get("source"))]
    assert not unsourced, f"{name}: tables without `sources`: {unsourced}"


@pytest.mark.parametrize("name", FILES)
def test_no_fact_is_marked_known_but_unchecked(name: str) -> None:
    # [K] meant "common knowledge, not verified": such a fact is checked, or listed in `unverified`.
    text = DATA.joinpath(name).read_text(encoding="utf-8")
    assert "[K]" not in text


def test_an_arch_entry_applies_by_nvccs_release_as_setup_py_files_compare_it() -> None:
    # They parse "release 12.9, V12.9.86" into 12.9: nvcc 12.9.86 is "<= 12.9".
    upto = ArchEntry("7.0", "<=12.9")
    assert upto.applies("12.9.86") and upto.applies("12.1") and not upto.applies("13.0.88")
    since = ArchEntry("9.0", ">=11.8")
    assert since.applies("11.8") and not since.applies("11.7.99")
    assert ArchEntry("8.0").applies("11.0") and ArchEntry("9.0", ">=11.8").applies(None)


def test_archs_for_keeps_the_packages_order_once_each() -> None:
    entries = (ArchEntry("7.0", "<=12.9"), ArchEntry("8.0"), ArchEntry("9.0", ">=11.8"), ArchEntry("8.0"))
    assert archs_for(entries, "12.6") == ("7.0", "8.0", "9.0")
    assert archs_for(entries, "13.0") == ("8.0", "9.0")
    assert archs_for(entries, "11.7") == ("7.0", "8.0")


FAKE = {
    "generic": {"arch_knob": "TORCH_CUDA_ARCH_LIST", "job_memory_mib": 1000, "sources": ["g"]},
    "pkg": {
        "versions": ">=2.0", "sources": ["pkg@2.0:setup.py"], "cxx_std": 17, "stable_abi": "2.10",
        "fixed_archs": ["8.0", {"arch": "9.0", "nvcc": ">=11.8"}], "force_build": {"PKG_FORCE": "TRUE"},
        "older": [
            {"versions": ">=1.0,<2.0", "sources": ["pkg@1.0:setup.py"], "stable_abi": "",
             "fixed_archs": [], "arch_knob": "PKG_ARCHS", "arch_format": "nodot",
             "arch_choices": ["8.0", {"arch": "10.0", "nvcc": ">=12.8"}]},
        ],
    },
}


def test_an_older_table_inherits_what_it_does_not_say_and_never_the_newest_ones_sources() -> None:
    cat = Catalog(FAKE)
    new, old = cat.entry("pkg", "2.1"), cat.entry("pkg", "1.5")
    assert new.fixed_archs_for("12.0") == ("8.0", "9.0") and new.arch_knob is None
    assert new.stable_abi == "2.10" and new.cxx_std == 17
    assert old.sources == ("pkg@1.0:setup.py",)
    assert old.cxx_std == 17 and old.force_build == {"PKG_FORCE": "TRUE"}  # inherited
    assert old.stable_abi is None  # "" undoes the newest table's value
    assert old.arch_knob == "PKG_ARCHS" and old.fixed_archs == ()
    assert old.choices_for("12.6") == ("8.0",) and old.choices_for("12.8") == ("8.0", "10.0")


def test_a_version_no_table_describes_gets_the_generic_defaults_and_an_unknown_one_the_newest() -> None:
    cat = Catalog(FAKE)
    assert not cat.entry("pkg", "0.9").known
    assert cat.entry("pkg", "0.9").arch_knob == "TORCH_CUDA_ARCH_LIST"
    assert cat.entry("pkg").versions == ">=2.0"
    assert cat.entry("pkg", "not a version").versions == ">=2.0"
    assert cat.version_ranges("pkg") == [">=2.0", ">=1.0,<2.0"]
    assert not cat.entry("other").known
