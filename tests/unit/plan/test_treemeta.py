"""Reading a source tree's name and version without building it (before planning)."""

from __future__ import annotations

from pathlib import Path

from gpuenv.load.recipe import load_recipe
from gpuenv.load.treemeta import read_tree, recipe_sources


def test_pyproject_project_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "My_Kernels"\nversion = "0.3.1"\n')
    facts = read_tree(tmp_path)
    assert (facts.name, facts.version, facts.origin) == ("my-kernels", "0.3.1", "pyproject.toml")


def test_setup_py_with_a_constant_name_and_the_version_in_the_package(tmp_path: Path) -> None:
    """causal-conv1d and mamba-ssm: setup(name=PACKAGE_NAME, version=get_package_version())."""
    (tmp_path / "mamba_ssm").mkdir()
    (tmp_path / "mamba_ssm" / "__init__.py").write_text('__version__ = "2.2.2"\n')
    (tmp_path / "setup.py").write_text(
        "import torch\nPACKAGE_NAME = 'mamba_ssm'\n"
        "setup(name=PACKAGE_NAME, version=get_package_version(), ext_modules=[])\n")
    facts = read_tree(tmp_path)
    assert (facts.name, facts.version) == ("mamba-ssm", "2.2.2")


def test_setup_cfg_and_pkg_info(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = ext\nversion = attr: ext.__version__\n")
    assert (read_tree(tmp_path).name, read_tree(tmp_path).version) == ("ext", None)
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: ext\nVersion: 1.2\n")
    assert read_tree(tmp_path).version == "1.2"


def test_nothing_readable_is_none_and_nothing_runs(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("raise SystemExit('must not run')\nsetup(name=compute())\n")
    facts = read_tree(tmp_path)
    assert (facts.name, facts.version) == (None, None)
    (tmp_path / "setup.py").write_text("this is not python (\n")
    assert read_tree(tmp_path).name is None


def test_recipe_sources_reads_only_local_directories(tmp_path: Path) -> None:
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "pyproject.toml").write_text('[project]\nname = "ext"\nversion = "1.0"\n')
    recipe = tmp_path / "r.toml"
    recipe.write_text('[torch]\nversion = "2.13.*"\n[[extensions]]\nrequirement = "./ext"\n'
                      '[[extensions]]\nrequirement = "torch-scatter==2.1.2"\n')
    facts = recipe_sources(load_recipe(recipe))
    assert list(facts) == ["ext"] and facts["ext"].version == "1.0"
