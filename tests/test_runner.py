"""The one subprocess runner: a time limit where one is set, and every process of a stopped command
killed with it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gpuenv.errors import CommandError
from gpuenv.runner import (
    MAX_LINE_CHARS,
    MAX_OUTPUT_CHARS,
    QUERY_TIMEOUT,
    CommandTimeout,
    SubprocessRunner,
    bounded,
    env_query_timeout,
    query_timeout,
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
