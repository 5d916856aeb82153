"""Live progress of real installs: a log is never silent for more than 10 s, a terminal's line moves.

These run the real `gpuenv setup` (the CUDA torch wheel, 5.4 GB, and the CPU
one) and real pip over HTTP, as a user's terminal or CI log sees them: every
line is time-stamped as it arrives.
"""

from __future__ import annotations

import functools
import http.server
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuenv.env.targetenv import TargetEnv
from gpuenv.progress import OutputDigest
from gpuenv.runner import SubprocessRunner
from gpuenv.setup.installer import InstallOptions, PipInstaller, pip_prints_raw_progress
from tests.integration.support import clean_env, write_recipe

#: The longest a log may stay silent while setup runs (the reporter's heartbeat is 8 s).
MAX_SILENCE = 10.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: A pip that has --progress-bar raw (24.1 and later).
PIP = "pip>=24.1"


def setup_args(recipe: Path, venv: Path, tmp_path: Path, *extra: str) -> list[str]:
    # No route to the PyTorch index here: the installer's own sources (README, "Mirrors").
    return [sys.executable, "-m", "gpuenv", "setup", "-r", str(recipe), "--venv", str(venv),
            "--torch-index", "config", "--cache-dir", str(tmp_path / "cache"), *extra]


def timed_lines(args: list[str]) -> tuple[int, list[tuple[float, str]], str]:
    """Run ``args`` with stderr to a pipe (a log); each stderr line with the time it arrived."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(), stdin=subprocess.DEVNULL)
    assert proc.stderr is not None and proc.stdout is not None
    started = time.monotonic()
    lines = [(time.monotonic() - started, line.rstrip("\n")) for line in proc.stderr]
    stdout = proc.stdout.read()
    return proc.wait(timeout=1800), lines, stdout


def longest_silence(times: list[float]) -> float:
    return max(b - a for a, b in zip(times, times[1:]))


@pytest.fixture
def venv(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "venv"
    yield path
    shutil.rmtree(path, ignore_errors=True)  # up to 5.4 GB


def test_the_cuda_torch_install_shows_progress_at_least_every_10_s_in_a_log(
    tmp_path: Path, venv: Path
) -> None:
    recipe = write_recipe(tmp_path, "cuda", '[torch]\nversion = "2.14.1"\n')
    # pip: a long download and unpack to watch (uv takes torch from its cache in a second).
    code, lines, stdout = timed_lines(setup_args(recipe, venv, tmp_path, "--installer", "pip"))
    log = "\n".join(f"{t:7.1f} {text}" for t, text in lines)
    assert code == 0, log
    base = next(i for i, (_, text) in enumerate(lines) if re.match(r"\[\d/\d\] base: torch==2\.14\.1", text))
    end = next(i for i, (_, text) in enumerate(lines[base:], base) if text.startswith("  torch 2.14.1"))
    took = lines[end][0] - lines[base][0]
    assert took > 20, f"the install took {took:.0f} s: too short to show anything\n{log}"
    # Never silent for more than 10 s, in the long step and in the whole run.
    assert longest_silence([t for t, _ in lines[base:end + 1]]) <= MAX_SILENCE, log
    assert longest_silence([0.0, *(t for t, _ in lines)]) <= MAX_SILENCE, log
    # The lines say how long the step has run and what pip is doing.
    status = [text for _, text in lines[base + 1:end]]
    assert all(re.match(r"  \d+m\d\ds ", s) for s in status), log
    assert any(re.match(r"  \d+m\d\ds installing \d+ packages: ", s) for s in status), log
    assert "\r" not in log and not ANSI.search(log), "a log gets plain lines"
    assert lines[-1][1] == f"logs: {venv}/.gpuenv/logs: setup.log", log
    assert stdout.startswith(f"ready: {venv} ")


def on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, list[tuple[float, bytes]]]:
    """Run ``args`` on a pseudo-terminal; each chunk written to it with the time it arrived."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    started, chunks = time.monotonic(), []
    while True:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command exited
            break
        if not data:
            break
        chunks.append((time.monotonic() - started, data))
    os.close(leader)
    return proc.wait(timeout=60), chunks


def test_a_terminal_sees_one_line_per_step_rewritten_in_place(tmp_path: Path, venv: Path) -> None:
    recipe = write_recipe(tmp_path, "cpu", '[torch]\nversion = "2.13.0"\n')
    env = {k: v for k, v in clean_env().items() if k != "NO_COLOR"}
    env.update(TERM="xterm", COLUMNS="120")
    code, chunks = on_a_terminal(setup_args(recipe, venv, tmp_path, "--installer", "pip"), env)
    # The terminal turns each newline into CR LF: back to lines.
    screen = b"".join(data for _, data in chunks).decode().replace("\r\n", "\n")
    assert code == 0, screen
    # The status line is redrawn in place (carriage return, no newline) with a growing elapsed time.
    redraws = re.findall(r"\r(?:\x1b\[[0-9;]*m)?  (\d+)m(\d\d)s ", screen)
    seconds = [int(m) * 60 + int(s) for m, s in redraws]
    assert len(set(seconds)) >= 5, screen
    assert longest_silence([0.0, *(t for t, _ in chunks)]) <= MAX_SILENCE, screen
    # What stays on the screen: the step lines and their outcomes, in colour, then the final line.
    final = [ANSI.sub("", line.rsplit("\r", 1)[-1]) for line in screen.split("\n")]
    kept = [line.rstrip() for line in final if line.strip()]
    assert "[3/6] base: torch==2.13.0" in kept, kept
    assert any(line.startswith("  torch 2.13.0+cpu (CUDA none") for line in kept), kept
    assert kept[-1].startswith(f"ready: {venv} "), kept
    assert "\x1b[1m[3/6] base: torch==2.13.0\x1b[0m" in screen


def test_quiet_setup_prints_only_the_final_line(tmp_path: Path, venv: Path) -> None:
    recipe = write_recipe(tmp_path, "cpu", '[torch]\nversion = "2.13.0"\n')
    done = subprocess.run(setup_args(recipe, venv, tmp_path, "-q"), capture_output=True, text=True,
                          env=clean_env(), timeout=1800, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines() == [f"ready: {venv} (activate with: source {venv}/bin/activate)"]
    assert (venv / ".gpuenv" / "logs" / "setup.log").stat().st_size > 0, "the log has it all"


# -- pip's own byte counts ------------------------------------------------------------------------


@pytest.fixture
def http_index(tmp_path: Path) -> Iterator[str]:
    """A one-package simple index over HTTP: pip shows download progress only for what it downloads,
    and only for files over 512 kB (pip's own wheel is 1.8 MB)."""
    wheel = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheel), PIP],
                   check=True)
    (wheel,) = wheel.glob("pip-*.whl")
    root = tmp_path / "index"
    (root / "simple" / "pip").mkdir(parents=True)
    shutil.copy(wheel, root / wheel.name)
    (root / "simple" / "pip" / "index.html").write_text(f'<a href="../../{wheel.name}">{wheel.name}</a>\n')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        thread.join()


def test_pip_reports_its_bytes_where_it_can_and_the_reporter_reads_them(
    tmp_path: Path, http_index: str
) -> None:
    env = TargetEnv(tmp_path / "env")
    subprocess.run([sys.executable, "-m", "venv", str(env.path)], check=True)
    try:
        # The pip a venv gets from this Python (23.2) has no raw progress: it is not asked for it.
        if not pip_prints_raw_progress(env):
            subprocess.run([str(env.python), "-m", "pip", "install", "-q", "--upgrade", PIP], check=True)
        assert pip_prints_raw_progress(env)
        seen: list[str] = []
        # Only this index: pip's configured sources would serve the file without downloading it.
        quiet_config = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        runner = SubprocessRunner(on_line=seen.append, env={**quiet_config, "PIP_CONFIG_FILE": os.devnull})
        options = InstallOptions(index_url=http_index, no_deps=True, force_reinstall=True)
        PipInstaller(runner).install(env, ["pip"], options)
        assert any(re.match(r"\s*Progress \d+ of \d+", line) for line in seen), seen
        digest = OutputDigest()
        said = [digest.feed(line) or "" for line in seen]
        assert any(re.fullmatch(r"downloading pip-[\d.]+-py3-none-any\.whl: ([\d.]+ MB) of \1 \(100%\)", s)
                   for s in said), said
    finally:
        shutil.rmtree(env.path, ignore_errors=True)
