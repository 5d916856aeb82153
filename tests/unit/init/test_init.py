"""gpuenv init: what it writes, what it leaves alone, and (slow) a bootstrapped repo set up through nox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpuenv.errors import InputError, RecipeError
from gpuenv.init.existing import ExistingTorch
from gpuenv.init.templates import README_HEADING, noxfile_text, tasks_text
from gpuenv.init.writer import init_repo, init_text
from gpuenv.load.recipe import find_recipe, load_recipe

REPO = Path(__file__).resolve().parents[3]
FILES = ("envs/default.toml", "noxfile.py", "tasks.py", "README.md", ".gitignore")
ORIGIN = str(REPO)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def written(result_paths: tuple[Path, ...], root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in result_paths]


def test_an_empty_repo_gets_every_file(tmp_path: Path) -> None:
    result = init_repo(tmp_path, extensions=["flash-attn==2.8.3.post2"], origin=ORIGIN)
    assert written(result.written, tmp_path) == list(FILES) and result.skipped == ()
    recipe = load_recipe(tmp_path / "envs" / "default.toml")
    assert recipe.torch.version == ">=2.1" and recipe.torch.cuda == "auto"
    assert [e.requirement for e in recipe.extensions] == ["flash-attn==2.8.3.post2"]
    assert find_recipe(tmp_path) == tmp_path / "envs" / "default.toml"
    assert (tmp_path / "noxfile.py").read_text() == noxfile_text(ORIGIN)
    assert (tmp_path / "tasks.py").read_text() == tasks_text(ORIGIN)
    assert (tmp_path / ".gitignore").read_text().splitlines()[1:] == [".venv/", ".nox/"]
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith(f"# {tmp_path.name}\n\n{README_HEADING}\n") and "nox -s gpu-env" in readme


def test_the_noxfile_imports_no_gpuenv_and_tasks_take_the_collection() -> None:
    noxfile, tasks = noxfile_text(ORIGIN), tasks_text(ORIGIN)
    for text in (noxfile, tasks):
        compile(text, "<init>", "exec")
        assert len(text.splitlines()) < 40
    imports = [line for line in noxfile.splitlines() if line.startswith(("import", "from"))]
    assert not any("gpuenv" in line for line in imports)
    assert f'os.environ.get("GPUENV_REQUIREMENT", "{ORIGIN}")' in noxfile
    assert "namespace = invoke_collection()" in tasks


NGC = ExistingTorch("2.5.0a0+872d972e41.nv24.08", Path("/usr"))


def test_in_an_env_that_holds_torch_init_proposes_to_build_against_it(tmp_path: Path) -> None:
    result = init_repo(tmp_path, extensions=["flash-attn==2.8.3.post2"], origin=ORIGIN, here=NGC)
    recipe = load_recipe(tmp_path / "envs" / "default.toml")
    assert recipe.torch.existing and recipe.torch.version == ""
    assert "torch 2.5.0a0+872d972e41.nv24.08 in /usr" in (tmp_path / "envs" / "default.toml").read_text()
    text = init_text(result)
    assert ('this Python: torch 2.5.0a0+872d972e41.nv24.08 in /usr (the Python gpuenv runs in, not made by '
            'gpuenv) -> [torch] use = "existing"') in text


def test_a_repository_pin_the_envs_torch_does_not_satisfy_keeps_its_own_torch(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("torch==2.0.1\n")
    result = init_repo(tmp_path, origin=ORIGIN, here=NGC)
    recipe = load_recipe(tmp_path / "envs" / "default.toml")
    assert not recipe.torch.existing and recipe.torch.version == "==2.0.1"
    assert "not taken, the repository pins torch==2.0.1" in init_text(result)
    fitting = tmp_path / "fits"
    fitting.mkdir()
    (fitting / "requirements.txt").write_text("torch>=2.4\n")
    init_repo(fitting, origin=ORIGIN, here=NGC)
    assert load_recipe(fitting / "envs" / "default.toml").torch.existing


def test_a_torch_version_given_to_init_wins_over_the_envs_torch(tmp_path: Path) -> None:
    init_repo(tmp_path, torch_version="2.13.0", origin=ORIGIN, here=NGC)
    assert load_recipe(tmp_path / "envs" / "default.toml").torch.version == "==2.13.0"


def test_the_torch_of_the_python_init_runs_in_is_found_by_its_metadata(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "torch-2.5.0a0+872d972e41.nv24.08.dist-info").mkdir(parents=True)
    (site / "torch-2.5.0a0+872d972e41.nv24.08.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: torch\nVersion: 2.5.0a0+872d972e41.nv24.08\n")
    code = "from gpuenv.init.existing import torch_in_this_python as t; f = t(); print(f and f.version)"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(site)},
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "2.5.0a0+872d972e41.nv24.08"


def test_a_name_and_a_torch_version_go_into_the_recipe(tmp_path: Path) -> None:
    init_repo(tmp_path, name="llm", torch_version="2.13.0")
    recipe = load_recipe(tmp_path / "envs" / "default.toml")
    assert (recipe.name, recipe.torch.version) == ("llm", "==2.13.0")


def test_a_second_run_skips_everything_and_says_why(tmp_path: Path) -> None:
    init_repo(tmp_path)
    before = snapshot(tmp_path)
    result = init_repo(tmp_path, torch_version="2.13.0", extensions=["torch-scatter"])
    assert result.written == ()
    reasons = {str(s.path.relative_to(tmp_path)): s.reason for s in result.skipped}
    assert list(reasons) == list(FILES)
    assert "exists" in reasons["envs/default.toml"]
    assert "gpu-env" in reasons["noxfile.py"] and "invoke_collection" in reasons["tasks.py"]
    assert ".venv/" in reasons[".gitignore"]
    assert README_HEADING in reasons["README.md"]
    assert snapshot(tmp_path) == before
    text = init_text(result)
    assert "skipped  envs/default.toml: it exists" in text and "wrote" not in text


def test_existing_noxfile_tasks_and_readme_are_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "noxfile.py").write_text("import nox\n\n@nox.session\ndef tests(session):\n    pass\n")
    (tmp_path / "tasks.py").write_text("from invoke import task\n\n@task\ndef build(c):\n    pass\n")
    (tmp_path / "README.md").write_text("# My research\n\nTrains things.\n")
    before = snapshot(tmp_path)
    result = init_repo(tmp_path)
    assert written(result.written, tmp_path) == ["envs/default.toml", "README.md", ".gitignore"]
    assert (tmp_path / "noxfile.py").read_bytes() == before["noxfile.py"]
    assert (tmp_path / "tasks.py").read_bytes() == before["tasks.py"]
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("# My research\n\nTrains things.\n\n" + README_HEADING)
    assert result.appended == (tmp_path / "README.md",) and "appended README.md" in init_text(result)
    skipped = {s.path.name: s for s in result.skipped}
    nox_snippet, tasks_snippet = skipped["noxfile.py"].snippet, skipped["tasks.py"].snippet
    assert nox_snippet is not None and "_gpuenv_session(_command)" in nox_snippet
    assert tasks_snippet is not None and "invoke_collection()" in tasks_snippet
    # The snippets, added by hand, make working files.
    compile(before["noxfile.py"].decode() + nox_snippet, "noxfile.py", "exec")
    compile(before["tasks.py"].decode() + tasks_snippet, "tasks.py", "exec")
    assert "_gpuenv_session(_command)" in init_text(result)


def test_pyproject_mode_appends_a_table_the_recipe_loader_accepts(tmp_path: Path) -> None:
    original = '[project]\nname = "myresearch"\nversion = "0.1"\n\n[tool.ruff]\nline-length = 100\n'
    (tmp_path / "pyproject.toml").write_text(original)
    result = init_repo(tmp_path, into_pyproject=True, torch_version="2.13.0", extensions=["torch-scatter"])
    assert result.recipe == tmp_path / "pyproject.toml"
    assert written(result.written, tmp_path) == ["pyproject.toml", "noxfile.py", "tasks.py", "README.md",
                                                 ".gitignore"]
    assert not (tmp_path / "envs").exists()
    text = (tmp_path / "pyproject.toml").read_text()
    assert text.startswith(original) and "[tool.gpuenv.torch]" in text
    recipe = load_recipe(tmp_path / "pyproject.toml")
    assert (recipe.name, recipe.torch.version) == ("myresearch", "==2.13.0")
    assert [e.name for e in recipe.extensions] == ["torch-scatter"]
    assert find_recipe(tmp_path) == tmp_path / "pyproject.toml"
    assert "`[tool.gpuenv]` table of `pyproject.toml`" in (tmp_path / "README.md").read_text()
    again = init_repo(tmp_path, into_pyproject=True)
    assert "already has a [tool.gpuenv] table" in again.skipped[0].reason
    assert (tmp_path / "pyproject.toml").read_text() == text


def test_a_recipe_in_pyproject_is_not_shadowed_by_a_new_envs_default(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.gpuenv.torch]\nversion = "2.13.0"\n')
    result = init_repo(tmp_path)
    assert not (tmp_path / "envs").exists() and result.recipe == tmp_path / "pyproject.toml"
    assert "pyproject.toml already holds the recipe" in result.skipped[0].reason
    assert "`[tool.gpuenv]` table of `pyproject.toml`" in (tmp_path / "README.md").read_text()


def test_pyproject_mode_refuses_a_table_envs_default_would_shadow(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    init_repo(tmp_path, extensions=[])
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match="would never be used"):
        init_repo(tmp_path, into_pyproject=True)
    assert snapshot(tmp_path) == before


def test_pyproject_mode_without_a_pyproject_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as info:
        init_repo(tmp_path, into_pyproject=True)
    assert info.value.hint is not None and "without --pyproject" in info.value.hint
    assert snapshot(tmp_path) == {}


def test_a_pyproject_whose_tool_table_is_inline_is_not_touched(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('tool = { ruff = { line-length = 100 } }\n')
    with pytest.raises(RecipeError, match="cannot be appended"):
        init_repo(tmp_path, into_pyproject=True)
    assert set(snapshot(tmp_path)) == {"pyproject.toml"}


def test_a_readme_init_cannot_read_is_an_error_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "README.md").mkdir()
    with pytest.raises(InputError, match=r"cannot read .*README\.md: not a regular file \(a directory\)"):
        init_repo(tmp_path, extensions=[], origin=ORIGIN)
    assert snapshot(tmp_path) == {}


def test_a_readme_in_another_encoding_keeps_its_bytes_and_gets_the_section(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_bytes(b"# caf\xe9\n")
    init_repo(tmp_path, extensions=[], origin=ORIGIN)
    assert (tmp_path / "README.md").read_bytes().startswith(b"# caf\xe9\n\n" + README_HEADING.encode())


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"torch\.version"):
        init_repo(tmp_path, torch_version="torch>=2.4")
    with pytest.raises(RecipeError, match="extensions"):
        init_repo(tmp_path, extensions=["not a requirement!"])
    assert snapshot(tmp_path) == {}


def test_a_local_extension_path_is_made_relative_to_the_recipe(tmp_path: Path) -> None:
    (tmp_path / "csrc" / "myext").mkdir(parents=True)
    (tmp_path / "csrc" / "myext" / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    init_repo(tmp_path, extensions=["./csrc/myext"])
    recipe = load_recipe(tmp_path / "envs" / "default.toml")
    assert recipe.extensions[0].requirement == "../csrc/myext"
    assert recipe.extensions[0].path == (tmp_path / "csrc" / "myext").resolve()


def test_the_written_noxfile_and_tasks_list_their_session_and_task(tmp_path: Path) -> None:
    init_repo(tmp_path)
    nox = subprocess.run([sys.executable, "-m", "nox", "-f", str(tmp_path / "noxfile.py"), "-l"],
                         capture_output=True, text=True, check=False)
    assert nox.returncode == 0 and "gpu-env" in nox.stdout, nox.stdout + nox.stderr
    assert "gpu-plan" in nox.stdout and "gpu-doctor" in nox.stdout
    invoke = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(tmp_path), "--list"],
                            capture_output=True, text=True, check=False)
    assert invoke.returncode == 0, invoke.stdout + invoke.stderr
    assert all(task in invoke.stdout for task in ("setup", "plan", "probe", "doctor", "cache")), invoke.stdout
