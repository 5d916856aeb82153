"""Where the plan's nvcc comes from: on disk, provisioned from PyPI, or given by path (issue 12).

Each decision of ``--toolkit auto|system|pypi|PATH`` on a plan, and the
hints where nothing can provide the toolkit. Pure planner, no I/O; the one
test of a path reads the real toolkit's nvcc version (the probe does the same).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest

from gpuenv.cache.toolkitcache import toolkit_home, toolkit_policy
from gpuenv.errors import InputError, RecipeError, ToolkitError
from gpuenv.load.recipe import parse_recipe
from gpuenv.plan.envplan import Plan
from gpuenv.plan.hardware import Hardware, Toolkit
from gpuenv.plan.planner import PlanOptions, make_plan, plan
from gpuenv.plan.toolkitchoice import ToolkitPolicy
from gpuenv.render import plan_text
from tests.unit.plan.test_plan import A100, APEX, D550, D580, H100, SCATTER, V100, machine, recipe

CACHE = "/cache/gpuenv/toolkits"
REAL_ROOT = "/usr/local/cuda-13.0"


def policy(mode: str, given: Toolkit | None = None) -> PlanOptions:
    return PlanOptions(toolkit=ToolkitPolicy(mode=mode, given=given, pypi_home=partial(toolkit_home, CACHE),
                                             chosen_by=f"--toolkit {mode}"))


def provisioned(version: str, release: str) -> Toolkit:
    home = toolkit_home(CACHE, version)
    return Toolkit(nvcc=f"{home}/bin/nvcc", version=version, home=home, source="pypi", release=release)


def with_toolkits(hw: Hardware, *toolkits: Toolkit) -> Hardware:
    return Hardware(hw.driver_version, hw.cuda_driver_version, hw.gpus, hw.cpu_count, hw.memory_total_mib,
                    hw.memory_available_mib, hw.toolkits + toolkits)


def toolkit_of(result: Plan) -> Toolkit:
    assert result.toolkit is not None
    assert result.build_env["CUDA_HOME"] == result.toolkit.root
    assert all(e.env["CUDA_HOME"] == result.toolkit.root for e in result.extensions if e.compiles_cuda)
    return result.toolkit


# -- item 1: no matching toolkit on disk, PyPI has the release ---------------------------------


def test_auto_without_a_toolkit_provisions_cuda_13_0_from_pypi() -> None:
    result = plan(recipe("==2.14.*", SCATTER), machine(H100, driver=D580), policy("auto"))
    toolkit = toolkit_of(result)
    assert (toolkit.source, toolkit.version, toolkit.release) == ("pypi", "13.0", "")
    assert toolkit.root == toolkit_home(CACHE, "13.0") == f"{CACHE}/v1/cuda-13.0"
    assert "toolkit     CUDA 13.0 from PyPI (provisioned into the toolkit cache)" in plan_text(result)
    assert result.to_json()["toolkit"]["source"] == "pypi"


def test_the_default_is_auto() -> None:
    result = plan(recipe("==2.14.*", SCATTER), machine(H100, driver=D580))
    assert toolkit_of(result).source == "pypi"


def test_auto_prefers_a_matching_toolkit_on_disk() -> None:
    result = plan(recipe("==2.14.*", SCATTER), machine(H100, driver=D580, nvcc=("13.0",)), policy("auto"))
    assert toolkit_of(result) == Toolkit(nvcc="/usr/local/cuda-13.0/bin/nvcc", version="13.0")


def test_auto_takes_a_same_major_toolkit_on_disk_over_a_download() -> None:
    result = plan(recipe("==2.14.*", SCATTER), machine(H100, driver=D580, nvcc=("13.1",)), policy("auto"))
    assert toolkit_of(result).version == "13.1" and toolkit_of(result).source == "system"
    assert any("minors differ" in w for w in result.warnings)


def test_auto_provisions_the_exact_release_an_extension_needs() -> None:
    # apex needs nvcc major.minor == torch's CUDA: the 13.1 on disk will not do, PyPI's 13.0 will.
    result = plan(recipe("==2.14.*", APEX), machine(H100, driver=D580, nvcc=("13.1",)), policy("auto"))
    assert (toolkit_of(result).source, toolkit_of(result).version) == ("pypi", "13.0")


def test_a_toolkit_provisioned_before_is_used_and_said_so() -> None:
    hw = with_toolkits(machine(H100, driver=D580), provisioned("13.0", "13.0.88"))
    result = plan(recipe("==2.14.*", SCATTER), hw, policy("auto"))
    assert toolkit_of(result) == provisioned("13.0", "13.0.88")
    assert "CUDA 13.0 from PyPI (in the toolkit cache: nvcc 13.0.88)" in plan_text(result)


# -- item 2: --toolkit system | pypi | PATH ------------------------------------------------------


def test_system_never_downloads() -> None:
    with pytest.raises(ToolkitError) as info:
        plan(recipe("==2.14.*", SCATTER), machine(H100, driver=D580), policy("system"))
    assert info.value.exit_code == 3
    assert "no CUDA toolkit" in str(info.value) and "--toolkit system" in str(info.value)
    assert "--toolkit auto" in (info.value.hint or "")


def test_system_leaves_the_toolkit_cache_alone() -> None:
    hw = with_toolkits(machine(H100, driver=D580), provisioned("13.0", "13.0.88"))
    with pytest.raises(ToolkitError):
        plan(recipe("==2.14.*", SCATTER), hw, policy("system"))


def test_pypi_provisions_even_when_the_system_has_one() -> None:
    result = plan(recipe("==2.14.*", SCATTER), machine(H100, driver=D580, nvcc=("13.0",)), policy("pypi"))
    assert (toolkit_of(result).source, toolkit_of(result).root) == ("pypi", f"{CACHE}/v1/cuda-13.0")


def test_pypi_has_no_cuda_12_compiler() -> None:
    with pytest.raises(ToolkitError) as info:
        plan(recipe("==2.14.*", SCATTER), machine(V100, driver=D580, nvcc=("12.6",)), policy("pypi"))
    assert "12.6" in str(info.value)
    assert "PyPI holds no CUDA 12.6 compiler" in (info.value.hint or "")


def test_a_toolkit_given_by_path_is_used_as_is() -> None:
    given = Toolkit(nvcc="/opt/mine/bin/nvcc", version="13.0", home="/opt/mine", source="path",
                    release="13.0.48")
    result = plan(recipe("==2.14.*", SCATTER), machine(H100, driver=D580, nvcc=("13.0",)),
                  policy("path", given))
    assert toolkit_of(result) == given


def test_a_toolkit_given_by_path_of_another_major_is_refused() -> None:
    given = Toolkit(nvcc="/opt/old/bin/nvcc", version="12.4", home="/opt/old", source="path",
                    release="12.4.131")
    with pytest.raises(ToolkitError) as info:
        plan(recipe("==2.14.*", SCATTER), machine(H100, driver=D580, nvcc=("13.0",)), policy("path", given))
    assert "nvcc 12.4 at /opt/old/bin/nvcc" in str(info.value) and "13.x" in str(info.value)
    assert "/usr/local/cuda-13.0" not in str(info.value), "only the toolkit given is considered"


@pytest.mark.skipif(not os.path.isfile(f"{REAL_ROOT}/bin/nvcc"), reason=f"no CUDA toolkit at {REAL_ROOT}")
@pytest.mark.parametrize("path", [REAL_ROOT, f"{REAL_ROOT}/bin", f"{REAL_ROOT}/bin/nvcc"])
def test_a_path_is_checked_by_its_nvcc_version(path: str) -> None:
    resolved = toolkit_policy(path, chosen_by="--toolkit", cache_dir=CACHE)
    assert resolved.mode == "path" and resolved.given is not None
    assert (resolved.given.root, resolved.given.version, resolved.given.source) == (REAL_ROOT, "13.0", "path")
    assert resolved.given.release.startswith("13.0.")


def test_a_path_that_is_no_toolkit_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        toolkit_policy(str(tmp_path), chosen_by="--toolkit")
    assert info.value.exit_code == 2 and "not a CUDA toolkit root" in str(info.value)


@pytest.mark.parametrize(("text", "mode"), [("auto", "auto"), ("System", "system"), (" pypi ", "pypi")])
def test_modes_are_read_as_written(text: str, mode: str) -> None:
    assert toolkit_policy(text, cache_dir=CACHE).mode == mode


def test_the_recipe_key() -> None:
    path = Path("/work/envs/x.toml")
    rec = parse_recipe({"torch": {"version": "2.14.*", "toolkit": "system"},
                        "extensions": [{"requirement": "torch-scatter==2.1.2"}]}, path)
    assert rec.torch.toolkit == "system"
    with pytest.raises(ToolkitError):
        plan(rec, machine(H100, driver=D580))  # the recipe's mode applies when no option is given
    rel = parse_recipe({"torch": {"version": "2.14.*", "toolkit": "./cuda"}}, path)
    assert rel.torch.toolkit == "/work/envs/cuda"
    with pytest.raises(RecipeError) as info:
        parse_recipe({"torch": {"version": "2.14.*", "toolkit": "sytem"}}, path)
    assert "did you mean" in str(info.value).lower() or "system" in str(info.value)


# -- item 3: nothing can provide the toolkit --------------------------------------------------------


def test_cuda_12_without_a_12_toolkit_says_where_one_comes_from() -> None:
    # A V100 runs no cu130 wheel: no --cuda 13.0 to suggest.
    with pytest.raises(ToolkitError) as info:
        plan(recipe("==2.13.*", SCATTER), machine(V100, driver=D580, nvcc=("13.0",)), policy("auto"))
    hint = info.value.hint or ""
    assert "12.x" in str(info.value)
    for source in ("conda package cuda-nvcc=12", "module", "runfile", "--toolkit PATH"):
        assert source in hint, source
    assert "from PyPI" not in hint


def test_cuda_12_hint_offers_a_cuda_13_plan_when_the_gpus_and_driver_allow() -> None:
    with pytest.raises(ToolkitError) as info:
        plan(recipe("==2.14.*", SCATTER, cuda="cu126"), machine(A100, driver=D580), policy("auto"))
    hint = info.value.hint or ""
    assert "or plan --cuda 13.0 or --cuda 13.2: gpuenv provisions their toolkits from PyPI" in hint


def test_cuda_12_hint_offers_no_cuda_13_plan_the_driver_cannot_run() -> None:
    # Driver 550 supports CUDA 12.4 and is older than 580, the minimum of CUDA 13.
    result = make_plan(recipe("==2.14.*", SCATTER, cuda="cu126"), machine(A100, driver=D550), policy("auto"))
    (toolkit_blocker,) = [b for b in result.blockers if isinstance(b.error, ToolkitError)]
    assert "--cuda 13.0" not in (toolkit_blocker.error.hint or "")
    assert "runfile" in (toolkit_blocker.error.hint or "")
