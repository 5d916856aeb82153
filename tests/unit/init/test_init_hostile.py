"""gpuenv init in a repository that is not friendly (issue 26): links it carries that lead out of it
or nowhere, files it cannot replace, a write that fails half-way. init writes all of its files or
none, only inside the repository, and says which file stopped it (exit 2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpuenv.cli import main
from gpuenv.load.recipe import load_recipe
from tests.unit.test_fuzz import Hang, run_cli


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with a requirements file, and a home outside it whose files must not change."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("export PATH=$HOME/bin:$PATH\n")
    (home / "shared").mkdir()
    root = tmp_path / "repo"
    root.mkdir()
    (root / "requirements.txt").write_text("torch==2.13.0\nnumpy<2\n")
    monkeypatch.chdir(root)
    monkeypatch.setenv("GPUENV_REQUIREMENT", "gpuenv")
    return root


def tree(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root``: a file's bytes, a link's target."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(root))] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def init(*args: str) -> tuple[int, str]:
    try:
        return run_cli(["init", *args])
    except Hang as exc:
        pytest.fail(str(exc))


@pytest.mark.parametrize(("name", "target"), [
    ("README.md", "home/.bashrc"),  # a .bashrc must not end with markdown
    (".gitignore", "home/.bashrc"),
    ("noxfile.py", "home/shared/noxfile.py"),  # a dangling link out: would create a file there
    ("envs", "home/shared"),  # a folder link out: default.toml would land there
])
def test_a_link_that_leads_out_of_the_repository_stops_init_before_anything_is_written(
    repo: Path, name: str, target: str
) -> None:
    (repo / name).symlink_to(repo.parent / target)
    home, before = repo.parent / "home", tree(repo.parent / "home")
    ours = tree(repo)
    code, err = init()
    assert code == 2 and err.startswith("error: ") and name in err and "leads out of" in err, err
    assert "hint: " in err
    assert tree(home) == before, "nothing outside the repository changed"
    assert tree(repo) == ours, "nothing inside was written either"


@pytest.mark.parametrize(("make", "problem"), [
    (lambda r: (r / "README.md").symlink_to("docs/MISSING.md"), "leads nowhere"),
    (lambda r: (r / ".gitignore").symlink_to(".gitignore"), ".gitignore"),
    (lambda r: (r / "envs").write_text("a file, not a folder\n"), "is a file, where a folder is needed"),
    (lambda r: (r / "envs").symlink_to("nowhere"), "leads nowhere"),
    (lambda r: ((r / ".gitignore").write_text("*.pyc\n"), (r / ".gitignore").chmod(0o444)), "read-only"),
    (lambda r: (r / "README.md").mkdir(), "README.md"),
    (lambda r: os.mkfifo(r / ".gitignore"), ".gitignore"),
])
def test_a_target_init_cannot_write_stops_it_before_anything_is_written(
    repo: Path, make, problem: str  # type: ignore[no-untyped-def]
) -> None:
    make(repo)
    before = tree(repo)
    code, err = init()
    assert code == 2 and err.startswith("error: ") and problem in err, err
    assert tree(repo) == before


def test_a_write_that_fails_half_way_puts_back_what_was_written(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "README.md").write_bytes(b"# research\r\n")
    before = tree(repo)
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        if str(dst).endswith(".gitignore"):  # the last file init writes
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    code, err = init()
    assert code == 2 and ".gitignore" in err and "No space left on device" in err, err
    assert tree(repo) == before, "the recipe, noxfile, tasks.py and README section are gone again"
    assert not (repo / "envs").exists()


def test_an_empty_recipe_left_by_an_interrupted_init_is_replaced(repo: Path) -> None:
    (repo / "envs").mkdir()
    (repo / "envs" / "default.toml").write_bytes(b"")
    assert init() == (0, "")
    assert load_recipe(repo / "envs" / "default.toml").torch.version == "==2.13.0"


def test_appends_keep_the_files_bytes_and_line_ends_and_follow_a_link_inside(repo: Path) -> None:
    (repo / "docs").mkdir()
    (repo / "docs" / "README.md").write_bytes(b"# Caf\xe9\r\n\r\nNotes.\r\n")  # Latin-1, CRLF
    (repo / "README.md").symlink_to("docs/README.md")
    assert init()[0] == 0
    assert os.readlink(repo / "README.md") == "docs/README.md", "the link stays a link"
    data = (repo / "docs" / "README.md").read_bytes()
    assert data.startswith(b"# Caf\xe9\r\n\r\nNotes.\r\n\r\n## GPU environment\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_a_repository_folder_whose_name_is_not_utf8_gets_its_files(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(os.fsdecode(bytes(tmp_path) + b"/r\xe9search"))
    root.mkdir()
    monkeypatch.chdir(root)
    assert init()[0] == 0
    assert (root / "README.md").read_text(encoding="utf-8").startswith("# r\ufffdsearch\n")


@pytest.mark.parametrize("args", [["--torch", ""], ["--torch", " "], ["--name", ""], ["--extension", ""]])
def test_empty_values_are_refused_not_ignored(repo: Path, args: list[str]) -> None:
    before = tree(repo)
    code, err = init(*args)
    assert code == 2 and "error" in err, err
    assert tree(repo) == before


def test_init_in_a_good_repository_still_writes_everything(repo: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init"]) == 0
    assert {"envs/default.toml", "noxfile.py", "tasks.py", "README.md", ".gitignore"} <= set(tree(repo))
    assert not [p for p in repo.rglob("*gpuenv-tmp*")]


def test_a_pyproject_that_links_out_is_not_appended_to(repo: Path) -> None:
    shared = repo.parent / "home" / "shared" / "pyproject.toml"
    shared.write_text('[project]\nname = "other"\nversion = "1"\n')
    (repo / "pyproject.toml").symlink_to(shared)
    before = tree(repo.parent / "home")
    code, err = init("--pyproject")
    assert code == 2 and "pyproject.toml" in err and "leads out of" in err, err
    assert tree(repo.parent / "home") == before
