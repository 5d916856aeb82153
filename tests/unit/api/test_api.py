"""The library API: a script plans and sets up without the command line, and gets what the command gets."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

import gpuenv
from gpuenv.cli import main
from gpuenv.load.recipe import load_recipe
from gpuenv.plan.hardware import hardware_from_json
from tests.unit.plan.test_cli_plan import GRAPH_RECIPE, node


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "envs" / "graph.toml"
    path.parent.mkdir()
    path.write_text(GRAPH_RECIPE.replace('"2.13.*"', '"2.13.*"\ntoolkit = "system"'), encoding="utf-8")
    return path


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {"GPUENV_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}


def test_a_script_plans_what_the_command_plans(recipe: Path, tmp_path: Path, environ: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    hardware = tmp_path / "node.json"
    hardware.write_text(json.dumps(node("9.0", nvcc=("13.0",))), encoding="utf-8")
    project = gpuenv.Project(recipe=recipe, hardware=hardware, offline=True, environ=environ)
    planned = project.plan()
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        code = main(["plan", "-r", str(recipe), "--hardware", str(hardware), "--offline", "--json", "-q"])
    assert code == 0
    assert json.loads(shown.getvalue()) == json.loads(json.dumps(planned.to_json()))
    assert planned.arch_list == ("9.0",) and {e.name for e in planned.extensions} == {"flash-attn",
                                                                                       "torch-scatter"}


def test_the_library_takes_loaded_records_and_the_options_by_their_names(
    recipe: Path, environ: dict[str, str]
) -> None:
    project = gpuenv.Project(recipe=load_recipe(recipe), hardware=hardware_from_json(node("8.0")),
                             cuda="12.6", offline=True, environ={**environ, "GPUENV_TOOLKIT": "auto"})
    planned = project.plan()
    assert planned.variant == "cu126" and "cu126 forced by --cuda 12.6" in planned.reasons
    # The environment wins over the recipe's toolkit = "system"; a keyword argument over the environment.
    assert project.toolkit_policy().chosen_by == "GPUENV_TOOLKIT=auto"
    given = gpuenv.Project(recipe=recipe, toolkit="pypi", environ={**environ, "GPUENV_TOOLKIT": "auto"})
    assert given.toolkit_policy().chosen_by == "--toolkit pypi"
    assert gpuenv.Project(recipe=recipe, environ=environ).toolkit_policy().chosen_by == \
        'toolkit = "system" in graph.toml'
    with pytest.raises(TypeError, match="unknown options: cudaa"):
        gpuenv.Project(recipe=recipe, cudaa="12.6")


def test_a_script_sees_what_setup_would_run_and_nothing_is_made(recipe: Path, tmp_path: Path,
                                                                environ: dict[str, str]) -> None:
    venv = tmp_path / "env"
    project = gpuenv.Project(recipe=recipe, hardware=hardware_from_json(node("9.0")), venv=venv,
                             installer="pip", offline=True, dry_run=True, environ=environ)
    result = project.setup()
    text = "\n".join(result.commands)
    assert f"-m venv {venv}" in text and "torch-scatter" in text and "TORCH_CUDA_ARCH_LIST=9.0" in text
    assert not venv.exists()
    prepared = project.prepare_setup()
    assert prepared.plan.arch_list == ("9.0",) and prepared.options.venv == venv
    assert prepared.options.installer == "pip" and not prepared.target.adopted


def test_the_caches_of_a_project_are_where_its_options_say(tmp_path: Path) -> None:
    caches = gpuenv.Project(cache_dir=tmp_path / "wheels").caches
    listing = caches.listing()
    assert listing.path == tmp_path / "wheels" and listing.entries == () and listing.total_bytes == 0
    shared = gpuenv.Project(environ={"GPUENV_CACHE_DIR": str(tmp_path / "shared")})
    assert shared.cache_dir == tmp_path / "shared"


def test_the_readmes_library_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Its setup() lists the commands instead of running them, as tests/unit/test_readme.py adds --dry-run."""
    from gpuenv.api.project import PreparedSetup

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    code = readme.split("\n## Use it as a library\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    shutil.copytree(Path(__file__).resolve().parents[3] / "envs", tmp_path / "envs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPUENV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GPUENV_OFFLINE", "1")
    monkeypatch.setattr(PreparedSetup, "run", lambda self, reporter=None: self.dry_run())
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("torch==") and printed[0].endswith("('9.0',)")
    assert printed[-1] == f"{tmp_path / '.venv'} ()" and not (tmp_path / ".venv").exists()


def test_a_cuda_home_that_links_to_the_planned_toolkit_is_that_toolkit(recipe: Path, tmp_path: Path,
                                                                       environ: dict[str, str]) -> None:
    # GPU images export CUDA_HOME=/usr/local/cuda, a link to /usr/local/cuda-13.0 that the probe names.
    toolkit = tmp_path / "cuda-13.0"
    (toolkit / "bin").mkdir(parents=True)
    (tmp_path / "cuda").symlink_to(toolkit)
    probed = node("9.0")
    probed["toolkits"] = [{"nvcc": str(toolkit / "bin" / "nvcc"), "version": "13.0", "home": str(toolkit)}]
    hardware = tmp_path / "node.json"
    hardware.write_text(json.dumps(probed), encoding="utf-8")

    def said(cuda_home: Path) -> list[str]:
        project = gpuenv.Project(recipe=recipe, hardware=hardware, offline=True,
                                 environ={**environ, "CUDA_HOME": str(cuda_home)})
        return [w for w in project.plan().warnings if w.startswith("CUDA_HOME=")]

    assert said(tmp_path / "cuda") == []
    other = tmp_path / "cuda-12.4"
    other.mkdir()
    assert said(other) and "--toolkit PATH" in said(other)[0]
