"""The wheel cache: keys, atomic stores, refusal of altered wheels, locks, nearest, prune.

Wheels here are a few bytes with a ``.whl`` name: the cache never looks inside.
Faults and contention are real: child processes (``python -c CHILD``) are
SIGKILLed mid-store or while holding a lock, and two of them race for one key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gpuenv.cache.key import CACHE_SCHEMA, CacheKey, binary_knobs
from gpuenv.cache.keylock import CacheLockTimeout, LockWait
from gpuenv.cache.store import CacheError
from gpuenv.cache.wheels import CacheEntry, WheelCache, default_cache_dir
from gpuenv.cache.words import human_age, human_size
from gpuenv.env.abi import ABI_FIELDS, EnvAbi
from gpuenv.errors import GpuenvError

KEY = CacheKey(
    name="flash-attn",
    version="2.8.3.post2",
    source_sha256="ab" * 32,
    abi=EnvAbi(python_tag="cp311", platform="linux_x86_64", torch_version="2.13.0+cu130", torch_cuda="13.0",
               cxx11_abi=True),
    arch_list=("9.0",),
    nvcc_version="13.0",
    knobs=(("FLASH_ATTN_CUDA_ARCHS", "90"),),
)

#: One changed value per field of the key.
CHANGED = {
    "name": "flash_attn_fork",
    "version": "2.8.3",
    "source_sha256": "cd" * 32,
    "python_tag": "cp312",
    "platform": "linux_aarch64",
    "torch_version": "2.13.0+cu128",
    "torch_cuda": None,
    "cxx11_abi": False,
    "arch_list": ("8.0", "9.0"),
    "nvcc_version": "12.8",
    "knobs": (("FLASH_ATTN_CUDA_ARCHS", "80;90"),),
}

# A child process acting on the cache: argv = root, key JSON, action, action's arguments.
CHILD = r"""
import json, os, sys, time
from pathlib import Path
from gpuenv.cache.key import CacheKey
from gpuenv.cache.wheels import WheelCache

root, key_json, action, *args = sys.argv[1:]
cache = WheelCache(Path(root))
key = CacheKey.from_json(json.loads(key_json))

def announce(path):
    Path(path).write_text(str(os.getpid()))

if action == "store-crash":  # store, and hang at one stage until killed
    stage, ready, wheel = args
    def checkpoint(name):
        if name == stage:
            announce(ready)
            time.sleep(60)
    cache.store(key, Path(wheel), _checkpoint=checkpoint)
elif action == "hold":  # hold the key's lock until killed
    (ready,) = args
    with cache.lock(key):
        announce(ready)
        time.sleep(60)
elif action == "build":  # what setup does for one extension
    marker, wheel = args
    waited = []
    with cache.lock(key, on_wait=waited.append, timeout=30) as info:
        if cache.lookup(key).hit:
            outcome = "cached"
        else:
            with open(marker, "a") as f:
                f.write(f"build {os.getpid()}\n")
            time.sleep(1.0)
            cache.store(key, Path(wheel))
            outcome = "built"
    print(outcome, "waited" if waited and info.waited else "free")
"""


@pytest.fixture
def cache(tmp_path: Path) -> WheelCache:
    return WheelCache(tmp_path / "cache")


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    return make_wheel(tmp_path, b"wheel bytes" * 100)


WHEEL_NAME = "flash_attn-2.8.3.post2-cp311-cp311-linux_x86_64.whl"


def make_wheel(directory: Path, content: bytes, name: str = WHEEL_NAME) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(content)
    return path


def key_with(**changes: object) -> CacheKey:
    """KEY with these fields changed, the ABI's among them."""
    abi = {name: changes.pop(name) for name in ABI_FIELDS if name in changes}
    return dataclasses.replace(KEY, abi=dataclasses.replace(KEY.abi, **abi), **changes)  # type: ignore[arg-type]


def spawn(cache: WheelCache, key: CacheKey, action: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(cache.path), json.dumps(key.to_json()), action, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"child never wrote {path}")
        time.sleep(0.02)


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def age(entry: CacheEntry, *, created_days: float = 0, used_days: float = 0) -> None:
    """Pretend ``entry`` was stored and last used that many days ago."""
    now = datetime.now(timezone.utc)
    meta = json.loads((entry.path / "meta.json").read_text())
    meta["created"] = (now - timedelta(days=created_days)).isoformat()
    (entry.path / "meta.json").write_text(json.dumps(meta))
    used = (now - timedelta(days=used_days)).timestamp()
    os.utime(entry.path / "last_used", (used, used))


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# -- the key ------------------------------------------------------------------------------


def test_every_field_of_the_key_is_exercised() -> None:
    assert set(CHANGED) == set(KEY.to_json())


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_digest_changes_with_each_field(field: str) -> None:
    changed = key_with(**{field: CHANGED[field]})
    assert changed.digest != KEY.digest
    assert re.fullmatch(r"[0-9a-f]{64}", changed.digest)


#: KEY's digest as gpuenv has always computed it: the wheels caches hold stay hits only while it holds.
KEY_DIGEST = "1e595ddaf292092fa86afac471e2e114a37807c9fa3eb27b40a1288a31d66c75"


def test_the_digest_is_pinned_and_is_the_sha256_of_the_schema_and_the_fields() -> None:
    assert KEY.digest == KEY_DIGEST
    canonical = json.dumps(
        {"schema": 1, "name": "flash-attn", "version": "2.8.3.post2", "source_sha256": "ab" * 32,
         "python_tag": "cp311", "platform": "linux_x86_64", "torch_version": "2.13.0+cu130",
         "torch_cuda": "13.0", "cxx11_abi": True, "arch_list": ["9.0"], "nvcc_version": "13.0",
         "knobs": [["FLASH_ATTN_CUDA_ARCHS", "90"]]},
        sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == KEY_DIGEST
    assert CACHE_SCHEMA == 1
    assert CacheKey.from_json(json.loads(json.dumps(KEY.to_json()))) == KEY


def test_the_schema_is_hashed_into_the_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gpuenv.cache.key.CACHE_SCHEMA", CACHE_SCHEMA + 1)
    assert KEY.digest != KEY_DIGEST


def test_parallelism_and_paths_do_not_change_the_key() -> None:
    base = {"FLASH_ATTN_CUDA_ARCHS": "90", "TORCH_CUDA_ARCH_LIST": "9.0"}
    noisy = {
        **base,
        "MAX_JOBS": "64",
        "NVCC_THREADS": "8",
        "NVTE_BUILD_MAX_JOBS": "4",
        "CMAKE_BUILD_PARALLEL_JOBS": "3",
        "CUDA_HOME": "/usr/local/cuda-13.0",
        "PATH": "/usr/bin",
    }
    assert binary_knobs(noisy) == (("FLASH_ATTN_CUDA_ARCHS", "90"), ("TORCH_CUDA_ARCH_LIST", "9.0"))
    assert key_with(knobs=binary_knobs(noisy)).digest == key_with(knobs=binary_knobs(base)).digest
    assert key_with(knobs=binary_knobs({**base, "FLASH_ATTENTION_FORCE_BUILD": "TRUE"})).digest != (
        key_with(knobs=binary_knobs(base)).digest
    )


def test_describe_says_the_key_in_words() -> None:
    words = key_with(arch_list=("8.0", "9.0"), torch_cuda=None, version="").describe()
    assert words["torch"] == "2.13.0+cu130"
    assert words["archs"] == "8.0;9.0"
    assert words["torch cuda"] == "none (CPU build)"
    assert words["C++11 ABI"] == "on"
    assert words["knobs"] == "FLASH_ATTN_CUDA_ARCHS=90"
    assert words["version"] == "(from source)"
    assert all(isinstance(v, str) for v in words.values())


# -- store and lookup ---------------------------------------------------------------------


def test_store_then_lookup_hits(cache: WheelCache, wheel: Path) -> None:
    assert not cache.lookup(KEY).hit
    stored = cache.store(KEY, wheel)
    d = KEY.digest
    assert stored.path == cache.path / "v1" / d[:2] / d
    assert stored.wheel == stored.path / wheel.name
    assert stored.wheel.read_bytes() == wheel.read_bytes()
    assert stored.size == wheel.stat().st_size
    meta = json.loads((stored.path / "meta.json").read_text())
    assert meta["described"]["torch"] == "2.13.0+cu130"
    assert meta["key"]["arch_list"] == ["9.0"]
    assert meta["wheel"] == wheel.name and meta["size"] == stored.size
    assert len(meta["wheel_sha256"]) == 64 and meta["gpuenv_version"]

    result = cache.lookup(KEY)
    assert result.hit and result.refused is None
    assert result.entry is not None and result.entry.wheel == stored.wheel
    assert not cache.lookup(key_with(torch_version="2.12.0+cu130")).hit
    assert list((cache.path / "v1" / ".tmp").iterdir()) == []


def test_a_hit_records_its_use(cache: WheelCache, wheel: Path) -> None:
    entry = cache.store(KEY, wheel)
    age(entry, created_days=3, used_days=3)
    before = cache.entries()[0].last_used
    cache.lookup(KEY)
    after = cache.entries()[0].last_used
    assert after - before > timedelta(days=2)


def test_storing_a_missing_wheel_is_an_error(cache: WheelCache, tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="no such file") as caught:
        cache.store(KEY, tmp_path / "nope.whl")
    assert isinstance(caught.value, GpuenvError)


def test_altered_wheel_is_refused_moved_aside_and_rebuilt(cache: WheelCache, wheel: Path) -> None:
    entry = cache.store(KEY, wheel)
    entry.wheel.write_bytes(b"WHEEL BYTES" * 100)  # same size, other bytes

    result = cache.lookup(KEY)
    assert not result.hit
    assert result.refused is not None and "sha256" in result.refused and "altered" in result.refused
    assert result.quarantined is not None and result.quarantined.parent == cache.path / "v1" / ".corrupt"
    assert (result.quarantined / wheel.name).read_bytes() == b"WHEEL BYTES" * 100
    assert not entry.path.exists()

    again = cache.lookup(KEY)
    assert not again.hit and again.refused is None
    cache.store(KEY, wheel)
    assert cache.lookup(KEY).hit


@pytest.mark.parametrize("damage", ["truncate", "delete wheel", "delete meta", "garble meta", "other key"])
def test_damaged_entries_are_refused(cache: WheelCache, wheel: Path, damage: str) -> None:
    entry = cache.store(KEY, wheel)
    meta = entry.path / "meta.json"
    if damage == "truncate":
        entry.wheel.write_bytes(b"w")
    elif damage == "delete wheel":
        entry.wheel.unlink()
    elif damage == "delete meta":
        meta.unlink()
    elif damage == "garble meta":
        meta.write_text("{not json")
    else:
        data = json.loads(meta.read_text())
        data["key"]["torch_version"] = "2.0.0+cu118"
        meta.write_text(json.dumps(data))
    result = cache.lookup(KEY)
    assert not result.hit and result.refused
    assert not cache.lookup(KEY).hit


def test_store_when_another_process_published_first(cache: WheelCache, tmp_path: Path) -> None:
    first = make_wheel(tmp_path / "first", b"first")
    second = make_wheel(tmp_path / "second", b"second")

    def race(stage: str) -> None:
        if stage == "before-publish":
            cache.store(KEY, first)  # the other process wins the rename

    entry = cache.store(KEY, second, _checkpoint=race)
    assert entry.wheel.read_bytes() == b"first"
    assert cache.lookup(KEY).hit
    assert list((cache.path / "v1" / ".tmp").iterdir()) == []


def test_store_replaces_a_corrupt_winner(cache: WheelCache, tmp_path: Path) -> None:
    bad = cache.store(KEY, make_wheel(tmp_path / "a", b"good"))
    bad.wheel.write_bytes(b"evil")
    entry = cache.store(KEY, make_wheel(tmp_path / "b", b"fresh"))
    assert entry.wheel.read_bytes() == b"fresh"
    assert cache.lookup(KEY).hit


@pytest.mark.parametrize("stage", ["temp-created", "wheel-copied", "meta-written", "before-publish"])
def test_a_store_killed_midway_leaves_no_entry(
    cache: WheelCache, wheel: Path, tmp_path: Path, stage: str, children: list[subprocess.Popen[str]]
) -> None:
    ready = tmp_path / "ready"
    child = spawn(cache, KEY, "store-crash", stage, ready, wheel)
    children.append(child)
    wait_for(ready, child)
    kill(child)

    assert not cache.lookup(KEY).hit
    assert cache.entries() == []
    assert not cache.entry_dir(KEY).exists()
    stale = list((cache.path / "v1" / ".tmp").iterdir())
    assert len(stale) == 1

    assert cache.store(KEY, wheel).wheel.read_bytes() == wheel.read_bytes()
    assert cache.lookup(KEY).hit
    old = time.time() - 2 * 3600
    os.utime(stale[0], (old, old))
    cache.prune()
    assert list((cache.path / "v1" / ".tmp").iterdir()) == []
    assert cache.lookup(KEY).hit


# -- locks --------------------------------------------------------------------------------


def test_lock_free_key_does_not_wait(cache: WheelCache) -> None:
    calls: list[LockWait] = []
    with cache.lock(KEY, on_wait=calls.append) as info:
        assert not info.waited
    assert calls == []
    with cache.lock(key_with(version="1")), cache.lock(KEY, timeout=0.1):
        pass  # other keys do not contend


def test_lock_timeout_names_the_holder(cache: WheelCache) -> None:
    calls: list[LockWait] = []
    with cache.lock(KEY), pytest.raises(CacheLockTimeout) as caught, cache.lock(
        KEY, timeout=0.3, on_wait=calls.append
    ):
        pass
    assert len(calls) == 1
    assert calls[0].holder is not None and calls[0].holder.pid == os.getpid()
    assert calls[0].describe().startswith("waiting for another process building flash-attn (pid ")
    assert "flash-attn" in str(caught.value) and f"pid {os.getpid()}" in str(caught.value)


def test_two_setups_build_a_key_once(
    cache: WheelCache, wheel: Path, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    marker = tmp_path / "builds.txt"
    procs = [spawn(cache, KEY, "build", marker, wheel) for _ in range(2)]
    children.extend(procs)
    outputs = sorted(proc.communicate(timeout=60)[0].strip() for proc in procs)
    assert [proc.returncode for proc in procs] == [0, 0]
    assert len(marker.read_text().splitlines()) == 1
    assert [out.split()[0] for out in outputs] == ["built", "cached"]  # "waited" unless it started late
    assert len(cache.entries()) == 1


def test_second_setup_waits_for_the_first_then_uses_its_wheel(
    cache: WheelCache, wheel: Path, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    marker = tmp_path / "builds.txt"
    first = spawn(cache, KEY, "build", marker, wheel)
    children.append(first)
    wait_for(marker, first)  # the first holds the lock and is building
    second = spawn(cache, KEY, "build", marker, wheel)
    children.append(second)
    assert first.communicate(timeout=60)[0].strip() == "built free"
    assert second.communicate(timeout=60)[0].strip() == "cached waited"
    assert marker.read_text().splitlines() == [f"build {first.pid}"]


def test_a_killed_lock_holder_releases_the_lock(
    cache: WheelCache, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    ready = tmp_path / "ready"
    holder = spawn(cache, KEY, "hold", ready)
    children.append(holder)
    wait_for(ready, holder)
    calls: list[LockWait] = []
    with pytest.raises(CacheLockTimeout), cache.lock(KEY, timeout=0.3, on_wait=calls.append):
        pass
    assert calls[0].holder is not None and calls[0].holder.pid == holder.pid

    kill(holder)
    started = time.monotonic()
    with cache.lock(KEY, timeout=5):
        assert time.monotonic() - started < 2


@pytest.mark.parametrize("timeout", [None, 15.0], ids=["blocking", "polling"])
def test_a_waiter_gets_the_lock_when_the_holder_is_killed(
    cache: WheelCache, tmp_path: Path, children: list[subprocess.Popen[str]], timeout: float | None
) -> None:
    ready = tmp_path / "ready"
    holder = spawn(cache, KEY, "hold", ready)
    children.append(holder)
    wait_for(ready, holder)
    killer = threading.Timer(0.5, os.kill, (holder.pid, signal.SIGKILL))
    killer.start()
    with cache.lock(KEY, timeout=timeout) as info:  # the kernel releases a dead holder's lock
        assert info.waited
    killer.join()
    holder.communicate()
    assert holder.returncode == -signal.SIGKILL


# -- nearest ------------------------------------------------------------------------------


def test_nearest_names_the_torch_difference(cache: WheelCache, wheel: Path) -> None:
    old = key_with(torch_version="2.4.1+cu121", torch_cuda="12.1")
    cache.store(old, wheel)
    cache.store(key_with(torch_version="2.4.1+cu121", torch_cuda="12.1", arch_list=("8.0",)), wheel)
    cache.store(key_with(name="apex", torch_version="2.5.1+cu124", torch_cuda="12.4"), wheel)

    found = cache.nearest(key_with(torch_version="2.5.1+cu124", torch_cuda="12.4"))
    assert found is not None
    entry, differences = found
    assert entry.key == old
    assert differences == ["torch 2.4.1+cu121 → 2.5.1+cu124", "torch cuda 12.1 → 12.4"]


def test_nearest_words_for_each_kind_of_difference(cache: WheelCache, wheel: Path) -> None:
    cache.store(key_with(arch_list=("9.0",), nvcc_version="12.1"), wheel)
    wanted = key_with(
        arch_list=("8.0", "9.0"),
        nvcc_version="12.4",
        source_sha256="cd" * 32,
        knobs=(("FLASH_ATTN_CUDA_ARCHS", "80;90"), ("NVCC_APPEND_FLAGS", "-g")),
    )
    found = cache.nearest(wanted)
    assert found is not None
    assert found[1] == [
        "source sha256 abababab… → cdcdcdcd…",
        "archs 9.0 → 8.0;9.0",
        "nvcc 12.1 → 12.4",
        "knob FLASH_ATTN_CUDA_ARCHS 90 → 80;90",
        "knob NVCC_APPEND_FLAGS (unset) → -g",
    ]


def test_nearest_without_the_same_distribution(cache: WheelCache, wheel: Path) -> None:
    assert cache.nearest(KEY) is None
    cache.store(key_with(name="apex"), wheel)
    assert cache.nearest(KEY) is None
    cache.store(KEY, wheel)
    found = cache.nearest(KEY)
    assert found is not None and found[1] == []


# -- entries and prune --------------------------------------------------------------------


def test_entries_and_summary(cache: WheelCache, tmp_path: Path) -> None:
    assert cache.entries() == []
    big = make_wheel(tmp_path / "big", b"x" * 123_400)
    entry = cache.store(KEY, big)
    cpu = cache.store(key_with(torch_version="2.13.0+cpu", torch_cuda=None, version="", arch_list=()),
                      make_wheel(tmp_path / "cpu", b"small"))
    age(entry, created_days=3, used_days=3)
    listed = {e.digest: e for e in cache.entries()}
    assert set(listed) == {KEY.digest, cpu.digest}
    assert listed[KEY.digest].summary() == (
        "flash-attn 2.8.3.post2 · torch 2.13.0+cu130 · cu 13.0 · archs 9.0 · 123.4 kB · 3 days ago"
    )
    assert listed[cpu.digest].summary() == (
        "flash-attn 2.8.3.post2 · torch 2.13.0+cpu · cpu · archs none · 5 B · just now"
    )
    age(entry, created_days=3, used_days=1)
    (aged,) = (e for e in cache.entries() if e.digest == KEY.digest)
    assert aged.summary().endswith("3 days ago · used 1 day ago")
    assert cache.path == tmp_path / "cache"


@pytest.mark.parametrize(
    ("size", "words"),
    [(5, "5 B"), (123_400, "123.4 kB"), (123_400_000, "123.4 MB"), (2_500_000_000, "2.5 GB")],
)
def test_sizes_in_words(size: int, words: str) -> None:
    assert human_size(size) == words


@pytest.mark.parametrize(
    ("seconds", "words"), [(5, "just now"), (60, "1 minute ago"), (7300, "2 hours ago"), (86400, "1 day ago")]
)
def test_ages_in_words(seconds: int, words: str) -> None:
    assert human_age(timedelta(seconds=seconds)) == words


def stored(cache: WheelCache, tmp_path: Path, version: str, size: int) -> CacheEntry:
    return cache.store(key_with(version=version), make_wheel(tmp_path / version, b"x" * size))


def test_prune_by_age(cache: WheelCache, tmp_path: Path) -> None:
    old, new = stored(cache, tmp_path, "1", 10), stored(cache, tmp_path, "2", 10)
    age(old, created_days=40, used_days=0)
    age(new, created_days=5, used_days=5)
    removed = cache.prune(older_than=timedelta(days=30))
    assert [e.digest for e in removed] == [old.digest]
    assert [e.digest for e in cache.entries()] == [new.digest]
    assert not old.path.exists()


def test_prune_unused_since(cache: WheelCache, tmp_path: Path) -> None:
    idle, busy = stored(cache, tmp_path, "1", 10), stored(cache, tmp_path, "2", 10)
    age(idle, created_days=20, used_days=10)
    age(busy, created_days=20, used_days=1)
    removed = cache.prune(unused_since=datetime.now() - timedelta(days=7))  # naive: local time
    assert [e.digest for e in removed] == [idle.digest]
    assert cache.lookup(busy.key).hit and not cache.lookup(idle.key).hit


def test_prune_to_size_removes_least_recently_used_first(cache: WheelCache, tmp_path: Path) -> None:
    entries = [stored(cache, tmp_path, str(i), 100) for i in range(4)]
    for used_days, entry in zip([3, 1, 4, 2], entries):
        age(entry, created_days=5, used_days=used_days)
    removed = cache.prune(max_total_bytes=250)
    assert [e.digest for e in removed] == [entries[2].digest, entries[0].digest]
    assert {e.digest for e in cache.entries()} == {entries[1].digest, entries[3].digest}
    assert cache.prune(max_total_bytes=250) == []


def test_prune_skips_an_entry_whose_lock_is_held(cache: WheelCache, tmp_path: Path) -> None:
    busy, idle = stored(cache, tmp_path, "1", 100), stored(cache, tmp_path, "2", 100)
    age(busy, created_days=9, used_days=9)
    age(idle, created_days=1, used_days=1)
    with cache.lock(busy.key):
        removed = cache.prune(max_total_bytes=150)
    assert [e.digest for e in removed] == [idle.digest]
    assert cache.lookup(busy.key).hit
    with cache.lock(busy.key, timeout=1):
        pass  # its lock file still works after prune


def test_prune_keeps_an_entry_used_meanwhile(cache: WheelCache, tmp_path: Path) -> None:
    entry = stored(cache, tmp_path, "1", 10)
    age(entry, created_days=9, used_days=9)
    listed = cache.entries()
    assert cache.lookup(entry.key).hit  # used after prune listed it
    assert not cache._remove_entry(listed[0])
    assert cache.prune(unused_since=datetime.now(timezone.utc) - timedelta(days=1)) == []


def test_prune_removes_free_lock_files_of_keys_without_entry(cache: WheelCache) -> None:
    failed, building = key_with(version="1"), key_with(version="2")
    with cache.lock(failed):
        pass
    locks = cache.path / "v1" / ".locks"
    with cache.lock(building):
        cache.prune()
        assert sorted(p.name for p in locks.iterdir()) == [f"{building.digest}.lock"]


def test_prune_without_criteria_keeps_entries_and_clears_quarantine(cache: WheelCache, wheel: Path) -> None:
    entry = cache.store(KEY, wheel)
    cache.store(key_with(version="1"), wheel)
    entry.wheel.write_bytes(b"tampered")
    assert cache.lookup(KEY).quarantined is not None
    assert cache.prune() == []
    assert len(cache.entries()) == 1
    assert list((cache.path / "v1" / ".corrupt").iterdir()) == []


def test_lock_waiter_survives_prune_removing_the_lock_file(cache: WheelCache, tmp_path: Path) -> None:
    entry = stored(cache, tmp_path, "1", 10)
    lock_file = cache.path / "v1" / ".locks" / f"{entry.digest}.lock"
    with cache.lock(entry.key):
        assert lock_file.exists()
    assert [e.digest for e in cache.prune(older_than=timedelta(0))] == [entry.digest]
    assert not lock_file.exists()
    with cache.lock(entry.key, timeout=1) as info:
        assert not info.waited and lock_file.exists()


# -- location -----------------------------------------------------------------------------


def test_default_cache_dir(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert default_cache_dir({"HOME": home}) == Path(home) / ".cache" / "gpuenv" / "wheels"
    assert default_cache_dir({"HOME": home, "XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/gpuenv/wheels")
    assert default_cache_dir({"HOME": home, "XDG_CACHE_HOME": "relative"}) == (
        Path(home) / ".cache" / "gpuenv" / "wheels"
    )
    assert default_cache_dir({"GPUENV_CACHE_DIR": "/shared/wheels", "XDG_CACHE_HOME": "/xdg"}) == Path(
        "/shared/wheels"
    )
    assert isinstance(default_cache_dir(), Path)


def test_nothing_is_written_until_used(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "cache")
    assert not cache.lookup(KEY).hit and cache.entries() == [] and cache.prune() == []
    assert cache.nearest(KEY) is None
    assert not (tmp_path / "cache").exists()
