"""The one way gpuenv writes what it is asked to write: inside the folder it was given, whole or not
at all, and all or nothing when it writes several files."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from gpuenv.errors import OutputError
from gpuenv.outputs import (
    TEMP_SUFFIX,
    PlannedWrite,
    output_file,
    path_argument,
    path_inside,
    write_all,
    write_atomic,
)
from gpuenv.printable import clipped, printable


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A folder to write into, and a file outside it that nothing may touch."""
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / ".bashrc").write_text("export PATH\n")
    return root


def test_a_path_inside_is_resolved_and_a_link_inside_leads_to_its_target(repo: Path) -> None:
    (repo / "docs").mkdir()
    (repo / "docs" / "README.md").write_text("# a\n")
    (repo / "README.md").symlink_to("docs/README.md")
    assert path_inside(repo, "README.md") == (repo / "docs" / "README.md").resolve()
    assert path_inside(repo, "envs/default.toml") == repo.resolve() / "envs" / "default.toml"


@pytest.mark.parametrize(("link", "target"), [
    ("README.md", "README.md"),  # a file the repository carries that links out
    ("envs", "envs/default.toml"),  # a folder that links out
    (None, "../outside/.bashrc"),  # a name that climbs out
    (None, "x/../../outside/ESCAPED"),
])
def test_a_path_that_leads_out_is_refused_and_nothing_outside_changes(
    repo: Path, link: str | None, target: str
) -> None:
    outside = repo.parent / "outside"
    if link == "README.md":
        (repo / link).symlink_to(outside / ".bashrc")
    elif link is not None:
        (repo / link).symlink_to(outside)
    with pytest.raises(OutputError, match="leads out of") as info:
        path_inside(repo, target)
    assert info.value.exit_code == 2 and info.value.hint
    assert (outside / ".bashrc").read_text() == "export PATH\n"
    assert sorted(p.name for p in outside.iterdir()) == [".bashrc"]


def test_dangling_links_loops_folders_devices_and_files_in_the_way_are_refused(repo: Path) -> None:
    (repo / "dangling").symlink_to("nowhere-yet")
    (repo / "loop").symlink_to("loop")
    (repo / "dir").mkdir()
    (repo / "afile").write_text("x")
    os.mkfifo(repo / "fifo")
    (repo / "envs").symlink_to("envs")
    cases = {"dangling": "leads nowhere", "loop": "leads nowhere", "dir": "is a folder",
             "fifo": "not a regular file", "afile/default.toml": "is a file, where a folder is needed",
             "envs/default.toml": "leads nowhere"}
    for name, problem in cases.items():
        with pytest.raises(OutputError, match=problem):
            path_inside(repo, name)


def test_output_file_needs_its_folder_and_refuses_dev_null_and_read_only_files(repo: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        output_file(repo / "missing" / "pylock.toml")
    with pytest.raises(OutputError, match="not a regular file"):
        output_file(Path("/dev/null"))
    locked = repo / "pylock.toml"
    locked.write_text("keep\n")
    locked.chmod(0o444)
    with pytest.raises(OutputError, match="read-only"):
        output_file(locked)
    assert locked.read_text() == "keep\n"
    assert output_file(repo / "new.toml") == repo.resolve() / "new.toml"


def test_empty_and_nul_paths_are_refused_as_arguments() -> None:
    for text in ("", " ", "a\0b"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a path"):
            path_argument(text)
    assert path_argument("wheelhouse") == Path("wheelhouse")


def test_write_atomic_replaces_whole_keeps_the_mode_and_leaves_no_temporary_file(repo: Path) -> None:
    path = repo / "tasks.py"
    path.write_text("old\n")
    path.chmod(0o640)
    write_atomic(path, b"new\r\n")
    assert path.read_bytes() == b"new\r\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not [p for p in repo.iterdir() if p.name.endswith(TEMP_SUFFIX)]


def test_write_atomic_says_which_path_the_file_system_refused(repo: Path) -> None:
    with pytest.raises(OutputError) as info:
        write_atomic(repo / "no-such-folder" / "x", b"x")
    assert "no-such-folder" in str(info.value) and info.value.exit_code == 2


def test_write_all_puts_back_what_it_wrote_when_a_later_write_fails(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "README.md").write_bytes(b"# mine\r\n")
    writes = [
        PlannedWrite(repo / "envs" / "default.toml", b"[torch]\n"),
        PlannedWrite(repo / "README.md", b"# mine\r\n\r\n## GPU\r\n", previous=b"# mine\r\n"),
        PlannedWrite(repo / ".gitignore", b".venv/\n"),
    ]
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        if str(dst).endswith(".gitignore"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputError, match=r"\.gitignore: cannot write it: No space left on device"):
        write_all(writes)
    assert sorted(p.name for p in repo.iterdir()) == ["README.md"]  # envs/ and its recipe are gone
    assert (repo / "README.md").read_bytes() == b"# mine\r\n"


def test_write_all_checks_every_target_before_writing_any(repo: Path) -> None:
    (repo / ".gitignore").write_text("x\n")
    (repo / ".gitignore").chmod(0o444)
    with pytest.raises(OutputError, match="read-only"):
        write_all([PlannedWrite(repo / "noxfile.py", b"#\n"),
                   PlannedWrite(repo / ".gitignore", b"x\n.venv/\n", previous=b"x\n")])
    assert sorted(p.name for p in repo.iterdir()) == [".gitignore"]


@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b]0;pwned\x07title", "\\x1b]0;pwned\\x07title"),
    ("\x1b[2J", "\\x1b[2J"),
    ("torch\nok   forged line", "torch\\nok   forged line"),
    ("a\rb", "a\\rb"),
    ("right\u202eto-left", "right\\u202eto-left"),
    ("caf\xe9 \u2192 fine", "caf\xe9 \u2192 fine"),
])
def test_printable_shows_what_a_terminal_would_obey_as_escapes(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_keeps_the_lines_of_text_made_of_lines() -> None:
    assert printable("error\n\tlast line\x1b[31m", lines=True) == "error\n\tlast line\\x1b[31m"


def test_a_dangling_folder_link_inside_is_refused_too(repo: Path) -> None:
    (repo / "envs").symlink_to("not-made")
    with pytest.raises(OutputError, match="envs is a link that leads nowhere"):
        path_inside(repo, "envs/default.toml")
    assert not (repo / "not-made").exists()


def test_two_names_for_one_file_are_refused_before_anything_is_written(repo: Path) -> None:
    (repo / "README.md").write_text("# a\n")
    (repo / ".gitignore").symlink_to("README.md")  # appending to both would drop one of the appends
    writes = [PlannedWrite(path_inside(repo, name), b"new\n", previous=b"# a\n")
              for name in ("README.md", ".gitignore")]
    with pytest.raises(OutputError, match="written twice"):
        write_all(writes)
    assert (repo / "README.md").read_text() == "# a\n"


def test_clipped_cuts_only_the_lines_too_long_to_be_gpuenvs_own_and_says_how_much() -> None:
    short = "error: req.txt:3: 'numpy=1': pip refuses it\n    numpy=1\n         ^"
    assert clipped(short) == short
    long = "a" * 10_000 + "END"
    text = clipped(f"first line\n{long}\nlast line", limit=1000)
    first, middle, last = text.split("\n")
    assert (first, last) == ("first line", "last line")
    assert middle.startswith("a" * 500) and middle.endswith("aEND") and len(middle) < 1100
    assert f"[... {len(long) - 700} characters left out ...]" in middle
