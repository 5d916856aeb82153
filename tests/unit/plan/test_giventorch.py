"""The plan for a torch that is already there (``PlanOptions.given_torch``): observed beats shipped.

Each test hands the pure planner the facts of an installed torch, some of
which contradict gpuenv's data or are builds no index serves (NVIDIA's
containers, conda's), and states what the plan must then decide.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from gpuenv.errors import GivenTorchError, InputError
from gpuenv.plan.giventorch import (
    TorchFacts,
    arch_list_from_names,
    data_disagreements,
    given_release,
    nearest_release,
    not_in_data,
    variant_of,
)
from gpuenv.plan.knowledge import torch_releases
from gpuenv.plan.planner import PlanOptions, make_plan
from tests.unit.plan.test_plan import A100, D470, D550, D580, H100, SCATTER, V100, machine, recipe

#: The newest release the shipped data knows.
NEWEST = max(torch_releases().values(), key=lambda r: r.version).release

#: NVIDIA's PyTorch container 24.08: a torch no index serves, CUDA 12.6, built for 8.0 to 9.0 with PTX.
NGC_2408 = TorchFacts(
    version="2.5.0a0+872d972e41.nv24.08", cuda="12.6", arch_list=("8.0", "8.6", "9.0+PTX"), cxx11_abi=True,
    cxx_standard=17, distribution="2.5.0a0+872d972e41.nv24.08", where="in /usr, Python 3.10",
    arch_source="torch.cuda.get_arch_list()")

#: PyPI's torch 2.14.1 (the cu130 wheel: distribution "2.14.1", torch.__version__ "2.14.1+cu130").
PYPI_2141 = TorchFacts(
    version="2.14.1+cu130", cuda="13.0", arch_list=("7.5", "8.0", "8.6", "9.0", "10.0", "12.0"),
    cxx11_abi=True, cxx_standard=20, distribution="2.14.1", where="in /opt/env, Python 3.12",
    arch_source="torch.cuda.get_arch_list()")


def given(facts: TorchFacts, **options: object) -> PlanOptions:
    return PlanOptions(given_torch=facts, **options)  # type: ignore[arg-type]


def kinds(plan: object) -> list[str]:
    return [type(b.error).__name__ for b in plan.blockers]  # type: ignore[attr-defined]


# -- what the facts say ---------------------------------------------------------------------


@pytest.mark.parametrize(("names", "archs"), [
    (["sm_80", "sm_90"], ("8.0", "9.0")),
    (["sm_80", "sm_90", "compute_90"], ("8.0", "9.0+PTX")),
    (["sm_90", "sm_90a", "sm_100", "sm_103f"], ("9.0", "10.0", "10.3")),  # family code alone stands for it
    (["compute_120"], ("12.0+PTX",)),
    (["sm_100a"], ("10.0",)),
    ([], ()),
])
def test_nvcc_arch_names_become_the_arch_list_torch_spells(names: list[str], archs: tuple[str, ...]) -> None:
    assert arch_list_from_names(names) == archs


@pytest.mark.parametrize(("cuda", "variant"), [(None, "cpu"), ("12.6", "cu126"), ("13.0", "cu130"),
                                                ("12.4.1", "cu124"), ("11.8", "cu118")])
def test_the_variant_comes_from_torchs_cuda(cuda: str | None, variant: str) -> None:
    assert variant_of(cuda) == variant


@pytest.mark.parametrize(("version", "release", "known"), [
    ("2.5.0a0+872d972e41.nv24.08", "2.5", True),   # NVIDIA 24.08
    ("2.3.0a0+6ddf5cf85e.nv24.04", "2.3", True),   # NVIDIA 24.04
    ("2.4.1.post303", "2.4", True),                 # conda-forge
    ("2.14.1+cu130", "2.14", True),
    ("9.1.0.dev20990101+cu132", NEWEST, False),     # newer than the data: the newest it knows
    ("1.12.1+cu116", "1.13", False),                # older than the data: the oldest it knows
])
def test_container_and_conda_builds_are_planned_with_their_release(version: str, release: str,
                                                                   known: bool) -> None:
    nearest, same = nearest_release(version)
    assert (nearest.release, same) == (release, known)


# -- the plan is for the given torch, not chosen ----------------------------------------------------


def test_an_nvidia_container_torch_is_planned_as_it_is() -> None:
    result = make_plan(recipe(""), machine(H100, driver=D580, nvcc=("13.0",)), given(NGC_2408))
    assert result.variant == "cu126" and result.cuda == "12.6"
    assert result.torch == "torch==2.5.0a0+872d972e41.nv24.08"
    assert result.torch_version == "2.5.0a0+872d972e41.nv24.08"
    assert result.torch_release == "2.5"
    assert result.index_url is None and "gpuenv installs no torch" in result.index_note
    assert result.given_torch == NGC_2408
    assert any("is given (in /usr, Python 3.10)" in r for r in result.reasons)
    assert not result.passed_over and not result.blockers
    assert not data_disagreements(NGC_2408), "a build the data does not list is not compared with it"


def test_the_toolkit_is_chosen_for_the_given_torchs_cuda() -> None:
    result = make_plan(recipe("", SCATTER), machine(H100, driver=D580, nvcc=("13.0",)), given(NGC_2408))
    # The given torch is CUDA 12.6: nvcc 13.0 cannot build for it, and the plan says so.
    assert kinds(result) == ["ToolkitError"]
    assert "needs nvcc 12.x" in str(result.blockers[0].error)
    fits = make_plan(recipe("", SCATTER), machine(H100, driver=D580, nvcc=("12.6", "13.0")), given(NGC_2408))
    assert not fits.blockers
    assert fits.build_env["CUDA_HOME"] == "/usr/local/cuda-12.6"
    assert fits.extensions[0].action == "build" and fits.extensions[0].env["TORCH_CUDA_ARCH_LIST"] == "9.0"


def test_a_torch_without_kernels_for_the_gpus_is_a_blocker_naming_them() -> None:
    result = make_plan(recipe(""), machine(V100, A100, driver=D580, nvcc=("13.0",)), given(PYPI_2141))
    assert kinds(result) == ["GivenTorchError"]
    message = str(result.blockers[0].error)
    assert "carries no kernels for Tesla V100-SXM2-32GB (7.0)" in message
    assert "A100" not in message  # 8.0 is covered
    assert "7.5, 8.0, 8.6, 9.0, 10.0, 12.0" in message and "torch.cuda.get_arch_list()" in message
    assert "never replaces" in (result.blockers[0].error.hint or "")
    shown = result.blockers[0].to_json()
    assert shown["code"] == "given-torch-no-kernels"
    assert (shown["torch"], shown["gpus"]) == ("2.14.1+cu130", ["7.0"])


def test_a_driver_that_cannot_run_the_given_torch_is_a_blocker() -> None:
    result = make_plan(recipe(""), machine(H100, driver=D470, nvcc=("13.0",)), given(PYPI_2141))
    assert kinds(result) == ["GivenTorchError"]
    message = str(result.blockers[0].error)
    assert "driver 470.82.01 (CUDA 11.4) cannot run the given torch 2.14.1+cu130" in message
    assert "CUDA 13.x needs ≥ 580" in (result.blockers[0].error.hint or "")


def test_minor_version_compatibility_is_a_warning_not_a_blocker() -> None:
    torch = replace(NGC_2408, cuda="12.6")
    result = make_plan(recipe(""), machine(H100, driver=D550, nvcc=("12.6",)), given(torch))
    assert not result.blockers
    assert any("minor-version compatibility" in w for w in result.warnings)


def test_the_observed_arch_list_is_what_a_gpu_less_plan_builds_for() -> None:
    # The data says PyPI's 2.14 cu130 wheel carries 7.5 … 12.0; this one reports two archs.
    torch = replace(PYPI_2141, arch_list=("8.0", "9.0"))
    result = make_plan(recipe("", SCATTER), machine(nvcc=("13.0",)), given(torch, cuda="13.0"))
    assert result.arch_list == ("8.0", "9.0")
    assert result.extensions[0].env["TORCH_CUDA_ARCH_LIST"] == "8.0;9.0"
    said = [w for w in result.warnings if w.startswith("torch.toml")]
    assert said == ['torch.toml releases."2.14" cu130 (PyPI\'s wheel): data says archs 7.5, 8.0, 8.6, 9.0, '
                    "10.0, 12.0, the installed wheel carries 8.0, 9.0 (torch.cuda.get_arch_list())"]


def test_the_observed_cxx_standard_is_the_releases_the_drafts_get() -> None:
    torch = replace(PYPI_2141, version="2.13.0+cu130", distribution="2.13.0", cxx_standard=20)
    assert given_release(torch).release.cxx_standard == 20  # the data says 17 for 2.13
    assert data_disagreements(torch) == (
        'torch.toml releases."2.13" cxx_standard: data says C++17, the installed wheel\'s headers '
        "require C++20",)
    unknown = replace(torch, cxx_standard=None)
    assumed = given_release(unknown)
    assert assumed.release.cxx_standard == 17 and any("assumed C++17" in a for a in assumed.assumed)


def test_what_the_env_does_not_say_comes_from_the_nearest_release_marked_assumed() -> None:
    torch = TorchFacts(version="9.1.0.dev20990101+cu132", cuda="13.2", where="in /env")
    result = make_plan(recipe(""), machine(H100, driver=D580, nvcc=("13.0",)), given(torch))
    assert result.torch_release == NEWEST and result.variant == "cu132"
    assert any(f"not a release gpuenv's data knows: planned with the data of torch {NEWEST}" in w
               for w in result.warnings)
    assert any("arch list of the torch in the env could not be read" in w for w in result.warnings)


def test_a_torch_the_data_does_not_describe_is_not_compared_with_it() -> None:
    # conda-forge's torch 2.14.1 carries no local label and may be built for another CUDA and other
    # archs than either wheel: a conda package's builds are its channel's, not what torch.toml lists.
    conda = replace(PYPI_2141, version="2.14.1", distribution="2.14.1", cuda="12.9", arch_list=("9.0",),
                    installer="conda")
    assert data_disagreements(replace(conda, installer="pip")) != ()
    assert data_disagreements(conda) == ()
    assert "is a conda package" in (not_in_data(conda) or "")
    rocm = replace(PYPI_2141, version="2.14.1+rocm6.4", cuda=None, hip="6.4.1", arch_list=())
    assert data_disagreements(rocm) == () and "is a ROCm build" in (not_in_data(rocm) or "")
    assert not_in_data(PYPI_2141) is None
    assert not_in_data(NGC_2408) == "torch.toml does not list 2.5.0a0"


def test_a_data_entry_the_installed_wheel_agrees_with_says_nothing() -> None:
    assert data_disagreements(PYPI_2141) == ()
    index_build = replace(PYPI_2141, distribution="2.14.1+cu130",
                          arch_list=("7.5", "8.0", "8.6", "9.0", "10.0", "12.0+PTX"))
    assert data_disagreements(index_build) == ()
    # Not knowing which of the two builds it is, either data set agrees.
    assert data_disagreements(replace(PYPI_2141, distribution="")) == ()


def test_a_cpu_torch_given_on_a_gpu_machine_is_planned_cpu_with_a_warning() -> None:
    torch = TorchFacts(version="2.13.0+cpu", cuda=None, cxx11_abi=True, cxx_standard=17)
    result = make_plan(recipe(""), machine(H100, driver=D580), given(torch))
    assert result.variant == "cpu" and not result.blockers
    assert any("is a CPU build: the GPU goes unused" in w for w in result.warnings)
    two = make_plan(recipe(""), machine(H100, H100, driver=D580), given(torch))
    assert any("is a CPU build: the 2 GPUs go unused" in w for w in two.warnings)


def test_a_rocm_torch_given_on_an_nvidia_machine_is_a_blocker_not_a_cpu_build() -> None:
    # torch.version.cuda is None in a ROCm build, as in a CPU one: torch.version.hip tells them apart.
    rocm = TorchFacts(version="2.4.1+rocm6.0", cuda=None, hip="6.0.32830-d62f6a171", cxx11_abi=True,
                      where="in /opt/rocm-env, Python 3.10")
    result = make_plan(recipe(""), machine(H100, driver=D580), given(rocm))
    assert kinds(result) == ["GivenTorchError"]
    error = result.blockers[0].error
    assert error.code == "given-torch-rocm" and error.to_json()["hip"] == "6.0.32830-d62f6a171"
    assert "is a ROCm build (HIP 6.0.32830-d62f6a171), for AMD GPUs" in str(error)
    assert not any("CPU build" in w for w in result.warnings)


# -- what the recipe asks of a given torch ------------------------------------------------------------


def test_a_recipe_version_the_given_torch_does_not_satisfy_is_a_blocker() -> None:
    result = make_plan(recipe("==2.13.*"), machine(H100, driver=D580), given(NGC_2408))
    assert kinds(result) == ["GivenTorchError"]
    assert "does not satisfy torch==2.13.* of test.toml" in str(result.blockers[0].error)
    assert not make_plan(recipe(">=2.5.0a0"), machine(H100, driver=D580), given(NGC_2408)).blockers


def test_a_forced_variant_other_than_the_given_torchs_is_bad_input() -> None:
    with pytest.raises(InputError, match=r"--cuda 13\.0 asks for cu130, but the torch is given"):
        make_plan(recipe(""), machine(H100, driver=D580), given(NGC_2408, cuda="13.0"))
    same = make_plan(recipe(""), machine(H100, driver=D580), given(NGC_2408, cuda="12.6"))
    assert same.variant == "cu126"


def test_torch_packages_the_env_holds_are_kept_and_missing_ones_get_their_pair() -> None:
    rec = replace(recipe(""), torch=replace(recipe("").torch, packages=("torchvision", "torchaudio")))
    torch = replace(PYPI_2141, paired={"torchvision": "0.29.1"})
    result = make_plan(rec, machine(H100, driver=D580), given(torch))
    assert [p.split("==")[0] for p in result.torch_packages] == ["torchaudio"]
    assert result.torch_packages[0].startswith("torchaudio==")
    pinned = replace(rec, torch=replace(rec.torch, packages=("torchvision==0.30.0",)))
    clash = make_plan(pinned, machine(H100, driver=D580), given(torch))
    assert kinds(clash) == ["GivenTorchError"]
    assert "holds torchvision 0.29.1" in str(clash.blockers[0].error)


def test_given_torch_blockers_are_raised_by_plan() -> None:
    from gpuenv.plan.planner import plan

    with pytest.raises(GivenTorchError):
        plan(recipe(""), machine(V100, driver=D580), given(PYPI_2141))
