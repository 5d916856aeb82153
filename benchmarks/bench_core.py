"""What every benchmark shares: the constants, timing alternated runs, the result rows, and the
benchmark's world (recipes, envs and caches under --workdir)."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KERNELS = REPO / "benchmarks" / "cuda_kernels"
KERNELS_DIST = "gpuenv-bench-kernels"
TORCH_CPU = "2.13.0"  # a CPU build from this machine's sources; torch-scatter builds against it
TORCH_CUDA = "2.14.1"  # the cu130 build: the arch benchmark's CUDA extension builds against it
SCATTER = "torch-scatter==2.1.2"
ONE_ARCH = "9.0"  # what an H100 node detects
PLAN_EXTENSIONS = ["flash-attn==2.8.3.post2", SCATTER, "torch-sparse==0.6.18", "causal-conv1d==1.7.0",
                   "mamba-ssm==2.3.2.post1"]
COMPARISONS = ("arch", "warm", "uv", "floor", "pip", "noop", "plan", "memory", "uvstale", "shared")
MEMORY_SAMPLE_SECONDS = 0.2


class BenchError(Exception):
    """A side failed to run: its numbers would mean nothing."""


# -- measuring -----------------------------------------------------------------------


@dataclass
class Run:
    """One timed command (or sequence of commands)."""

    seconds: float
    output: str
    #: Peak of the summed RSS of the command's session (its whole process tree), when sampled.
    peak_rss_mib: float | None = None
    #: MemAvailable when the command started.
    available_mib: float | None = None
    #: User + system CPU seconds of the commands and everything they waited for: on a loaded
    #: machine the wall clock measures the neighbours too, the CPU time much less.
    cpu_seconds: float = 0.0


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise BenchError("/proc/meminfo has no MemAvailable")


def session_rss_mib(sid: int) -> float:
    """The RSS of every process in session ``sid``, summed (shared pages count once per process).

    A session, not a process group: ninja puts each compile job in a process group of its own.
    """
    pages = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[3]) == sid:  # fields[0] is field 3 of proc(5), "state"; field 6 is the session
            pages += int(fields[21])  # field 24, rss
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


class SessionSampler:
    """Samples the summed RSS of a session's processes every 0.2 s, in a thread, until stopped."""

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(MEMORY_SAMPLE_SECONDS):
            self.peak_mib = max(self.peak_mib, session_rss_mib(self.sid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mib


def timed(commands: Sequence[Sequence[str]], *, env: Mapping[str, str] | None = None,
          sample_memory: bool = False) -> Run:
    """Run ``commands`` one after the other (like `a && b`) and time them all, wall clock.

    Each command runs in a session of its own, so with ``sample_memory`` the
    whole tree it starts (pip, the build backend, ninja, nvcc, cc1plus…) is measured.
    """
    outputs: list[str] = []
    peak = 0.0
    available = mem_available_mib() if sample_memory else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for cmd in commands:
        proc = subprocess.Popen([str(c) for c in cmd], env=dict(env) if env is not None else None,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True)
        sampler = SessionSampler(proc.pid) if sample_memory else None
        out, _ = proc.communicate()
        if sampler is not None:
            peak = max(peak, sampler.stop())
        outputs.append(f"$ {' '.join(map(str, cmd))}\n{out}")
        if proc.returncode != 0:
            tail = "\n".join(out.splitlines()[-25:])
            raise BenchError(f"{' '.join(map(str, cmd))} failed with exit code {proc.returncode}:\n{tail}")
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(seconds, "".join(outputs), peak if sample_memory else None, available, cpu)


def cpu_note(baseline: str, baseline_runs: Sequence[Run], gpuenv: str, gpuenv_runs: Sequence[Run]) -> str:
    """The same comparison in CPU seconds (medians), which a loaded machine distorts far less."""
    a = median([r.cpu_seconds for r in baseline_runs])
    b = median([r.cpu_seconds for r in gpuenv_runs])
    return (f"CPU seconds (user + system, medians): {baseline} {a:.2f}, {gpuenv} {b:.2f} "
            f"(ratio {b / a:.2f})" if a else "CPU seconds: not measured")


def alternate(sides: Sequence[tuple[str, Callable[[int], Run]]], repeat: int) -> list[list[Run]]:
    """Run the sides in turn, ``repeat`` rounds (A B A B …): drift on a shared machine hits all alike."""
    runs: list[list[Run]] = [[] for _ in sides]
    for round_ in range(repeat):
        for (label, side), results in zip(sides, runs):
            results.append(side(round_))
            print(f"  {label} {round_ + 1}/{repeat}: {results[-1].seconds:.2f} s", flush=True)
    return runs


# -- what a comparison reports -------------------------------------------------------


@dataclass
class Side:
    label: str
    seconds: list[float]
    unit: str = "s"

    def shown(self) -> str:
        return f"{self.median:.2f} s" if self.unit == "s" else f"{self.median:.0f} {self.unit}"

    @property
    def median(self) -> float:
        return median(self.seconds)


@dataclass
class Result:
    name: str
    title: str
    baseline: Side | None
    gpuenv: Side
    #: What the verdict is about, as shown: "4.1x", "0.21 s", "0.31 of available"…
    value: str
    target: str
    passed: bool
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("baseline", "gpuenv"):
            side = getattr(self, key)
            if side is not None:
                data[key]["median"] = round(side.median, 3)
                data[key]["seconds"] = [round(s, 3) for s in side.seconds]
        data["verdict"] = "PASS" if self.passed else "MISS"
        return data


def speedup(name: str, title: str, baseline: Side, gpuenv: Side, at_least: float,
            notes: list[str]) -> Result:
    ratio = baseline.median / gpuenv.median
    return Result(name, title, baseline, gpuenv, f"{ratio:.2f}x faster", f">= {at_least:g}x faster",
                  ratio >= at_least, notes)


# -- the benchmark's world: recipes, envs, caches under --workdir -------------------------


@dataclass
class Bench:
    workdir: Path
    repeat: int
    torch_index: str
    only: tuple[str, ...]
    #: Every sampled build: (what, MAX_JOBS, Run).
    builds: list[tuple[str, str, Run]] = field(default_factory=list)
    #: The env of the last warm gpuenv setup (torch + torch-scatter), matching its lock.
    warm_venv: Path | None = None

    def path(self, *parts: str) -> Path:
        return self.workdir.joinpath(*parts)

    def environ(self, **extra: str) -> dict[str, str]:
        """This process's environment minus GPUENV_* (each command says what it wants).

        Minus PYTHONDONTWRITEBYTECODE too: users do not set it, and with it every
        interpreter (gpuenv's, and each env's first ``import torch``) compiles from source.
        """
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GPUENV_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(extra)
        return env

    def gpuenv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "gpuenv", *args]

    def setup(self, recipe: Path, venv: Path, *options: str) -> list[str]:
        return self.gpuenv("setup", "-r", str(recipe), "--venv", str(venv), "--torch-index", self.torch_index,
                           *options)

    def recipe(self, name: str, body: str) -> Path:
        path = self.path("recipes", f"{name}.toml")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = textwrap.dedent(body).lstrip()
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        return path

    def plan_json(self, recipe: Path, *options: str) -> dict[str, Any]:
        done = subprocess.run(self.gpuenv("plan", "--json", "-r", str(recipe), "--no-cache", *options),
                              capture_output=True, text=True, env=self.environ(), check=False)
        if done.returncode != 0:
            raise BenchError(f"gpuenv plan failed: {done.stderr.strip()}")
        return json.loads(done.stdout)  # type: ignore[no-any-return]


def python_of(venv: Path) -> str:
    return str(venv / "bin" / "python")


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def ask(venv: Path, code: str) -> str:
    done = subprocess.run([python_of(venv), "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"{venv}: python -c {code!r} failed:\n{done.stderr.strip()[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def step_seconds(output: str) -> dict[str, float]:
    """gpuenv setup's own step timings: '[3/7] base: torch==2.13.0' … '  torch … (21.4 s)'."""
    steps: dict[str, float] = {}
    title = None
    for line in output.splitlines():
        if m := re.match(r"\[\d+/\d+\] ([^:]+)", line):
            title = m.group(1).strip()
        elif title and (m := re.search(r"\((\d+(?:\.\d+)?) s\)$", line)):
            steps[title] = float(m.group(1))
            title = None
    return steps
