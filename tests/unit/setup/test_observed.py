"""What an installed torch really is (gpuenv.env.observed), and setup planning again for it.

The reader is tested on real files: a shared object nvcc compiles here from
several objects (one with an extra arch of its own, as a few torch kernels
have), and torch's ``all.h`` as the wheels ship it. Setup's base step is
tested on a directory shaped like an env whose torch contradicts the data.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from gpuenv.cache.key import CacheKey
from gpuenv.env.observed import (
    FROM_ARCH_LIST,
    TORCH_ALL_HEADER,
    build_arch_names,
    cxx_standard,
    torch_facts,
    wheel_archs,
)
from gpuenv.env.targetenv import TargetEnv, TorchInfo
from gpuenv.errors import VerifyError
from gpuenv.plan.envplan import Plan
from gpuenv.plan.giventorch import TorchFacts
from gpuenv.plan.hardware import Hardware, Toolkit
from gpuenv.plan.planner import PlanOptions, make_plan
from gpuenv.probe.binaries import count_cuda_code
from gpuenv.probe.toolkitroots import find_toolkits
from gpuenv.setup.context import Context, SetupOptions
from gpuenv.setup.installer import PipInstaller
from gpuenv.setup.landed import observe_landed
from tests.fakes import FakeEnvRunner
from tests.unit.doctor.support import fake_venv
from tests.unit.plan.test_plan import SCATTER, recipe

KERNEL = "__global__ void k{n}(float* x) {{ x[threadIdx.x] += {n}; }}\n"


@pytest.fixture(scope="module")
def torch_like_so(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """libtorch_cuda.so in small: three objects for sm_80 and sm_90 (PTX too), one of them also sm_89."""
    toolkits = find_toolkits()
    if not toolkits:
        pytest.skip("no CUDA toolkit (nvcc) on this machine")
    out = tmp_path_factory.mktemp("torchlike")
    gencode = ["-gencode", "arch=compute_80,code=sm_80",
               "-gencode", "arch=compute_90,code=[sm_90,compute_90]"]
    objects = []
    for n in range(3):
        (out / f"k{n}.cu").write_text(KERNEL.format(n=n), encoding="utf-8")
        extra = ["-gencode", "arch=compute_89,code=sm_89"] if n == 2 else []
        cmd = [toolkits[0].nvcc, "-c", "-Xcompiler", "-fPIC", *gencode, *extra, "-o", f"k{n}.o", f"k{n}.cu"]
        subprocess.run(cmd, cwd=out, check=True, capture_output=True)
        objects.append(f"k{n}.o")
    subprocess.run([toolkits[0].nvcc, "-shared", "-o", "libtorch_cuda.so", *objects], cwd=out, check=True,
                   capture_output=True)
    return out / "libtorch_cuda.so"


def torch_dir(root: Path, *, cxx: int | None = 20, library: Path | None = None) -> Path:
    """A torch package directory with the header torch's wheels ship (and libtorch_cuda.so if given)."""
    torch = root / "torch"
    header = torch / TORCH_ALL_HEADER
    header.parent.mkdir(parents=True)
    guard = {17: "201703L", 20: "202002L"}.get(cxx or 0, "0")
    line = f"#error C++{cxx} or later compatible compiler is required to use PyTorch.\n" if cxx else ""
    header.write_text(f"#pragma once\n\n#if !defined(_MSC_VER) && __cplusplus < {guard}\n{line}#endif\n")
    if library is not None:
        (torch / "lib").mkdir()
        (torch / "lib" / "libtorch_cuda.so").write_bytes(library.read_bytes())
    return torch


# -- the reader ---------------------------------------------------------------------------------


def test_the_arch_list_is_what_nearly_every_object_holds(torch_like_so: Path) -> None:
    counts = count_cuda_code(torch_like_so)
    assert counts["sm_89"] < counts["sm_80"] == counts["sm_90"] == counts["compute_90"]
    assert build_arch_names(counts) == ("sm_80", "sm_90", "compute_90")


def test_without_a_reported_arch_list_it_is_read_from_libtorch_cuda(torch_like_so: Path,
                                                                    tmp_path: Path) -> None:
    path = torch_dir(tmp_path, library=torch_like_so)
    info = TorchInfo("2.12.0+cu130", "13.0", True, (), path=str(path))  # ≤ 2.12: [] without a GPU
    archs = wheel_archs(info)
    assert archs.names == ("sm_80", "sm_90", "compute_90")
    assert archs.source == str(path / "lib" / "libtorch_cuda.so")
    assert torch_facts(info).arch_list == ("8.0", "9.0+PTX")


def test_conda_forge_keeps_libtorch_cuda_in_the_prefix(torch_like_so: Path, tmp_path: Path) -> None:
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    path = torch_dir(site)
    (tmp_path / "lib" / "libtorch_cuda.so").write_bytes(torch_like_so.read_bytes())
    archs = wheel_archs(TorchInfo("2.4.1", "12.6", True, (), path=str(path)))
    assert archs.source == str(tmp_path / "lib" / "libtorch_cuda.so") and "sm_90" in archs.names


def test_the_arch_list_torch_reports_wins_and_a_cpu_build_has_none(tmp_path: Path) -> None:
    reported = TorchInfo("2.14.1+cu130", "13.0", True, ("sm_80", "sm_90"), path=str(tmp_path / "torch"))
    assert wheel_archs(reported).names == ("sm_80", "sm_90")
    assert wheel_archs(reported).source == FROM_ARCH_LIST
    assert wheel_archs(TorchInfo("2.13.0+cpu", None, True, ())).names == ()
    missing = wheel_archs(TorchInfo("2.12.0", "12.6", True, (), path=str(tmp_path / "nowhere")))
    assert missing.names == () and "has no libtorch_cuda.so" in missing.problem


@pytest.mark.parametrize("cxx", [14, 17, 20])
def test_the_cxx_standard_is_read_from_torchs_header(tmp_path: Path, cxx: int) -> None:
    path = torch_dir(tmp_path, cxx=cxx)
    assert cxx_standard(TorchInfo("2.0.0", None, True, (), path=str(path))) == cxx


def test_no_header_or_no_error_line_is_unknown(tmp_path: Path) -> None:
    assert cxx_standard(TorchInfo("2.0.0", None, True, (), path=str(tmp_path))) is None
    path = torch_dir(tmp_path, cxx=None)
    assert cxx_standard(TorchInfo("2.0.0", None, True, (), path=str(path))) is None


# -- setup's base step: the plan made again for the torch that landed ------------------------------------


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, text: str) -> None:
        self.lines.append(text)

    status = done = step


TOOLKIT = Toolkit(nvcc="/usr/local/cuda-13.0/bin/nvcc", version="13.0", home="/usr/local/cuda-13.0")
NO_GPU = Hardware(None, None, (), 8, 64000, 60000, (TOOLKIT,))


def landed(tmp_path: Path, info: TorchInfo) -> tuple[Context, Lines]:
    """A Context whose env (a directory shaped like one) holds ``info``, and a plan from the data."""
    venv, site = fake_venv(tmp_path)
    rec = recipe("==2.14.1", SCATTER)
    options = PlanOptions(cuda="13.0")
    planned = make_plan(rec, NO_GPU, options)
    runner = FakeEnvRunner(site, torch=info, installed={"torch": "2.14.1"})
    lines = Lines()
    ctx = Context(planned, SetupOptions(venv=venv), lines, runner, PipInstaller(runner),  # type: ignore[arg-type]
                  env=TargetEnv(venv), planned=planned,
                  replan=lambda facts: make_plan(rec, NO_GPU, replace(options, given_torch=facts)))
    ctx.torch = info
    return ctx, lines


def test_a_torch_that_contradicts_the_data_is_built_for_as_it_is(tmp_path: Path) -> None:
    # PyPI's 2.14.1 that reports two archs and whose headers need C++17 (the data: six archs, C++20).
    path = torch_dir(tmp_path / "t", cxx=17)
    info = TorchInfo("2.14.1+cu130", "13.0", True, ("sm_80", "sm_90"), distribution="2.14.1", path=str(path))
    ctx, lines = landed(tmp_path, info)
    data_plan: Plan = ctx.plan
    assert data_plan.arch_list == ("7.5", "8.0", "8.6", "9.0", "10.0", "12.0")
    outcome = observe_landed(ctx, info)
    assert "observed: archs 8.0, 9.0 (from torch.cuda.get_arch_list()), headers need C++17" in outcome
    warnings = [line for line in lines.lines if line.startswith("warning: torch.toml")]
    assert warnings == [
        'warning: torch.toml releases."2.14" cu130 (PyPI\'s wheel): data says archs 7.5, 8.0, 8.6, 9.0, '
        "10.0, 12.0, the installed wheel carries 8.0, 9.0 (torch.cuda.get_arch_list()): setup builds for the "
        "installed one",
        'warning: torch.toml releases."2.14" cxx_standard: data says C++20, the installed wheel\'s headers '
        "require C++17: setup builds for the installed one",
    ]
    # The extensions are built for what is installed; how torch was installed stays the plan's.
    assert ctx.plan.arch_list == ("8.0", "9.0")
    assert ctx.plan.extensions[0].env["TORCH_CUDA_ARCH_LIST"] == "8.0;9.0"
    assert ctx.plan.torch == data_plan.torch and ctx.plan.index_url == data_plan.index_url
    assert ctx.planned is data_plan, "a rerun's fingerprint is made of the plan setup was handed"
    assert ctx.facts is not None and ctx.facts.cxx_standard == 17
    from gpuenv.setup.extension import cache_key

    key: CacheKey = cache_key(ctx, ctx.plan.extensions[0], version="2.1.2", source_digest="0" * 64)
    assert key.arch_list == ("8.0", "9.0") and key.abi.torch_version == "2.14.1+cu130"


def test_a_torch_that_agrees_with_the_data_changes_nothing(tmp_path: Path) -> None:
    path = torch_dir(tmp_path / "t", cxx=20)
    names = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")
    info = TorchInfo("2.14.1+cu130", "13.0", True, names, distribution="2.14.1", path=str(path))
    ctx, lines = landed(tmp_path, info)
    before = ctx.plan
    observe_landed(ctx, info)
    assert not [line for line in lines.lines if line.startswith("warning")]
    assert ctx.plan.extensions == before.extensions and ctx.plan.arch_list == before.arch_list


def test_a_landed_torch_that_cannot_serve_the_plan_stops_setup(tmp_path: Path) -> None:
    path = torch_dir(tmp_path / "t", cxx=20)
    info = TorchInfo("2.14.1+cu130", "13.0", True, ("sm_80",), distribution="2.14.1", path=str(path))
    ctx, _ = landed(tmp_path, info)
    ctx.replan = lambda facts: make_plan(recipe("==2.14.1"), _h100(), PlanOptions(given_torch=facts))
    with pytest.raises(VerifyError, match=r"cannot serve the plan: .*carries no kernels for NVIDIA H100"):
        observe_landed(ctx, info)


def _h100() -> Hardware:
    from gpuenv.probe.machine import with_gpu_override

    return replace(with_gpu_override(NO_GPU, "H100"), driver_version="580.65.06", cuda_driver_version="13.0")


def test_the_facts_name_where_they_were_observed(tmp_path: Path) -> None:
    info = TorchInfo("2.13.0+cpu", None, True, (), path=str(torch_dir(tmp_path / "t", cxx=17)))
    ctx, _ = landed(tmp_path, info)
    observe_landed(ctx, info)
    facts: TorchFacts | None = ctx.facts
    assert facts is not None and facts.where == f"in {ctx.target.path}, Python 3.11.7"
    assert facts.cxx_standard == 17 and facts.arch_list == ()


# -- the tree about to be built, read before building (setup/extension._check_tree) ---------------------

APEX_LIKE = '''
import sys
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

ext_modules = []
if "--cuda_ext" in sys.argv:
    sys.argv.remove("--cuda_ext")
    cc_flag = ["-gencode", "arch=compute_70,code=sm_70", "-gencode", "arch=compute_80,code=sm_80"]
    ext_modules.append(CUDAExtension(name="wgrad_cuda", sources=["wgrad.cu"],
                                     extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3"] + cc_flag}))
setup(name="apex-like", version="0.1", ext_modules=ext_modules, cmdclass={"build_ext": BuildExtension})
'''


def test_a_setup_py_compiling_an_arch_nvcc_cannot_is_stopped_before_building(tmp_path: Path) -> None:
    from gpuenv.errors import BuildError
    from gpuenv.plan.buildplan import ExtensionPlan
    from gpuenv.plan.giventorch import TorchFacts
    from gpuenv.setup.extension import _check_tree
    from gpuenv.setup.sources import Source

    tree = tmp_path / "apex-like"
    tree.mkdir()
    (tree / "setup.py").write_text(APEX_LIKE)
    path = torch_dir(tmp_path / "t", cxx=17)
    ctx, _ = landed(tmp_path, TorchInfo("2.13.0+cu130", "13.0", True, ("sm_90",), path=str(path)))
    ctx.facts = TorchFacts("2.13.0+cu130", "13.0", ("9.0",), True, 17)
    ctx.toolkit = TOOLKIT
    source = Source("apex-like", None, tree, None, "sha256:0", "local")
    ext = ExtensionPlan("apex-like", "apex-like @ file:///x", "build", "", {}, compiles_cuda=True,
                        arch_list=("9.0",), build_options=("--cuda_ext",))
    with pytest.raises(BuildError) as info:
        _check_tree(ctx, ext, source)
    assert "setup.py:9 compiles sm_70, which nvcc 13.0 cannot" in str(info.value)
    assert "nothing was compiled" in (info.value.hint or "")
    # Without the option that builds that extension, nothing stops the build.
    _check_tree(ctx, replace(ext, build_options=()), source)
