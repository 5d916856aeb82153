"""Pairing torchvision/torchaudio with torch by what they require, and passing over torch without a wheel
for the env: the planner's candidates, from the shipped data (tests/unit/probe/test_torchindex.py does
the same with an index's facts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from gpuenv.errors import InputError, UnsatisfiableError
from gpuenv.plan.candidates import Constraint
from gpuenv.plan.hardware import Gpu, Hardware
from gpuenv.plan.planner import PlanOptions, plan
from gpuenv.plan.recipespec import Recipe
from gpuenv.plan.releases import Companion, TorchReleases, shipped_releases
from gpuenv.plan.torchspec import TorchSpec

H100 = Hardware(driver_version="580.65.06", cuda_driver_version="13.0",
                gpus=(Gpu(0, "NVIDIA H100 80GB HBM3", "GPU-0", "9.0", 81559),),
                cpu_count=16, memory_total_mib=65536, memory_available_mib=60000, source="test")


def recipe(version: str, *packages: str, python: str | None = None) -> Recipe:
    return Recipe(path=Path("/work/envs/test.toml"), name="test", description="",
                  torch=TorchSpec(version=version, packages=packages), python=python)


@pytest.mark.parametrize(
    ("torch", "package", "pair"),
    [
        ("2.5.1", "torchvision", "0.20.1"),  # an exact pin
        ("2.14.0", "torchvision", "0.29.0"),  # the exact pin wins over 0.29.2's torch>=2.14.0
        ("2.14.1", "torchvision", "0.29.2"),  # no pin: the newest whose lower bound it satisfies
        ("2.15.0", "torchvision", "0.29.2"),
        ("2.15.0+cu130", "torchvision", "0.29.2"),  # a local label pairs as its public version
        ("2.12.1", "torchaudio", "2.11.1"),  # torchaudio 2.11.1: torch>=2.11
        ("2.11.0", "torchaudio", "2.11.0"),
        ("1.12.1", "torchvision", None),  # older than anything the data pairs
    ],
)
def test_a_pair_is_the_exact_pin_else_the_newest_lower_bound_the_torch_satisfies(
        torch: str, package: str, pair: str | None) -> None:
    assert shipped_releases().paired_version(torch, package) == pair


def test_a_lower_bound_pairs_a_torch_newer_than_the_pair_itself() -> None:
    base = shipped_releases()
    newer = Companion("torchvision", "0.30.0", SpecifierSet(">=2.16.0"))
    releases = TorchReleases(base.releases, {**base.companions,
                                             "torchvision": (newer, *base.companions["torchvision"])})
    assert releases.paired_version("2.16.3", "torchvision") == "0.30.0"
    assert releases.paired_version("2.15.0", "torchvision") == "0.29.2"


def test_a_pinned_pair_keeps_every_torch_its_requirement_admits() -> None:
    # torchvision 0.29.1 requires torch>=2.14.0: 2.15.0 goes with it, though its own pair is 0.29.2.
    result = plan(recipe(">=2.14", "torchvision==0.29.1"), H100)
    assert result.torch_version == "2.15.0" and result.torch_packages == ("torchvision==0.29.1",)
    # torchvision 0.17.0 pins torch 2.2.0 exactly.
    pinned = plan(recipe(">=2.1", "torchvision==0.17.0"), H100, PlanOptions(cuda="12.1"))
    assert pinned.torch_version == "2.2.0"
    with pytest.raises(InputError, match=r"torchvision==0\.17\.0 is released with torch 2\.2\.0"):
        plan(recipe(">=2.5", "torchvision==0.17.0"), H100)


def test_the_plan_pins_an_unpinned_pair_to_the_chosen_torchs() -> None:
    result = plan(recipe(">=2.1", "torchvision", "torchaudio"), H100)
    assert result.torch_version == "2.15.0"
    assert result.torch_packages == ("torchvision==0.29.2", "torchaudio==2.11.1")


def test_a_torch_without_a_wheel_for_the_envs_python_is_passed_over() -> None:
    # torch 2.15 has no wheel for Python 3.10 (Requires-Python >=3.11).
    result = plan(recipe(">=2.1"), H100, PlanOptions(python_version="3.10", platform="linux_x86_64"))
    assert result.torch_version == "2.14.1"
    (line,) = result.passed_over
    assert line.startswith("torch 2.15.0: no wheel for Python 3.10 on linux_x86_64 (it has wheels for "
                           "Python 3.11, 3.12, 3.13, 3.14, 3.14t, 3.15, 3.15t")
    # The recipe's [env] python decides when the interpreter is not known.
    assert plan(recipe(">=2.1", python="==3.10.*"), H100).torch_version == "2.14.1"
    assert plan(recipe(">=2.1", python=">=3.12"), H100).torch_version == "2.15.0"
    # A platform the shipped data says nothing about refuses nothing.
    assert plan(recipe(">=2.1"), H100, PlanOptions(python_version="3.12", platform="linux_aarch64")) \
        .torch_version == "2.15.0"


def test_no_torch_with_a_wheel_for_the_envs_python_is_unsatisfiable() -> None:
    wanted = r"no torch release the recipe allows \(torch==2.15.\*\) has a wheel for Python 3.10 on linux"
    with pytest.raises(UnsatisfiableError, match=wanted) as caught:
        plan(recipe("==2.15.*"), H100, PlanOptions(python_version="3.10", platform="linux_x86_64"))
    assert caught.value.hint and "[env] python" in caught.value.hint


def test_the_installers_constraints_hold_torch_and_its_pairs() -> None:
    # pip refuses what its constraint files exclude: the plan does not propose it.
    caps = (Constraint("torch<=2.14.1", "/etc/pip/constraints.txt"),
            Constraint("torchvision<=0.29.1", "/etc/pip/constraints.txt"))
    result = plan(recipe(">=2.1", "torchvision"), H100, PlanOptions(constraints=caps))
    assert result.torch_version == "2.14.1" and result.torch_packages == ("torchvision==0.29.1",)
    assert result.passed_over == ("torch 2.15.0: the installer's constraint torch<=2.14.1 "
                                  "(/etc/pip/constraints.txt) excludes it",)
    with pytest.raises(UnsatisfiableError, match=r"constraint torch<=2\.14\.1 .* allows no torch"):
        plan(recipe("==2.15.*"), H100, PlanOptions(constraints=caps))
