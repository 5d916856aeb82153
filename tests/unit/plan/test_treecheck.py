"""The tree setup is about to build, checked against the plan (plan/treecheck.py), on recorded setup.py files.

The recorded files are excerpts of real releases (tests/data/setup_py/*/setup.py say which); each
check names the line of the file that makes the build fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuenv.plan.buildfiles.derive import derive
from gpuenv.plan.treecheck import check_tree

RECORDED = Path(__file__).parents[2] / "data" / "setup_py"
APEX_OPTIONS = ("--cpp_ext", "--cuda_ext")


def facts_of(name: str):  # type: ignore[no-untyped-def]
    root = RECORDED / name
    return derive({str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in root.rglob("*.py")})


def line_of(name: str, text: str) -> int:
    lines = (RECORDED / name / "setup.py").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_an_apex_tree_that_compiles_sm_70_cannot_build_with_nvcc_13() -> None:
    verdict = check_tree(facts_of("apex-25.09"), name="apex", env={}, build_options=APEX_OPTIONS,
                         nvcc="13.0.88", torch_version="2.13.0", torch_cxx=17, compiles_cuda=True)
    line = line_of("apex-25.09", "arch=compute_70,code=sm_70")
    assert verdict.problems == (f"apex's setup.py:{line} compiles sm_70, which nvcc 13.0.88 cannot",)


def test_the_same_tree_builds_with_a_cuda_12_nvcc() -> None:
    verdict = check_tree(facts_of("apex-25.09"), name="apex", env={}, build_options=APEX_OPTIONS,
                         nvcc="12.6", torch_version="2.13.0", torch_cxx=17, compiles_cuda=True)
    assert verdict.problems == ()


def test_without_cuda_ext_its_hard_coded_archs_are_not_compiled() -> None:
    verdict = check_tree(facts_of("apex-25.09"), name="apex", env={}, build_options=("--cpp_ext",),
                         nvcc="13.0", torch_version="2.13.0", torch_cxx=17, compiles_cuda=True)
    assert not any("sm_70" in p for p in verdict.problems)


@pytest.mark.parametrize("tree", ["mamba-ssm-2.3.2.post1", "flash-attn-2.8.3.post2"])
def test_a_tree_that_hard_codes_c_plus_plus_17_cannot_build_against_torch_2_14(tree: str) -> None:
    verdict = check_tree(facts_of(tree), name=tree, env={}, build_options=(), nvcc="13.0",
                         torch_version="2.14.1", torch_cxx=20, compiles_cuda=True)
    assert verdict.problems and all("-std=c++17" in p and "C++20" in p for p in verdict.problems)
    on_2_13 = check_tree(facts_of(tree), name=tree, env={}, build_options=(), nvcc="13.0",
                         torch_version="2.13.0", torch_cxx=17, compiles_cuda=True)
    assert on_2_13.problems == ()


def test_a_stable_abi_build_is_not_held_to_torchs_c_plus_plus_20() -> None:
    verdict = check_tree(facts_of("xformers-0.0.35"), name="xformers", env={"FORCE_CUDA": "1"},
                         build_options=(), nvcc="13.0", torch_version="2.14.1", torch_cxx=20,
                         compiles_cuda=True)
    assert verdict.problems == ()


def test_a_tree_that_leaves_the_standard_to_torch_builds_on_2_14() -> None:
    verdict = check_tree(facts_of("causal-conv1d-1.6.1.post4"), name="causal-conv1d", env={},
                         build_options=(), nvcc="13.0", torch_version="2.14.1", torch_cxx=20,
                         compiles_cuda=True)
    assert verdict.problems == ()


def test_an_nvcc_older_than_the_setup_py_accepts_is_a_problem() -> None:
    verdict = check_tree(facts_of("flash-attn-2.8.3.post2"), name="flash-attn", env={}, build_options=(),
                         nvcc="11.6", torch_version="2.0.1", torch_cxx=14, compiles_cuda=True)
    assert any("refuses nvcc 11.6" in p and "11.7" in p for p in verdict.problems)
