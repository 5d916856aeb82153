"""Source fetching without the network: archives, local trees, git repositories on disk."""

from __future__ import annotations

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from gpuenv.env.targetenv import TargetEnv
from gpuenv.errors import InputError, StepError
from gpuenv.runner import SubprocessRunner
from gpuenv.setup.sources import (
    GitUrl,
    copy_tree,
    fetch_source,
    fetched_by_pip,
    file_sha256,
    git_commands,
    parse_git_url,
    tree_sha256,
    unpack,
)
from tests.fakes import FakeRunner

ENV = TargetEnv("/work/env")


def make_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def test_an_sdist_unpacks_to_its_top_directory(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "demo-1.0.tar.gz", {
        "demo-1.0/setup.py": b"print('hi')\n", "demo-1.0/tools/run.sh": b"#!/bin/sh\n",
    })
    top = unpack(archive, tmp_path / "out")
    assert top == tmp_path / "out" / "demo-1.0"
    assert (top / "setup.py").read_text() == "print('hi')\n"
    assert (top / "tools" / "run.sh").stat().st_mode & 0o100


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "demo/../../evil.txt"])
def test_a_tar_member_outside_the_target_is_refused(tmp_path: Path, name: str) -> None:
    archive = make_tar(tmp_path / "bad.tar.gz", {"demo/ok.txt": b"", name: b"x"})
    with pytest.raises(StepError, match="outside"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_a_tar_symlink_out_of_the_target_is_refused(tmp_path: Path) -> None:
    links = {"demo/passwd": "../../etc/passwd"}
    archive = make_tar(tmp_path / "bad.tar.gz", {"demo/ok.txt": b""}, links=links)
    with pytest.raises(StepError, match="links outside"):
        unpack(archive, tmp_path / "out")


def test_zip_archives_unpack_and_refuse_traversal(tmp_path: Path) -> None:
    good = tmp_path / "demo-1.0.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("demo-1.0/setup.py", "x = 1\n")
    assert (unpack(good, tmp_path / "good") / "setup.py").is_file()
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(StepError, match="outside"):
        unpack(bad, tmp_path / "bad")


def test_a_local_sdist_path_is_unpacked_and_hashed(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "demo_ext-2.1.tar.gz", {"demo_ext-2.1/setup.py": b""})
    source = fetch_source("demo-ext", env=ENV, runner=FakeRunner(), workdir=tmp_path / "work", path=archive)
    assert (source.name, source.version, source.kind) == ("demo-ext", "2.1", "path")
    assert source.archive == archive
    assert source.digest == "sha256:" + file_sha256(archive)
    assert source.directory == tmp_path / "work" / "src" / "demo_ext-2.1"


def user_tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "My_Ext"\nversion = "0.3"\n')
    (root / "pkg" / "kernel.cu").write_text("// kernel\n")
    for junk in ("build/lib/x.so", "dist/old.whl", "My_Ext.egg-info/PKG-INFO", ".git/HEAD",
                 "pkg/__pycache__/m.pyc"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_text("junk")
    (root / "pkg" / "build").mkdir()  # a source directory that happens to be called build
    (root / "pkg" / "build" / "gen.py").write_text("")
    return root


def test_a_local_tree_is_copied_without_vcs_data_and_build_output(tmp_path: Path) -> None:
    tree = user_tree(tmp_path / "ext")
    source = fetch_source("my-ext", env=ENV, runner=FakeRunner(), workdir=tmp_path / "work", path=tree)
    copied = source.directory
    assert copied == tmp_path / "work" / "src" / "ext"
    assert (copied / "pkg" / "kernel.cu").is_file() and (copied / "pkg" / "build" / "gen.py").is_file()
    for gone in ("build", "dist", "My_Ext.egg-info", ".git", "pkg/__pycache__"):
        assert not (copied / gone).exists(), gone
    assert (source.name, source.version, source.kind, source.archive) == ("my-ext", "0.3", "path", None)
    assert source.digest == "sha256:" + tree_sha256(copied)
    assert (tree / "build" / "lib" / "x.so").exists()  # the user's tree is untouched


def test_a_tree_using_setuptools_scm_keeps_its_git_directory(tmp_path: Path) -> None:
    tree = user_tree(tmp_path / "ext")
    (tree / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools-scm"]\n')
    copy_tree(tree, tmp_path / "copy")
    assert (tmp_path / "copy" / ".git" / "HEAD").is_file()


def test_the_tree_digest_follows_contents_and_exec_bits(tmp_path: Path) -> None:
    tree = user_tree(tmp_path / "ext")
    first = tree_sha256(tree)
    assert tree_sha256(tree) == first
    (tree / "pkg" / "kernel.cu").write_text("// changed\n")
    second = tree_sha256(tree)
    assert second != first
    (tree / "pkg" / "kernel.cu").chmod(0o755)
    assert tree_sha256(tree) != second
    (tree / ".git" / "HEAD").write_text("other")  # VCS data is not the source
    (tree / "pkg" / "kernel.cu").chmod(0o644)
    assert tree_sha256(tree) == second


def test_a_missing_path_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="neither a directory"):
        fetch_source("x", env=ENV, runner=FakeRunner(), workdir=tmp_path, path=tmp_path / "nope")


def test_an_index_requirement_is_downloaded_by_the_target_envs_pip(tmp_path: Path) -> None:
    def answer(cmd: list[str]) -> str:
        dest = Path(cmd[cmd.index("-d") + 1])
        make_tar(dest / "flash_attn-2.8.3.post2.tar.gz", {"flash_attn-2.8.3.post2/setup.py": b""})
        return ""

    runner = FakeRunner(answer=answer)
    source = fetch_source("flash-attn==2.8.3.post2", env=ENV, runner=runner, workdir=tmp_path,
                          build_env={"FLASH_ATTENTION_SKIP_CUDA_BUILD": "TRUE"})
    [call] = runner.calls
    assert call.cmd == ["/work/env/bin/python", "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--no-build-isolation", "-d", str(tmp_path / "download"), "flash-attn==2.8.3.post2"]
    assert call.extra_environ == {"FLASH_ATTENTION_SKIP_CUDA_BUILD": "TRUE"}
    assert (source.name, source.version, source.kind) == ("flash-attn", "2.8.3.post2", "index")
    assert source.directory == tmp_path / "src" / "flash_attn-2.8.3.post2"


@pytest.mark.parametrize("pip_says", [
    "ERROR: Could not find a version that satisfies the requirement demo (from versions: none)\n"
    "ERROR: No matching distribution found for demo",
    # with a constraint on the package in pip's configuration:
    "ERROR: Cannot install demo because these package versions have conflicting dependencies.\n"
    "ERROR: ResolutionImpossible: for help visit the pip documentation",
])
def test_a_wheel_only_package_is_reported_as_such(tmp_path: Path, pip_says: str) -> None:
    from gpuenv.errors import CommandError

    def answer(cmd: list[str]) -> str:
        if "download" in cmd:
            raise CommandError(cmd, 1, tail=pip_says)
        assert cmd[-3:] == ["index", "versions", "demo"]
        return "demo (2.28.3)\nAvailable versions: 2.28.3, 2.27.7\n"

    with pytest.raises(StepError, match="only wheels") as info:
        fetch_source("demo", env=ENV, runner=FakeRunner(answer=answer), workdir=tmp_path)
    assert "2.28.3, 2.27.7" in str(info.value)


# -- git ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("git+https://git.invalid/NVIDIA/apex.git@25.09",
     GitUrl("https://git.invalid/NVIDIA/apex.git", "25.09", None)),
    ("git+ssh://git@example.invalid/org/repo.git@v1.2#egg=repo&subdirectory=python",
     GitUrl("ssh://git@example.invalid/org/repo.git", "v1.2", "python")),
    ("git+https://example.invalid/repo", GitUrl("https://example.invalid/repo", None, None)),
])
def test_git_urls_are_parsed(text: str, expected: GitUrl) -> None:
    assert parse_git_url(text) == expected


def test_a_commit_is_cloned_in_full_a_tag_shallow(tmp_path: Path) -> None:
    commit = git_commands(GitUrl("https://h/r.git", "0123abcd", None), tmp_path)
    assert commit[0] == ["git", "clone", "https://h/r.git", str(tmp_path)]
    assert commit[1] == ["git", "-C", str(tmp_path), "checkout", "--detach", "0123abcd"]
    [tag] = git_commands(GitUrl("https://h/r.git", "v1", None), tmp_path)
    assert tag[:6] == ["git", "clone", "--depth", "1", "--branch", "v1"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def test_a_git_source_is_checked_out_at_its_ref(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "python").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "python" / "setup.py").write_text("version = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    git(repo, "tag", "v1")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "python" / "setup.py").write_text("version = 2\n")
    git(repo, "commit", "-q", "-am", "two")

    runner = SubprocessRunner(log_path=tmp_path / "git.log")
    source = fetch_source(f"demo @ git+{repo.as_uri()}@v1#subdirectory=python", env=ENV, runner=runner,
                          workdir=tmp_path / "work")
    assert (source.name, source.kind, source.commit) == ("demo", "git", first)
    assert source.digest == f"git:{first}:python"
    assert (source.directory / "setup.py").read_text() == "version = 1\n"
    by_commit = fetch_source(f"git+{repo.as_uri()}@{first[:10]}", env=ENV, runner=runner,
                             workdir=tmp_path / "work")
    assert by_commit.commit == first and by_commit.name == "repo"


@pytest.mark.parametrize(("requirement", "path", "by_pip"), [
    ("torch-scatter==2.1.2", None, True),
    ("flash-attn @ https://example.invalid/flash_attn-2.8.3.tar.gz", None, True),
    ("torch-scatter==2.1.2", Path("/src/torch_scatter"), False),
    ("tiny @ file:///src/tiny", None, False),
    ("git+https://example.invalid/x.git@v1", None, False),
    ("x @ git+https://example.invalid/x.git@v1", None, False),
])
def test_only_index_and_url_sources_are_downloaded_by_the_envs_pip(
    requirement: str, path: Path | None, by_pip: bool
) -> None:
    # An env uv made has no pip: setup installs it first exactly for these.
    assert fetched_by_pip(requirement, path) is by_pip
