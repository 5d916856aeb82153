"""The compatibility knowledge: variant names, torch releases, arch rules, drivers, the catalog."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from gpuenv.plan import catalog, knowledge
from gpuenv.plan.hardware import ComputeCapability
from gpuenv.plan.planner import plan

# -- variants ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "variant"),
    [
        ("12.1", "cu121"),
        ("cu121", "cu121"),
        ("CU121", "cu121"),
        (" cu130 ", "cu130"),
        ("13.0", "cu130"),
        ("11.8", "cu118"),
        ("cpu", "cpu"),
        ("CPU", "cpu"),
        ("12", None),
        ("12.1.1", None),
        ("cuda12.1", None),
        ("rocm6.2", None),
        ("", None),
    ],
)
def test_normalize_variant(text: str, variant: str | None) -> None:
    assert knowledge.normalize_variant(text) == variant


@pytest.mark.parametrize(
    ("variant", "cuda"),
    [("cu121", "12.1"), ("cu118", "11.8"), ("cu130", "13.0"), ("cu132", "13.2"), ("cpu", None)],
)
def test_variant_cuda(variant: str, cuda: str | None) -> None:
    assert knowledge.variant_cuda(variant) == cuda


# -- torch releases ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "release", "version"),
    [
        (">=2.4", "2.15", "2.15.0"),
        ("==2.4.*", "2.4", "2.4.1"),
        ("==2.4.1", "2.4", "2.4.1"),
        ("==2.4.7", "2.4", "2.4.7"),  # an unknown patch of a known minor
        (">=2.4,<2.7", "2.6", "2.6.0"),
        ("~=2.9.0", "2.9", "2.9.1"),
        ("==3.0", None, None),
        ("==3.0.*", None, None),
        ("<2.0", "1.13", "1.13.1"),  # 1.13 and 2.0 are in the data
        ("==2.0.*", "2.0", "2.0.1"),
        ("<1.13", None, None),
    ],
)
def test_resolve_release(spec: str, release: str | None, version: str | None) -> None:
    resolved = knowledge.resolve_release(SpecifierSet(spec))
    if release is None:
        assert resolved is None
    else:
        assert resolved is not None
        assert (resolved[0].release, resolved[1]) == (release, version)


# Which variants each release has is a fact of torch.toml, held to its sources by test_torch_data.py
# and read from the index before planning (probe/torchindex.py): restating the table here would only
# copy it. What the loader must give for any table is checked instead.


@pytest.mark.parametrize("release", sorted(knowledge.torch_releases()))
def test_each_release_loads_as_the_planner_needs_it(release: str) -> None:
    rel = knowledge.torch_releases()[release]
    assert rel.variants and rel.pypi_default in rel.variants, "PyPI's build is one of its variants"
    assert all(v.startswith(f"{release}.") for v in rel.versions)
    for variant in rel.variants:
        cuda = knowledge.variant_cuda(variant)
        assert cuda is not None, f"{variant}: not a CUDA variant"
        assert knowledge.driver_minimum(int(cuda.split(".")[0])) is not None, f"{variant}: no driver known"
        assert rel.archs(variant, from_pypi=False), f"{release} {variant}: no wheel archs"


@pytest.mark.parametrize(
    ("release", "variant", "from_pypi", "has", "lacks"),
    [
        ("2.13", "cu130", True, {"7.5", "12.0"}, {"7.0", "12.0+PTX"}),  # PyPI: no PTX, no Volta
        ("2.13", "cu130", False, {"12.0+PTX"}, {"7.0"}),  # index build: PTX for 12.0
        ("2.13", "cu126", False, {"5.0", "7.0", "9.0"}, {"10.0", "12.0"}),
        ("2.9", "cu128", True, {"7.0", "10.0", "12.0"}, set()),
        ("2.11", "cu128", False, {"7.5"}, {"7.0"}),
        ("2.8", "cu129", False, {"7.0", "12.0+PTX"}, set()),
    ],
)
def test_wheel_archs(release: str, variant: str, from_pypi: bool, has: set[str], lacks: set[str]) -> None:
    archs = set(knowledge.torch_releases()[release].archs(variant, from_pypi=from_pypi))
    assert has <= archs
    assert not lacks & archs


def test_every_wheel_arch_is_a_known_arch() -> None:
    known = set(knowledge.known_archs())
    for rel in knowledge.torch_releases().values():
        assert rel.pypi_default in rel.variants, rel.release
        for variant in rel.variants:
            for arch in rel.archs(variant, from_pypi=True) + rel.archs(variant, from_pypi=False):
                assert arch.removesuffix("+PTX") in known, (rel.release, variant, arch)


# -- archs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("archs", "cc", "runs"),
    [
        (("8.6",), "8.9", True),  # a cubin for X.Y runs on X.Z, Z >= Y: L4 runs sm_86
        (("8.6",), "9.0", False),  # not across majors
        (("8.6",), "8.0", False),  # not backwards
        (("8.0",), "8.6", True),
        (("9.0",), "10.0", False),
        (("9.0+PTX",), "10.0", True),  # PTX is compiled forward by the driver
        (("12.0+PTX",), "12.1", True),
        (("12.0+PTX",), "11.0", False),  # PTX never runs backwards
        (("12.0",), "12.1", True),
        (("7.5", "8.0", "8.6", "9.0", "10.0", "12.0"), "7.0", False),  # cu130 on a V100
        (("5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0"), "12.0", False),  # cu126 on an RTX 5090
        ((), "9.0", False),
    ],
)
def test_runs_on(archs: tuple[str, ...], cc: str, runs: bool) -> None:
    assert knowledge.runs_on(archs, ComputeCapability.parse(cc)) is runs


@pytest.mark.parametrize(
    ("cc", "nvcc", "can"),
    [
        ("7.0", "12.9", True),
        ("7.0", "13.0", False),  # 13.0 starts at Turing
        ("7.5", "13.0", True),
        ("9.0", "11.8", True),
        ("9.0", "11.7", False),
        ("10.0", "12.6", False),
        ("10.0", "12.8", True),
        ("12.0", "12.8", True),
        ("12.1", "12.8", False),
        ("11.0", "12.9", False),
        ("11.0", "13.0", True),
    ],
)
def test_nvcc_can_compile(cc: str, nvcc: str, can: bool) -> None:
    support = knowledge.arch_support(cc)
    assert support is not None
    assert support.nvcc_can_compile(nvcc) is can


@pytest.mark.parametrize(
    ("cc", "torch", "accepts"),
    [
        ("9.0", "2.1", True),
        ("10.0", "2.5", False),
        ("10.0", "2.6", True),
        ("12.0", "2.6", False),
        ("12.0", "2.7", True),
        ("10.1", "2.8", True),
        ("10.1", "2.9", False),  # renamed to 11.0
        ("11.0", "2.9", True),
    ],
)
def test_torch_accepts(cc: str, torch: str, accepts: bool) -> None:
    support = knowledge.arch_support(cc)
    assert support is not None
    assert support.torch_accepts(torch) is accepts


def test_unknown_arch() -> None:
    assert knowledge.arch_support("9.5") is None
    archs = knowledge.known_archs()
    assert archs == sorted(archs, key=lambda a: tuple(int(p) for p in a.split(".")))  # numeric, not text
    assert archs.index("9.0") < archs.index("10.0")


def test_the_archs_a_torch_release_accepts_come_from_the_table() -> None:
    # torch_archs is the table read per release: what the planner substitutes from.
    for release in ("1.13", "2.0", "2.8", "2.14"):
        accepted = knowledge.torch_archs(release)
        assert accepted == [a for a in knowledge.known_archs()
                            if knowledge.arch_support(a) is not None
                            and knowledge.arch_support(a).torch_accepts(release)]  # type: ignore[union-attr]
    # an arch no torch accepts (an entry with `torch = []`) is in none of them
    never = [a for a in knowledge.known_archs() if not knowledge.arch_support(a).torch_any]  # type: ignore[union-attr]
    assert all(a not in knowledge.torch_archs(r) for a in never for r in ("1.13", "2.14", "9.9"))


# -- drivers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "cuda"),
    [
        ("535.104.05", "12.2"),
        ("535.54.03", "12.2"),
        ("530.30.02", "12.1"),
        ("550.54.15", "12.4"),
        ("560.35.05", "12.6"),
        ("570.124.06", "12.8"),
        ("575.57.08", "12.9"),
        ("580.95.05", "13.0"),
        ("525.60.13", "12.0"),
        ("520.61.05", "11.8"),
        ("470.82.01", "11.4"),
        ("440.33.01", None),  # older than gpuenv's table
    ],
)
def test_cuda_for_driver(driver: str, cuda: str | None) -> None:
    assert knowledge.cuda_for_driver(driver) == cuda


@pytest.mark.parametrize(
    ("major", "minimum"), [(11, "450.80.02"), (12, "525.60.13"), (13, "580.0"), (10, None)]
)
def test_driver_minimum(major: int, minimum: str | None) -> None:
    assert knowledge.driver_minimum(major) == minimum


def test_version_tuple() -> None:
    assert knowledge.version_tuple("12.1") == (12, 1)
    assert knowledge.version_tuple("550.54.14") == (550, 54, 14)


# -- GPU models ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cc"),
    [("H100", "9.0"), ("NVIDIA H100", "9.0"), ("Tesla V100", "7.0"), ("GeForce RTX 4090", "8.9"),
     ("rtx-5090", "12.0"), ("L4", "8.9"), ("A100", "8.0"), ("T4", "7.5"), ("B200", "10.0")],
)
def test_find_gpu_model(name: str, cc: str) -> None:
    model = knowledge.find_gpu_model(name)
    assert model is not None and model.cc == cc


# -- the extension catalog ---------------------------------------------------------------------

CATALOG = ["flash-attn", "apex", "torch-scatter", "torch-sparse", "torch-cluster", "causal-conv1d",
           "mamba-ssm", "xformers", "deepspeed", "transformer-engine-torch"]


@pytest.mark.parametrize("name", CATALOG)
def test_catalog_knows_the_issue_extensions(name: str) -> None:
    entry = catalog.catalog_entry(name)
    assert entry.known
    assert entry.import_name
    assert entry.job_memory_mib > 0
    assert "MAX_JOBS" in entry.jobs_knobs
    assert not any(canonicalize_name(Requirement(r).name) == "torch" for r in entry.build_requires)


def test_an_extension_the_catalog_does_not_know_is_planned_as_a_generic_torch_extension() -> None:
    """The generic entry's knobs on a CUDA plan are the row "unknown extension -> generic knobs" of
    test_plan.py; its facts' sources are the knowledge checker's (gpuenv.catalogcheck). Here: what the
    planner does with it on a CPU plan, and what it installs and imports."""
    from tests.unit.plan.test_plan import D580, H100, MINE, machine, recipe

    (cuda,) = plan(recipe("==2.13.*", MINE), machine(H100, driver=D580, nvcc=("13.0",))).extensions
    (cpu,) = plan(recipe("==2.13.*", MINE, cuda="cpu"), machine()).extensions
    assert cuda.compiles_cuda and cuda.import_name is None, "nothing to import it by: verify does not guess"
    assert not cpu.compiles_cuda and cpu.action == "build"
    assert not {"FORCE_CUDA", "TORCH_CUDA_ARCH_LIST", "CUDA_HOME"} & set(cpu.env), cpu.env
    assert "MAX_JOBS" in cpu.env
    assert {"setuptools", "wheel", "ninja"} <= set(cpu.build_requires) == set(cuda.build_requires)
