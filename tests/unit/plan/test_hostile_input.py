"""Each hostile input the robustness review found, through the real CLI entry point: exit 2 and an
``error:`` line, at once, instead of a traceback, a hang or silent acceptance."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gpuenv.cli import main
from gpuenv.plan.hardware import hardware_from_json
from gpuenv.setup.context import STATE_FILE, load_state

RECIPE = '[torch]\nversion = "2.13.0"\n'
PROBE: dict[str, Any] = {
    "driver_version": "580.65.06", "cuda_driver_version": "13.0",
    "gpus": [{"index": 0, "name": "NVIDIA H100", "uuid": "GPU-1", "compute_capability": "9.0",
              "memory_total_mib": 81559}],
    "cpu_count": 2, "memory_total_mib": 24000, "memory_available_mib": 20000,
    "toolkits": [{"nvcc": "/usr/local/cuda-13.0/bin/nvcc", "version": "13.0",
                  "home": "/usr/local/cuda-13.0"}],
}


@pytest.fixture
def recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GPUENV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GPUENV_TORCH_INDEX", raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "r.toml"
    path.write_text(RECIPE)
    return path


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's refusal of a value its type check rejects
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "error:" in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("option", [
    "--gpu=", "--arch=", "--gpu=0xH100", "--gpu=99999999999xH100", "--gpu=1000000xH100",
    "--torch-index=not a url", "--torch-index=", "--torch-index=ftp://mirror/{variant}", "--arch=999.0",
])
def test_empty_and_absurd_options_are_refused(
    recipe: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    refused(["plan", "-r", str(recipe), option], capsys)


def test_setup_refuses_an_empty_venv_instead_of_the_current_directory(
    recipe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(["setup", "-r", str(recipe), "--venv=", "--dry-run"], capsys)
    assert not (recipe.parent / "pyvenv.cfg").exists()


@pytest.mark.parametrize("which", ["recipe", "hardware"])
def test_a_fifo_or_a_device_is_refused_at_once(
    recipe: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    fifo = recipe.parent / "fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        argv = ["plan", "-r", path] if which == "recipe" else ["plan", "-r", str(recipe), "--hardware", path]
        assert "not a regular file" in refused(argv, capsys)


@pytest.mark.parametrize(("text", "problem"), [
    ('[torch]\nversion = "2.13.0"\n[[extensions]]\nrequirement = "x"\nenv = { A = "x\\u0000y" }\n', "NUL"),
    ('[torch]\nversion = "' + "1" * 1_000_000 + '"\n', "longer than"),
    ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
    ("a = " + "1" * 5000 + "\n", "digits"),
])
def test_recipes_that_used_to_crash_are_input_errors(
    recipe: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    recipe.write_text(text)
    assert problem in refused(["plan", "-r", str(recipe), "--gpu", "H100"], capsys)


@pytest.mark.parametrize(("change", "problem"), [
    ({"cuda_driver_version": "sm_90"}, "cuda_driver_version"),
    ({"driver_version": "abc"}, "driver_version"),
    ({"toolkits": [{"nvcc": "/x", "version": "abc"}]}, "toolkits[0].version"),
    ({"toolkits": [{"nvcc": "/x", "version": ""}]}, "toolkits[0].version"),
    ({"toolkits": [{"nvcc": "/x", "version": "0.0.0"}]}, "toolkits[0].version"),
    ({"toolkits": [{"nvcc": "/x", "version": "13.0", "home": None}]}, "toolkits[0].home"),
    ({"gpus": [{"compute_capability": "9.0", "name": None}]}, "gpus[0].name"),
    ({"gpus": [{"compute_capability": "9.0", "uuid": 5}]}, "gpus[0].uuid"),
    ({"cpu_count": 10**40}, "cpu_count"),
    ({"gpus": [{"compute_capability": "9.0"}] * 5000}, "more than one machine holds"),
])
def test_hardware_values_are_checked_by_shape_and_range(change: dict[str, Any], problem: str) -> None:
    from gpuenv.errors import HardwareFileError

    with pytest.raises(HardwareFileError) as caught:
        hardware_from_json({**PROBE, **change})
    assert problem in str(caught.value)


def test_a_non_utf8_or_huge_number_hardware_file_is_an_input_error(
    recipe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = recipe.parent / "probe.json"
    probe.write_bytes(b'{"driver_version": "\xff"}')
    assert "not UTF-8" in refused(["plan", "-r", str(recipe), "--hardware", str(probe)], capsys)
    probe.write_text('{"cpu_count": ' + "9" * 5000 + "}")
    refused(["plan", "-r", str(recipe), "--hardware", str(probe)], capsys)


@pytest.mark.parametrize("state", [
    '{"extensions": []}', '{"extensions": {"x": 5}}', "[1, 2]", "\xff", '{"extensions": {"x": {"name": 5}}}',
    '{"extensions": {"x": {"size": 1e999}}}', '{"extensions": {"x": {"size": NaN}}}',  # campaign 3
])
def test_a_damaged_state_file_reads_as_no_work_done(tmp_path: Path, state: str) -> None:
    (tmp_path / STATE_FILE).write_bytes(state.encode("utf-8", errors="surrogateescape"))
    loaded = load_state(tmp_path)
    assert isinstance(loaded.get("extensions", {}), dict)
    assert all(isinstance(done, dict) for done in loaded.get("extensions", {}).values())
    json.dumps(loaded, allow_nan=False)  # what is saved again is JSON: no Infinity, no NaN


def test_the_query_marker_never_reaches_the_live_progress_line(tmp_path: Path) -> None:
    import sys

    from gpuenv.env.targetenv import TargetEnv
    from gpuenv.runner import ANSWER_MARK, SubprocessRunner

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    shown: list[str] = []
    runner = SubprocessRunner(on_line=shown.append)
    installed = TargetEnv(tmp_path).installed(runner)
    assert "pytest" in installed, "the query was answered"
    assert not any(ANSWER_MARK in line for line in shown), shown[-3:]


#: Digits that are not ASCII: str.isdigit(), int(), float() and re's \d take every one of them.
FOREIGN_DIGITS = {"Arabic-Indic": "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
                  "Devanagari": "\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f",
                  "full-width": "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19"}


def foreign(text: str, script: str) -> str:
    """``text`` with its ASCII digits written in another script's digits."""
    return "".join(FOREIGN_DIGITS[script][int(c)] if c.isascii() and c.isdigit() else c for c in text)


@pytest.mark.parametrize("script", sorted(FOREIGN_DIGITS))
@pytest.mark.parametrize("option", ["--arch=9.0", "--arch=90", "--arch=sm_90", "--gpu=8xH100", "--cuda=13.0",
                                    "--cuda=cu130", "--gpu=H100,2xA100"])
def test_digits_of_other_scripts_are_refused_wherever_a_version_or_arch_is_read(
    recipe: Path, capsys: pytest.CaptureFixture[str], option: str, script: str
) -> None:
    name, _, value = option.partition("=")
    argv = ["plan", "-r", str(recipe), f"{name}={foreign(value, script)}"]
    if name == "--cuda":
        argv.append("--gpu=H100")
    err = refused(argv, capsys)
    assert foreign(value, script).split(",")[-1].split("x")[0] in err or name in err


@pytest.mark.parametrize("script", sorted(FOREIGN_DIGITS))
@pytest.mark.parametrize(("option", "value"), [("--max-size", "20G"), ("--older-than", "30"),
                                               ("--unused-since", "2026-01-01")])
def test_prune_reads_ascii_digits_only(
    recipe: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, script: str
) -> None:
    refused(["cache", "prune", f"{option}={foreign(value, script)}"], capsys)


@pytest.mark.parametrize(("change", "problem"), [
    ({"gpus": [{"compute_capability": "\u0669.\u0660"}]}, "gpus[0].compute_capability"),
    ({"gpus": [{"compute_capability": "\uff19.\uff10"}]}, "gpus[0].compute_capability"),
    ({"gpus": [{"compute_capability": "9"}]}, "gpus[0].compute_capability"),
    ({"gpus": [{"compute_capability": "sm_9"}]}, "gpus[0].compute_capability"),
    ({"cuda_driver_version": "\u0661\u0663.\u0660"}, "cuda_driver_version"),
    ({"driver_version": "\u0665\u0668\u0660.65.06"}, "driver_version"),
    ({"toolkits": [{"nvcc": "/x", "version": "\u0661\u0663.\u0660"}]}, "toolkits[0].version"),
    ({"toolkits": [{"nvcc": "", "version": "13.0"}]}, "toolkits[0].nvcc"),
    ({"toolkits": [{"nvcc": "  ", "version": "13.0"}]}, "toolkits[0].nvcc"),
])
def test_a_hardware_file_with_foreign_digits_a_bare_major_or_an_empty_nvcc_is_refused(
    change: dict[str, Any], problem: str
) -> None:
    from gpuenv.errors import HardwareFileError

    with pytest.raises(HardwareFileError) as caught:
        hardware_from_json({**PROBE, **change})
    assert problem in str(caught.value)


@pytest.mark.parametrize("arch", ["9", "1", "0.0", "09.0", "9.10", "sm_9", "compute_8"])
def test_a_compute_capability_needs_its_minor(
    recipe: Path, capsys: pytest.CaptureFixture[str], arch: str
) -> None:
    assert repr(arch) in refused(["plan", "-r", str(recipe), f"--arch={arch}"], capsys)


@pytest.mark.parametrize("template", ["http://x/{bad}", "http://x/{variant}/{}", "http://x/{variant",
                                      "http://x/}{variant}", "https://m/{Variant}", "https://m/{variant}{arch}"])
def test_an_index_template_with_an_unknown_placeholder_is_refused(
    recipe: Path, capsys: pytest.CaptureFixture[str], template: str
) -> None:
    err = refused(["plan", "-r", str(recipe), "--gpu=H100", f"--torch-index={template}"], capsys)
    assert template in err and "only {variant} is replaced" in err


@pytest.mark.parametrize("table", ['[[extensions]]\nrequirement = "./loop"\n', '[repo]\npath = "loop"\n'])
def test_a_local_path_that_is_a_link_loop_is_said_to_be_one(
    recipe: Path, capsys: pytest.CaptureFixture[str], table: str
) -> None:
    """Campaign 3: Path.resolve raised RuntimeError on a link loop (Python < 3.13): a traceback."""
    (recipe.parent / "loop").symlink_to("loop")
    recipe.write_text('[torch]\nversion = "2.13.*"\n' + table)
    err = refused(["plan", "-r", str(recipe), "--gpu", "H100", "--offline", "--no-cache"], capsys)
    assert "'loop' is a link that loops or leads nowhere" in err or "'./loop' is a link" in err, err


#: A version whose number has more digits than Python's int() converts (4300): packaging raises a
#: ValueError that is not InvalidVersion, from an env's answer, a lock file or an index's listing.
HUGE = "9" * 5000 + ".0"


def test_a_version_of_more_digits_than_int_reads_is_no_version_wherever_one_is_read() -> None:
    from gpuenv.plan.envplan import group_name
    from gpuenv.plan.giventorch import TorchFacts, data_disagreements, nearest_release
    from gpuenv.plan.releases import release_of

    assert release_of(HUGE) is None
    release, same = nearest_release(HUGE)
    assert not same and release.release
    assert group_name(HUGE, "cpu", ()).startswith("torch-")
    assert data_disagreements(TorchFacts(version=HUGE, cuda=None)) == ()
