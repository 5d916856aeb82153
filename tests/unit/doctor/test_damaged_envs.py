"""Envs gpuenv did not make, damaged (issue 26): doctor, ``export pylock`` and ``setup --dry-run`` read
them without a traceback or a hang, report the file they could not use and go on where they can.

Two kinds of damage: an env whose ``python`` answers gpuenv's query with something else than the
JSON its script prints (a wrapper, a hostile sitecustomize), and a real venv whose files are damaged
(Latin-1 METADATA and RECORD, a wrongly typed direct_url.json, .pth lines with a NUL or a link loop,
a FIFO where metadata or a compiled file goes, a crafted ELF).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.fakes import clean_gpuenv_environ
from tests.hostile import ANSWERS, fake_env
from tests.hostile import damaged_venv as make_damaged_venv
from tests.unit.test_fuzz import Hang, run_cli

RECIPE = '[torch]\nversion = "2.13.0"\n\n[[extensions]]\nrequirement = "latin-ext"\n'

COMMANDS = {
    "doctor": ["doctor", "--venv", "venv", "-r", "recipe.toml", "--gpu", "H100"],
    "export pylock": ["export", "pylock", "--venv", "venv", "-r", "recipe.toml"],
    "setup --dry-run": ["setup", "--dry-run", "--venv", "venv", "-r", "recipe.toml", "--gpu", "H100",
                        "--torch-index", "config"],
}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clean_gpuenv_environ(monkeypatch, tmp_path / "cache")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipe.toml").write_text(RECIPE)
    return tmp_path


def _run(argv: list[str]) -> tuple[int, str]:
    out_before = sys.stdout
    try:
        code, err = run_cli(argv)
    except Hang as exc:
        pytest.fail(f"{argv}: {exc}")
    assert sys.stdout is out_before, "main() puts standard output back"
    return code, err


@pytest.mark.parametrize("answer", sorted(ANSWERS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_answer_that_is_not_gpuenvs_json_is_an_error_not_a_traceback(
    work: Path, answer: str, command: str
) -> None:
    fake_env(work / "venv", ANSWERS[answer])
    code, err = _run(COMMANDS[command])
    assert code in (0, 1, 2, 3)
    assert "\x1b" not in err
    if code != 0 and command != "doctor":
        assert any(line.startswith("error: ") for line in err.splitlines()), err


@pytest.fixture
def damaged_venv(work: Path) -> Path:
    return make_damaged_venv(work / "venv")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_venv_with_damaged_files_is_read_without_a_traceback_or_a_hang(
    damaged_venv: Path, command: str
) -> None:
    code, err = _run(COMMANDS[command])
    assert code in (0, 1, 3), err
    if command == "doctor":
        assert code == 1  # no torch: a failed check, not a crash


def test_doctor_reports_the_damaged_extension_and_goes_on(
    damaged_venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gpuenv.cli import main

    assert main(COMMANDS["doctor"]) == 1
    out = capsys.readouterr().out
    assert "ok   latin-ext 1.0 is installed" in out
    # The crafted ELF and the FIFO are named as unreadable; the report goes on to the next check.
    assert "latin-ext archs cannot read" in out and "_crafted.so" in out and "_fifo.so" in out
    assert "latin-ext built against" in out


def test_export_pylock_locks_what_it_can_and_says_what_it_cannot(
    damaged_venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gpuenv.cli import main

    assert main(COMMANDS["export pylock"]) == 0
    out = capsys.readouterr().out
    assert "odd0 1.0: no file with a sha256 is known for it" in out
    assert "latin-ext 1.0" in out  # read from its Latin-1 METADATA


def test_a_pth_file_that_is_not_utf8_stops_the_interpreter_and_doctor_says_so(
    damaged_venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gpuenv.cli import main

    site = next(damaged_venv.glob("lib/python*/site-packages"))
    (site / "latin.pth").write_bytes(b"caf\xe9\n")  # Python itself fails to start on it
    assert main(COMMANDS["doctor"]) == 1
    out = capsys.readouterr().out
    assert "fail env" in out and "does not run" in out and "UnicodeDecodeError" in out
    code, err = _run(COMMANDS["export pylock"])
    assert code == 1 and err.startswith("error: ") and "UnicodeDecodeError" in err, err
    code, err = _run(COMMANDS["setup --dry-run"])  # what setup would do: it would reuse a broken env
    assert code in (0, 1) and (code == 0 or err.startswith("error: ")), err


def test_doctor_prints_what_the_lock_and_the_runtime_pth_hold_escaped(tmp_path: Path) -> None:
    """Strings from gpuenv.lock and _gpuenv_runtime.pth reach the terminal as escapes, one line each,
    with colour or without: no window title, no cleared screen, no forged line."""
    from gpuenv.doctor.diagnosis import diagnose
    from gpuenv.doctor.report import report_text
    from gpuenv.setup.runtime import write_runtime_env
    from tests.fakes import FakeEnvRunner
    from tests.unit.doctor.support import cuda_torch, fake_venv, locked_env, machine

    venv, site = fake_venv(tmp_path)
    write_runtime_env(site, {"CUDA_HOME": "/opt/cuda\x1b]0;pwned\x07",
                             "TORCH_CUDA_ARCH_LIST": "9.0\nok   forged", "MAX_JOBS": "\x1b[2J"})
    torch = cuda_torch()
    locked = locked_env(cuda_torch("2.13.0+cu130\r\x1b[1Aok   torch fine"))
    report = diagnose(venv, hardware=machine("H100"), locked=locked, runner=FakeEnvRunner(site, torch=torch),
                      cuobjdump=False)
    text = report_text(report)
    assert "\x1b" not in text and "\r" not in text
    assert not any(line.startswith("ok   forged") or line.startswith("ok   torch fine")
                   for line in text.splitlines())
    assert "\\x1b]0;pwned\\x07" in text and "9.0\\nok   forged" in text


@pytest.mark.parametrize("damage", ["pyvenv.cfg is a FIFO", "a .pth is a FIFO", "python hangs"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_env_whose_python_would_wait_forever_is_not_waited_on(
    work: Path, monkeypatch: pytest.MonkeyPatch, damage: str, command: str
) -> None:
    monkeypatch.setenv("GPUENV_QUERY_TIMEOUT", "0.5")  # a hung python is stopped after 1.5 s here
    venv = make_damaged_venv(work / "venv")
    site = next(venv.glob("lib/python*/site-packages"))
    if damage == "pyvenv.cfg is a FIFO":
        (venv / "pyvenv.cfg").unlink()
        os.mkfifo(venv / "pyvenv.cfg")
    elif damage == "a .pth is a FIFO":
        os.mkfifo(site / "zz.pth")
    else:
        (venv / "bin" / "python").unlink()
        (venv / "bin" / "python").write_text("#!/bin/sh\n/bin/sleep 300 &\n/bin/sleep 300\n")
        (venv / "bin" / "python").chmod(0o755)
    code, err = _run(COMMANDS[command])
    assert code in (0, 1, 2), err
