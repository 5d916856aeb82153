"""The comparison with a tiny fake catalog (not the shipped one), on the recorded excerpts."""

from __future__ import annotations

from collections.abc import Callable

from gpuenv.catalogcheck.catalogview import catalog_view
from gpuenv.catalogcheck.check import Checked, CheckResult, NotChecked
from gpuenv.catalogcheck.compare import Row, compare, versions_to_check
from gpuenv.catalogcheck.report import render_markdown
from gpuenv.plan.catalog import Catalog
from tests.unit.catalogcheck.fixtures import facts_of, line_of

FakeCatalog = Callable[[str], Catalog]


def row(rows: list[Row], fact: str) -> Row:
    (found,) = [r for r in rows if r.fact == fact]
    return found


def test_a_force_build_value_the_setup_py_does_not_take_disagrees(fake_catalog: FakeCatalog) -> None:
    catalog = fake_catalog("""
        [transformer-engine-torch]
        cuda = "required"
        skip_cuda_knob = "NVTE_PYTORCH_SKIP_CUDA_BUILD"
        arch_knob = "NVTE_CUDA_ARCHS"
        arch_format = "nodot"
        env = { NVTE_PYTORCH_FORCE_BUILD = "1" }
    """)
    package = "transformer-engine-torch-2.20.2"
    rows = compare(catalog, "transformer-engine-torch", "2.20.2", facts_of(package))
    force = row(rows, "force build NVTE_PYTORCH_FORCE_BUILD")
    assert force.verdict == "DISAGREE" and '"1" is not on' in force.source
    line = line_of(package, 'os.getenv("NVTE_PYTORCH_FORCE_BUILD"')
    assert force.where == f"setup.py:{line}"
    skip = row(rows, "skip CUDA")
    assert skip.verdict == "DISAGREE" and '"1"' in skip.source
    assert row(rows, "arch knob").verdict == "agree"
    assert row(rows, "min nvcc").verdict == "DISAGREE"  # it refuses nvcc < 12.0; the fake says nothing


def test_the_same_facts_agree_with_a_catalog_that_says_TRUE(fake_catalog: FakeCatalog) -> None:
    catalog = fake_catalog("""
        [transformer-engine-torch]
        cuda = "required"
        skip_cuda_knob = "NVTE_PYTORCH_SKIP_CUDA_BUILD"
        skip_cuda_value = "TRUE"
        arch_knob = "NVTE_CUDA_ARCHS"
        arch_format = "nodot"
        min_nvcc = "12.0"
        env = { NVTE_PYTORCH_FORCE_BUILD = "TRUE", NVTE_FRAMEWORK = "pytorch" }
        jobs_knobs = ["MAX_JOBS", "NVTE_BUILD_MAX_JOBS"]
    """)
    rows = compare(catalog, "transformer-engine-torch", "2.20.2", facts_of("transformer-engine-torch-2.20.2"))
    assert [r for r in rows if r.verdict == "DISAGREE"] == []
    assert row(rows, "env NVTE_FRAMEWORK").verdict == "agree"


def test_fixed_archs_that_depend_on_nvcc_disagree_with_a_flat_list_and_say_for_which_nvcc(
        fake_catalog: FakeCatalog) -> None:
    catalog = fake_catalog("""
        [causal-conv1d]
        cuda = "required"
        fixed_archs = ["7.5", "8.0", "8.7", "9.0", "10.0", "10.3", "11.0", "12.0", "12.1"]
        min_nvcc = "11.6"
    """)
    rows = compare(catalog, "causal-conv1d", "1.6.1.post4", facts_of("causal-conv1d-1.6.1.post4"))
    fixed = row(rows, "fixed archs")
    assert fixed.verdict == "DISAGREE"
    assert "with nvcc 12.8 to 12.9: catalog has 10.3 11.0 12.1 that it does not build, " \
           "it builds 6.2 7.0 7.2 the catalog lacks" in fixed.source
    assert "with nvcc 13.0" not in fixed.source  # from 13.0 on the flat list is right


def test_fixed_archs_are_compared_only_for_the_nvcc_both_accept(fake_catalog: FakeCatalog) -> None:
    catalog = fake_catalog("""
        [flash-attn]
        cuda = "required"
        fixed_archs = ["8.0", "9.0"]
        min_nvcc = "11.8"
    """)
    rows = compare(catalog, "flash-attn", "2.7.2", facts_of("flash-attn-2.7.2"))
    assert row(rows, "fixed archs").verdict == "agree"
    assert row(rows, "min nvcc").verdict == "DISAGREE"  # the package itself takes 11.7, with 8.0 only
    assert row(rows, "arch knob").verdict == "agree"


def test_a_variable_the_package_never_reads_disagrees(fake_catalog: FakeCatalog) -> None:
    catalog = fake_catalog("""
        [apex]
        cuda = "required"
        env = { APEX_CPP_EXT = "1", APEX_CUDA_EXT = "1" }
        toolkit_match = "minor"
    """)
    old = compare(catalog, "apex", "0.1", facts_of("apex-2eda0ac9"))
    assert row(old, "env APEX_CPP_EXT").verdict == "DISAGREE"
    assert row(old, "env APEX_CPP_EXT").source == "not read by setup.py"
    assert row(old, "build options").verdict == "not in catalog"
    built = row(old, "CUDA extensions built")
    assert built.verdict == "DISAGREE" and built.source.startswith("none of its 5")
    new = compare(catalog, "apex", "0.1", facts_of("apex-25.09"))
    assert row(new, "env APEX_CPP_EXT").verdict == "agree"
    assert row(new, "CUDA extensions built").source == "amp_C, fused_weight_gradient_mlp_cuda (2 of 5)"
    # --cuda_ext's fused_weight_gradient_mlp_cuda fixes its own archs; the optional extensions stay out.
    fixed = row(new, "fixed archs")
    assert fixed.verdict == "DISAGREE" and "for fused_weight_gradient_mlp_cuda" in fixed.source
    assert "fast_layer_norm" not in fixed.source
    assert row(new, "toolkit match").verdict == "agree"


def test_ninja_and_the_gpu_check_are_judged_for_the_planned_build(fake_catalog: FakeCatalog) -> None:
    catalog = fake_catalog("""
        [torch-scatter]
        cuda = "optional"
        cuda_env = { NOT_FORCE_CUDA = "1" }
    """)
    rows = compare(catalog, "torch-scatter", "2.1.2", facts_of("torch-scatter-2.1.2"))
    assert row(rows, "ninja (MAX_JOBS counts)").verdict == "DISAGREE"
    gate = row(rows, "CUDA without a GPU")
    assert gate.verdict == "DISAGREE" and "CPU-only" in gate.source
    assert row(rows, "cuda env NOT_FORCE_CUDA").verdict == "DISAGREE"
    catalog = fake_catalog("""
        [torch-scatter]
        cuda = "optional"
        cuda_env = { FORCE_CUDA = "1" }
        ignores_jobs = true
    """)
    rows = compare(catalog, "torch-scatter", "2.1.2", facts_of("torch-scatter-2.1.2"))
    assert row(rows, "ninja (MAX_JOBS counts)").verdict == "agree"
    assert row(rows, "CUDA without a GPU").verdict == "agree"


def test_a_version_no_table_describes_is_not_in_the_catalog(fake_catalog: FakeCatalog) -> None:
    catalog = fake_catalog("""
        [mamba-ssm]
        cuda = "required"
        versions = ">=2.3"
    """)
    (only,) = compare(catalog, "mamba-ssm", "2.2.5", facts_of("mamba-ssm-2.2.5"))
    assert (only.fact, only.verdict) == ("catalog entry", "not in catalog")


def test_nvcc_dependent_archs_threads_and_the_cxx_standard_agree_when_the_catalog_says_them(
        fake_catalog: FakeCatalog) -> None:
    catalog = fake_catalog("""
        [flash-attn]
        cuda = "required"
        fixed_archs = ["8.0", { arch = "9.0", nvcc = ">=11.8" }]
        cxx_std = 17
        force_build = { FLASH_ATTENTION_FORCE_BUILD = "TRUE" }
        skip_cuda_knob = "FLASH_ATTENTION_SKIP_CUDA_BUILD"
        skip_cuda_value = "TRUE"
        min_nvcc = "11.7"
        threads_knob = "NVCC_THREADS"
    """)
    rows = compare(catalog, "flash-attn", "2.7.2", facts_of("flash-attn-2.7.2"))
    assert [r for r in rows if r.verdict != "agree"] == []
    assert row(rows, "nvcc threads").source == "NVCC_THREADS (default 2)"
    view = catalog_view(catalog, "flash-attn", "2.7.2")
    assert view.fixed_archs_for("11.7") == ("8.0",) and view.fixed_archs_for("12.4") == ("8.0", "9.0")


def test_a_knobs_choices_are_compared_per_nvcc(fake_catalog: FakeCatalog) -> None:
    catalog = fake_catalog("""
        [flash-attn]
        cuda = "required"
        arch_knob = "FLASH_ATTN_CUDA_ARCHS"
        arch_format = "nodot"
        arch_choices = ["8.0", "9.0", { arch = "10.0", nvcc = ">=12.8" }, { arch = "12.0", nvcc = ">=12.8" }]
    """)
    choices = row(compare(catalog, "flash-attn", "2.8.3.post2", facts_of("flash-attn-2.8.3.post2")),
                  "arch choices")
    assert choices.verdict == "DISAGREE"
    assert choices.source.endswith(
        "with nvcc 11.7: catalog has 9.0 that it does not offer")  # sm_90 needs nvcc 11.8 there


def test_the_stable_abi_is_read_from_torch_target_version(fake_catalog: FakeCatalog) -> None:
    catalog = fake_catalog("""
        [xformers]
        cuda = "optional"
        cxx_std = 17
        stable_abi = "2.9"
        nvcc_threads = 4
    """)
    rows = compare(catalog, "xformers", "0.0.35", facts_of("xformers-0.0.35"))
    abi = row(rows, "stable ABI")
    assert (abi.catalog, abi.verdict) == ("torch 2.9", "DISAGREE")
    assert abi.source == "torch 2.10 (TORCH_TARGET_VERSION)"
    assert row(rows, "nvcc threads").verdict == "agree"
    assert row(rows, "C++ standard").verdict == "agree"


def test_the_versions_read_are_the_newest_and_both_sides_of_each_range_edge() -> None:
    available = ["1.4.0", "1.5.2", "1.5.3.post1", "1.6.0", "1.7.0", "1.8.0.dev1"]
    assert versions_to_check([">=1.5.3", "<1.5.3", ""], available) == [
        ("1.7.0", "newest"),
        ("1.5.3.post1", "first in >=1.5.3; first after <1.5.3"),
        ("1.5.2", "last before >=1.5.3; last in <1.5.3"),
    ]
    assert versions_to_check([], []) == []


def test_the_report_has_its_date_the_disagreements_first_and_safe_cells() -> None:
    facts = facts_of("torch-scatter-2.1.2")
    rows = (Row("x", "1.0", "env A|B", 'A="1"', "not read", "DISAGREE", "setup.py:3"),
            Row("x", "1.0", "arch knob", "T", "T", "agree", "setup.py:9"))
    result = CheckResult("2026-12-04", ("https://index.example/simple",),
                         [Checked("x", "1.0", "newest", "x-1.0.tar.gz", facts, rows)],
                         [NotChecked("apex", "not checked: source not reachable (give --source apex=PATH)")])
    text = render_markdown(result, command="python -m gpuenv.catalogcheck")
    assert "Run on 2026-12-04 with `python -m gpuenv.catalogcheck`" in text
    assert text.index("## Disagreements") < text.index("## Every fact")
    assert "| x | 1.0 | env A\\|B | A=\"1\" | not read | **DISAGREE** | setup.py:3 |" in text
    assert "- **apex**: not checked: source not reachable (give --source apex=PATH)" in text
    assert "1 DISAGREE" in text and "1 agree" in text
