"""The wheel cache under what users and machines really do: damaged meta.json, a read-only mount,
prune arguments that would empty it by mistake."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpuenv.cache.prunelimits import parse_size, prune_limits
from gpuenv.cache.wheels import WheelCache
from gpuenv.cli import main
from gpuenv.errors import InputError
from tests.unit.cache.test_cache import KEY, make_wheel


@pytest.fixture
def cache(tmp_path: Path) -> WheelCache:
    return WheelCache(tmp_path / "cache")


def _stored(cache: WheelCache, tmp_path: Path) -> Path:
    return cache.store(KEY, make_wheel(tmp_path / "w", b"wheel bytes" * 100)).path


@pytest.mark.parametrize("damage", ["no key", "key is a string", "key field of the wrong type",
                                    "meta is a list", "wheel is a path"])
def test_an_entry_whose_meta_lacks_its_key_is_unreadable_everywhere_and_pruned(
    cache: WheelCache, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    entry = _stored(cache, tmp_path)
    meta = json.loads((entry / "meta.json").read_text())
    if damage == "no key":
        del meta["key"]
    elif damage == "key is a string":
        meta["key"] = "x"
    elif damage == "key field of the wrong type":
        meta["key"]["name"] = 5
    elif damage == "meta is a list":
        meta = [meta]
    else:
        meta["wheel"] = "../../x.whl"
    (entry / "meta.json").write_text(json.dumps(meta))

    assert cache.entries() == []
    assert cache.nearest(KEY) is None
    assert main(["cache", "list", "--cache-dir", str(cache.path)]) == 0
    assert "0 wheel(s)" in capsys.readouterr().out
    assert main(["cache", "prune", "--cache-dir", str(cache.path), "--older-than", "30"]) == 0
    assert not entry.exists(), "prune removes an entry no reader can use"

    _stored(cache, tmp_path)
    broken = cache.entry_dir(KEY) / "meta.json"
    broken.write_text(json.dumps({k: v for k, v in json.loads(broken.read_text()).items() if k != "key"}))
    looked = cache.lookup(KEY)
    assert not looked.hit and looked.refused and looked.quarantined is not None, "moved aside, not crashed on"


@pytest.mark.parametrize("words", [
    {"max_size": "-1"}, {"max_size": "-5G"}, {"older_than_days": -1.0}, {"max_size": "1e999G"},
    {"older_than_days": float("inf")}, {"older_than_days": float("nan")}, {"older_than_days": 1e12},
    {"max_size": ""}, {"unused_since": ""}, {"max_size": "nanG"}, {"max_size": "20 parsecs"},
    {"unused_since": "0001-01-01"}, {},
])
def test_prune_arguments_that_would_empty_the_cache_by_mistake_are_refused(
    cache: WheelCache, tmp_path: Path, words: dict[str, object]
) -> None:
    entry = _stored(cache, tmp_path)
    given = {"older_than_days": None, "unused_since": None, "max_size": None, **words}
    with pytest.raises(InputError):
        prune_limits(**given)  # type: ignore[arg-type]
    argv = ["cache", "prune", "--cache-dir", str(cache.path)]
    for name, value in words.items():
        argv.append(f"--{'older-than' if name == 'older_than_days' else name.replace('_', '-')}={value}")
    assert main(argv) == 2
    assert entry.exists()


@pytest.mark.parametrize(("text", "size"), [("0", 0), ("500M", 500 << 20), ("1.5GiB", 3 << 29),
                                            ("20g", 20 << 30), ("100", 100)])
def test_sizes_prune_accepts(text: str, size: int) -> None:
    assert parse_size(text) == size


def _read_only_mount_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


# A lookup and a lock in a mount namespace where the cache is a read-only bind mount (EROFS).
READ_ONLY_CHILD = r"""
import json, sys
from pathlib import Path
from gpuenv.cache.key import CacheKey
from gpuenv.cache.wheels import WheelCache
cache = WheelCache(Path(sys.argv[1]))
key = CacheKey.from_json(json.loads(sys.argv[2]))
with cache.lock(key) as held:
    found = cache.lookup(key)
    print(json.dumps({"read_only": held.read_only, "hit": found.hit, "refused": found.refused}))
"""


@pytest.mark.skipif(not _read_only_mount_works(), reason="needs unshare -rm for a read-only bind mount")
@pytest.mark.parametrize("with_lock_file", [True, False])
def test_a_read_only_cache_still_hands_out_its_wheels(
    cache: WheelCache, tmp_path: Path, with_lock_file: bool
) -> None:
    _stored(cache, tmp_path)
    if with_lock_file:
        with cache.lock(KEY):
            pass
    root = str(cache.path)
    script = (f"mount --bind {root} {root} && mount -o remount,bind,ro {root} && "
              f'exec "$0" -c "$1" {root} "$2"')
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script, sys.executable, READ_ONLY_CHILD,
                           json.dumps(KEY.to_json())],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer == {"read_only": True, "hit": True, "refused": None}
