"""A cache others write into (issue 26): on a shared cache anyone who can write one ``meta.json`` or
``gpuenv-toolkit.json`` chooses its bytes. Whatever they are, ``cache list``, ``prune``, ``export``,
``plan`` and ``probe`` answer in bounded time, without a traceback, print no control character from
it, and write nothing outside the folders they were asked to write."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from gpuenv.cache.toolkitcache import toolkit_home
from gpuenv.cache.wheels import WheelCache
from tests.fakes import clean_gpuenv_environ
from tests.hostile import ENTRY_DAMAGES, SOUND_DAMAGES, TOOLKIT_DAMAGES, Damage
from tests.unit.cache.test_cache import KEY, make_wheel
from tests.unit.probe.test_toolkits import make_toolkit
from tests.unit.test_fuzz import Hang, run_cli, snapshot

DAMAGES = ENTRY_DAMAGES
SOUND = SOUND_DAMAGES

COMMANDS = [
    ["cache", "list"],
    ["cache", "list", "--json"],
    ["cache", "export", "house"],
    ["plan", "--gpu", "H100", "-r", "recipe.toml"],
    ["cache", "prune", "--older-than", "30"],
]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clean_gpuenv_environ(monkeypatch, tmp_path / "cache")
    monkeypatch.setenv("GPUENV_QUERY_TIMEOUT", "1")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "ESCAPED").mkdir()
    (tmp_path / "outside" / "ESCAPED" / "keep.txt").write_text("an earlier group's place")
    work = tmp_path / "work"
    work.mkdir()
    (work / "recipe.toml").write_text('[torch]\nversion = "2.14.1"\n'
                                      '[[extensions]]\nrequirement = "flash-attn==2.8.3.post2"\n')
    monkeypatch.chdir(work)
    return work


def _damaged_cache(root: Path, damage: Damage) -> Path:
    cache = WheelCache(root)
    entry = cache.store(KEY, make_wheel(root.parent / "built", b"wheel bytes" * 100)).path
    meta = json.loads((entry / "meta.json").read_text())
    changed = damage(entry, meta)
    if changed is not None:
        (entry / "meta.json").write_text(json.dumps(changed) if isinstance(changed, dict) else changed)
    return entry


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_entry_is_left_out_by_every_command_in_bounded_time(
    work: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = work.parent
    _damaged_cache(root / "cache", DAMAGES[damage])
    before = snapshot(root / "outside")
    for argv in COMMANDS:
        try:
            code, err = run_cli(argv)
        except Hang as exc:
            pytest.fail(f"{argv}: {exc}")
        assert code in (0, 3), (argv, err)
        assert "\x1b" not in err and "forged" not in err.replace("\\n", "")
        assert snapshot(root / "outside") == before, f"{argv} wrote outside"
    assert not (root / "outside" / "TOUCHED").exists()
    assert sorted(p.name for p in (root / "outside" / "ESCAPED").iterdir()) == ["keep.txt"]
    house = work / "house"
    if damage not in SOUND:  # nothing of the damaged entry was exported
        assert not list(house.rglob("*.whl"))


def test_the_printed_lines_hold_no_control_character_from_the_cache(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key the checks let through still reaches the terminal escaped (its version and name hold
    no control character: those are refused; the printed summary is escaped all the same)."""
    from gpuenv.cli import main

    _damaged_cache(work.parent / "cache", lambda e, m: m)
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "flash-attn 2.8.3.post2" in out and "\x1b" not in out


def _toolkit_entry(root: Path, damage: str) -> Path:
    home = Path(toolkit_home(root / "toolkits", "13.0"))
    make_toolkit(home, "13.0")
    TOOLKIT_DAMAGES[damage](home)
    return home


@pytest.mark.parametrize("damage", sorted(TOOLKIT_DAMAGES))
def test_a_damaged_toolkit_entry_never_hangs_probe_plan_or_cache_list(
    work: Path, damage: str
) -> None:
    root = work.parent / "cache"
    _toolkit_entry(root, damage)
    for argv in (["cache", "list"], ["probe"], ["plan", "--gpu", "H100", "-r", "recipe.toml"],
                 ["cache", "prune", "--older-than", "30"]):
        try:
            code, err = run_cli(argv)
        except Hang as exc:
            pytest.fail(f"{argv}: {exc}")
        assert code in (0, 3), (argv, err)
        if damage == "nvcc hangs" and argv[0] != "cache":
            assert "did not answer within 1 s" in err, (argv, err)


@pytest.mark.parametrize("folder", ["v1/.tmp", "v1/.corrupt", "v1/.locks", "v1/ab", "v1", "toolkits/v1/.tmp",
                                    "toolkits/v1/.locks", "toolkits/v1", "toolkits"])
def test_a_link_where_the_cache_keeps_a_folder_of_its_own_leads_nothing_outside(
    work: Path, folder: str
) -> None:
    """On a shared cache another user can replace .tmp, .corrupt or .locks by a link to a folder of
    yours: prune removes old children of .tmp and .corrupt, stores create there, locks truncate.
    None of it may happen through the link."""
    from gpuenv.cache.key import CacheKey
    from gpuenv.cache.toolkitcache import ToolkitCache
    from gpuenv.errors import GpuenvError

    root = work.parent / "cache"
    victim = work.parent / "victim"
    (victim / "project").mkdir(parents=True)
    (victim / "notes.txt").write_text("mine\n")
    (victim / "0123.lock").write_text("mine\n")
    old = 1_000_000_000
    for path in (victim / "project", victim / "notes.txt", victim / "0123.lock"):
        os.utime(path, (old, old))
    cache = WheelCache(root)
    key = KEY if folder != "v1/ab" else CacheKey.from_json({**KEY.to_json(), "version": "9.9"})
    (root / folder).parent.mkdir(parents=True, exist_ok=True)
    (root / folder).symlink_to(victim)
    before = snapshot(victim)
    wheel = make_wheel(work / "built", b"wheel bytes")
    acts = (lambda: cache.store(key, wheel), lambda: cache.lookup(key), lambda: cache.prune(older_than=None),
            lambda: ToolkitCache(root / "toolkits").prune(older_than=None))
    for act in acts:
        with contextlib.suppress(GpuenvError, OSError):  # refused: the point is what happened outside
            act()
    for argv in (["cache", "prune", "--older-than", "0"], ["cache", "list"], ["cache", "export", "house"]):
        code, err = run_cli(argv)
        assert code in (0, 1, 2), err
    assert snapshot(victim) == before
    assert (victim / "notes.txt").read_text() == "mine\n" and (victim / "project").is_dir()


def test_a_cache_dir_of_a_user_this_machine_lacks_is_an_input_error(work: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUENV_CACHE_DIR", "~no-such-user-here/cache")
    for argv in (["cache", "path"], ["cache", "list"], ["plan", "--gpu", "H100", "-r", "recipe.toml"]):
        code, err = run_cli(argv)
        assert code == 2 and "GPUENV_CACHE_DIR=~no-such-user-here/cache" in err, err
