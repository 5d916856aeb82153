"""The pieces setup uses for a research repo: python, [repo], requirements files, runtime builds, tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from gpuenv.api import gpuenv_origin
from gpuenv.errors import RecipeError
from gpuenv.load.recipe import load_recipe
from gpuenv.plan.planner import plan
from gpuenv.probe.interpreters import NoPythonError, find_python
from gpuenv.runner import SubprocessRunner
from gpuenv.setup.context import SetupOptions
from gpuenv.setup.run import run_setup
from gpuenv.setup.runtime import RUNTIME_PTH, read_runtime_env, write_runtime_env
from tests.unit.plan.test_plan import A100, D580, machine


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_recipe_python_repo_and_requirements_files(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "r"\nversion = "1"\n')
    write(tmp_path / "requirements.txt", "torch==2.0.1\neinops\n-e .\n-i https://idx.invalid/simple\n")
    recipe = load_recipe(write(tmp_path / "envs" / "r.toml", (
        '[env]\npython = "3.10"\n[torch]\nversion = ">=2.1"\n[repo]\nextras = ["a"]\n'
        '[packages]\nrequirements-files = ["../requirements.txt"]\n')))
    assert recipe.python == "==3.10.*"
    assert recipe.repo is not None and recipe.repo.path == tmp_path.resolve() and recipe.repo.editable
    assert recipe.repo.requirement == f"{tmp_path.resolve()}[a]"
    assert recipe.packages == ("einops",)
    assert recipe.package_sources.index_url == "https://idx.invalid/simple"
    assert len(recipe.left_out) == 2


@pytest.mark.parametrize(("body", "key"), [
    ('[env]\npython = "three"\n[torch]\nversion = "2.13.*"\n', "env.python"),
    ('[torch]\nversion = "2.13.*"\n[repo]\npath = "./nowhere"\n', "repo.path"),
    ('[torch]\nversion = "2.13.*"\n[repo]\neditable = "yes"\n', "repo.editable"),
    ('[torch]\nversion = "2.13.*"\n[packages]\nrequirements-files = ["missing.txt"]\n',
     "packages.requirements-files[0]"),
    ('[torch]\nversion = "2.13.*"\n[[extensions]]\nrequirement = "x"\nfixed-archs = ["sm90"]\n',
     "extensions[0].fixed-archs[0]"),
    ('[torch]\nversion = "2.13.*"\n[[extensions]]\nrequirement = "x"\narch-format = "dots"\n',
     "extensions[0].arch-format"),
])
def test_bad_new_recipe_keys_name_the_key(tmp_path: Path, body: str, key: str) -> None:
    write(tmp_path / "setup.py", "")
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path / "r.toml", body))
    assert info.value.key == key and info.value.exit_code == 2


def test_find_python_takes_one_that_satisfies_the_spec_or_says_what_it_found() -> None:
    runner = SubprocessRunner()
    me = ".".join(map(str, sys.version_info[:2]))
    found = find_python(f"=={me}.*", runner)
    assert found.version.startswith(me + ".")
    with pytest.raises(NoPythonError) as info:
        find_python("==2.0.*", runner)
    assert info.value.exit_code == 3 and me in str(info.value)
    assert "uv python install 2.0" in (info.value.hint or "")


def _venv_with_runtime_pth(root: Path, env: dict[str, str]) -> Path:
    """A real venv (no pip: a fraction of a second) whose site-packages holds the runtime .pth."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next(root.glob("lib/python3*/site-packages"))
    write_runtime_env(site, env)
    assert read_runtime_env(site) == env
    return root / "bin" / "python"


def test_the_runtime_pth_fills_in_the_plan_at_interpreter_start_and_the_user_wins(tmp_path: Path) -> None:
    env = {"CUDA_HOME": "/opt/cuda-13.0", "TORCH_CUDA_ARCH_LIST": "8.0", "MAX_JOBS": "2"}
    python = _venv_with_runtime_pth(tmp_path / "venv", env)
    code = "import json, os; print(json.dumps({k: os.environ.get(k) for k in sys_argv}))".replace(
        "sys_argv", repr(sorted(env)))
    clean = {k: v for k, v in os.environ.items() if k not in env and k != "GPUENV_RUNTIME_ENV"}

    def started(**set_: str) -> dict[str, str | None]:
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                              env={**clean, **set_}, check=True)
        return dict(json.loads(done.stdout))

    assert started() == env, "what is unset is filled in when the interpreter starts"
    # TORCH_CUDA_ARCH_LIST=9.0 python train.py: the user's value wins, the others are still filled in.
    assert started(TORCH_CUDA_ARCH_LIST="9.0") == {**env, "TORCH_CUDA_ARCH_LIST": "9.0"}
    assert started(CUDA_HOME="/usr/local/cuda", MAX_JOBS="") == {
        **env, "CUDA_HOME": "/usr/local/cuda", "MAX_JOBS": ""}, "set, even to nothing, is the user's"
    assert started(GPUENV_RUNTIME_ENV="0") == dict.fromkeys(env), "switched off, nothing is set"


def test_the_runtime_pth_an_earlier_setup_wrote_is_still_read(tmp_path: Path) -> None:
    """Envs set up before the .pth filled only what is unset: doctor still reports what they set."""
    (tmp_path / RUNTIME_PTH).write_text("import os; os.environ.get('GPUENV_RUNTIME_ENV') == '0' or "
                                        'os.environ.update({"MAX_JOBS": "2"})  # written by gpuenv setup\n')
    assert read_runtime_env(tmp_path) == {"MAX_JOBS": "2"}


def test_the_plan_carries_the_runtime_env_with_the_toolkit_even_without_extensions(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path / "r.toml", '[torch]\nversion = "2.13.*"\n'))
    result = plan(recipe, machine(A100, driver=D580, nvcc=("13.0",), cpus=4))
    assert result.runtime_env == {"CUDA_HOME": "/usr/local/cuda-13.0", "TORCH_CUDA_ARCH_LIST": "8.0",
                                  "MAX_JOBS": "4"}


def test_dry_run_shows_the_python_the_repo_install_and_the_runtime_file(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "r"\nversion = "1"\n')
    me = ".".join(map(str, sys.version_info[:2]))
    recipe = load_recipe(write(tmp_path / "r.toml", (
        f'[env]\npython = "{me}"\n[torch]\nversion = "2.13.*"\n[repo]\nextras = ["train"]\n')))
    result = plan(recipe, machine(A100, driver=D580, nvcc=("13.0",)))
    lines = run_setup(result, SetupOptions(venv=tmp_path / "my venv"), dry_run=True).commands
    text = "\n".join(lines)
    assert f"'{tmp_path / 'my venv'}'" in text  # shell-quoted: a path with a space pastes as one word
    assert "--no-build-isolation" in text and f"-e '{tmp_path.resolve()}[train]'" in text
    assert "CUDA_HOME=/usr/local/cuda-13.0 TORCH_CUDA_ARCH_LIST=8.0" in text
    assert RUNTIME_PTH in text and "TORCH_CUDA_ARCH_LIST=8.0" in text


def installed_gpuenv(site: Path, monkeypatch: pytest.MonkeyPatch,
                     direct_url: dict[str, object] | None) -> None:
    """A real install record of gpuenv 9.9 in ``site``, found first by importlib.metadata (PEP 610)."""
    info = site / "gpuenv-9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gpuenv\nVersion: 9.9\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    monkeypatch.syspath_prepend(str(site))


def test_gpuenv_origin_of_an_editable_install_is_its_checkout(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    installed_gpuenv(tmp_path / "site", monkeypatch,
                     {"url": checkout.as_uri(), "dir_info": {"editable": True}})
    assert gpuenv_origin() == str(checkout)


def test_gpuenv_origin_of_a_local_wheel_install_is_that_wheel(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / "gpuenv-9.9-py3-none-any.whl"
    installed_gpuenv(tmp_path / "site", monkeypatch, {"url": wheel.as_uri(), "archive_info": {}})
    assert gpuenv_origin() == f"gpuenv @ {wheel.as_uri()}"


def test_gpuenv_origin_of_a_git_install_is_its_url_at_the_commit(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    installed_gpuenv(tmp_path / "site", monkeypatch,
                     {"url": "https://example.org/gpuenv.git",
                      "vcs_info": {"vcs": "git", "commit_id": "0123abc", "requested_revision": "main"}})
    assert gpuenv_origin() == "gpuenv @ git+https://example.org/gpuenv.git@0123abc"


def test_gpuenv_origin_of_an_index_install_is_its_version(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    installed_gpuenv(tmp_path / "site", monkeypatch, None)
    assert gpuenv_origin() == "gpuenv==9.9"


def test_gpuenv_origin_of_an_archive_url_install_is_that_url(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://example.org/gpuenv-9.9.tar.gz"
    installed_gpuenv(tmp_path / "site", monkeypatch, {"url": url, "archive_info": {}})
    assert gpuenv_origin() == f"gpuenv @ {url}"


def test_gpuenv_origin_when_not_installed_is_the_source_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", not_installed)
    repo = Path(__file__).resolve().parents[3]
    assert gpuenv_origin() == str(repo)


def test_gpuenvs_own_builds_in_the_env_are_not_overridden_by_its_runtime_file(tmp_path: Path) -> None:
    """A rebuild for other archs runs in the env, whose .pth names the old ones: the build's must win."""
    write_runtime_env(tmp_path, {"TORCH_CUDA_ARCH_LIST": "9.0"})
    code = "import site, os, sys; site.addsitedir(sys.argv[1]); print(os.environ['TORCH_CUDA_ARCH_LIST'])"
    out = SubprocessRunner()([sys.executable, "-c", code, str(tmp_path)],
                             extra_environ={"TORCH_CUDA_ARCH_LIST": "8.0;9.0"})
    assert out.strip() == "8.0;9.0"
