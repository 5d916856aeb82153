"""The one subprocess runner: a time limit where one is set, and every process of a stopped command
killed with it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuenv.errors import CommandError
from gpuenv.runner import (
    MAX_LINE_CHARS,
    MAX_OUTPUT_CHARS,
    QUERY_TIMEOUT,
    CommandTimeout,
    RecordingRunner,
    SubprocessRunner,
    bounded,
    env_query_timeout,
    is_unknown,
    perform,
    query_timeout,
    unknown,
    unknowns_in,
)


def test_a_command_past_its_time_limit_is_stopped_with_what_it_started(tmp_path: Path) -> None:
    # The child in the background keeps the output pipe open: killing the shell alone would leave
    # the read waiting for it.
    script = tmp_path / "hang"
    script.write_text(f"#!/bin/sh\necho started\nsleep 300 &\necho $! > {tmp_path / 'child'}\nsleep 300\n")
    script.chmod(0o755)
    with pytest.raises(CommandTimeout) as info:
        SubprocessRunner(timeout=0.5)([str(script)])
    assert "did not answer within 0.5 s" in str(info.value) and "started" in info.value.tail
    assert isinstance(info.value, CommandError) and info.value.hint
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_without_a_limit_a_command_runs_as_before_and_a_limit_passes_to_copies() -> None:
    assert SubprocessRunner()(["echo", "hi"]) == "hi\n"
    runner = SubprocessRunner(timeout=30).with_log(None)
    assert runner.timeout == 30 and runner(["echo", "hi"]) == "hi\n"
    assert bounded(SubprocessRunner(), 5).timeout == 5  # type: ignore[attr-defined]


def test_bounded_leaves_a_runner_that_takes_no_limit_as_it_is() -> None:
    def fake(cmd, cwd=None, extra_environ=None):  # type: ignore[no-untyped-def]
        return ""

    assert bounded(fake, 5) is fake


@pytest.mark.parametrize(("value", "seconds"), [("", QUERY_TIMEOUT), ("2.5", 2.5), ("0", QUERY_TIMEOUT),
                                                ("-1", QUERY_TIMEOUT), ("inf", QUERY_TIMEOUT),
                                                ("nan", QUERY_TIMEOUT), ("abc", QUERY_TIMEOUT)])
def test_the_query_timeout_comes_from_the_environment_when_it_is_a_sane_number(
    value: str, seconds: float
) -> None:
    assert query_timeout({"GPUENV_QUERY_TIMEOUT": value}) == seconds
    assert env_query_timeout({"GPUENV_QUERY_TIMEOUT": value}) > seconds


def test_output_without_end_or_newline_is_kept_to_its_end_within_bounds(tmp_path: Path) -> None:
    # 40 MB on one line, then the answer: the memory holds at most the last MAX_OUTPUT_CHARS.
    script = tmp_path / "chatty"
    script.write_text("#!/bin/sh\nhead -c 41943040 /dev/zero | tr '\\0' x\necho\necho answer\n")
    script.chmod(0o755)
    output = SubprocessRunner(timeout=60)([str(script)])
    assert output.endswith("x\nanswer\n") and len(output) <= MAX_OUTPUT_CHARS + MAX_LINE_CHARS


# -- the dry run's recording runner ---------------------------------------------------------


def test_a_recording_runner_records_what_would_change_something_and_runs_none_of_it(tmp_path: Path) -> None:
    runner = RecordingRunner()
    made = tmp_path / "made"
    assert runner(["touch", str(made)], str(tmp_path), {"A": "1"}) == ""
    # Another log, another time limit: the same record; no log is written.
    runner.with_log(tmp_path / "build.log")(["mkdir", str(tmp_path / "dir")])
    assert not made.exists() and not (tmp_path / "dir").exists() and not (tmp_path / "build.log").exists()
    assert [(r.kind, r.cmd, r.cwd, dict(r.extra_environ)) for r in runner.recorded] == [
        ("command", ("touch", str(made)), str(tmp_path), {"A": "1"}),
        ("command", ("mkdir", str(tmp_path / "dir")), None, {}),
    ]


def test_a_question_is_asked_for_real_and_writes_no_bytecode(tmp_path: Path) -> None:
    """gpuenv bounds every query with a time limit, and nothing else: a dry run asks those."""
    runner = RecordingRunner()
    code = "import os, sys; print(sys.dont_write_bytecode, os.environ['Q'])"
    assert bounded(runner, 30)([sys.executable, "-c", code], None, {"Q": "asked"}) == "True asked\n"
    assert runner.recorded == [], "a question is no change"


def test_perform_does_in_a_run_and_says_in_a_dry_run(tmp_path: Path) -> None:
    target = tmp_path / "file"
    assert SubprocessRunner().perform("write it", lambda: target.write_text("x"), lambda: 0) == 1
    assert target.read_text() == "x"
    recorder = RecordingRunner()
    assert perform(recorder, "write it again", lambda: target.write_text("yy"), lambda: 0) == 0
    assert perform(recorder, "", lambda: target.write_text("yy"), lambda: 7) == 7, "no words: nothing said"
    assert target.read_text() == "x" and recorder.lines() == ["# write it again"]
    assert recorder.changes() == 1
    recorder.note("a step's title")
    assert recorder.changes() == 1, "words of the reporter change nothing"


def test_recorded_lines_paste_into_a_shell_and_run_what_the_runner_would_have(tmp_path: Path) -> None:
    where = tmp_path / "a dir; with $pace"
    where.mkdir()
    cmd = [sys.executable, "-c", "import os, sys; print(os.getcwd(), os.environ['A'], os.environ.get('B'), "
           "os.environ['PATH'].split(os.pathsep)[0], sys.argv[1])", "it's \"quoted\""]
    extra = {"A": "x y'z", "B": "", "PATH": f"/opt/tool/bin{os.pathsep}{os.environ['PATH']}"}
    ran = SubprocessRunner(env={**os.environ, "B": "set"})(cmd, str(where), extra)
    recorder = RecordingRunner(env={**os.environ, "B": "set"})
    recorder(cmd, str(where), extra)
    [line] = recorder.lines()
    assert 'PATH=/opt/tool/bin:"$PATH"' in line, "a list that extends the user's own says so"
    pasted = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True,
                            env={**os.environ, "B": "set"})
    assert pasted.stdout == ran == f"{where} x y'z None /opt/tool/bin it's \"quoted\"\n"


def test_a_file_a_later_command_reads_is_recorded_as_the_line_that_writes_it(tmp_path: Path) -> None:
    recorder = RecordingRunner()
    path = tmp_path / "constraints.txt"
    recorder.write_file(path, ["torch==2.13.0+cpu", "numpy<2"])
    recorder.write_file(path, ["torch==2.13.0+cpu", "numpy<2"])
    [line] = recorder.lines()
    assert not path.exists()
    subprocess.run(["bash", "-c", line], check=True)
    assert path.read_text() == "torch==2.13.0+cpu\nnumpy<2\n"


def test_a_line_that_holds_what_a_dry_run_cannot_know_says_so() -> None:
    recorder = RecordingRunner()
    wheel = f"/w/{unknown('the x wheel it builds')}"
    recorder(["pip", "install", wheel])
    [line] = recorder.lines()
    assert line.startswith("pip install '/w/<the x wheel it builds>'")
    assert line.endswith("# <the x wheel it builds>: not known before the real run gets here")
    assert is_unknown(wheel) and unknowns_in(wheel) == ["the x wheel it builds"]
    assert not is_unknown("/w/x.whl")
