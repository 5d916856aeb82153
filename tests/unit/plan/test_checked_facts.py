"""The plans that follow from facts checked against their sources (issue 21's list).

Each test names the fact, where it was read, and the plan decision that depends on
it; each failed on the data gpuenv shipped before the facts were checked. The facts'
own truth is the knowledge checker's job (``python -m gpuenv.catalogcheck``) and the
``sources`` of each data table; these hold the planner to them.
"""

from __future__ import annotations

import pytest

from gpuenv.errors import GpuenvError, InputError
from gpuenv.plan.envplan import Plan
from gpuenv.plan.planner import make_plan, plan
from gpuenv.probe.machine import describe_machine
from tests.unit.plan.test_plan import (
    A100,
    D535,
    D580,
    H100,
    L4,
    V100,
    ext,
    machine,
    recipe,
)


def _ext(result: Plan, name: str):  # type: ignore[no-untyped-def]
    (found,) = [e for e in result.extensions if e.name == name]
    return found


# 1. torch 1.13's TORCH_CUDA_ARCH_LIST accepts up to 8.6 (torch-1.13.1 wheel: cpp_extension.py
#    supported_arches; pytorch/pytorch PRs 87436, 87736 came with 2.0).


def test_torch_1_13_builds_8_6_code_for_an_8_9_gpu_which_runs_it() -> None:
    result = plan(recipe("==1.13.*", ext("torch-scatter==2.1.2")), machine(L4, driver=D535, nvcc=("11.7",)))
    assert result.variant == "cu117" and result.arch_list == ("8.6",)
    assert _ext(result, "torch-scatter").env["TORCH_CUDA_ARCH_LIST"] == "8.6"
    assert any("does not accept 8.9" in w and "built for 8.6" in w for w in result.warnings)


def test_torch_1_13_cannot_build_for_a_hopper_gpu_and_the_plan_says_which_torch_can() -> None:
    result = make_plan(recipe("==1.13.*", ext("torch-scatter==2.1.2")),
                       machine(H100, driver=D535, nvcc=("11.7",)))
    assert any("torch 1.13" in str(b.error) and "9.0" in str(b.error) for b in result.blockers)


# 2. torch >= 2.14's headers require C++20 (torch-2.14.1 wheel: all.h; pytorch/pytorch PR 178150).


def test_mamba_ssm_which_passes_c_plus_plus_17_makes_the_resolver_pass_over_torch_2_14() -> None:
    result = plan(recipe(">=2.1", ext("mamba-ssm==2.3.2.post1", required=True)),
                  machine(H100, driver=D580, nvcc=("13.0",)))
    assert result.torch_version == "2.13.0"
    newest, older = result.passed_over  # 2.15 (C++20 too), then 2.14
    assert newest.startswith("torch 2.15.0: mamba-ssm 2.3.2.post1 compiles with -std=c++17")
    assert older.startswith("torch 2.14.1: mamba-ssm 2.3.2.post1 compiles with -std=c++17")


def test_xformers_before_its_stable_abi_cannot_build_on_2_14_and_with_it_can() -> None:
    # 0.0.33 includes the full ATen headers at -std=c++17; 0.0.34+ builds with TORCH_STABLE_ONLY
    # (observed: xformers-0.0.35's sources compile at -std=c++17 against torch 2.14.1's headers).
    hardware = machine(H100, driver=D580, nvcc=("13.0",))
    old = make_plan(recipe("==2.14.*", ext("xformers==0.0.33.post2")), hardware)
    new = make_plan(recipe("==2.14.*", ext("xformers==0.0.35")), hardware)
    assert _ext(old, "xformers").action == "skip" and "-std=c++17" in _ext(old, "xformers").reason
    assert _ext(new, "xformers").action == "build"


def test_xformers_on_the_stable_abi_needs_the_torch_it_targets() -> None:
    result = make_plan(recipe("==2.9.*", ext("xformers==0.0.35")), machine(H100, driver=D580, nvcc=("12.8",)))
    assert _ext(result, "xformers").action == "skip"
    assert "stable ABI of 2.10" in _ext(result, "xformers").reason


def test_causal_conv1d_leaves_the_standard_to_torch_and_builds_on_2_14() -> None:
    # Its CUDA build passes no -std (only its ROCm branch does): torch's own -std=c++20 applies.
    result = plan(recipe("==2.14.*", ext("causal-conv1d==1.6.1")), machine(H100, driver=D580, nvcc=("13.0",)))
    assert _ext(result, "causal-conv1d").action == "build"


# 3. TransformerEngine compares its force-build and skip variables with "TRUE"
#    (transformer_engine_torch-2.20.2 setup.py lines 25-27).


def test_transformer_engine_is_forced_to_build_with_the_value_its_setup_py_compares() -> None:
    result = plan(recipe("==2.13.*", ext("transformer-engine-torch==2.20.2")),
                  machine(H100, driver=D580, nvcc=("13.0",)))
    assert _ext(result, "transformer-engine-torch").env["NVTE_PYTORCH_FORCE_BUILD"] == "TRUE"


def test_a_transformer_engine_skip_variable_other_than_true_does_not_skip_its_cuda_build() -> None:
    hardware = machine(H100, driver=D580, nvcc=("13.0",))
    te = "transformer-engine-torch==2.20.2"
    one = plan(recipe("==2.13.*", ext(te, NVTE_PYTORCH_SKIP_CUDA_BUILD="1")), hardware)
    true = plan(recipe("==2.13.*", ext(te, NVTE_PYTORCH_SKIP_CUDA_BUILD="TRUE")), hardware)
    assert _ext(one, "transformer-engine-torch").compiles_cuda
    assert not _ext(true, "transformer-engine-torch").compiles_cuda


# 4. causal-conv1d 1.5.3-1.6.1 and mamba-ssm 2.2.6-2.3.1 compile sm_62/70/72 with nvcc <= 12.9
#    (their sdists' setup.py: `if bare_metal_version <= Version("12.9")`).


@pytest.mark.parametrize("requirement", ["causal-conv1d==1.6.1", "mamba-ssm==2.3.1"])
def test_a_v100_on_a_cuda_12_plan_gets_the_sm_70_code_these_releases_compile(requirement: str) -> None:
    result = plan(recipe("==2.13.*", ext(requirement, required=True)),
                  machine(V100, driver=D535, nvcc=("12.6",)))
    built = result.extensions[0]
    assert built.action == "build" and "7.0" in built.arch_list


@pytest.mark.parametrize("requirement", ["causal-conv1d==1.7.0", "mamba-ssm==2.3.2.post1"])
def test_releases_that_dropped_sm_70_skip_a_v100_saying_why(requirement: str) -> None:
    result = make_plan(recipe("==2.13.*", ext(requirement)), machine(V100, driver=D535, nvcc=("12.6",)))
    skipped = result.extensions[0]
    assert skipped.action == "skip" and "no code for" in skipped.reason and "V100" in skipped.reason


def test_the_arch_list_of_such_a_release_follows_the_nvcc_that_builds_it() -> None:
    cuda12 = plan(recipe("==2.13.*", ext("causal-conv1d==1.6.1")), machine(A100, driver=D535, nvcc=("12.6",)))
    cuda13 = plan(recipe("==2.13.*", ext("causal-conv1d==1.6.1")), machine(A100, driver=D580, nvcc=("13.0",)))
    assert "7.0" in cuda12.extensions[0].arch_list and "12.0" not in cuda12.extensions[0].arch_list
    assert "7.0" not in cuda13.extensions[0].arch_list and "12.1" in cuda13.extensions[0].arch_list


# 5. apex reads --cpp_ext/--cuda_ext from the build command in every release; APEX_CPP_EXT/APEX_CUDA_EXT
#    only from commit bfb500c8 (NVIDIA/apex@25.09:setup.py).


def test_apex_gets_its_extensions_as_build_options_which_every_release_reads() -> None:
    result = plan(recipe("==2.13.*", ext("apex @ git+https://github.com/NVIDIA/apex@24.04.01")),
                  machine(H100, driver=D580, nvcc=("13.0",)))
    assert _ext(result, "apex").build_options == ("--cpp_ext", "--cuda_ext")


# 6. FLASH_ATTN_CUDA_ARCHS exists from flash-attn 2.7.3; 2.0-2.7.2 compile sm_80 and (nvcc >= 11.8) sm_90.


def test_flash_attn_before_2_7_3_gets_no_arch_knob_and_its_two_archs_count_for_memory() -> None:
    result = plan(recipe("==2.5.*", ext("flash-attn==2.7.2.post1")),
                  machine(H100, driver=D580, nvcc=("12.4",), cpus=64, mem_gib=20))
    built = _ext(result, "flash-attn")
    assert "FLASH_ATTN_CUDA_ARCHS" not in built.env
    assert built.arch_list == ("8.0", "9.0") and "fixed arch list" in built.reason
    assert built.env["MAX_JOBS"] == "2"  # 20 GiB / (5 GiB x NVCC_THREADS 2, two archs at once)


def test_flash_attn_before_2_7_3_with_nvcc_11_7_compiles_only_sm_80() -> None:
    result = make_plan(recipe("==2.0.*", ext("flash-attn==2.5.8")),
                       machine(A100, driver=D535, nvcc=("11.7",)))
    assert _ext(result, "flash-attn").arch_list == ("8.0",)


# 8. NVIDIA's driver table goes on past 13.0: 13.1 needs >= 590.44.01, 13.2 >= 595.45.04.


def test_a_driver_595_read_from_a_hand_written_file_runs_cuda_13_2() -> None:
    result = plan(recipe("==2.14.*"), machine(H100, driver=("595.45.04", None)))
    assert result.variant == "cu132"


# 10. torch 2.7's cu128 build carries PTX for 12.0 (get_arch_list() of 2.7.1+cu128 ends in compute_120;
#     pytorch/pytorch PR 157516 removed the +PTX from CUDA 12.8 builds only for 2.8), unlike 2.11's.


def test_a_plan_that_finds_no_torch_2_7_build_for_a_gpu_names_the_ptx_its_cu128_build_carries() -> None:
    thor = ("NVIDIA Jetson AGX Thor", "11.0")  # no x86_64 build of torch carries 11.0
    old = make_plan(recipe("==2.7.*"), machine(thor, driver=D580))
    new = make_plan(recipe("==2.11.*"), machine(thor, driver=D580))
    assert any("cu128 7.5 8.0 8.6 9.0 10.0 12.0+PTX;" in str(b.error) for b in old.blockers)
    assert any("cu128 7.5 8.0 8.6 9.0 10.0 12.0;" in str(b.error) for b in new.blockers)


# 9. An arch no NVIDIA GPU has is an error naming those that exist.


def test_an_arch_nvidia_never_made_is_refused_naming_those_that_exist() -> None:
    with pytest.raises(InputError) as info:
        describe_machine(arch="9.9", prober=lambda: machine())
    assert "9.9" in str(info.value) and "9.0" in str(info.value) and "12.1" in str(info.value)
    assert info.value.exit_code == 2
    assert isinstance(info.value, GpuenvError)


def test_a_recipe_gives_build_options_to_a_fork_the_catalog_does_not_know() -> None:
    from dataclasses import replace

    from gpuenv.plan.extensionspec import CatalogOverrides

    fork = replace(ext("my-apex @ git+https://example.invalid/my-apex"),
                   overrides=CatalogOverrides(build_options=("--cpp_ext",)))
    result = plan(recipe("==2.13.*", fork), machine(H100, driver=D580, nvcc=("13.0",)))
    assert result.extensions[0].build_options == ("--cpp_ext",)
    assert "build-options" in result.extensions[0].reason
