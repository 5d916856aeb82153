"""Reading torch releases from the indexes: against a local fake of the PyTorch index and PyPI.

The fake lists torch 2.16.0 (newer than gpuenv's data; wheels for Python 3.12 and 3.13 only, its
version.py saying cu134), torchvision 0.30.0 (requiring torch>=2.16.0) and a variant index per
CUDA variant. Each test states what the reader must ask, what it must not, and what the plan
made from it says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gpuenv.plan.hardware import Gpu, Hardware
from gpuenv.plan.planner import PlanOptions, plan
from gpuenv.plan.recipespec import Recipe
from gpuenv.plan.releases import TorchReleases, shipped_releases
from gpuenv.plan.torchspec import TorchSpec
from gpuenv.probe.remotezip import TAIL_BYTES, RangeSource, RemoteZipError, read_members
from gpuenv.probe.torchindex import IndexQuery, ReadOptions, cache_path, read_index_facts, torch_releases
from gpuenv.render import plan_text
from tests.unit.probe.fakeindex import FakeIndex, companion_wheel, silent_host, torch_wheel

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)
TORCH_216 = ("torch-2.16.0-cp312-cp312-manylinux_2_28_x86_64.whl",
             "torch-2.16.0-cp313-cp313-manylinux_2_28_x86_64.whl")
VARIANTS = ("cu126", "cu130", "cu132")


@pytest.fixture
def fake() -> Iterator[FakeIndex]:
    index = FakeIndex()
    for name in TORCH_216:
        index.add("torch", name, torch_wheel("2.16.0+cu134", "13.4"))
    index.add("torch", "torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl",
              torch_wheel("2.15.0+cu132", "13.2"))
    index.add("torchvision", "torchvision-0.30.0-py3-none-any.whl",
              companion_wheel("torchvision", "0.30.0", ">=2.16.0"))
    index.add("torchvision", "torchvision-0.29.2-py3-none-manylinux_2_28_x86_64.whl",
              companion_wheel("torchvision", "0.29.2", ">=2.14.0"))
    index.add("torchaudio", "torchaudio-2.11.1-py3-none-manylinux_2_28_x86_64.whl",
              companion_wheel("torchaudio", "2.11.1", ">=2.11"))
    # The variant indexes: 2.16 has a cu130 build, not a cu126 one.
    for variant in VARIANTS:
        index.add("torch", f"torch-2.15.0+{variant}-cp311-cp311-manylinux_2_28_x86_64.whl",
                  torch_wheel(f"2.15.0+{variant}", "13.0"), index=f"whl/{variant}")
    index.add("torch", "torch-2.16.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl",
              torch_wheel("2.16.0+cu130", "13.0"), index="whl/cu130")
    with index.serving():
        yield index


def query(fake: FakeIndex, **changes: Any) -> IndexQuery:
    base = {"ordinary": (fake.simple,), "variant_template": fake.variant_template, "variants": VARIANTS}
    base.update(changes)
    return IndexQuery(**base)


def options(tmp_path: Path, **changes: Any) -> ReadOptions:
    base: dict[str, Any] = {"cache_dir": tmp_path / "cache", "now": NOW, "timeout": 2.0}
    base.update(changes)
    return ReadOptions(**base)


def recipe(version: str = ">=2.1", *, packages: tuple[str, ...] = ("torchvision",),
           python: str | None = None) -> Recipe:
    return Recipe(path=Path("/work/envs/test.toml"), name="test", description="",
                  torch=TorchSpec(version=version, packages=packages), python=python)


H100 = Hardware(driver_version="580.65.06", cuda_driver_version="13.0",
                gpus=(Gpu(0, "NVIDIA H100 80GB HBM3", "GPU-0", "9.0", 81559),),
                cpu_count=16, memory_total_mib=65536, memory_available_mib=60000, toolkits=(), source="test")


def planned(releases: TorchReleases, *, python: str | None = None, rec: Recipe | None = None,
            index: str | None = None) -> Any:
    return plan(rec or recipe(), H100, PlanOptions(releases=releases, python_version=python,
                                                   platform="linux_x86_64", torch_index=index))


# -- a release newer than gpuenv's data ---------------------------------------------------------------


def test_a_release_newer_than_the_data_is_planned_with_the_nearest_ones_facts_marked_assumed(
        fake: FakeIndex, tmp_path: Path) -> None:
    releases = torch_releases(query(fake), shipped_releases(), options(tmp_path))
    result = planned(releases, index=fake.variant_template)
    assert result.torch_version == "2.16.0" and result.variant == "cu130"
    assert result.index_url == fake.variant_template.replace("{variant}", "cu130")
    new = releases.releases["2.16"]
    # From the indexes: cu130's index lists it, cu126's does not; PyPI's wheel says cu134 and C++20.
    assert set(new.variants) == {"cu130", "cu134"} and new.pypi_default == "cu134" and new.cxx_standard == 20
    # Assumed, from the newest release the data knows: the arch sets (cu134 as cu132's).
    assumed = result.knowledge.assumed
    assert any("arch sets of cu134 (as cu132), cu130 (from torch 2.15)" in fact for fact in assumed)
    assert new.variants["cu130"] == shipped_releases().releases["2.15"].variants["cu130"]
    data = json.loads(json.dumps(result.to_json()))
    assert data["knowledge"]["assumed"] == list(result.knowledge.assumed)
    assert [s["kind"] for s in data["knowledge"]["sources"]] == ["shipped", "index", "index"]
    text = plan_text(result)
    assert "assumed     torch 2.16 is newer than gpuenv's data" in text
    assert f"{fake.simple} (read 2026-12-04T09:00:00Z; read now)" in text


def test_a_new_release_is_paired_by_what_its_pairs_require(fake: FakeIndex, tmp_path: Path) -> None:
    releases = torch_releases(query(fake), shipped_releases(), options(tmp_path))
    assert planned(releases).torch_packages == ("torchvision==0.30.0",)
    # torchvision 0.30.0 requires torch>=2.16.0: the older torch keeps the newest pair that admits it.
    old = planned(releases, rec=recipe("==2.15.*"))
    assert old.torch_packages == ("torchvision==0.29.2",)


def test_a_release_without_a_wheel_for_the_envs_python_is_passed_over_with_the_reason(
        fake: FakeIndex, tmp_path: Path) -> None:
    releases = torch_releases(query(fake), shipped_releases(), options(tmp_path))
    result = planned(releases, python="3.11")
    assert result.torch_version == "2.15.0"
    assert result.passed_over == ("torch 2.16.0: no wheel for Python 3.11 on linux_x86_64 "
                                  "(it has wheels for Python 3.12, 3.13 on linux_x86_64)",)
    # The recipe's python chooses when the interpreter is not known yet.
    assert planned(releases, rec=recipe(python="==3.13.*")).torch_version == "2.16.0"


def test_no_variant_index_answering_takes_the_variants_from_the_nearest_release(
        fake: FakeIndex, tmp_path: Path) -> None:
    with silent_host() as dead:
        releases = torch_releases(query(fake, variant_template=dead + "/{variant}"), shipped_releases(),
                                  options(tmp_path, timeout=0.5))
    new = releases.releases["2.16"]
    assert set(new.variants) == {"cu126", "cu130", "cu132", "cu134"}
    assert any("its CUDA variants cu132, cu130, cu126 (from torch 2.15: no variant index answered)" in fact
               for fact in new.assumed)


# -- what a refresh costs -------------------------------------------------------------------------------


def test_a_refresh_asks_each_page_once_and_opens_only_the_new_wheels(fake: FakeIndex, tmp_path: Path) -> None:
    read_index_facts(query(fake), shipped_releases(), options(tmp_path))
    pages = {path: n for path, n in fake.requests.items() if path.endswith("/")}
    assert len(pages) == 3 + len(VARIANTS) and set(pages.values()) == {1}
    opened = {path.rsplit("/", 1)[-1] for path in fake.requests if path.startswith("/files/")}
    # One wheel of the new release (not each of its Pythons), the new torchvision; nothing gpuenv knows.
    assert len(opened & set(TORCH_216)) == 1 and "torchvision-0.30.0-py3-none-any.whl" in opened
    assert len(opened) == 2
    assert fake.file_requests() <= 2 * 5  # a few range requests each, never the whole file
    assert fake.bytes_sent < 2 * 200_000


def test_cached_facts_make_no_request_and_stale_listings_reread_only_the_pages(
        fake: FakeIndex, tmp_path: Path) -> None:
    first = read_index_facts(query(fake), shipped_releases(), options(tmp_path))
    asked = sum(fake.requests.values())
    again = read_index_facts(query(fake), shipped_releases(), options(tmp_path, now=NOW + timedelta(hours=2)))
    assert sum(fake.requests.values()) == asked
    assert again.listings == first.listings and again.files == first.files
    assert {s.note for s in again.sources if s.kind == "index"} >= {"cached"}
    # A day later the pages are read again; a wheel's insides never change, so no wheel is opened.
    files_before = fake.file_requests()
    read_index_facts(query(fake), shipped_releases(), options(tmp_path, now=NOW + timedelta(hours=25)))
    assert fake.page_requests() == 2 * (3 + len(VARIANTS)) and fake.file_requests() == files_before


def test_refresh_rereads_the_pages_within_the_ttl(fake: FakeIndex, tmp_path: Path) -> None:
    read_index_facts(query(fake), shipped_releases(), options(tmp_path))
    read_index_facts(query(fake), shipped_releases(), options(tmp_path, refresh=True))
    assert fake.page_requests() == 2 * (3 + len(VARIANTS))


# -- an index that does not answer ---------------------------------------------------------------------


def _bounded(function: Any) -> Any:
    """Run ``function``; fail rather than hang if it never returns (a guard, not a measure)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    thread.join(60)
    assert result, "the reader never returned"
    return result[0]


def test_an_unreachable_index_gives_one_warning_and_the_plan_uses_the_shipped_data(tmp_path: Path) -> None:
    with silent_host() as dead:
        q = IndexQuery(ordinary=(dead + "/simple",), variant_template=dead + "/whl/{variant}",
                       variants=VARIANTS)
        releases = _bounded(lambda: torch_releases(q, shipped_releases(), options(tmp_path, timeout=0.5)))
        (ordinary_warning, variant_warning) = releases.warnings
        assert ordinary_warning.startswith(
            f"the index {dead}/simple did not answer (no answer from 127.0.0.1")
        assert "planning with gpuenv's shipped data (checked 2026-12-04)" in ordinary_warning
        assert variant_warning.startswith(f"the index {dead}/whl/{{variant}} did not answer")
        result = planned(releases)
        assert result.torch_version == "2.15.0" and result.torch_packages == ("torchvision==0.29.2",)
        assert releases.warnings[0] in result.warnings
        assert "never read" in plan_text(result) and "checked 2026-12-04" in plan_text(result)
        # Within the hour it is not asked again: no warning, the plan says when it last failed.
        soon = options(tmp_path, timeout=0.5, now=NOW + timedelta(minutes=5))
        later = _bounded(lambda: torch_releases(q, shipped_releases(), soon))
        assert later.warnings == ()
        assert any("not asked again until 2026-12-04T10:00:00Z" in s.note for s in later.sources)


def test_an_unreachable_index_falls_back_on_what_it_said_last(fake: FakeIndex, tmp_path: Path) -> None:
    read_index_facts(query(fake), shipped_releases(), options(tmp_path))
    with silent_host() as dead:
        cache = cache_path(tmp_path / "cache")
        cache.write_text(cache.read_text().replace(fake.url, dead))
        q = query(fake, ordinary=(dead + "/simple",), variant_template=dead + "/whl/{variant}")
        releases = torch_releases(q, shipped_releases(), options(tmp_path, timeout=0.5, refresh=True))
    assert "2.16" in releases.releases
    assert all("planning with what it said when last read" in w for w in releases.warnings)


# -- the cache file -------------------------------------------------------------------------------------


HOSTILE = {
    "not JSON": "{ this is not json",
    "not this gpuenv's": json.dumps({"schema": 99}),
    "wrong types": json.dumps({"schema": 1, "listings": [{"index": 1, "project": [], "read": None}]}),
    "a bad time": json.dumps({"schema": 1, "listings": [
        {"index": "x", "project": "torch", "variant": None, "read": "yesterday", "versions": {},
         "samples": {}}]}),
    "a bad version": json.dumps({"schema": 1, "listings": [
        {"index": "x", "project": "torch", "variant": None, "read": "2026-12-04T08:00:00Z",
         "versions": {"not a version": {}}, "samples": {}}]}),
    "a bad C++ standard": json.dumps({"schema": 1, "files": {"u": {"cxx_standard": "20; rm -rf /"}}}),
    "nested deep": "[" * 100_000,
    "a list": "[]",
}


@pytest.mark.parametrize("content", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_corrupt_or_hostile_cache_file_is_ignored_and_replaced(fake: FakeIndex, tmp_path: Path,
                                                                  content: str) -> None:
    path = cache_path(tmp_path / "cache")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    facts = read_index_facts(query(fake), shipped_releases(), options(tmp_path))
    assert any(w.startswith(f"ignored the index cache {path}") for w in facts.warnings)
    assert any(x.project == "torch" and "2.16.0" in x.versions for x in facts.listings)
    # Rewritten whole: the next run uses it and asks nothing.
    asked = sum(fake.requests.values())
    assert read_index_facts(query(fake), shipped_releases(), options(tmp_path)).warnings == ()
    assert sum(fake.requests.values()) == asked


def test_a_cache_that_is_not_a_file_is_ignored(fake: FakeIndex, tmp_path: Path) -> None:
    path = cache_path(tmp_path / "cache")
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    facts = read_index_facts(query(fake), shipped_releases(), options(tmp_path))
    assert any("not a regular file" in w for w in facts.warnings)


# -- wheels read by range -------------------------------------------------------------------------------


def test_a_file_host_that_ignores_range_is_not_downloaded(fake: FakeIndex, tmp_path: Path) -> None:
    fake.ranges = False
    source = RangeSource(f"{fake.url}/files/{TORCH_216[0]}", timeout=2.0)
    with pytest.raises(RemoteZipError, match="ignores Range requests"):
        read_members(source, lambda name: name == "torch/version.py")
    assert source.requests == 1 and source.received <= TAIL_BYTES + 1
    releases = torch_releases(query(fake), shipped_releases(), options(tmp_path))
    assert any("ignores Range requests" in w for w in releases.warnings)
    # Unread, the new release's PyPI variant and C++ standard are assumed from the nearest release.
    assumed = releases.releases["2.16"].assumed
    assert any("C++20 (from torch 2.15: its headers were not read)" in fact for fact in assumed)


# -- the command --------------------------------------------------------------------------------------


def _gpuenv(tmp_path: Path, fake: FakeIndex, *args: str, offline: bool) -> subprocess.CompletedProcess[str]:
    # Python 3.12: torch 2.16 has wheels for it (the interpreter running the tests may be another).
    (tmp_path / "recipe.toml").write_text('[env]\npython = "3.12"\n[torch]\nversion = ">=2.1"\n'
                                          'packages = ["torchvision"]\n')
    (tmp_path / "pip.conf").write_text(f"[global]\nindex-url = {fake.simple}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "GPUENV_"))}
    env.update(PIP_CONFIG_FILE=str(tmp_path / "pip.conf"), PIP_EXTRA_INDEX_URL="", PIP_CONSTRAINT="",
               GPUENV_CACHE_DIR=str(tmp_path / "c"), GPUENV_TORCH_INDEX=fake.variant_template)
    if offline:
        env["GPUENV_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-m", "gpuenv", "plan", "-r", str(tmp_path / "recipe.toml"),
                           "--gpu", "H100", *args], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_plan_reads_the_configured_indexes_first(fake: FakeIndex, tmp_path: Path) -> None:
    done = _gpuenv(tmp_path, fake, "--json", offline=False)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["torch_version"] == "2.16.0" and data["torch_packages"] == ["torchvision==0.30.0"]
    assert data["knowledge"]["assumed"] and "reading torch releases from" in done.stderr
    assert fake.page_requests() > 0


@pytest.mark.parametrize("how", ["--offline", "GPUENV_OFFLINE=1"])
def test_offline_asks_no_index(fake: FakeIndex, tmp_path: Path, how: str) -> None:
    flags = [how] if how.startswith("--") else []
    done = _gpuenv(tmp_path, fake, "--json", *flags, offline=how != "--offline")
    assert done.returncode == 0, done.stderr
    assert sum(fake.requests.values()) == 0
    data = json.loads(done.stdout)
    assert data["torch_version"] == "2.15.0"
    (source,) = data["knowledge"]["sources"]
    assert source["kind"] == "shipped" and source["note"] == "offline: no index asked"


def test_the_constraints_come_from_pips_constraint_files(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from gpuenv.env.pipconfig import PipSources
    from gpuenv.setup.indexquery import installer_constraints

    caps = tmp_path / "constraints.txt"
    caps.write_text("# the machine's caps\ntorch<=2.14.1  # on disk\nnumpy<2\n-r other.txt\n"
                    "torchvision<=0.29.1; python_version < '3'\nnot a requirement!\n")
    found = installer_constraints(PipSources(constraints=(str(caps), str(tmp_path / "missing.txt"))))
    assert [(c.requirement, c.source) for c in found] == [("torch<=2.14.1", str(caps))]


def test_a_remote_page_cannot_send_the_reader_to_local_files(fake: FakeIndex, tmp_path: Path) -> None:
    local = tmp_path / "torch-2.17.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    local.write_bytes(torch_wheel("2.17.0+cu134", "13.4"))
    fake.add("torch", local.name, b"")
    fake.urls[local.name] = local.as_uri()
    facts = read_index_facts(query(fake), shipped_releases(), options(tmp_path))
    assert not any("2.17.0" in x.versions for x in facts.listings)
    assert any("2.16.0" in x.versions for x in facts.listings)
