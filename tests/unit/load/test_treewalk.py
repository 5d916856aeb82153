"""The one rule gpuenv's tree readers walk by (load/treewalk.py)."""

from __future__ import annotations

from pathlib import Path

from gpuenv.load.treewalk import subfolders


def test_a_reader_walks_its_trees_folders_and_none_that_hold_no_projects_files(tmp_path: Path) -> None:
    names = ["src", "ops", ".git", ".hg", "venv", "build", "__pycache__", "gpuenv.egg-info", ".github",
             "link", "sub", "data"]
    for name in names:
        if name != "link":
            (tmp_path / name).mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "src")  # may lead out of the tree, or round
    walked = subfolders(tmp_path, names, 0, max_depth=4, skipped=[tmp_path / "sub"])
    assert walked == [".github", "data", "ops", "src"]
    assert subfolders(tmp_path, names, 0, max_depth=4, skipped=[tmp_path / "sub"], hidden=False,
                      also={"data"}) == ["ops", "src"]
    assert subfolders(tmp_path, names, 4, max_depth=4) == [], "no deeper than the reader's depth"
