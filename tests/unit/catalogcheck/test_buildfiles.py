"""The extractor on recorded excerpts of the real build files (tests/data/setup_py): each test
names the line of the excerpt that says the fact, and checks the fact was read from there."""

from __future__ import annotations

from packaging.version import Version

from gpuenv.plan.buildfiles.conditions import Context, spec_over
from gpuenv.plan.buildfiles.facts import BuildFacts, Gencode
from tests.unit.catalogcheck.fixtures import facts_of, line_of, lines_of


def gencodes(facts: BuildFacts) -> dict[str, str | None]:
    """arch → the nvcc range it is compiled for ("" for any)."""
    return {g.label: g.nvcc for g in facts.gencodes}


def gencode(facts: BuildFacts, arch: str) -> Gencode:
    return next(g for g in facts.gencodes if g.label == arch)


# -- flash-attn ----------------------------------------------------------------------------------


def test_flash_attn_2_8_3_carries_its_archs_in_FLASH_ATTN_CUDA_ARCHS_without_dots() -> None:
    package = "flash-attn-2.8.3.post2"
    knob = facts_of(package).arch_knob
    assert knob.name == "FLASH_ATTN_CUDA_ARCHS" and knob.format == "nodot"
    assert [(d.value, d.nvcc) for d in knob.defaults] == [("80;90;100;120", "")]
    assert knob.where is not None
    assert knob.where.line == line_of(package, 'os.getenv("FLASH_ATTN_CUDA_ARCHS", "80;90;100;120")')


def test_flash_attn_2_8_3_compiles_each_arch_of_its_knob_only_with_an_nvcc_that_has_it() -> None:
    package = "flash-attn-2.8.3.post2"
    choices = {c.value: (c.nvcc, c.where.line) for c in facts_of(package).arch_knob.choices}
    assert choices == {
        "80": ("", line_of(package, '"arch=compute_80,code=sm_80"')),
        "90": (">=11.8", line_of(package, '"arch=compute_90,code=sm_90"')),
        "100": (">=12.8", line_of(package, '"arch=compute_100,code=sm_100"')),
        "120": (">=12.8", line_of(package, '"arch=compute_120,code=sm_120"')),
    }


def test_flash_attn_force_build_and_skip_take_exactly_TRUE() -> None:
    package = "flash-attn-2.8.3.post2"
    facts = facts_of(package)
    for name, text in (
        ("FLASH_ATTENTION_FORCE_BUILD", 'FORCE_BUILD = os.getenv("FLASH_ATTENTION_FORCE_BUILD"'),
        ("FLASH_ATTENTION_SKIP_CUDA_BUILD", 'SKIP_CUDA_BUILD = os.getenv("FLASH_ATTENTION_SKIP'),
    ):
        (check,) = facts.reads(name)
        assert (check.test, check.values, check.default) == ("equals", ("TRUE",), "FALSE")
        assert check.accepts("TRUE") and not check.accepts("1") and not check.accepts("true")
        assert check.where.line == line_of(package, text)


def test_flash_attn_passes_cxx17_to_both_compilers_and_its_rocm_branch_is_left_out() -> None:
    package = "flash-attn-2.8.3.post2"
    flags = {(f.compiler, f.std, f.where.line) for f in facts_of(package).std_flags}
    assert flags == {
        ("nvcc", 17, line_of(package, '    "-std=c++17",')),
        ("cxx", 17, line_of(package, 'compiler_c17_flag=["-O3", "-std=c++17"]')),
    }
    # The ROCm branch passes -std=c++17 to hipcc and reads GPU_ARCHS: not a CUDA build's facts.
    assert line_of(package, 'cc_flag += ["-O3","-std=c++17",')
    assert not facts_of(package).reads("GPU_ARCHS")


def test_flash_attn_refuses_an_nvcc_older_than_11_7() -> None:
    package = "flash-attn-2.8.3.post2"
    (check,) = facts_of(package).min_nvcc
    assert check.version == "11.7"
    assert check.where.line == line_of(package, 'if bare_metal_version < Version("11.7"):')


def test_flash_attn_builds_with_ninja_and_reads_MAX_JOBS() -> None:
    package = "flash-attn-2.8.3.post2"
    facts = facts_of(package)
    assert facts.ninja.condition.value(Context()) is True
    (check,) = facts.reads("MAX_JOBS")
    assert check.where.line == line_of(package, 'if not os.environ.get("MAX_JOBS"):')


def test_flash_attn_2_7_2_has_no_arch_knob_and_always_compiles_sm80_and_sm90_from_nvcc_11_8() -> None:
    package = "flash-attn-2.7.2"
    facts = facts_of(package)
    assert facts.arch_knob.name is None and facts.arch_knob.recognised
    assert all(e.fixed for e in facts.cuda_extensions)
    assert gencodes(facts) == {"8.0": "", "9.0": ">=11.8"}
    sm80 = line_of(package, '    cc_flag.append("arch=compute_80,code=sm_80")')
    assert gencode(facts, "8.0").where.line == sm80
    assert gencode(facts, "9.0").where.line == line_of(package, '"arch=compute_90,code=sm_90"')
    assert not facts.reads("FLASH_ATTN_CUDA_ARCHS")


# -- causal-conv1d and mamba-ssm ---------------------------------------------------------------------


def test_causal_conv1d_1_5_2_hard_codes_jetson_nano_to_hopper() -> None:
    facts = facts_of("causal-conv1d-1.5.2")
    assert facts.arch_knob.name is None
    assert gencodes(facts) == {"5.3": "", "6.2": "", "7.0": "", "7.2": "", "8.0": "", "8.7": "",
                               "9.0": ">=11.8", "10.0": ">=12.8"}


def test_causal_conv1d_1_6_1_post4_drops_sm62_to_sm72_only_after_nvcc_12_9() -> None:
    package = "causal-conv1d-1.6.1.post4"
    facts = facts_of(package)
    assert gencodes(facts) == {
        "6.2": "<=12.9", "7.0": "<=12.9", "7.2": "<=12.9", "7.5": "", "8.0": "", "8.7": "",
        "9.0": ">=11.8", "10.0": ">=12.8", "12.0": ">=12.8",
        "10.3": ">=13.0", "11.0": ">=13.0", "12.1": ">=13.0",
    }
    assert gencode(facts, "7.0").where.line == line_of(package, '"arch=compute_70,code=sm_70"')
    assert line_of(package, 'if bare_metal_version <= Version("12.9"):') < gencode(facts, "7.0").where.line


def test_causal_conv1d_passes_no_cxx_standard_to_a_cuda_build_only_to_rocm() -> None:
    for package in ("causal-conv1d-1.5.2", "causal-conv1d-1.6.1.post4", "causal-conv1d-1.7.0"):
        # Its two -std=c++17 sit between the second `if HIP_BUILD:` and its `else:`.
        hip = lines_of(package, "    if HIP_BUILD:")[1]
        cuda = next(n for n in lines_of(package, "    else:") if n > hip)
        assert all(hip < n < cuda for n in lines_of(package, "-std=c++17"))
        assert len(lines_of(package, "-std=c++17")) == 2
        assert facts_of(package).std_flags == ()


def test_causal_conv1d_1_7_0_starts_at_sm75_and_force_build_takes_TRUE() -> None:
    package = "causal-conv1d-1.7.0"
    facts = facts_of(package)
    assert min(gencodes(facts), key=Version) == "7.5"
    assert "7.0" not in gencodes(facts)
    (check,) = facts.reads("CAUSAL_CONV1D_FORCE_BUILD")
    assert check.values == ("TRUE",)
    assert check.where.line == line_of(package, 'os.getenv("CAUSAL_CONV1D_FORCE_BUILD", "FALSE") == "TRUE"')


def test_mamba_2_2_5_compiles_from_sm53_and_passes_cxx17_to_both_compilers() -> None:
    package = "mamba-ssm-2.2.5"
    facts = facts_of(package)
    assert gencodes(facts) == {"5.3": "", "6.2": "", "7.0": "", "7.2": "", "8.0": "", "8.7": "",
                               "9.0": ">=11.8", "10.0": ">=12.8"}
    assert {(f.compiler, f.std) for f in facts.std_flags} == {("cxx", 17), ("nvcc", 17)}
    # Four lines pass it: two in the `if HIP_BUILD:` branch, then two in its `else:` (the CUDA build).
    hip, cuda = lines_of(package, "-std=c++17")[:2], lines_of(package, "-std=c++17")[2:]
    assert len(hip) == len(cuda) == 2
    assert {f.where.line for f in facts.std_flags} == set(cuda)


def test_mamba_2_3_1_drops_sm53_to_sm72_only_after_nvcc_12_9() -> None:
    package = "mamba-ssm-2.3.1"
    facts = facts_of(package)
    assert {a: n for a, n in gencodes(facts).items() if n == "<=12.9"} == {
        "5.3": "<=12.9", "6.2": "<=12.9", "7.0": "<=12.9", "7.2": "<=12.9"}
    assert gencode(facts, "5.3").where.line == line_of(package, '"arch=compute_53,code=sm_53"')


def test_mamba_2_3_2_starts_at_sm75_and_clearing_TORCH_CUDA_ARCH_LIST_is_not_reading_it() -> None:
    package = "mamba-ssm-2.3.2.post1"
    facts = facts_of(package)
    assert min(gencodes(facts), key=Version) == "7.5"
    assert line_of(package, 'os.environ["TORCH_CUDA_ARCH_LIST"] = ""')
    assert not facts.reads("TORCH_CUDA_ARCH_LIST")
    assert facts.arch_knob.name is None


# -- torch-scatter, xformers, deepspeed -------------------------------------------------------------


def test_torch_scatter_builds_without_ninja_and_compiles_cuda_only_with_a_gpu_or_FORCE_CUDA() -> None:
    package = "torch-scatter-2.1.2"
    facts = facts_of(package)
    assert facts.ninja.condition.value(Context()) is False
    assert facts.ninja.where is not None
    assert facts.ninja.where.line == line_of(package, "use_ninja=False")
    (gate,) = facts.gpu_gates
    assert gate.where.line == line_of(package, "if torch.cuda.is_available():")
    assert gate.builds_cuda(Context(env={}, gpu=False)) is False
    assert gate.builds_cuda(Context(env={"FORCE_CUDA": "1"}, gpu=False)) is True
    assert gate.builds_cuda(Context(env={"FORCE_CUDA": "true"}, gpu=False)) is False
    assert gate.builds_cuda(Context(env={}, gpu=True)) is True
    assert facts.arch_knob.name == "TORCH_CUDA_ARCH_LIST"


def test_xformers_builds_cuda_without_a_gpu_when_FORCE_CUDA_or_an_arch_list_is_set() -> None:
    package = "xformers-0.0.35"
    facts = facts_of(package)
    (gate,) = facts.gpu_gates
    assert gate.builds_cuda(Context(env={}, gpu=False)) is False
    assert gate.builds_cuda(Context(env={"TORCH_CUDA_ARCH_LIST": "9.0"}, gpu=False)) is True
    assert gate.builds_cuda(Context(env={"FORCE_CUDA": "1"}, gpu=False)) is True
    (check,) = facts.reads("FORCE_CUDA")
    assert check.where.line == line_of(package, 'or os.getenv("FORCE_CUDA", "0") == "1"')
    assert {(f.compiler, f.std) for f in facts.std_flags} == {("cxx", 17), ("nvcc", 17)}


def test_deepspeed_uses_ninja_only_when_DS_ENABLE_NINJA_is_set() -> None:
    package = "deepspeed-0.19.8"
    facts = facts_of(package)
    assert facts.ninja.condition.value(Context(env={})) is False
    assert facts.ninja.condition.value(Context(env={"DS_ENABLE_NINJA": "1"})) is True
    (check,) = facts.reads("DS_ENABLE_NINJA")
    assert check.where.line == line_of(package, 'use_ninja = is_env_set("DS_ENABLE_NINJA")')


def test_deepspeed_picks_its_cxx_standard_by_the_torch_version() -> None:
    package = "deepspeed-0.19.8"
    cxx = [f for f in facts_of(package).std_flags if f.compiler == "cxx"]
    line = line_of(package, "cpp_standard = '-std=c++20' if (TORCH_MAJOR, TORCH_MINOR) >= (2, 12)",
                   "op_builder/builder.py")
    assert {(f.std, spec_over(f.condition, Context(), "torch"), f.where.line) for f in cxx} == {
        (20, ">=2.12", line), (17, "<2.12", line)}


def test_deepspeed_reads_the_arch_list_its_op_builder_compiles_for() -> None:
    facts = facts_of("deepspeed-0.19.8")
    assert facts.arch_knob.name == "TORCH_CUDA_ARCH_LIST"
    assert [e.fixed for e in facts.cuda_extensions] == [False]
    assert "op_builder/builder.py" in facts.files


# -- TransformerEngine -----------------------------------------------------------------------------------


def test_transformer_engine_compares_its_force_build_and_skip_flags_with_TRUE() -> None:
    package = "transformer-engine-torch-2.20.2"
    facts = facts_of(package)
    for name in ("NVTE_PYTORCH_FORCE_BUILD", "NVTE_PYTORCH_SKIP_CUDA_BUILD"):
        (check,) = facts.reads(name)
        assert check.values == ("TRUE",) and not check.accepts("1")
        assert check.where.line == line_of(package, f'os.getenv("{name}", "FALSE") == "TRUE"')


def test_transformer_engine_defaults_NVTE_CUDA_ARCHS_by_the_nvcc_version() -> None:
    package = "transformer-engine-torch-2.20.2"
    knob = facts_of(package).arch_knob
    assert knob.name == "NVTE_CUDA_ARCHS" and knob.format == "nodot"
    utils = "build_tools/utils.py"
    assert {(d.value, d.nvcc, d.where.line) for d in knob.defaults} == {
        ("75;80;89;90;100;120", ">=13.0", line_of(package, 'archs = "75;80;89;90;100;120"', utils)),
        ("70;80;89;90;100;120", ">=12.8,<13.0", line_of(package, 'archs = "70;80;89;90;100;120"', utils)),
        ("70;80;89;90", "<12.8", line_of(package, 'archs = "70;80;89;90"', utils)),
    }


def test_transformer_engine_needs_cuda_12_and_its_int_flags_take_integers_only() -> None:
    package = "transformer-engine-torch-2.20.2"
    facts = facts_of(package)
    (check,) = facts.min_nvcc
    assert check.version == "12.0"
    assert check.where.line == line_of(package, "if version < (12, 0):", "build_tools/pytorch.py")
    release = next(c for c in facts.reads("NVTE_RELEASE_BUILD") if c.where.file == "setup.py")
    assert release.test == "int" and release.accepts("1") and not release.accepts("TRUE")


# -- apex ------------------------------------------------------------------------------------------------


def test_apex_25_09_takes_its_extensions_from_APEX_variables_or_build_options() -> None:
    package = "apex-25.09"
    facts = facts_of(package)
    loop = line_of(package, 'if os.environ.get(env_var, "0") == "1" and flag not in sys.argv:')
    for name in ("APEX_CPP_EXT", "APEX_CUDA_EXT"):
        checks = facts.reads(name)
        assert loop in {c.where.line for c in checks}
        assert all(c.accepts("1") and not c.accepts("TRUE") for c in checks)
    options = {o.option: o.env for o in facts.options}
    assert options["--cpp_ext"] == ("APEX_CPP_EXT",) and options["--cuda_ext"] == ("APEX_CUDA_EXT",)


def test_apex_before_bfb500c8_reads_only_build_options() -> None:
    package = "apex-2eda0ac9"
    facts = facts_of(package)
    assert not facts.reads("APEX_CPP_EXT") and not facts.reads("APEX_CUDA_EXT")
    cpp = next(o for o in facts.options if o.option == "--cpp_ext")
    assert cpp.env == ()
    assert cpp.where.line == line_of(package, 'if "--cpp_ext" in sys.argv or "--cuda_ext" in sys.argv:')


def test_apex_fixes_the_archs_of_one_cuda_ext_extension_and_of_optional_ones() -> None:
    package = "apex-25.09"
    facts = facts_of(package)
    fixed = {e.name for e in facts.cuda_extensions if e.fixed}
    assert {"fused_weight_gradient_mlp_cuda", "fast_layer_norm"} <= fixed and "amp_C" not in fixed
    first = next(g for g in facts.gencodes if "--cuda_ext" in g.needs)
    assert (first.arch, first.nvcc, first.needs) == ("7.0", ">=11.0", ("--cuda_ext", "APEX_CUDA_EXT"))
    assert first.where.line == line_of(package, '        cc_flag.append("arch=compute_70,code=sm_70")')
    optional = {g.needs for g in facts.gencodes} - {("--cuda_ext", "APEX_CUDA_EXT")}
    assert optional == {("--group_norm", "APEX_GROUP_NORM"), ("--fast_layer_norm", "APEX_FAST_LAYER_NORM")}


def test_apex_requires_nvcc_to_match_torchs_cuda_to_the_minor_and_defaults_archs_without_a_gpu() -> None:
    package = "apex-25.09"
    facts = facts_of(package)
    (match,) = facts.toolkit_match
    assert match.level == "minor"
    assert match.where.line == line_of(package, "if (bare_metal_version != torch_binary_version):")
    defaults = {d.nvcc: d.value for d in facts.arch_knob.defaults}
    assert defaults[">=13.0"] == "7.5;8.0;8.6;9.0;10.0;11.0;12.0"
    assert facts.declared_version == "0.1"
