"""Hostile input through the real CLI entry point: a few hundred generated recipes, hardware files and
argument lists, in process.

Each case must end in bounded time with exit 0, or with exit 2 (bad input) or 3 (unsatisfiable)
and an ``error:`` line; never a traceback; and it may write only where gpuenv owns files (here:
the wheel cache). The cases are generated from a fixed seed, so a failure names a case that
reproduces.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import random
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from gpuenv.cli import main
from tests.plan.test_hostile_input import PROBE

SEED = 13
SECONDS_PER_CASE = 10

#: Values no recipe, probe file or option should hold, of every type TOML and JSON have.
HOSTILE: list[Any] = [
    "", " ", "abc", "0", "-1", "0.0.0", "sm_90", "9.0", "99999999999", "1" * 5000, "2.13.0\0",
    "x" * 10000, "../../etc/passwd", "$(touch pwned)", "; rm -rf ~", "é☃\u202e", "{variant}", "nan", "inf",
    None, True, 0, -1, 2**63, 10**50, 1.5, float("inf"), [], {}, [[[]]], {"a": {"b": {}}}, ["x", 1],
]
VERSIONS = ["2.13.0", "2.14.*", ">=2.0,<3", "2.13.0+cpu", "==2.14.1", "~=2.13", "2.99", "", "abc",
            "1" * 5000, "2.13.0\0", "===weird"]
REQUIREMENTS = ["torch-scatter==2.1.2", "flash-attn", "./local", "git+https://example.invalid/x@1",
                "x @ https://example.invalid/x.tar.gz", "torch", "bad req!!", "a" * 5000, "x[", "\0"]
GPUS = ["H100", "8xH100", "0xH100", "99999999999xH100", "1000000xH100", "", ",", "H100,,A100", "Z9000",
        "h100", "2x", "x", "1025xH100", "A100,L4", " ", "\0"]
ARCHS = ["9.0", "8.0,9.0", "", ",", "999.0", "sm_90", "90", "abc", "-1", "9.10", "1" * 5000, "7.5;8.6"]
CUDAS = ["12.1", "cu121", "cpu", "13.0", "", "abc", "99.9", "cu", "12", "1" * 300]
INDEXES = ["config", "not a url", "", "ftp://x/{variant}", "https://mirror.invalid/whl/{variant}",
           "http://", "file:///tmp/{variant}", "https://[::1", "\0"]
SIZES = ["-1", "-5G", "1e999G", "", "nanG", "20G", "0", "500M", "20 parsecs", "1e-3"]
DAYS = ["-1", "inf", "nan", "1e12", "", "3", "0", "abc"]
DATES = ["", "2026-01-01", "0001-01-01", "9999-12-31", "yesterday", "2026-13-45"]


def _toml(value: Any) -> str:
    """TOML text of a value (JSON is close enough for strings, numbers, arrays; tables inline)."""
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "inf" if value == float("inf") else repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value).replace("\\u0000", "\\u0000")
    return str(value)


def recipe_text(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.choice([b"\xff\xfe\x00", b"[torch\n", b"[" * 5000 + b"]" * 5000, b"a = " + b"1" * 5000,
                           b"[torch]\nversion = \"" + b"1" * 1_000_000 + b"\"\n", b""])
    version = rng.choice(VERSIONS) if rng.random() < 0.7 else rng.choice(HOSTILE)
    lines = ["[torch]", f"version = {_toml(version)}"]
    if rng.random() < 0.3:
        lines.append(f"{rng.choice(['cuda', 'index', 'packages', 'bogus'])} = {_toml(rng.choice(HOSTILE))}")
    if kind >= 4:
        requirement = rng.choice(REQUIREMENTS) if rng.random() < 0.7 else rng.choice(HOSTILE)
        lines += ["", "[[extensions]]", f"requirement = {_toml(requirement)}"]
        if rng.random() < 0.5:
            name = rng.choice(["MAX_JOBS", "TORCH_CUDA_ARCH_LIST", "1BAD", "A B"])
            value = _toml(rng.choice([*HOSTILE, "x\0y"]))
            lines.append(f"env = {{ {json.dumps(name)} = {value} }}")
        if rng.random() < 0.3:
            key = rng.choice(["import", "required", "build-requires"])
            lines.append(f"{key} = {_toml(rng.choice(HOSTILE))}")
    if rng.random() < 0.2:
        lines += ["", "[env]", f"name = {_toml(rng.choice(HOSTILE))}"]
    return ("\n".join(lines) + "\n").encode("utf-8", errors="surrogatepass")


def _first_table(value: Any) -> dict[str, Any] | None:
    return value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else None


def hardware_text(rng: random.Random) -> bytes:
    probe: dict[str, Any] = copy.deepcopy(PROBE)  # a sound probe file, then broken below
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice([b"\xff\xfe", b"{", b"[" * 100_000, b'{"cpu_count": ' + b"9" * 5000 + b"}", b"null",
                           b"[]", b'"x"'])
    for _ in range(rng.randint(1, 3)):
        where = rng.choice(["top", "gpu", "toolkit"])
        if where == "top":
            probe[rng.choice(list(probe))] = rng.choice(HOSTILE)
        elif where == "gpu" and _first_table(probe.get("gpus")) is not None:
            gpu = _first_table(probe["gpus"])
            assert gpu is not None
            field = rng.choice(["index", "name", "uuid", "compute_capability", "memory_total_mib"])
            gpu[field] = rng.choice(HOSTILE)
        elif _first_table(probe.get("toolkits")) is not None:
            toolkit = _first_table(probe["toolkits"])
            assert toolkit is not None
            toolkit[rng.choice(["nvcc", "version", "home"])] = rng.choice(HOSTILE)
    if rng.random() < 0.1:
        del probe[rng.choice(list(probe))]
    return json.dumps(probe).encode()


def arguments(rng: random.Random, root: Path) -> list[str]:
    recipe, hardware = str(root / "recipe.toml"), str(root / "probe.json")
    command = rng.choice(["plan"] * 5 + ["setup"] + ["prune"] * 2 + ["list"])
    if command == "prune":
        argv = ["cache", "prune"]
        for option, values in (("--max-size", SIZES), ("--older-than", DAYS), ("--unused-since", DATES)):
            if rng.random() < 0.5:
                argv.append(f"{option}={rng.choice(values)}")
        return argv
    if command == "list":
        return ["cache", "list"]
    argv = [command, "-r", rng.choice([recipe] * 6 + [str(root), str(root / "fifo"), "/dev/zero", ""])]
    target = rng.randrange(4)
    if target == 0:
        argv.append(f"--gpu={rng.choice(GPUS)}")
    elif target == 1:
        argv.append(f"--arch={rng.choice(ARCHS)}")
    elif target == 2:
        argv += ["--hardware", rng.choice([hardware] * 4 + [str(root / "fifo"), "/dev/zero", str(root)])]
    else:
        argv += ["--gpu", "H100"]
    if rng.random() < 0.4:
        argv.append(f"--cuda={rng.choice(CUDAS)}")
    if rng.random() < 0.4:
        argv.append(f"--torch-index={rng.choice(INDEXES)}")
    if command == "setup":
        argv += ["--dry-run", f"--venv={rng.choice(['', str(root / 'venv'), chr(0)])}"]
    return argv


class Hang(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def fire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer in {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def memory_bound(limit: int = 4 << 30) -> Iterator[None]:
    """A runaway allocation (reading /dev/zero, a million GPUs) is a MemoryError, not the OOM killer."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    bound = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (bound, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet, contextlib.redirect_stderr(err), deadline(SECONDS_PER_CASE):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own refusals: exit 2 with "error:"
            code = int(exc.code or 0)
    return code, err.getvalue()


def snapshot(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.lstat().st_mtime for p in root.rglob("*")}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home, a cache and a working directory of their own: every write lands where we can see it."""
    for name in [n for n in os.environ if n.startswith("GPUENV_") and n != "GPUENV_OFFLINE"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))
    monkeypatch.setenv("GPUENV_CACHE_DIR", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    os.mkfifo(work / "fifo")
    return work


def test_hostile_input_is_refused_cleanly_in_bounded_time_and_writes_nothing(home: Path) -> None:
    rng = random.Random(SEED)
    root = home.parent
    with memory_bound():
        failures = _run_cases(rng, home, root)
    assert not failures, "\n".join(failures[:20])


def _run_cases(rng: random.Random, home: Path, root: Path) -> list[str]:
    failures: list[str] = []
    for case in range(300):
        (home / "recipe.toml").write_bytes(recipe_text(rng))
        (home / "probe.json").write_bytes(hardware_text(rng))
        argv = arguments(rng, home)
        before = snapshot(root)
        try:
            code, err = run_cli(argv)
        except Hang as exc:
            failures.append(f"case {case} {argv}: {exc}")
            continue
        except Exception as exc:  # a traceback: a bug
            failures.append(f"case {case} {argv}: {type(exc).__name__}: {exc}"[:500])
            continue
        written = {p for p in set(snapshot(root)) - set(before) if not p.startswith("cache")}
        if written:
            failures.append(f"case {case} {argv}: wrote {sorted(written)}")
        if code not in (0, 2, 3):
            failures.append(f"case {case} {argv}: exit {code}: {err[-300:]}")
        elif code != 0 and not any(line.startswith(("error:", "gpuenv")) and "error:" in line
                                   for line in err.splitlines()):
            failures.append(f"case {case} {argv}: exit {code} without an error: line: {err[-300:]}")
    return failures
