"""gpuenv init reads a research repository: what it declares, sorted, with file and line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gpuenv.errors import InputError, SourceTreeError
from gpuenv.init.reposcan import scan_repo
from gpuenv.init.writer import init_repo, init_text
from gpuenv.load.recipe import load_recipe
from gpuenv.load.treefacts import recipe_tree
from gpuenv.load.treemeta import check_submodules, recipe_sources
from gpuenv.plan.hardware import Hardware, hardware_from_json
from gpuenv.plan.planner import PlanOptions, make_plan

CUDA_SETUP = textwrap.dedent("""\
    from setuptools import setup
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension
    setup(name="conv_kernels", version="0.1",
          ext_modules=[CUDAExtension("conv_kernels", ["conv.cu"])], cmdclass={"build_ext": BuildExtension})
""")


def make_repo(root: Path) -> Path:
    """A research repo as people have them: -r includes, torch pinned with +cu118, extras, a local
    CUDA extension folder, an uninitialised submodule and an environment.yml."""
    (root / "requirements").mkdir(parents=True)
    (root / "requirements.txt").write_text(textwrap.dedent("""\
        -r requirements/base.txt
        torch==2.0.1+cu118
        torchvision==0.15.2+cu118
        flash-attn==2.5.6
        -e .[train]
        einops>=0.7  # a comment
        --extra-index-url https://mirror.invalid/simple
    """))
    (root / "requirements" / "base.txt").write_text("numpy<2\ntimm==0.9.2\n")
    (root / "pyproject.toml").write_text(textwrap.dedent("""\
        [project]
        name = "sample-research"
        version = "0.1"
        requires-python = ">=3.9"
        dependencies = ["transformers>=4.30", "torch>=2.0"]
        [project.optional-dependencies]
        train = ["wandb"]
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
    """))
    (root / "kernels" / "conv").mkdir(parents=True)
    (root / "kernels" / "conv" / "setup.py").write_text(CUDA_SETUP)
    (root / "third_party" / "raster").mkdir(parents=True)
    (root / ".gitmodules").write_text(
        '[submodule "third_party/raster"]\n\tpath = third_party/raster\n\turl = https://x.invalid/r.git\n')
    (root / "environment.yml").write_text(textwrap.dedent("""\
        name: sample
        channels: [pytorch, nvidia]
        dependencies:
          - python=3.10
          - pytorch=2.0.1
          - pytorch-cuda=11.8
          - ffmpeg
          - pip:
            - lpips==0.1.4
    """))
    return root


def test_every_file_is_read_and_each_finding_keeps_its_file_and_line(tmp_path: Path) -> None:
    scan = scan_repo(make_repo(tmp_path))
    got = {(f.place, f.text, f.origin) for f in scan.findings}
    assert ("torch", "torch==2.0.1+cu118", "requirements.txt:2") in got
    assert ("paired", "torchvision==0.15.2+cu118", "requirements.txt:3") in got
    assert ("extension", "flash-attn==2.5.6", "requirements.txt:4") in got
    assert ("repo", ".[train]", "requirements.txt:5") in got
    assert ("package", "numpy<2", "requirements/base.txt:1") in got  # followed through -r
    assert ("local-extension", "./kernels/conv", "kernels/conv/setup.py") in got
    assert ("repo", "transformers>=4.30", "pyproject.toml:5") in got
    # requires-python wins over the conda file's python; the pinned +cu118 build is the CUDA asked for.
    assert scan.python == ">=3.9" and (scan.torch_version, scan.cuda) == ("==2.0.1", "cu118")
    # The conda file is another route: read for torch and checked, its pip: list not placed.
    assert not any(f.text == "lpips==0.1.4" and f.place == "package" for f in scan.findings)
    unplaced = {f.text: f.note for f in scan.findings if f.place in ("unplaced", "left")}
    assert "git submodule update --init --recursive" in unplaced["./third_party/raster"]
    assert "ffmpeg" in unplaced["1 conda package"]
    assert scan.requirement_files == ("requirements.txt",) and scan.selected_extras == ("train",)
    roles = {a.path: (a.role, a.used) for a in scan.files}
    assert roles == {"requirements.txt": ("install", True), "requirements/base.txt": ("install", True),
                     "environment.yml": ("conda", False), "pyproject.toml": ("install", True)}


def test_init_writes_a_recipe_that_refers_to_the_repos_files_and_plans(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "third_party" / "raster").rmdir()  # not a build folder of the recipe either way
    result = init_repo(repo, origin="/src/gpuenv")
    recipe = load_recipe(repo / "envs" / "default.toml")
    assert recipe.python == ">=3.9"
    assert (recipe.torch.version, recipe.torch.cuda) == ("==2.0.1", "cu118")
    assert recipe.torch.packages == ("torchvision==0.15.2",)
    assert [e.requirement for e in recipe.extensions] == ["flash-attn==2.5.6", "../kernels/conv"]
    assert recipe.repo is not None and recipe.repo.path == repo.resolve() and recipe.repo.extras == ("train",)
    assert recipe.requirement_files == ((repo / "requirements.txt").resolve(),)
    # The file stays the source of truth: its lines, minus what the recipe installs itself.
    assert recipe.packages == ("numpy<2", "timm==0.9.2", "einops>=0.7")
    left = "\n".join(recipe.left_out)
    assert "requirements.txt:2: torch==2.0.1+cu118: torch comes from [torch]" in left
    assert "the repository itself" in left and "flash-attn is built by [[extensions]]" in left
    assert recipe.package_sources.extra_index_urls == ("https://mirror.invalid/simple",)
    text = init_text(result)
    assert "requirements.txt:2: torch==2.0.1+cu118 -> [torch] version/cuda" in text
    plan = make_plan(recipe, load_hardware_a100())
    assert plan.torch_build == "2.0.1+cu118" and plan.repo is not None


def load_hardware_a100() -> Hardware:
    return hardware_from_json({"driver_version": "535.104.05", "cuda_driver_version": "12.2",
                               "gpus": [{"name": "A100", "compute_capability": "8.0"}], "cpu_count": 8,
                               "memory_total_mib": 65536, "memory_available_mib": 60000,
                               "toolkits": [{"nvcc": "/opt/cuda-11.8/bin/nvcc", "version": "11.8"}]})


def test_an_uninitialised_submodule_extension_blocks_the_plan_with_the_command_to_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    recipe_path = repo / "envs" / "x.toml"
    recipe_path.parent.mkdir()
    recipe_path.write_text('[torch]\nversion = "2.13.*"\n'
                           '[[extensions]]\nrequirement = "../third_party/raster"\n')
    recipe = load_recipe(recipe_path)
    assert recipe_sources(recipe) == {}  # nothing to read there yet: no facts, no traceback
    plan = make_plan(recipe, load_hardware_a100(), PlanOptions(tree=recipe_tree(recipe)))
    [blocker] = [b.error for b in plan.blockers if isinstance(b.error, SourceTreeError)]
    assert "git submodule" in str(blocker) and "not checked out" in str(blocker)
    assert "submodule update --init --recursive" in (blocker.hint or "") and blocker.exit_code == 3
    shown = blocker.to_json()  # what plan --json says of it: a stable code, and the path
    assert shown["code"] == "submodule-not-checked-out"
    assert shown["path"] == str(repo / "third_party" / "raster")
    done = subprocess.run([sys.executable, "-m", "gpuenv", "plan", "-r", str(recipe_path), "--gpu", "A100",
                           "--no-cache"], cwd=repo, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "submodule update --init --recursive" in done.stderr, done.stderr


def test_a_nested_submodule_left_empty_is_found_too(tmp_path: Path) -> None:
    ext = tmp_path / "submodules" / "rasterizer"
    (ext / "third_party" / "glm").mkdir(parents=True)
    (ext / "setup.py").write_text(CUDA_SETUP)
    (ext / ".gitmodules").write_text('[submodule "glm"]\n\tpath = third_party/glm\n\turl = x\n')
    with pytest.raises(InputError, match="third_party/glm"):
        check_submodules(ext)
    (ext / "third_party" / "glm" / "glm.hpp").write_text("")
    check_submodules(ext)


def test_gpuenv_init_through_the_command_line_prints_what_it_took(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    done = subprocess.run([sys.executable, "-m", "gpuenv", "init"], cwd=repo, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "requirements.txt:4: flash-attn==2.5.6 -> [[extensions]]" in done.stdout
    assert "not placed" in done.stdout and "wrote    .gitignore" in done.stdout
