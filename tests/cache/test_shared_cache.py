"""A cache others write into (issue 26): on a shared cache anyone who can write one ``meta.json`` or
``gpuenv-toolkit.json`` chooses its bytes. Whatever they are, ``cache list``, ``prune``, ``export``,
``plan`` and ``probe`` answer in bounded time, without a traceback, print no control character from
it, and write nothing outside the folders they were asked to write."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gpuenv.cache.wheels import WheelCache
from gpuenv.plan.buildplan import toolkit_home
from tests.cache.test_cache import KEY, make_wheel
from tests.probe.test_toolkits import make_toolkit
from tests.test_fuzz import Hang, run_cli, snapshot

Damage = Callable[[Path, dict[str, Any]], "dict[str, Any] | None"]


def _set_key(field: str, value: Any) -> Damage:
    def damage(entry: Path, meta: dict[str, Any]) -> dict[str, Any]:
        meta["key"][field] = value
        return meta
    return damage


def _replace_meta(make: Callable[[Path], None]) -> Damage:
    def damage(entry: Path, meta: dict[str, Any]) -> None:
        (entry / "meta.json").unlink()
        make(entry / "meta.json")
    return damage


def _set(field: str, value: Any) -> Damage:
    def damage(entry: Path, meta: dict[str, Any]) -> dict[str, Any]:
        meta[field] = value
        return meta
    return damage


def _wheel_is_a_fifo(entry: Path, meta: dict[str, Any]) -> dict[str, Any]:
    wheel = entry / meta["wheel"]
    wheel.unlink()
    os.mkfifo(wheel)
    meta["size"] = 0
    return meta


def _last_used_links_out(entry: Path, meta: dict[str, Any]) -> dict[str, Any]:
    (entry / "last_used").unlink()
    (entry / "last_used").symlink_to(entry.parents[4] / "outside" / "TOUCHED")
    return meta


#: What a hostile or broken writer of a shared cache can leave in one entry.
DAMAGES: dict[str, Damage] = {
    "meta.json is a FIFO": _replace_meta(lambda p: os.mkfifo(p)),
    "meta.json links to /dev/zero": _replace_meta(lambda p: p.symlink_to("/dev/zero")),
    "meta.json is 20 MB": _replace_meta(lambda p: p.write_bytes(b" " * (20 << 20))),
    "meta.json nested 100000 deep": _replace_meta(lambda p: p.write_text("[" * 100_000 + "]" * 100_000)),
    "meta.json is not UTF-8": _replace_meta(lambda p: p.write_bytes(b'{"key": "\xff"}')),
    "size is 1e999": lambda e, m: json.loads(json.dumps(m).replace('"size": ', '"size": 1e999, "x": ')),
    "an arch 'abc'": _set_key("arch_list", ["abc"]),
    "an arch in Arabic-Indic digits": _set_key("arch_list", ["\u0669.\u0660"]),
    "torch_version climbs out": _set_key("torch_version", "x/../../../outside/ESCAPED"),
    "torch_cuda climbs out": _set_key("torch_cuda", "../../outside"),
    "a name that sets the window title": _set_key("name", "\x1b]0;pwned\x07scatter"),
    "a version with a newline": _set_key("version", "2.1.2\nok   forged"),
    "knobs that are not pairs": _set_key("knobs", [["A"], 5]),
    "digest climbs out": _set("digest", "../../../../outside/x"),
    "created is a table": _set("created", {"a": 1}),
    "the wheel is a FIFO": _wheel_is_a_fifo,
    "last_used links out of the cache": _last_used_links_out,
}

#: Damages that leave the entry usable: it is exported, and still nothing outside is touched.
SOUND = {"last_used links out of the cache"}

COMMANDS = [
    ["cache", "list"],
    ["cache", "list", "--json"],
    ["cache", "export", "house"],
    ["plan", "--gpu", "H100", "-r", "recipe.toml"],
    ["cache", "prune", "--older-than", "30"],
]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("GPUENV_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GPUENV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GPUENV_QUERY_TIMEOUT", "1")
    monkeypatch.setenv("NO_COLOR", "1")
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


def _toolkit_entry(root: Path, meta: dict[str, Any] | None, nvcc: str | None = None) -> Path:
    home = Path(toolkit_home(root / "toolkits", "13.0"))
    make_toolkit(home, "13.0", nvcc=nvcc)
    if meta is not None:
        (home / "gpuenv-toolkit.json").write_text(json.dumps(meta))
    return home


TOOLKIT_META = {"schema": 1, "version": "13.0", "release": "13.0.105", "size": 10,
                "created": "2026-01-01T00:00:00+00:00", "wheels": {}}


@pytest.mark.parametrize("damage", ["a FIFO", "/dev/zero", "size 1e999", "nested", "nvcc hangs",
                                    "release is a number"])
def test_a_damaged_toolkit_entry_never_hangs_probe_plan_or_cache_list(
    work: Path, damage: str
) -> None:
    root = work.parent / "cache"
    nvcc = "#!/bin/sh\n/bin/sleep 300 &\n/bin/sleep 300\n" if damage == "nvcc hangs" else None
    home = _toolkit_entry(root, TOOLKIT_META if damage in ("nvcc hangs",) else None, nvcc)
    meta_file = home / "gpuenv-toolkit.json"
    if damage == "a FIFO":
        os.mkfifo(meta_file)
    elif damage == "/dev/zero":
        meta_file.symlink_to("/dev/zero")
    elif damage == "size 1e999":
        meta_file.write_text(json.dumps(TOOLKIT_META).replace('"size": 10', '"size": 1e999'))
    elif damage == "nested":
        meta_file.write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "release is a number":
        meta_file.write_text(json.dumps({**TOOLKIT_META, "release": 13}))
    for argv in (["cache", "list"], ["probe"], ["plan", "--gpu", "H100", "-r", "recipe.toml"],
                 ["cache", "prune", "--older-than", "30"]):
        try:
            code, err = run_cli(argv)
        except Hang as exc:
            pytest.fail(f"{argv}: {exc}")
        assert code in (0, 3), (argv, err)
        if damage == "nvcc hangs" and argv[0] != "cache":
            assert "did not answer within 1 s" in err, (argv, err)
    shutil.rmtree(root, ignore_errors=True)
