"""Envs gpuenv did not make, damaged (issue 26): doctor, ``export pylock`` and ``setup --dry-run`` read
them without a traceback or a hang, report the file they could not use and go on where they can.

Two kinds of damage: an env whose ``python`` answers gpuenv's query with something else than the
JSON its script prints (a wrapper, a hostile sitecustomize), and a real venv whose files are damaged
(Latin-1 METADATA and RECORD, a wrongly typed direct_url.json, .pth lines with a NUL or a link loop,
a FIFO where metadata or a compiled file goes, a crafted ELF).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.binaries.test_binaries import crafted_elf
from tests.test_fuzz import Hang, run_cli

RECIPE = '[torch]\nversion = "2.13.0"\n\n[[extensions]]\nrequirement = "latin-ext"\n'

#: Answer lines a fake env's python prints after gpuenv's marker, whatever it was asked.
ANSWERS = {
    "a list": "[1, 2, 3]",
    "null": "null",
    "a string with escapes": json.dumps("\x1b]0;pwned\x07"),
    "wrong types": json.dumps({"installed": 5, "interpreter": {"version": 3}, "torch": {"version": []},
                               "failures": [], "markers": 7}),
    "torch facts of the wrong types": json.dumps({"version": 5, "cuda": [], "cxx11_abi": "yes",
                                                  "arch_list": "sm_90"}),
    "nested 100000 deep": "[" * 100_000 + "]" * 100_000,
    "a float too large": '{"version": 1e999}',
    "not JSON": "{'python': 3}",
    "a NUL in site-packages": json.dumps({"version": "3.11.7", "python_tag": "cp311", "abi_tag": "cp311",
                                          "platform_tag": "linux_x86_64", "purelib": "/tmp/a\x00b",
                                          "markers": {}}),
}

COMMANDS = {
    "doctor": ["doctor", "--venv", "venv", "-r", "recipe.toml", "--gpu", "H100"],
    "export pylock": ["export", "pylock", "--venv", "venv", "-r", "recipe.toml"],
    "setup --dry-run": ["setup", "--dry-run", "--venv", "venv", "-r", "recipe.toml", "--gpu", "H100",
                        "--torch-index", "config"],
}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("GPUENV_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GPUENV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
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
    (work / "answer").write_text("@@gpuenv-json@@" + ANSWERS[answer] + "\n")
    venv = work / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python").write_text(f"#!/bin/sh\ncat {work / 'answer'}\n")
    (venv / "bin" / "python").chmod(0o755)
    code, err = _run(COMMANDS[command])
    assert code in (0, 1, 2, 3)
    assert "\x1b" not in err
    if code != 0 and command != "doctor":
        assert err.startswith("error: "), err


@pytest.fixture
def damaged_venv(work: Path) -> Path:
    """A real venv (no pip) holding an extension and packages whose files are damaged."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    # Latin-1 METADATA and RECORD (old packages), a crafted ELF and a FIFO among its compiled files.
    info = site / "latin_ext-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_bytes(b"Metadata-Version: 2.1\nName: latin-ext\nVersion: 1.0\n"
                                    b"Author: Fran\xe7ois\n\nD\xe9j\xe0 vu\n")
    (site / "latin_ext").mkdir()
    (site / "latin_ext" / "__init__.py").write_text("")
    (site / "latin_ext" / "_crafted.so").write_bytes(crafted_elf(entry_size=0, count=0,
                                                                 count_in_section0=1 << 40))
    os.mkfifo(site / "latin_ext" / "_fifo.so")
    (info / "RECORD").write_bytes(b"latin_ext/__init__.py,,\nlatin_ext/_crafted.so,,\nlatin_ext/_fifo.so,,\n"
                                  b"latin_ext/caf\xe9.so,,\n/etc/passwd.so,,\n../../x.so,,\n")
    (info / "top_level.txt").write_text("latin_ext\n")
    # direct_url.json files of the wrong shape.
    for i, text in enumerate(['{"url": 5, "dir_info": []}', "[1]", '{"url": "file:///x.whl", "archive_info": '
                              '{"hashes": "sha256"}}', "{not json", '{"url": "x", "vcs_info": "git"}',
                              '{"url": "file:///tmp/a.whl", "archive_info": {"hash": 1e999}}']):
        other = site / f"odd{i}-1.0.dist-info"
        other.mkdir()
        (other / "METADATA").write_text(f"Metadata-Version: 2.1\nName: odd{i}\nVersion: 1.0\n")
        (other / "direct_url.json").write_text(text)
    # A package whose METADATA is a FIFO: reading it would hang.
    (site / "fifo_meta-1.0.dist-info").mkdir()
    os.mkfifo(site / "fifo_meta-1.0.dist-info" / "METADATA")
    # .pth lines with a NUL and a link loop (the interpreter skips both; so must gpuenv's reader).
    (site / "nul.pth").write_bytes(b"/tmp/a\x00b\n")
    (site / "loop").symlink_to("loop")
    (site / "loop.pth").write_text("loop\n")
    return venv


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
    from tests.doctor.support import FakeEnvRunner, cuda_torch, fake_venv, locked_env, machine

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
