"""How the extractor reads a variable's test and a line's conditions, on small setup.py texts."""

from __future__ import annotations

import textwrap

import pytest
from packaging.version import Version

from gpuenv.plan.buildfiles.conditions import Context, spec_over
from gpuenv.plan.buildfiles.derive import derive, imported_files


def derived(text: str, **more: str):  # type: ignore[no-untyped-def]
    return derive({"setup.py": textwrap.dedent(text), **{k.replace("__", "/") + ".py": textwrap.dedent(v)
                                                         for k, v in more.items()}})


@pytest.mark.parametrize(("line", "on", "off"), [
    ('X = os.getenv("FLAG", "FALSE") == "TRUE"', ["TRUE"], ["1", "true", None]),
    ('X = bool(int(os.getenv("FLAG", "0")))', ["1", "2"], ["0", "TRUE", None]),
    ('X = os.getenv("FLAG", "").lower() in ("1", "true")', ["1", "TRUE", "true"], ["yes", None]),
    ('X = bool(os.environ.get("FLAG"))', ["1", "0", "anything"], ["", None]),
    ('X = "FLAG" in os.environ', ["", "0"], [None]),
    ('X = os.environ.get("FLAG", "0") != "0"', ["1", "x"], ["0", None]),
])
def test_a_flags_test_says_which_values_turn_it_on(line: str, on: list[str], off: list[str | None]) -> None:
    (check,) = derived(f"import os\n{line}\n").reads("FLAG")
    assert [check.accepts(v) for v in on] == [True] * len(on)
    assert [check.accepts(v) for v in off] == [False] * len(off)
    assert check.where.line == 2


def test_a_value_passed_on_is_no_test() -> None:
    (check,) = derived('import os\nthreads = os.getenv("NVCC_THREADS") or "4"\n').reads("NVCC_THREADS")
    assert check.test == "value" and check.accepts("2") is None and check.default == "4"


def test_a_helper_that_reads_its_parameter_is_read_at_each_call() -> None:
    facts = derived('''
        import os
        def has_flag(env_var):
            return os.environ.get(env_var, "0") == "1"
        if has_flag("APEX_CPP_EXT"):
            pass
        for name in ["A_EXT", "B_EXT"]:
            on = os.getenv(name) == "yes"
    ''')
    (cpp,) = facts.reads("APEX_CPP_EXT")
    assert cpp.values == ("1",) and cpp.where.line == 5
    assert [c.values for c in facts.reads("A_EXT") + facts.reads("B_EXT")] == [("yes",), ("yes",)]


def test_a_name_built_at_run_time_is_a_note_not_a_guess() -> None:
    facts = derived('import os\nfor k in compute():\n    os.environ.get(k)\n')
    assert facts.env == ()
    assert any("setup.py:3" in note and "computed" in note for note in facts.notes)


def test_nvcc_branches_become_version_ranges_the_else_branch_too() -> None:
    facts = derived('''
        from packaging.version import Version
        _, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)
        cc_flag = []
        if bare_metal_version >= Version("11.8"):
            cc_flag.append("arch=compute_90,code=sm_90")
        else:
            cc_flag.append("arch=compute_80,code=compute_80")
        if bare_metal_version <= Version("12.9"):
            cc_flag += ["-gencode=arch=compute_70,code=sm_70"]
        if bare_metal_version > Version("12.0") and bare_metal_version < Version("13.0"):
            cc_flag.append("arch=compute_100,code=sm_100")
        ext = CUDAExtension("x", ["x.cu"], extra_compile_args={"nvcc": cc_flag})
    ''')
    assert {g.label: g.nvcc for g in facts.gencodes} == {
        "9.0": ">=11.8", "8.0+PTX": "<11.8", "7.0": "<=12.9", "10.0": ">=12.1,<13.0"}
    assert [e.fixed for e in facts.cuda_extensions] == [True]
    assert facts.arch_knob.name is None


def test_code_for_rocm_or_windows_is_not_a_cuda_builds() -> None:
    facts = derived('''
        import os, sys, torch
        HIP_BUILD = bool(torch.version.hip)
        if HIP_BUILD:
            flags = ["-std=c++17", "arch=compute_90,code=sm_90"]
            arch = os.getenv("HIP_ARCHITECTURES")
        elif sys.platform == "win32":
            flags = ["-std=c++14"]
        else:
            flags = ["-std=c++20"]
    ''')
    assert [f.std for f in facts.std_flags] == [20]
    assert facts.gencodes == () and facts.env == ()


def test_a_version_condition_on_torch_is_a_torch_range() -> None:
    facts = derived('''
        def cxx_args():
            return ["-std=c++20" if (TORCH_MAJOR, TORCH_MINOR) >= (2, 12) else "-std=c++17"]
        args = cxx_args()
    ''')
    shown = {f.std: spec_over(f.condition, Context(), "torch") for f in facts.std_flags}
    assert shown == {20: ">=2.12", 17: "<2.12"}
    assert {f.compiler for f in facts.std_flags} == {"cxx"}
    twenty = next(f for f in facts.std_flags if f.std == 20)
    assert twenty.condition.value(Context(torch=Version("2.14.1"))) is True


def test_a_function_setup_py_never_calls_says_nothing() -> None:
    facts = derived('''
        def unused(cuda_dir):
            if bare_metal_version != parse(torch.version.cuda):
                raise RuntimeError("mismatch")
    ''')
    assert facts.toolkit_match == ()


def test_setup_py_helpers_are_found_by_their_imports() -> None:
    text = "from build_tools.utils import cuda_archs\nfrom . import sibling\nimport op_builder\n"
    available = {"build_tools/utils.py", "op_builder/__init__.py", "sibling.py", "other.py"}
    assert imported_files("setup.py", text, available) == [
        "build_tools/utils.py", "sibling.py", "op_builder/__init__.py"]
    relative = imported_files("op_builder/__init__.py", "from .builder import B\n", {"op_builder/builder.py"})
    assert relative == ["op_builder/builder.py"]
