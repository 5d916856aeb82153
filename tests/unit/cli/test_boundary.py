"""The CLI's one error boundary (issue 26): every refusal of the OS, and every output path that is not
one gpuenv may write, ends as an ``error:`` line naming the path and a ``hint:``, exit 2; a real bug
keeps its traceback. Output that cannot be written (a full disk, an ASCII-only terminal) ends cleanly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gpuenv import cli
from tests.fakes import clean_gpuenv_environ, gpuenv_main
from tests.unit.test_fuzz import run_cli


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clean_gpuenv_environ(monkeypatch, tmp_path / "cache")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _refused(argv: list[str], *words: str) -> str:
    code, err = run_cli(argv)
    assert code == 2, err
    assert err.startswith(("error: ", "usage: ")) and "error:" in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize("argv", [
    ["cache", "export", ""], ["cache", "export", " "], ["export", "pylock", "-o", ""],
    ["export", "uv", "--write", ""], ["setup", "--venv", ""], ["plan", "--cache-dir", ""],
    ["setup", "--dry-run", "--work-dir", ""], ["plan", "-r", ""], ["plan", "--hardware", ""],
])
def test_an_empty_path_is_refused_not_taken_for_the_current_directory(work: Path, argv: list[str]) -> None:
    before = sorted(p.name for p in work.iterdir())
    _refused(argv, "is not a path")
    assert sorted(p.name for p in work.iterdir()) == before


def test_cache_export_into_a_file_or_a_device_is_refused(work: Path) -> None:
    (work / "notes.txt").write_text("mine\n")
    _refused(["cache", "export", "notes.txt"], "notes.txt", "is not a folder", "hint:")
    _refused(["cache", "export", "/dev/null"], "/dev/null", "is not a folder")
    assert (work / "notes.txt").read_text() == "mine\n"


def test_cache_export_never_replaces_a_users_index_html(work: Path) -> None:
    house = work / "house"
    house.mkdir()
    (house / "index.html").write_text("<h1>my page</h1>\n")
    _refused(["cache", "export", "house"], "index.html", "not an index.html gpuenv wrote", "hint:")
    assert (house / "index.html").read_text() == "<h1>my page</h1>\n"
    # Its own earlier export is recognised and replaced.
    assert run_cli(["cache", "export", "fresh"])[0] == 0
    assert run_cli(["cache", "export", "fresh"])[0] == 0


@pytest.mark.parametrize(("make", "words"), [
    (lambda w: (w / "out").mkdir(), ["out", "is a folder"]),
    (lambda w: None, ["missing", "does not exist"]),
    (lambda w: ((w / "out").write_text("keep\n"), (w / "out").chmod(0o444)), ["out", "read-only"]),
])
def test_export_pylock_o_refuses_a_place_it_cannot_write_before_asking_the_env(  # type: ignore[no-untyped-def]
    work: Path, make, words: list[str]
) -> None:
    make(work)
    target = "missing/pylock.toml" if "missing" in words else "out"
    _refused(["export", "pylock", "--venv", "nowhere", "-o", target], *words)
    _refused(["export", "pylock", "--venv", "nowhere", "-o", "/dev/null"], "/dev/null", "not a regular file")


def test_a_lock_that_links_out_of_the_recipes_folder_is_not_written(work: Path) -> None:
    from gpuenv.errors import OutputError
    from gpuenv.lock.lockfile import write_lock
    from tests.unit.cache.test_lock_edits import ENV

    (work / "elsewhere").mkdir()
    (work / "envs").mkdir()
    (work / "envs" / "gpuenv.lock").symlink_to(work / "elsewhere" / "gpuenv.lock")
    with pytest.raises(OutputError, match="leads out of"):
        write_lock(work / "envs" / "gpuenv.lock", ENV)
    assert not (work / "elsewhere" / "gpuenv.lock").exists()


def test_an_os_refusal_anywhere_is_an_error_with_the_path_and_a_hint(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(args: object) -> int:
        raise PermissionError(13, "Permission denied", "/srv/shared/cache")

    _handled_by(monkeypatch, "cache path", refuse)
    _refused(["cache", "path"], "error: /srv/shared/cache: Permission denied", "hint: ")


def test_a_real_bug_keeps_its_traceback(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(args: object) -> int:
        raise KeyError("a bug")

    _handled_by(monkeypatch, "cache path", bug)
    with pytest.raises(KeyError):
        cli.main(["cache", "path"])


def _handled_by(monkeypatch: pytest.MonkeyPatch, command: str, handler: Callable[[Any], int]) -> None:
    monkeypatch.setitem(cli.COMMAND_BY_KEY, command, replace(cli.COMMAND_BY_KEY[command], handler=handler))


def _gpuenv(*args: str, stdout: int | None = subprocess.PIPE,
            **environ: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **environ}
    return subprocess.run([sys.executable, "-m", "gpuenv", *args], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=60, check=False)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", [["completion", "bash"], ["--help"], ["export", "uv", "--help"], ["gpus"],
                                  ["--version"]])
def test_a_full_standard_output_ends_with_an_error_line_not_a_traceback(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = _gpuenv(*args, stdout=full.fileno())
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: cannot write the output: No space left on device"), done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


@pytest.mark.parametrize("args", [["export", "uv", "--help"], ["--help"], ["plan", "--gpu", "H100", "--help"],
                                  ["gpus", "rtx"]])
def test_an_ascii_only_terminal_gets_escapes_not_a_crash(args: list[str]) -> None:
    done = _gpuenv(*args, PYTHONIOENCODING="ascii", LANG="C", LC_ALL="C")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    done.stdout.encode("ascii")


def test_a_reader_that_leaves_early_is_not_an_error() -> None:
    head = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    done = subprocess.run([sys.executable, "-m", "gpuenv", "completion", "bash"], stdout=head.stdin,
                          stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    assert head.stdin is not None
    head.stdin.close()
    head.wait(timeout=60)
    assert done.returncode == 0 and done.stderr == ""


def test_an_error_quoting_a_1_mb_requirement_line_shows_its_start_and_end_not_megabytes(work: Path) -> None:
    """Campaign 3: a continued line of 200000 'numpy \\' lines is one 1.2 MB line pip refuses; the
    error quoted it twice (the line, then the parser's message), 2.4 MB on stderr."""
    (work / "req.txt").write_text("numpy \\\n" * 200_000 + "last\n")
    (work / "r.toml").write_text('[torch]\nversion = ">=2.1"\n[packages]\nrequirements-files = ["req.txt"]\n')
    code, err = run_cli(["plan", "-r", "r.toml", "--offline", "--gpu", "H100", "--no-cache"])
    assert code == 3 and "req.txt:1:" in err and "characters left out" in err, err[-2000:]
    assert "numpy last" in err and len(err) < 30_000


@pytest.mark.parametrize(("args", "said"), [
    (["plan", "--gpu", "-1xH100"], "--option=-VALUE"),  # argparse reads -1xH100 as an option
    (["plan", "--no-such-option"], "'gpuenv --help' lists its options"),
    (["cache"], "'gpuenv cache --help' lists its options"),
])
def test_a_usage_error_of_argparse_ends_with_a_hint_like_every_error(args: list[str], said: str) -> None:
    done = gpuenv_main(*args)
    assert done.returncode == 2
    error, hint = done.stderr.strip().splitlines()[-2:]
    assert ": error: " in error and hint.startswith("hint: ") and said in hint
