"""What ``gpuenv init`` reads in a hostile repository (issue 26, cause 7): link loops, ``~user`` for no such
user, NUL bytes, a setup.py too deep for the parser, hash-pinned and BOM files, names the recipe cannot hold,
conda's ``python=3.10.*``, a requirements link out of the repository, YAML tags and bombs, FIFOs, huge
files. Each is read correctly or refused with ``error:`` naming the file (exit 2); never a traceback, a
hang, or a recipe init's own loader then refuses."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gpuenv.init.reposcan import scan_repo
from gpuenv.load.recipe import load_recipe
from tests.unit.test_fuzz import Hang, run_cli


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("GPUENV_REQUIREMENT", "gpuenv")
    monkeypatch.setenv("GPUENV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GPUENV_OFFLINE", "1")
    return root


def cli(*args: str) -> tuple[int, str]:
    try:
        return run_cli(list(args))
    except Hang as exc:
        pytest.fail(str(exc))


def init_then_plan(root: Path) -> tuple[int, str, int, str]:
    """init, then plan for an A100 elsewhere: both must end in 0, 2 or 3, never in a traceback."""
    code, err = cli("init")
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("error: ") and "hint: " in err, err
        return code, err, code, err
    load_recipe(root / "envs" / "default.toml")  # what init wrote, its own loader reads
    plan_code, plan_err = cli("plan", "--gpu", "A100", "--no-cache")
    assert plan_code in (0, 2, 3) and "Traceback" not in plan_err, plan_err
    return code, err, plan_code, plan_err


def _deep_setup(root: Path) -> None:
    (root / "setup.py").write_text("x = " + "(" * 200_000 + "1" + ")" * 200_000 + "\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _hash_lines(root: Path) -> None:
    (root / "requirements.txt").write_text(
        "numpy==1.26.4 \\\n    --hash=sha256:" + "a" * 64 + " \\\n    --hash=sha256:" + "b" * 64 + "\n"
        "    # via -r requirements.in\n"
    )


CASES: dict[str, Callable[[Path], None]] = {
    "requirements link loop": lambda r: (r / "requirements.txt").symlink_to("requirements.txt"),
    "folder link loop": lambda r: (
        (r / "requirements.txt").write_text("numpy\n"),
        (r / "sub").mkdir(),
        (r / "sub" / "loop").symlink_to(".."),
    ),
    "include of a link loop": lambda r: (
        (r / "requirements.txt").write_text("-r loop.txt\nnumpy\n"),
        (r / "loop.txt").symlink_to("loop.txt"),
    ),
    "setup.py link loop": lambda r: (r / "setup.py").symlink_to("setup.py"),
    "environment.yml link loop": lambda r: (r / "environment.yml").symlink_to("environment.yml"),
    "~user in an include": lambda r: (r / "requirements.txt").write_text("-r ~nosuchuser/reqs.txt\nnumpy\n"),
    "~user in an editable": lambda r: (r / "requirements.txt").write_text("-e ~nosuchuser/pkg\nnumpy\n"),
    "NUL in a path line": lambda r: (r / "requirements.txt").write_bytes(b"./pk\x00g\nnumpy\n"),
    "NUL in an include": lambda r: (r / "requirements.txt").write_bytes(b"-r a\x00b.txt\nnumpy\n"),
    "NUL in .gitmodules": lambda r: (r / ".gitmodules").write_bytes(
        b'[submodule "x"]\n\tpath = a\x00b\n\turl = u\n'
    ),
    "600 KB expression in setup.py": _deep_setup,
    "hash-pinned file": _hash_lines,
    "UTF-8 BOM": lambda r: (r / "requirements.txt").write_bytes(b"\xef\xbb\xbfnumpy==1.26.4\n"),
    "UTF-16 file with its BOM": lambda r: (r / "requirements.txt").write_bytes("numpy\n".encode("utf-16")),
    "not UTF-8": lambda r: (r / "requirements.txt").write_bytes(b"numpy # caf\xe9\n"),
    "FIFO requirements file": lambda r: os.mkfifo(r / "requirements.txt"),
    "folder named requirements.txt": lambda r: (r / "requirements.txt").mkdir(),
    "5 MB requirements file": lambda r: (r / "requirements.txt").write_text("numpy\n" * 900_000),
    "brackets nested 1000 deep": lambda r: (r / "requirements.txt").write_text("numpy" + "[" * 1000 + "\n"),
    "YAML python tag": lambda r: (r / "environment.yml").write_text(
        "dependencies:\n  - !!python/object/apply:os.system ['touch pwned']\n  - numpy\n"
    ),
    "YAML alias bomb": lambda r: (r / "environment.yml").write_text(
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\ndependencies: [*c, *c, *c, *c, *c, *c, *c, *c]\n"
    ),
    "YAML that is not YAML": lambda r: (r / "environment.yml").write_text("dependencies: [unclosed\n"),
    "a .git file pointing nowhere": lambda r: (
        (r / ".git").write_text("gitdir: /nonexistent/x\n"),
        (r / ".gitmodules").write_text('[submodule "s"]\n\tpath = s\n'),
    ),
    "a garbage git index": lambda r: (
        (r / ".git").mkdir(),
        (r / ".git" / "index").write_bytes(b"DIRC" + b"\xff" * 40),
        (r / ".gitmodules").write_text('[submodule "s"]\n\tpath = s\n'),
    ),
    ".gitmodules that is a folder": lambda r: (r / ".gitmodules").mkdir(),
    # Campaign 3: a sum of 3000 strings parses into a tree too deep for ast's C parser (RecursionError),
    # in an extension folder's setup.py (read by the tree's metadata reader, not setupscan).
    "a 3000-term sum in an extension's setup.py": lambda r: _write(
        r / "csrc" / "setup.py",
        "from torch.utils.cpp_extension import CUDAExtension\nsetup(name=" + "'a'+" * 3000
        + "'b', ext_modules=[CUDAExtension('x', ['a.cu'])])\n",
    ),
    # ... and one of 900, which parses: read or refused, never a traceback.
    "a 900-term sum in an extension's setup.py": lambda r: _write(
        r / "csrc" / "setup.py",
        "from torch.utils.cpp_extension import CUDAExtension\nsetup(name=" + "'a'+" * 900
        + "'b', version='1'" + "+'1'" * 900 + ", ext_modules=[CUDAExtension('x', ['a.cu'])])\n",
    ),
    # packaging reads torch==<10000 digits> as a specifier, then raises ValueError comparing it.
    # ... and as an extension folder's version, read by the tree's metadata reader.
    "a version of 5000 digits in an extension's setup.py": lambda r: _write(
        r / "csrc" / "setup.py",
        "from torch.utils.cpp_extension import CUDAExtension\nsetup(name='x', version='" + "9" * 5000
        + "', ext_modules=[CUDAExtension('x', ['a.cu'])])\n",
    ),
    "a torch pin of 10000 digits": lambda r: _write(r / "requirements.txt", "torch==" + "9" * 10_000 + "\n"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_is_read_or_refused_naming_the_file(repo: Path, name: str) -> None:
    CASES[name](repo)
    init_then_plan(repo)
    assert not (repo / "pwned").exists(), "a YAML tag ran"


def test_a_deep_setup_py_is_noted_not_read(repo: Path) -> None:
    _deep_setup(repo)
    scan = scan_repo(repo)
    assert any(f.origin == "setup.py" and "nested" in f.note for f in scan.findings)


@pytest.mark.parametrize("make", [_hash_lines, CASES["UTF-8 BOM"]])
def test_hash_pinned_and_bom_files_are_placed(repo: Path, make: Callable[[Path], None]) -> None:
    make(repo)
    assert init_then_plan(repo)[0] == 0
    recipe = load_recipe(repo / "envs" / "default.toml")
    assert recipe.requirement_files == ((repo / "requirements.txt").resolve(),)
    assert recipe.packages == ("numpy==1.26.4",)
    assert not any(f.place == "unplaced" for f in scan_repo(repo).findings)


EXT_SETUP = (
    "from setuptools import setup\nfrom torch.utils.cpp_extension import CUDAExtension, BuildExtension\n"
    "setup(name='{name}', ext_modules=[CUDAExtension('{name}', ['op.cu'])], "
    "cmdclass={{'build_ext': BuildExtension}})\n"
)


@pytest.mark.parametrize(
    ("folder", "dist"), [("my ext", "my_ext"), ("conv_v2+fast", "conv_fast"), ("ops", "ops")]
)
def test_extension_folders_with_odd_names_get_a_form_the_loader_reads(
    repo: Path, folder: str, dist: str
) -> None:
    (repo / "csrc" / folder).mkdir(parents=True)
    (repo / "csrc" / folder / "setup.py").write_text(EXT_SETUP.format(name=dist))
    (repo / "requirements.txt").write_text("torch==2.13.0\n")
    assert init_then_plan(repo)[0] == 0
    [ext] = load_recipe(repo / "envs" / "default.toml").extensions
    assert ext.path == (repo / "csrc" / folder).resolve()


def test_conda_python_with_a_star_becomes_a_python_the_loader_reads(repo: Path) -> None:
    (repo / "environment.yml").write_text("dependencies:\n  - python=3.10.*\n  - pytorch=2.13\n")
    assert init_then_plan(repo)[0] == 0
    assert load_recipe(repo / "envs" / "default.toml").python == "==3.10.*"


def test_a_requirements_link_to_a_shared_file_outside_is_written_so_the_loader_reads_it(repo: Path) -> None:
    shared = repo.parent / "shared.txt"
    shared.write_text("numpy\n")
    (repo / "requirements.txt").symlink_to(shared)
    assert init_then_plan(repo)[0] == 0
    assert load_recipe(repo / "envs" / "default.toml").packages == ("numpy",)


def test_the_cache_dir_of_a_user_this_machine_lacks_is_an_error_naming_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "requirements.txt").write_text("numpy\n")
    assert cli("init")[0] == 0
    monkeypatch.setenv("GPUENV_CACHE_DIR", "~nosuchuser/cache")
    code, err = cli("plan", "--gpu", "A100")
    assert code == 2 and "GPUENV_CACHE_DIR" in err and "nosuchuser" in err, err


def test_init_reads_an_80000_line_file_once_per_line(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear work, counted in candidates placed, not in seconds (a quadratic reading took 44 s)."""
    from gpuenv.init import placing

    calls = {"n": 0}
    real = placing.Placer.add

    def counting(self: placing.Placer, c: placing.Candidate) -> None:
        calls["n"] += 1
        real(self, c)

    monkeypatch.setattr(placing.Placer, "add", counting)
    (repo / "requirements.txt").write_text("".join(f"pkg{i}=={i}.0\n" for i in range(80_000)))
    scan = scan_repo(repo)
    assert calls["n"] == 80_000 and len(scan.placed("package")) == 80_000
