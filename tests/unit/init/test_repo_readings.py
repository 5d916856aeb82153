"""Issue 22's "what went wrong", each on a small synthetic repository: init reads the repository the way
pip, conda and setuptools read it, and what it reads reaches the plan."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gpuenv.errors import SourceTreeError, ToolkitError, TorchCapError, VisibleGpuError
from gpuenv.init.report import scan_lines
from gpuenv.init.reposcan import scan_repo
from gpuenv.init.writer import init_repo
from gpuenv.load.recipe import load_recipe
from gpuenv.load.treefacts import recipe_tree
from gpuenv.load.treemeta import recipe_sources
from gpuenv.plan.envplan import Plan
from gpuenv.plan.hardware import Hardware, hardware_from_json
from gpuenv.plan.planner import PlanOptions, make_plan
from gpuenv.plan.recipespec import Recipe


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def machine(*toolkits: str, gpu: bool = True, source: str = "nvml") -> Hardware:
    hw = hardware_from_json(
        {
            "driver_version": "580.65.06",
            "cuda_driver_version": "13.0",
            "gpus": [{"name": "A100", "compute_capability": "8.0"}] if gpu else [],
            "cpu_count": 8,
            "memory_total_mib": 65536,
            "memory_available_mib": 60000,
            "toolkits": [{"nvcc": f"/opt/cuda-{v}/bin/nvcc", "version": v} for v in toolkits],
        }
    )
    return Hardware(**{**hw.__dict__, "source": source})


def init_and_load(root: Path) -> Recipe:
    result = init_repo(root, origin="gpuenv")
    return load_recipe(result.recipe)


def plan_of(recipe: Recipe, hardware: Hardware) -> Plan:
    return make_plan(recipe, hardware, PlanOptions(sources=recipe_sources(recipe), tree=recipe_tree(recipe)))


# -- only one requirements file survived -----------------------------------------------------------


def test_every_requirements_file_is_accounted_for_in_one_line_each(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "requirements.txt": "einops\n",
            "requirements-dev.txt": "pytest\n",
            "requirements-train.txt": "wandb\n",
            "requirements/base.txt": "numpy<2\n",
            "docs/requirements.txt": "sphinx\n",
        },
    )
    scan = scan_repo(root)
    roles = {a.path: (a.role, a.used) for a in scan.files}
    assert roles == {
        "requirements.txt": ("install", True),
        "requirements/base.txt": ("install", True),
        "requirements-dev.txt": ("dev", False),
        "requirements-train.txt": ("extra", False),
        "docs/requirements.txt": ("docs", False),
    }
    lines = scan_lines(scan)
    for path in roles:
        assert sum(f"  {path} " in line for line in lines) == 1, path
    recipe = init_and_load(root)
    assert recipe.packages == ("einops", "numpy<2")  # both install files, nothing from dev/docs
    text = (root / "envs" / "default.toml").read_text()
    assert '"../requirements-train.txt"  # train' in text  # the extra is offered, commented


# -- valid pip lines rejected ---------------------------------------------------------------------


def test_a_per_requirement_index_url_is_read_and_says_which_cuda(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "requirements.txt": """\
        torch==2.2.2 --index-url https://download.pytorch.org/whl/cu121
        torchvision==0.17.2 --index-url https://download.pytorch.org/whl/cu121
        xformers==0.0.25 --index-url https://download.pytorch.org/whl/cu121
        einops
    """
        },
    )
    scan = scan_repo(root)
    assert (scan.torch_version, scan.cuda) == ("==2.2.2", "cu121")
    recipe = init_and_load(root)
    assert recipe.torch.cuda == "cu121" and recipe.torch.packages == ("torchvision==0.17.2",)
    assert [e.name for e in recipe.extensions] == ["xformers"] and recipe.packages == ("einops",)
    plan = plan_of(recipe, machine("12.1"))
    assert (plan.torch_version, plan.variant) == ("2.2.2", "cu121")


# -- a frozen env of another tool merged in ---------------------------------------------------------


def test_a_frozen_env_of_another_tool_is_left_out_and_its_apex_is_not_nvidia_apex(tmp_path: Path) -> None:
    freeze = (
        "".join(f"pkg{i}=={i}.0\n" for i in range(40)) + "apex==0.9.10.dev0\ndeepspeed==0.14.0\nav==10.0.0\n"
    )
    root = write(
        tmp_path,
        {
            "requirements/requirements.txt": "av>=12.0.0\ntorch>=2.1\n",
            "requirements/requirements-pllava.txt": freeze,
        },
    )
    scan = scan_repo(root)
    roles = {a.path: a.role for a in scan.files}
    assert roles["requirements/requirements-pllava.txt"] == "frozen-other-tool"
    why = next(a.why for a in scan.files if a.path.endswith("pllava.txt"))
    assert "av==10.0.0 against av>=12.0.0" in why
    recipe = init_and_load(root)
    assert recipe.extensions == () and "deepspeed" not in " ".join(recipe.packages)


def test_pypi_apex_is_an_ordinary_package_and_nvidia_apex_by_git_is_the_extension(tmp_path: Path) -> None:
    root = write(tmp_path, {"requirements.txt": "apex==0.9.10.dev0\n"})
    scan = scan_repo(root)
    [apex] = [f for f in scan.findings if f.text == "apex==0.9.10.dev0"]
    assert apex.place == "package" and "not the catalog's apex" in apex.note
    root2 = write(tmp_path / "other", {"requirements.txt": "git+https://github.com/NVIDIA/apex.git\n"})
    assert [f.text for f in scan_repo(root2).placed("extension")] == [
        "apex @ git+https://github.com/NVIDIA/apex.git"
    ]
    # A recipe that names PyPI's apex as an extension gets generic knobs, not NVIDIA apex's.
    (root / "envs").mkdir()
    (root / "envs" / "x.toml").write_text(
        '[torch]\nversion = "2.13.*"\n[[extensions]]\nrequirement = "apex==0.9.10.dev0"\n'
    )
    plan = plan_of(load_recipe(root / "envs" / "x.toml"), machine("13.0"))
    assert "another project" in plan.extensions[0].catalog and "APEX_CUDA_EXT" not in plan.extensions[0].env


# -- conda spellings misread ---------------------------------------------------------------------


WINDOWS_EXPORT = (
    """\
name: dino
channels: [pytorch, nvidia, conda-forge]
dependencies:
  - python=3.9.18=h4de0772_0_cpython
  - pytorch=2.0.1=py3.9_cuda11.8_cudnn8_0
  - pytorch-cuda=11.8=h24eeafa_5
"""
    + "".join(f"  - winpkg{i}=1.{i}=vc14_{i}\n" for i in range(30))
    + """\
  - vc14_runtime=14.36.32532=hdcecf7f_17
  - ucrt=10.0.22621.0=h57928b3_0
  - pip:
      - supervision==0.6.0
prefix: C:\\Users\\someone\\miniconda3\\envs\\dino
"""
)


def test_conda_fuzzy_versions_pyg_names_and_an_export_from_windows(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "environment.yml": """\
        channels: [pyg, pytorch, nvidia]
        dependencies:
          - python=3.10
          - pytorch=2.3.1
          - pytorch-cuda=12.1
          - torchvision=0.18
          - pytorch-scatter
    """
        },
    )
    scan = scan_repo(root)
    assert (scan.torch_version, scan.cuda, scan.python) == ("==2.3.1.*", "cu121", "3.10")
    assert [f.text for f in scan.placed("paired")] == ["torchvision==0.18.*"]  # =0.18 is 0.18.*, not ==0.18
    assert [f.text for f in scan.placed("extension")] == ["torch-scatter"]
    recipe = init_and_load(root)
    plan = plan_of(recipe, machine("12.1"))
    assert (plan.torch_version, plan.variant) == ("2.3.1", "cu121")
    assert plan.torch_packages == ("torchvision==0.18.*",)
    windows = write(tmp_path / "win", {"environment.yaml": WINDOWS_EXPORT, "requirements.txt": "torch\n"})
    scan = scan_repo(windows)
    conda = next(a for a in scan.files if a.role == "conda")
    assert "'conda env export' made on Windows" in conda.why
    summaries = [f for f in scan.findings if f.origin == "environment.yaml" and f.place == "left"]
    assert len(summaries) == 1 and "32 conda packages" in summaries[0].text  # one line, not 32
    assert scan.cuda == "cu118" and scan.python == "==3.9.18"


# -- the repository's own CUDA build ---------------------------------------------------------------


GUARDED_SETUP = """\
import os
import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, CppExtension, CUDAExtension, BuildExtension

def get_extensions():
    extension = CppExtension
    if CUDA_HOME is not None and (torch.cuda.is_available() or "TORCH_CUDA_ARCH_LIST" in os.environ):
        extension = CUDAExtension
    else:
        print("Compiling without CUDA")
    return [extension("pkg._C", ["csrc/op.cu"])]

setup(name="pkg", version="0.1", ext_modules=get_extensions(), cmdclass={"build_ext": BuildExtension})
"""
FORCE_SETUP = GUARDED_SETUP.replace(
    'CUDA_HOME is not None and (torch.cuda.is_available() or "TORCH_CUDA_ARCH_LIST" in os.environ)',
    '(torch.cuda.is_available() and CUDA_HOME is not None) or os.getenv("FORCE_CUDA", "0") == "1"',
)
GPU_ONLY_SETUP = GUARDED_SETUP.replace(
    'CUDA_HOME is not None and (torch.cuda.is_available() or "TORCH_CUDA_ARCH_LIST" in os.environ)',
    "torch.cuda.is_available() and CUDA_HOME is not None",
)


def test_a_repository_that_builds_cuda_needs_a_toolkit_and_gets_its_build_environment(tmp_path: Path) -> None:
    root = write(tmp_path, {"setup.py": GUARDED_SETUP, "requirements.txt": "torch==2.2.2\n"})
    recipe = init_and_load(root)
    plan = plan_of(recipe, machine())  # no nvcc at all
    assert any(isinstance(b.error, ToolkitError) and "the repository" in str(b.error) for b in plan.blockers)
    plan = plan_of(recipe, machine("12.1"))
    assert not plan.blockers and plan.repo_build is not None and plan.repo_build.compiles_cuda
    assert (
        plan.repo_build.env["CUDA_HOME"] == "/opt/cuda-12.1"
        and plan.repo_build.env["TORCH_CUDA_ARCH_LIST"] == "8.0"
    )


def test_a_setup_py_that_reads_force_cuda_gets_it(tmp_path: Path) -> None:
    root = write(tmp_path, {"setup.py": FORCE_SETUP, "requirements.txt": "torch==2.2.2\n"})
    plan = plan_of(
        init_and_load(root), machine("12.1", source="--gpu A100")
    )  # GPUs elsewhere: FORCE_CUDA does it
    assert plan.repo_build is not None and plan.repo_build.env.get("FORCE_CUDA") == "1"
    assert not plan.blockers


def test_a_setup_py_that_needs_a_visible_gpu_blocks_a_plan_for_gpus_elsewhere(tmp_path: Path) -> None:
    root = write(tmp_path, {"setup.py": GPU_ONLY_SETUP, "requirements.txt": "torch==2.2.2\n"})
    recipe = init_and_load(root)
    elsewhere = plan_of(recipe, machine("12.1", source="--gpu A100"))
    [blocker] = [b.error for b in elsewhere.blockers]
    assert isinstance(blocker, VisibleGpuError) and "setup.py:8" in str(blocker)  # the `if` that asks torch
    here = plan_of(recipe, machine("12.1"))  # the GPUs are on this machine: it builds CUDA, with a warning
    assert not here.blockers and any("torch sees a GPU" in w for w in here.warnings)


# -- empty submodules did not block ----------------------------------------------------------------


@pytest.mark.skipif(shutil.which("git") is None, reason="git writes the gitlinks")
def test_an_extension_submodule_not_checked_out_blocks_the_plan_and_a_stale_entry_does_not(
    tmp_path: Path,
) -> None:
    root = write(
        tmp_path,
        {
            "requirements.txt": "torch==2.2.2\n",
            ".gitmodules": """\
        [submodule "submodules/simple-knn"]
        \tpath = submodules/simple-knn
        \turl = https://example.invalid/simple-knn.git
        [submodule "SIBR_viewers"]
        \tpath = SIBR_viewers
        \turl = https://example.invalid/sibr
    """,
        },
    )
    subprocess.run(["git", "init", "-q", str(root)], check=True, timeout=60)
    subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "update-index",
            "--add",
            "--cacheinfo",
            "160000,44f764299fa305faf6ec5ebd99939e0508331503,submodules/simple-knn",
        ],
        check=True,
        timeout=60,
    )
    (root / "submodules" / "simple-knn").mkdir(parents=True)
    scan = scan_repo(root)
    assert [b.split(":")[0] for b in scan.blockers] == ["submodules/simple-knn"]
    assert any("SIBR_viewers" in n and "no gitlink" in n for n in scan.notes)
    init_and_load(root)
    done = subprocess.run(
        [sys.executable, "-m", "gpuenv", "plan", "--gpu", "A100", "--no-cache", "--offline"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert f"git -C {root} submodule update --init --recursive" in done.stderr and "SIBR" not in done.stderr


# -- conflicts went unreported ---------------------------------------------------------------------


def test_a_conflict_is_reported_and_the_file_setup_py_reads_wins(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "setup.py": 'from setuptools import setup\nREQS = "requirements.txt"\n'
            'setup(name="x", install_requires=read(REQS))\n',
            "requirements.txt": "supervision>=0.22.0\n",
            "environment.yml": "dependencies:\n  - python=3.10\n  - pip:\n    - supervision==0.6.0\n",
        },
    )
    scan = scan_repo(root)
    assert scan.conflicts == (
        "supervision: supervision==0.6.0 (environment.yml:4) against supervision>=0.22.0 "
        "(requirements.txt:1): requirements.txt wins",
    )
    recipe = init_and_load(root)
    assert recipe.packages == ("supervision>=0.22.0",)


# -- local CUDA code that newer torch cannot compile ----------------------------------------------


MS_DEFORM = """\
#include <ATen/ATen.h>
at::Tensor ms_deform_attn_cuda_forward(const at::Tensor &value) {
    AT_DISPATCH_FLOATING_TYPES(value.type(), "ms_deform_attn_forward_cuda", ([&] {
        // kernel launch
    }));
    return value;
}
"""
OP_SETUP = """\
from setuptools import setup
from torch.utils.cpp_extension import CUDAExtension, BuildExtension
setup(name="MultiScaleDeformableAttention", version="1.0",
      ext_modules=[CUDAExtension("MultiScaleDeformableAttention", ["src/ms_deform_attn_cuda.cu"])],
      cmdclass={"build_ext": BuildExtension})
"""


def test_a_removed_torch_api_in_a_local_op_caps_the_torch_release_and_names_the_line(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "requirements.txt": "torch>=1.5\n",
            "models/ops/setup.py": OP_SETUP,
            "models/ops/src/ms_deform_attn_cuda.cu": MS_DEFORM,
        },
    )
    recipe = init_and_load(root)
    plan = plan_of(recipe, machine("11.8", "12.1", "12.4", "12.6", "12.8", "13.0"))
    assert plan.torch_release == "2.5"  # the newest torch whose headers still take value.type()
    assert plan.passed_over and all("src/ms_deform_attn_cuda.cu:3" in line for line in plan.passed_over)
    assert "AT_DISPATCH" in plan.passed_over[0] and "2.6" in plan.passed_over[0]


def test_a_removed_torch_api_in_the_repositorys_own_code_is_a_blocker_when_the_recipe_pins_newer(
    tmp_path: Path,
) -> None:
    root = write(
        tmp_path,
        {
            "setup.py": OP_SETUP.replace("src/", "csrc/"),
            "csrc/ms_deform_attn_cuda.cu": MS_DEFORM,
            "requirements.txt": "torch==2.13.0\n",
        },
    )
    plan = plan_of(init_and_load(root), machine("12.8", "13.0"))
    [cap] = [b.error for b in plan.blockers if isinstance(b.error, TorchCapError)]
    assert "csrc/ms_deform_attn_cuda.cu:3" in str(cap) and "<2.6" in (cap.hint or "")


# -- what else init reads ------------------------------------------------------------------------


def test_a_git_index_of_format_4_with_gitlinks_is_read_without_git(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git writes the index")
    from gpuenv.load.gitindex import gitlinks

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    (tmp_path / "a.txt").write_text("a")
    subprocess.run(["git", "-C", str(tmp_path), "add", "a.txt"], check=True, timeout=60)
    subprocess.run(
        [
            "git",
            "-C",
            str(tmp_path),
            "update-index",
            "--add",
            "--cacheinfo",
            "160000,44f764299fa305faf6ec5ebd99939e0508331503,third/x",
        ],
        check=True,
        timeout=60,
    )
    for version in ("2", "3", "4"):
        subprocess.run(
            ["git", "-C", str(tmp_path), "update-index", "--index-version", version], check=True, timeout=60
        )
        assert gitlinks(tmp_path) == {"third/x"}, version


def test_missing_include_dirs_block_the_repositorys_build(tmp_path: Path) -> None:
    setup = OP_SETUP.replace(
        '["src/ms_deform_attn_cuda.cu"]',
        '["src/op.cu"], include_dirs=[osp.join(ROOT, "thirdparty/eigen-3.4.0")]',
    ).replace("from setuptools", "import os.path as osp\nROOT = osp.dirname(__file__)\nfrom setuptools")
    root = write(tmp_path, {"setup.py": setup, "requirements.txt": "torch==2.2.2\n"})
    plan = plan_of(init_and_load(root), machine("12.1"))
    assert any(
        isinstance(b.error, SourceTreeError) and "thirdparty/eigen-3.4.0" in str(b.error)
        for b in plan.blockers
    )
