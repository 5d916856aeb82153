"""The reporter: what pip, uv and builds print becomes live progress; a log is never silent for long.

The clock is a fake one the tests move, so the rates are checked without
waiting; tests/integration/test_progress_slow.py runs real installs.
"""

from __future__ import annotations

import io
import re

import pytest

from gpuenv.progress import (
    NORMAL,
    QUIET,
    VERBOSE,
    OutputDigest,
    Style,
    TerminalReporter,
    paint_verdicts,
    use_color,
)
from gpuenv.runner import ANSWER_MARK

#: What pip 26 prints, with --progress-bar raw, installing a wheel from an index over HTTP.
PIP_RAW = [
    "Looking in indexes: http://127.0.0.1:8000/simple",
    "Collecting torch==2.14.1",
    "  Downloading http://127.0.0.1:8000/f/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl (5400.0 MB)",
    "  Progress 0 of 5400000000 bytes",
    "  Progress 1350000000 of 5400000000 bytes",
    "  Progress 5400000000 of 5400000000 bytes",
    "Installing collected packages: nvidia-cublas, triton, torch",
    "Successfully installed nvidia-cublas-13.0 torch-2.14.1 triton-3.6.0",
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reporter(*, tty: bool = False, verbosity: int = NORMAL) -> tuple[TerminalReporter, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    return TerminalReporter(stream, tty=tty, verbosity=verbosity, clock=clock), stream, clock


# -- what the installers say --------------------------------------------------------------------


def test_pip_output_becomes_what_is_fetched_and_how_far() -> None:
    digest = OutputDigest()
    said = [digest.feed(line) for line in PIP_RAW]
    assert said[2] == "downloading torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl (5400.0 MB)"
    assert said[4] == ("downloading torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl: "
                       "1.4 GB of 5.4 GB (25%)")
    assert said[6] == "installing 3 packages: nvidia-cublas, triton, torch"


def test_pips_replacing_a_package_is_part_of_installing_and_long_lists_are_cut() -> None:
    digest = OutputDigest()
    names = ", ".join(f"nvidia-lib{i}" for i in range(20))
    installing = digest.feed(f"Installing collected packages: {names}, torch")
    assert installing == ("installing 21 packages: nvidia-lib0, nvidia-lib1, nvidia-lib2, nvidia-lib3, "
                          "nvidia-lib4, nvidia-lib5 and 15 more")
    assert digest.feed("  Attempting uninstall: setuptools") == f"{installing} (replacing setuptools)"
    assert digest.feed("    Found existing installation: setuptools 65.5.0") == \
        f"{installing} (replacing setuptools)"
    assert digest.feed("    Successfully uninstalled setuptools-65.5.0") == installing  # pip goes on
    assert digest.feed("Successfully installed torch-2.14.1") == "Successfully installed torch-2.14.1"


def test_pips_other_raw_forms_are_read_too() -> None:
    digest = OutputDigest()
    assert digest.feed("Starting download [1/2] torch-2.14.1.whl (5400000000 bytes)") == \
        "downloading [1/2] torch-2.14.1.whl, 5.4 GB"
    assert digest.feed("Progress 50.0% 2700000000 of 5400000000 bytes") == \
        "downloading torch-2.14.1.whl: 2.7 GB of 5.4 GB (50%)"
    assert digest.feed("Progress 1000 of 2000") == "downloading torch-2.14.1.whl: 1.0 kB of 2.0 kB (50%)"
    assert digest.feed("Progress 300000 of ? bytes") == "downloading torch-2.14.1.whl: 300.0 kB"


def test_uv_summaries_say_what_comes_next() -> None:
    digest = OutputDigest()
    assert digest.feed("Resolved 24 packages in 1.20s") == \
        "resolved 24 packages; preparing them (download, unpack)"
    assert digest.feed("Prepared 24 packages in 41.3s") == "prepared 24 packages; installing them"
    assert digest.feed("Installed 1 package in 9ms") == "installed 1 package"


def test_other_lines_are_shown_as_they_are_and_blank_ones_change_nothing() -> None:
    digest = OutputDigest()
    assert digest.feed("  [3/8] compiling scatter_cuda.cu  ") == "[3/8] compiling scatter_cuda.cu"
    assert digest.feed("   ") is None


# -- a log (not a terminal) ----------------------------------------------------------------------


def test_a_silent_step_still_gets_a_line_at_least_every_ten_seconds() -> None:
    rep, stream, clock = reporter()
    rep.step("[3/7] base: torch==2.14.1")
    rep.status("Installing collected packages: torch")
    times = []
    for _ in range(120):  # two silent minutes, the ticker calling every second
        clock.now += 1
        before = stream.getvalue()
        rep.tick()
        if stream.getvalue() != before:
            times.append(clock.now)
    gaps = [b - a for a, b in zip([1000.0, *times], times)]
    assert times and max(gaps) <= 10
    # Each line says how long the step has run and what pip said last.
    assert re.fullmatch(r"  1m5\ds installing 1 package: torch", stream.getvalue().splitlines()[-1])


def test_a_chatty_step_is_rate_limited() -> None:
    rep, stream, clock = reporter()
    rep.step("[4/7] extension flash-attn")
    for i in range(100):  # 100 compiler lines in 10 s
        clock.now += 0.1
        rep.status(f"[{i}/100] compiling kernel_{i}.cu")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[4/7] extension flash-attn"
    assert 3 <= len(lines) - 1 <= 6, lines


def test_step_lines_and_outcomes_are_plain_in_a_log() -> None:
    rep, stream, clock = reporter()
    rep.step("[1/2] target environment")
    clock.now += 3
    rep.status("created")
    rep.done("created /tmp/venv (3.0 s)")
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert stream.getvalue().splitlines() == ["[1/2] target environment", "  0m03s created",
                                              "  created /tmp/venv (3.0 s)"]


def test_the_answer_of_gpuenvs_own_query_is_not_progress() -> None:
    rep, stream, clock = reporter(verbosity=VERBOSE)
    rep.step("[5/5] verify")
    clock.now += 5
    rep.status(ANSWER_MARK + '{"torch": "2.13.0+cpu"}')
    assert ANSWER_MARK not in stream.getvalue()


# -- a terminal ---------------------------------------------------------------------------------


def test_on_a_terminal_the_status_line_is_rewritten_in_place() -> None:
    rep, stream, clock = reporter(tty=True)
    rep.step("[3/7] base: torch==2.14.1")
    for second in range(1, 4):
        clock.now += 1
        rep.status(f"Progress {second}000 of 4000 bytes")
    clock.now += 1
    rep.tick()
    rep.done("torch 2.14.1+cu130 (4.0 s)")
    out = stream.getvalue()
    assert out.startswith("[3/7] base: torch==2.14.1\n")
    assert "\r  0m03s downloading a file: 3.0 kB of 4.0 kB (75%)" in out
    assert "\r  0m04s downloading a file: 3.0 kB of 4.0 kB (75%)" in out  # the tick refreshed the time
    # The outcome replaces the status line (cleared with spaces, then written from column 0).
    assert re.search(r"\r +\r  torch 2\.14\.1\+cu130 \(4\.0 s\)\n", out)


def test_a_terminal_gets_colour_only_when_asked() -> None:
    stream = io.StringIO()
    rep = TerminalReporter(stream, tty=True, color=True, clock=Clock())
    rep.step("[1/1] verify")
    rep.done("warning: a CUDA build for a cpu plan")
    assert "\x1b[1m[1/1] verify\x1b[0m" in stream.getvalue()
    assert "\x1b[33mwarning: a CUDA build for a cpu plan\x1b[0m" in stream.getvalue()


# -- -q and -v ----------------------------------------------------------------------------------


def test_quiet_prints_nothing() -> None:
    rep, stream, clock = reporter(verbosity=QUIET)
    rep.step("[3/7] base")
    for line in PIP_RAW:
        clock.now += 20
        rep.status(line)
        rep.tick()
    rep.done("done")
    assert stream.getvalue() == ""


def test_verbose_streams_every_line_but_pips_byte_counter() -> None:
    rep, stream, _ = reporter(verbosity=VERBOSE)
    rep.step("[3/7] base")
    for line in PIP_RAW:
        rep.status(line)
    out = stream.getvalue()
    assert "    Collecting torch==2.14.1\n" in out
    assert "    Successfully installed nvidia-cublas-13.0 torch-2.14.1 triton-3.6.0\n" in out
    assert "Progress 1350000000" not in out


def test_the_ticker_thread_stops_with_the_reporter() -> None:
    stream = io.StringIO()
    with TerminalReporter(stream, tty=False, tick_interval=0.01) as rep:
        rep.step("[1/1] verify")
        assert rep._thread is not None and rep._thread.is_alive()
        thread = rep._thread
    assert not thread.is_alive()


# -- colour ---------------------------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("choice", "environ", "stream", "expected"), [
    ("auto", {}, Tty(), True),
    ("auto", {}, io.StringIO(), False),
    ("auto", {"NO_COLOR": "1"}, Tty(), False),
    ("auto", {"NO_COLOR": ""}, Tty(), True),  # no-color.org: set to a non-empty value
    ("auto", {"TERM": "dumb"}, Tty(), False),
    ("never", {}, Tty(), False),
    ("always", {"NO_COLOR": "1"}, io.StringIO(), True),  # an explicit flag wins
])
def test_when_there_is_colour(
    choice: str, environ: dict[str, str], stream: io.StringIO, expected: bool
) -> None:
    assert use_color(choice, stream, environ) is expected


def test_doctor_verdicts_are_coloured_at_the_start_of_their_line_only() -> None:
    text = "ok   torch 2.13.0+cpu\nskip gpus none\nfail x import fails: ok\n/v: 1 failed"
    painted = paint_verdicts(text, Style(True))
    assert painted.splitlines()[0] == "\x1b[32mok\x1b[0m   torch 2.13.0+cpu"
    assert painted.splitlines()[1].startswith("\x1b[2mskip\x1b[0m")
    assert painted.splitlines()[2].endswith("fails: ok")
    assert paint_verdicts(text, Style(False)) == text
