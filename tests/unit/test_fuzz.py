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
import dataclasses
import json
import os
import random
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tests.fakes import clean_env, clean_gpuenv_environ, gpuenv_main
from tests.hostile import (
    ANSWERS,
    ENTRY_DAMAGES,
    HUNG_NVCC,
    PLACES,
    TOOLKIT_DAMAGES,
    damaged_venv,
    fake_env,
    make_outside,
    tree,
)
from tests.unit.plan.test_hostile_input import PROBE

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
    """``gpuenv ARGV`` in this process within the case's deadline: its exit code and stderr."""
    with deadline(SECONDS_PER_CASE):
        done = gpuenv_main(*argv)
    return done.returncode, done.stderr


def snapshot(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.lstat().st_mtime for p in root.rglob("*")}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home, a cache and a working directory of their own: every write lands where we can see it."""
    clean_gpuenv_environ(monkeypatch, tmp_path / "cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))
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


# -- the second campaign: hostile places, caches, envs and outputs (issue 26) ---------------------
#
# Each case runs the real command in a process of its own (a hang is a timeout of the test, not
# of gpuenv), in a folder of its own holding the target it writes and an ``outside`` folder that
# links may point at. It must end in bounded time without a traceback, with exit 0, 1 (a failed
# check or step), 2 or 3 and an ``error:`` line for 2 and 3; write nothing outside its target; and
# leave its target as it was when it refuses (exit 2). Seeded: a failure names a case that reproduces.

SECOND_SEED = 26
SECOND_CASES = 64
#: Far above what a case needs (a hung nvcc is stopped after GPUENV_QUERY_TIMEOUT, 1 s here).
SECONDS_PER_PROCESS = 60

RECIPE = '[torch]\nversion = "2.13.0"\n\n[[extensions]]\nrequirement = "torch-scatter==2.1.2"\n'


@dataclasses.dataclass
class Case:
    """One command in its own folder: what runs, where, and what must not change."""

    name: str
    argv: list[str]
    cwd: Path
    #: Folders nothing may be written into, whatever the exit code.
    watched: list[Path]
    #: The folder the command was asked to write: unchanged when it refuses (exit 2).
    target: Path | None = None
    codes: tuple[int, ...] = (0, 2, 3)
    environ: dict[str, str] = dataclasses.field(default_factory=dict)
    #: "pipe", "full" (/dev/full) or "ascii" (an ASCII-only stdout).
    stdout: str = "pipe"


def _case_env(root: Path) -> dict[str, str]:
    return clean_env(keep_offline=False, HOME=str(root / "home"),
                     XDG_CACHE_HOME=str(root / "home" / ".cache"), GPUENV_CACHE_DIR=str(root / "cache"),
                     GPUENV_QUERY_TIMEOUT="1", NO_COLOR="1",
                     GPUENV_REQUIREMENT="gpuenv", GPUENV_OFFLINE="1", PYTHONPATH=os.pathsep.join(sys.path))


def _init_case(rng: random.Random, root: Path) -> Case:
    outside = make_outside(root)
    repo = root / "repo"
    repo.mkdir()
    (repo / "requirements.txt").write_text(rng.choice(["torch==2.13.0\nnumpy<2\n", "numpy\n", ""]))
    chosen = []
    for _ in range(rng.randint(0, 2)):
        name = rng.choice(["README.md", ".gitignore", "pyproject.toml", "noxfile.py", "tasks.py", "envs",
                           "envs/default.toml"])
        place = rng.choice(sorted(PLACES))
        path = repo / name
        if os.path.lexists(path) or not os.path.isdir(path.parent):
            continue
        PLACES[place](path, outside)
        chosen.append(f"{name} is {place}")
    args = rng.choice([[], [], ["--pyproject"], ["--torch", ""], ["--name", "\x1b]0;pwned\x07"],
                       ["--extension", "./kern\nel"], ["--torch", "\u0662.\u0661"]])
    return Case(f"init {args} with {chosen}", ["init", *args], repo, [outside], target=repo)


def _cache_case(rng: random.Random, root: Path) -> Case:
    from gpuenv.cache.wheels import WheelCache
    from tests.unit.cache.test_cache import KEY, make_wheel

    outside = make_outside(root)
    cache = WheelCache(root / "cache")
    damages = []
    for i in range(rng.randint(1, 2)):
        key = dataclasses.replace(KEY, version=f"2.8.{i}")
        entry = cache.store(key, make_wheel(root / f"built{i}", b"wheel" * 50)).path
        if rng.random() < 0.8:
            damage = rng.choice(sorted(ENTRY_DAMAGES))
            meta = json.loads((entry / "meta.json").read_text())
            changed = ENTRY_DAMAGES[damage](entry, meta)
            if changed is not None:
                (entry / "meta.json").write_text(json.dumps(changed))
            damages.append(damage)
    work = root / "work"
    work.mkdir()
    (work / "recipe.toml").write_text(RECIPE)
    place = rng.choice(["house", "house", "", "a file", "/dev/null", "a user's folder", "a link out",
                        "an earlier export"])
    target = work / "house"
    if place == "a file":
        target.write_text("mine\n")
    elif place == "a user's folder":
        target.mkdir()
        (target / "index.html").write_text("<h1>mine</h1>\n")
    elif place == "a link out":  # the folder the user names may be a link: its target is the place
        (root / "elsewhere").mkdir()
        target.symlink_to(root / "elsewhere")
    elif place == "an earlier export":
        subprocess.run([sys.executable, "-m", "gpuenv", "cache", "export", str(target)], env=_case_env(root),
                       capture_output=True, timeout=SECONDS_PER_PROCESS, check=False)
    directory = {"": "", "/dev/null": "/dev/null"}.get(place, "house")
    argv = rng.choice([["cache", "list"], ["cache", "list", "--json"], ["cache", "export", directory],
                       ["cache", "export", directory], ["cache", "prune", "--older-than", "0"],
                       ["cache", "prune", "--max-size", "0", "--dry-run"], ["plan", "--gpu", "H100", "-r",
                                                                             "recipe.toml"]])
    watched = [outside] if argv[:2] == ["cache", "export"] else [outside, work]
    return Case(f"{argv} over {damages} into {place!r}", argv, work, watched,
                target=target if argv[:2] == ["cache", "export"] else None)


def _toolkit_case(rng: random.Random, root: Path) -> Case:
    from gpuenv.cache.toolkitcache import toolkit_home
    from tests.unit.probe.test_toolkits import make_toolkit

    outside = make_outside(root)
    home = Path(toolkit_home(root / "cache" / "toolkits", "13.0"))
    make_toolkit(home, "13.0")
    damage = rng.choice(sorted(TOOLKIT_DAMAGES))
    TOOLKIT_DAMAGES[damage](home)
    (root / "recipe.toml").write_text(RECIPE)
    argv = rng.choice([["probe"], ["probe", "--json"], ["cache", "list"], ["plan", "--gpu", "H100", "-r",
                                                                          "recipe.toml"]])
    return Case(f"{argv} with a toolkit whose {damage}", argv, root, [outside])


def _export_case(rng: random.Random, root: Path, venv: Path) -> Case:
    outside = make_outside(root)
    project = root / "project"
    project.mkdir()
    (project / "recipe.toml").write_text(RECIPE)
    place = rng.choice(sorted(PLACES))
    if rng.random() < 0.5:
        path = project / "pyproject.toml"
        PLACES[place](path, outside)
        if place in ("an empty file", "a CRLF file", "a Latin-1 file"):
            path.write_bytes(b'[project]\r\nname = "x"\r\nversion = "0"\r\n' if "CRLF" in place
                             else b'[project]\nname = "caf\xc3\xa9"\n')
        write = rng.choice(["pyproject.toml", "pyproject.toml", ""])
        argv = ["export", "uv", "-r", "recipe.toml", "--gpu", "H100", "--write", write]
    else:
        PLACES[place](project / "pylock.toml", outside)
        argv = ["export", "pylock", "--venv", rng.choice([str(venv), "nowhere"]), "-o",
                rng.choice(["pylock.toml", "pylock.toml", "", "/dev/null", "missing/pylock.toml"])]
    return Case(f"{argv} onto {place}", argv, project, [outside, venv], target=project, codes=(0, 1, 2, 3))


def _env_case(rng: random.Random, root: Path, venv: Path) -> Case:
    (root / "recipe.toml").write_text(RECIPE.replace("torch-scatter==2.1.2", "latin-ext"))
    kind = rng.random()
    if kind < 0.4:
        answer = rng.choice(sorted(ANSWERS))
        env, what = fake_env(root / "fake", ANSWERS[answer]), f"a python answering {answer}"
    elif kind < 0.6:
        env, what = fake_env(root / "fake", ""), "a python that hangs"
        (env / "bin" / "python").write_text(HUNG_NVCC)
    elif kind < 0.7:
        env, what = fake_env(root / "fake", "{}"), "a pyvenv.cfg that is a FIFO"
        (env / "pyvenv.cfg").unlink()
        os.mkfifo(env / "pyvenv.cfg")
    else:
        env, what = venv, "a venv with damaged files"
    argv = rng.choice([["doctor", "--gpu", "H100"], ["doctor", "--json"], ["export", "pylock"],
                       ["setup", "--dry-run", "--gpu", "H100", "--torch-index", "config"]])
    argv = [*argv, "--venv", str(env), "-r", "recipe.toml"]
    return Case(f"{argv[:2]} on {what}", argv, root, [venv], codes=(0, 1, 2, 3))


def _output_case(rng: random.Random, root: Path) -> Case:
    (root / "recipe.toml").write_text(RECIPE)
    argv = rng.choice([["completion", "bash"], ["--help"], ["export", "uv", "--help"], ["gpus"],
                       ["--version"], ["plan", "--gpu", "H100", "-r", "recipe.toml"], ["cache", "list"],
                       ["init", "--help"]])
    stdout = rng.choice(["full", "ascii"])
    return Case(f"{argv} to {stdout} stdout", argv, root, [], codes=(2,) if stdout == "full" else (0,),
                stdout=stdout)


def _value_case(rng: random.Random, root: Path) -> Case:
    (root / "recipe.toml").write_text(RECIPE)
    option = rng.choice(["--arch=\u0669.\u0660", "--arch=9", "--arch=\uff19\uff10", "--gpu=\u0668xH100",
                         "--cuda=\u0661\u0663.\u0660", "--torch-index=http://x/{bad}",
                         "--torch-index=http://x/{variant"])
    argv = ["plan", "-r", "recipe.toml", option, *(["--gpu=H100"] if "--arch" not in option and "--gpu" not in
                                                   option else [])]
    return Case(f"{argv}", argv, root, [], codes=(2,))


def second_campaign(rng: random.Random, root: Path, venv: Path) -> list[Case]:
    makers = [_init_case] * 6 + [_cache_case] * 5 + [_toolkit_case] * 2 + [_output_case] * 2 + [_value_case]
    cases = []
    for number in range(SECOND_CASES):
        folder = root / f"case{number}"
        (folder / "home").mkdir(parents=True)
        kind = rng.random()
        if kind < 0.15:
            cases.append(_export_case(rng, folder, venv))
        elif kind < 0.25:
            cases.append(_env_case(rng, folder, venv))
        else:
            cases.append(rng.choice(makers)(rng, folder))
        cases[-1].name = f"case {number}: {cases[-1].name}"
        cases[-1].environ = {**_case_env(folder), **cases[-1].environ}
    return cases


def run_case(case: Case) -> str | None:
    """What went wrong in ``case``, or None."""
    before = [tree(p) for p in case.watched]
    target_before = tree(case.target) if case.target is not None else None
    environ = dict(case.environ)
    if case.stdout == "ascii":
        environ.update(PYTHONIOENCODING="ascii", LANG="C", LC_ALL="C")
    with contextlib.ExitStack() as stack:
        out: Any = subprocess.PIPE
        if case.stdout == "full":
            out = stack.enter_context(open("/dev/full", "w"))
        try:
            done = subprocess.run([sys.executable, "-m", "gpuenv", *case.argv], cwd=case.cwd, env=environ,
                                  stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  timeout=SECONDS_PER_PROCESS, check=False)
        except subprocess.TimeoutExpired:
            return f"{case.name}: no answer in {SECONDS_PER_PROCESS} s"
    err = done.stderr.decode("utf-8", "replace")
    printed = (done.stdout or b"").decode("utf-8", "replace") + err
    problems = []
    if "Traceback" in err or "Exception ignored" in err:
        problems.append(f"a traceback: {err[-600:]}")
    if done.returncode not in case.codes:
        problems.append(f"exit {done.returncode}, expected one of {case.codes}: {err[-300:]}")
    if done.returncode in (2, 3) and "error:" not in err:
        problems.append(f"exit {done.returncode} without an error: line: {err[-300:]}")
    if "\x1b" in printed or "\x07" in printed:
        problems.append("a control character reached the terminal")
    if case.stdout == "ascii" and done.stdout:
        try:
            done.stdout.decode("ascii")
        except UnicodeDecodeError:
            problems.append("non-ASCII bytes on an ASCII-only stdout")
    for path, seen in zip(case.watched, before):
        if tree(path) != seen:
            changed = sorted(set(tree(path).items()) ^ set(seen.items()))[:3]
            problems.append(f"wrote into {path.name}: {changed}")
    if done.returncode == 2 and case.target is not None and tree(case.target) != target_before:
        problems.append("refused, yet changed its target")
    return f"{case.name}: {'; '.join(problems)}" if problems else None


@pytest.mark.skipif(not os.path.exists("/dev/full") or not hasattr(os, "mkfifo"), reason="POSIX only")
def test_hostile_places_caches_envs_and_outputs_never_crash_hang_or_write_outside(tmp_path: Path) -> None:
    venv = damaged_venv(tmp_path / "shared-venv")
    cases = second_campaign(random.Random(SECOND_SEED), tmp_path / "cases", venv)
    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(run_case, cases) if f is not None]
    assert not failures, "\n".join(failures[:20])
