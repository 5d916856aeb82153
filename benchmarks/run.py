"""gpuenv's benchmarks: what it saves, side by side with what users do today.

    python benchmarks/run.py [--repeat N] [--only NAME,...] [--json FILE] [--workdir DIR]

Each comparison runs its two sides alternately (A B A B A B) in this one
process, prints the medians and their ratio next to the target with PASS or
MISS, and the same as JSON. The machine is shared and noisy: read the ratios,
not the absolute times. The script reports, it does not assert: it exits 0 on
a MISS and 1 only when a side fails to run. benchmarks/README.md says what
each comparison measures and how.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
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


# -- 1. arch-targeted build vs the all-architectures build ---------------------------


@contextmanager
def torch_cuda_env(bench: Bench) -> Iterator[Path]:
    """A venv with the cu130 torch that the arch builds share; 5.5 GB, so it goes when they are done."""
    venv = bench.path("torch-cuda")
    recipe = bench.recipe("torch-cuda", f"""
        [torch]
        version = "{TORCH_CUDA}"
    """)
    if not any(venv.glob(f"lib/python*/site-packages/torch-{TORCH_CUDA}*.dist-info")):
        print(f"  (untimed) gpuenv setup of torch {TORCH_CUDA} into {venv}", flush=True)
        remove(venv)
        timed([bench.setup(recipe, venv, "--no-cache", "--arch", ONE_ARCH)], env=bench.environ())
    try:
        yield venv
    finally:
        remove(venv)


def wheel_archs(venv: Path) -> str:
    """The torch wheel's own archs ("7.5,8.0,…"): what a GPU-less node builds for to cover any GPU."""
    archs = ask(venv, "import torch; print(','.join(torch.cuda.get_arch_list()))").split(",")
    return ",".join(f"{a[3:-1]}.{a[-1]}" for a in archs if a.startswith("sm_"))


def build_kernels(bench: Bench, venv: Path, archs: str) -> Run:
    """gpuenv setup of the benchmark extension into the cu130 env, built for ``archs`` (no cache)."""
    recipe = bench.recipe("kernels", f"""
        [torch]
        version = "{TORCH_CUDA}"

        [[extensions]]
        requirement = "{KERNELS}"
        import = "gpuenv_bench_kernels"
    """)
    # Uninstalled first, so every run builds and installs whatever ran before: gpuenv
    # skips an extension already installed with the same cache key. uv's uninstall: gpuenv's
    # default installer made the env, with no pip in it.
    subprocess.run([uv_bin(), "pip", "uninstall", "--python", python_of(venv), KERNELS_DIST], check=True,
                   capture_output=True)
    jobs = bench.plan_json(recipe, "--arch", archs)["extensions"][0]["env"].get("MAX_JOBS", "?")
    run = timed([bench.setup(recipe, venv, "--no-cache", "--arch", archs)], env=bench.environ(),
                sample_memory=True)
    built = ask(venv, "import gpuenv_bench_kernels as k; print(k.arch_list())")
    expected = ",".join(str(int(a.split(".")[0]) * 100 + int(a.split(".")[1]) * 10) for a in archs.split(","))
    if built != expected:
        raise BenchError(f"the installed extension holds archs {built}, the build was for {expected}")
    bench.builds.append((f"benchmark kernels, {len(archs.split(','))} arch(s)", jobs, run))
    return run


def compare_arch(bench: Bench) -> Result:
    with torch_cuda_env(bench) as venv:
        all_archs = wheel_archs(venv)
        runs = alternate([("all archs", lambda _: build_kernels(bench, venv, all_archs)),
                          (ONE_ARCH, lambda _: build_kernels(bench, venv, ONE_ARCH))], bench.repeat)
    baseline = Side(f"--arch {all_archs}", [r.seconds for r in runs[0]])
    targeted = Side(f"--arch {ONE_ARCH}", [r.seconds for r in runs[1]])
    files = len(list((KERNELS / "csrc").glob("*.cu")))
    notes = [f"gpuenv setup --no-cache of benchmarks/cuda_kernels ({files} kernel files) into a torch "
             f"{TORCH_CUDA} env; wall time of the whole setup, build and install included"]
    return speedup("arch", "arch-targeted build vs the torch wheel's archs", baseline, targeted, 3, notes)


# -- 2 and 3. warm vs cold setup; gpuenv warm vs pip warm ----------------------------


def scatter_recipe(bench: Bench) -> Path:
    return bench.recipe("scatter", f"""
        [torch]
        version = "{TORCH_CPU}"

        [[extensions]]
        requirement = "{SCATTER}"
        import = "torch_scatter"
    """)


SCATTER_CHECK = ("import torch, torch_scatter; print(torch_scatter.scatter_sum("
                 "torch.tensor([1., 2., 3.]), torch.tensor([0, 1, 0])).tolist())")


def check_scatter(venv: Path) -> None:
    if ask(venv, SCATTER_CHECK) != "[4.0, 2.0]":
        raise BenchError(f"torch_scatter gives a wrong answer in {venv}")


def gpuenv_setup(bench: Bench, venv: Path, cache: Path, *, sample_memory: bool = False,
                 installer: str = "auto", uv_cache: Path | None = None) -> Run:
    """gpuenv setup of torch + torch-scatter into a fresh ``venv`` with the wheel cache ``cache``.

    The installer is gpuenv's default (auto: uv, installed with gpuenv's test extra) unless
    said; its own cache is the workdir's warm one unless ``uv_cache`` names another.
    """
    remove(venv)
    recipe = scatter_recipe(bench)
    run = timed([bench.setup(recipe, venv, "--cache-dir", str(cache), "--installer", installer)],
                env=bench.environ(PIP_CACHE_DIR=str(bench.path("pip-cache-gpuenv")),
                                  UV_CACHE_DIR=str(uv_cache or bench.path("uv-cache-gpuenv"))),
                sample_memory=sample_memory)
    check_scatter(venv)
    return run


def cold_setup(bench: Bench, round_: int) -> Run:
    """gpuenv setup, its wheel cache and uv's empty: torch-scatter builds, torch is fetched."""
    cache = bench.path("cold-cache")
    remove(cache)  # empty: torch-scatter is built from its sdist
    remove(bench.path("uv-cache-cold"))
    recipe = scatter_recipe(bench)
    jobs = bench.plan_json(recipe)["extensions"][0]["env"].get("MAX_JOBS", "?")
    run = gpuenv_setup(bench, bench.path("cold-venv"), cache, sample_memory=True,
                       uv_cache=bench.path("uv-cache-cold"))
    remove(bench.path("uv-cache-cold"))
    if "built and cached" not in run.output:
        raise BenchError("the cold setup did not build torch-scatter")
    bench.builds.append(("torch-scatter (CPU build)", jobs, run))
    remove(bench.path("cold-venv"))
    if round_ == 0 or not warm_cache_filled(bench):  # the first cold run's cache serves the warm side
        remove(bench.path("warm-cache"))
        cache.rename(bench.path("warm-cache"))
    return run


def warm_cache_filled(bench: Bench) -> bool:
    return any(bench.path("warm-cache").rglob("torch_scatter-*.whl"))


def warm_setup(bench: Bench, _round: int, installer: str = "auto") -> Run:
    fill_uv_cache(bench)
    run = gpuenv_setup(bench, bench.path("warm-venv"), bench.path("warm-cache"), installer=installer)
    if "cached" not in run.output or "built and cached" in run.output:
        raise BenchError("the warm setup did not install torch-scatter from the cache")
    if installer == "auto" and "with uv" not in run.output:
        raise BenchError("gpuenv's default installer was not uv here: is uv installed next to gpuenv?")
    bench.warm_venv = bench.path("warm-venv")
    return run


def pip_commands(venv: Path) -> list[list[str]]:
    """What users do today: torch first, then the extension without isolation."""
    pip = [python_of(venv), "-m", "pip"]
    return [[sys.executable, "-m", "venv", str(venv)],
            [*pip, "install", f"torch=={TORCH_CPU}", "setuptools", "wheel"],
            [*pip, "install", "--no-build-isolation", SCATTER]]


def pip_setup(bench: Bench, _round: int) -> Run:
    venv = bench.path("pip-venv")
    remove(venv)
    run = timed(pip_commands(venv), env=bench.environ(PIP_CACHE_DIR=str(bench.path("pip-cache"))))
    if "Building wheel for torch-scatter" in run.output:
        raise BenchError("pip built torch-scatter: its wheel cache was not warm")
    check_scatter(venv)
    remove(venv)
    return run


def fill_pip_cache(bench: Bench) -> str:
    """pip's wheel cache gets its torch-scatter wheel once, from the same commands (against torch 2.13)."""
    if any(bench.path("pip-cache").rglob("torch_scatter-*.whl")):
        return f"pip's wheel cache {bench.path('pip-cache')} was already filled by an earlier run"
    print("  (once) filling pip's wheel cache: pip builds torch-scatter", flush=True)
    venv = bench.path("pip-venv")
    remove(venv)
    run = timed(pip_commands(venv), env=bench.environ(PIP_CACHE_DIR=str(bench.path("pip-cache"))))
    remove(venv)
    return f"pip cold (filling its cache, once): {run.seconds:.1f} s"


def fill_warm_cache(bench: Bench) -> None:
    if not warm_cache_filled(bench):
        print("  (once) filling gpuenv's warm cache: gpuenv builds torch-scatter", flush=True)
        cold_setup(bench, 0)


def compare_warm_and_pip(bench: Bench) -> list[Result]:
    """Two cycles of fresh-env setups: cold, warm, cold, warm, …; then warm, pip, warm, pip, ….

    Each comparison alternates its own two sides, so each side of it runs in
    the same place (a warm run right after a cold build's writes and deletions
    is slower than one after another install: the sides must share that).
    """
    # With "uv" too, the uv cycle's gpuenv runs make the warm comparison (see compare_uv).
    want_cold, want_pip = "warm" in bench.only and "uv" not in bench.only, "pip" in bench.only
    results = []
    if want_cold:
        runs = alternate([("gpuenv cold", lambda r: cold_setup(bench, r)),
                          ("gpuenv warm", lambda r: warm_setup(bench, r))], bench.repeat)
        cold, warm = Side("gpuenv cold", [r.seconds for r in runs[0]]), warm_side(runs[1])
        results.append(speedup("warm", "warm vs cold setup (torch + torch-scatter)", cold, warm, 10, [
            f"gpuenv setup of torch {TORCH_CPU} + {SCATTER} into a fresh venv, the wheel cache empty vs "
            "filled", cpu_note("gpuenv cold", runs[0], "gpuenv warm", runs[1]), *warm_notes(runs[1])]))
    if want_pip:
        notes_pip = [fill_pip_cache(bench)]
        fill_warm_cache(bench)
        runs = alternate([("gpuenv --installer pip warm", lambda r: warm_setup(bench, r, "pip")),
                          ("pip warm", lambda r: pip_setup(bench, r))], bench.repeat)
        warm = Side("gpuenv --installer pip warm", [r.seconds for r in runs[0]])
        pip = Side("pip warm", [r.seconds for r in runs[1]])
        ratio = warm.median / pip.median
        results.append(Result("pip", "gpuenv --installer pip warm vs pip warm (fresh venv)", pip, warm,
                              f"{ratio:.2f}x pip's time", "<= 1.2x pip's time", ratio <= 1.2, [
            *notes_pip,
            cpu_note("pip warm", runs[1], "gpuenv --installer pip warm", runs[0]),
            *warm_notes(runs[0]),
            "pip's warm path is wrong after a torch change: its wheel cache key ignores torch, so it hands "
            "back the torch-scatter built for the old torch (undefined symbol at import); gpuenv's key holds "
            "torch's version and rebuilds (tests/integration/test_stale_wheel_slow.py shows both)"]))
    return results


def warm_side(runs: Sequence[Run]) -> Side:
    return Side("gpuenv warm", [r.seconds for r in runs])


def warm_notes(runs: Sequence[Run]) -> list[str]:
    """Where the warm runs' time went, and whether they took the lock's source hash."""
    steps = [step_seconds(r.output) for r in runs]
    breakdown = ", ".join(f"{name} {median([s.get(name, 0.0) for s in steps]):.1f}" for name in steps[0])
    unfetched = sum("not fetched" in r.output for r in runs)
    outside = median([r.seconds - sum(s.values()) for r, s in zip(runs, steps)])
    return [f"gpuenv warm, median seconds per step: {breakdown}; outside the steps (interpreter start, "
            f"imports, probe, plan, the installer's note): {outside:.1f}",
            f"gpuenv warm: in {unfetched} of {len(runs)} runs the lock of the runs before named the sdist's "
            f"sha256, so the wheel was looked up without fetching {SCATTER}"]


# -- 3b. the seed's own uv workflow, cold and warm; 3c. the floor ------------------------


def uv_bin() -> str:
    from gpuenv.setup.installer import find_uv

    return str(find_uv())


def uv_install(venv: Path, requirements: Sequence[str], *, no_build_isolation: bool = False) -> list[str]:
    """``uv pip install`` into ``venv`` with the sources pip is configured with, as a uv user passes them.

    gpuenv's own translation of pip's configuration writes the options (the
    index, extra indexes, find-links, constraint files, and the index strategy
    that makes uv pick the best version across them, as pip does).
    """
    from gpuenv.env.targetenv import TargetEnv
    from gpuenv.runner import SubprocessRunner
    from gpuenv.setup.installer import InstallOptions, UvInstaller

    installer = UvInstaller(SubprocessRunner(), uv=uv_bin())
    options = InstallOptions(no_build_isolation=no_build_isolation)
    [command] = installer.commands(TargetEnv(venv), requirements, options)
    return command


def uv_environ(bench: Bench, uv_cache: Path) -> dict[str, str]:
    from gpuenv.env.targetenv import TargetEnv
    from gpuenv.runner import SubprocessRunner
    from gpuenv.setup.installer import UvInstaller

    installer = UvInstaller(SubprocessRunner(), uv=uv_bin())
    installer.sources(TargetEnv(bench.path("nowhere")))  # pip's cert, as SSL_CERT_FILE
    return bench.environ(UV_CACHE_DIR=str(uv_cache), **installer.environ())


def uv_venv(venv: Path) -> list[str]:
    return [uv_bin(), "venv", "--quiet", "--python", sys.executable, str(venv)]


def uv_workflow_commands(venv: Path) -> list[list[str]]:
    """What the seed's users run: a uv env, torch and build tools, then the extension without isolation."""
    return [uv_venv(venv),
            uv_install(venv, [f"torch=={TORCH_CPU}", "setuptools", "wheel"]),
            uv_install(venv, [SCATTER], no_build_isolation=True)]


def uv_built_scatter(run: Run) -> bool:
    return "Built torch-scatter" in run.output


def uv_workflow(bench: Bench, *, cold: bool) -> Run:
    """The uv workflow into a fresh env: cold with an empty uv cache, warm with the last cold run's."""
    venv = bench.path("uv-venv")
    cache = bench.path("uv-cache-cold" if cold else "uv-cache-workflow")
    remove(venv)
    if cold:
        remove(cache)
    run = timed(uv_workflow_commands(venv), env=uv_environ(bench, cache), sample_memory=cold)
    check_scatter(venv)
    remove(venv)
    if cold:
        if not uv_built_scatter(run):
            raise BenchError("uv, cold, did not build torch-scatter")
        remove(bench.path("uv-cache-workflow"))  # the warm runs take the cache of the last cold run
        cache.rename(bench.path("uv-cache-workflow"))
    return run


def compare_uv(bench: Bench) -> list[Result]:
    """One cycle, four sides: uv cold, gpuenv cold, uv warm, gpuenv warm (each into a fresh env).

    Cold: uv's cache empty (torch fetched from the sources, torch-scatter built),
    and for gpuenv its wheel cache too. Warm: uv's cache as the cold run before
    it left it; gpuenv's wheel cache filled, and its uv cache warm.
    """
    runs = alternate([("uv cold", lambda _: uv_workflow(bench, cold=True)),
                      ("gpuenv cold", lambda r: cold_setup(bench, r)),
                      ("uv warm", lambda _: uv_workflow(bench, cold=False)),
                      ("gpuenv warm", lambda r: warm_setup(bench, r))], bench.repeat)
    uv_cold, gpuenv_cold, uv_warm = ([r.seconds for r in side] for side in runs[:3])
    rebuilt = sum(uv_built_scatter(r) for r in runs[2])
    warm_uv_note = (f"uv warm rebuilt torch-scatter in {rebuilt} of {len(runs[2])} runs (a fresh env each "
                    "time, uv's cache filled by the run before)")
    cold = Side("gpuenv cold", gpuenv_cold)
    ratio = cold.median / median(uv_cold)
    results = [
        Result("uvcold", "gpuenv cold vs the uv workflow cold (fresh env, empty caches)",
               Side("uv cold", uv_cold), cold, f"{ratio:.2f}x uv's time", "<= 1.05x uv's time",
               ratio <= 1.05, [
                   "uv: " + " && ".join(" ".join(c) for c in uv_workflow_commands(bench.path("uv-venv"))),
                   f"both build {SCATTER} from its sdist",
                   cpu_note("uv cold", runs[0], "gpuenv cold", runs[1])]),
        speedup("uvwarm", "gpuenv warm vs the uv workflow warm (fresh env)", Side("uv warm", uv_warm),
                warm_side(runs[3]), 10, [warm_uv_note, cpu_note("uv warm", runs[2], "gpuenv warm", runs[3]),
                                         *warm_notes(runs[3])]),
    ]
    if "warm" in bench.only:
        results.insert(0, speedup(
            "warm", "warm vs cold setup (torch + torch-scatter)", cold, warm_side(runs[3]), 10,
            [f"gpuenv setup of torch {TORCH_CPU} + {SCATTER} into a fresh venv, the wheel cache (and uv's) "
             "empty vs filled; the runs of the uv cycle"]))
    return results


def floor_run(bench: Bench) -> Run:
    """The least a tool can do for a fresh env with torch: a uv env, torch from uv's warm cache, an import."""
    venv = bench.path("floor-venv")
    remove(venv)
    commands = [uv_venv(venv), uv_install(venv, [f"torch=={TORCH_CPU}"]),
                [python_of(venv), "-c", "import torch"]]
    run = timed(commands, env=uv_environ(bench, bench.path("uv-cache-gpuenv")))
    remove(venv)
    return run


def fill_uv_cache(bench: Bench) -> None:
    """uv's cache for the warm runs gets torch once (untimed): warm means every cache filled."""
    if not any(bench.path("uv-cache-gpuenv").glob("*/*/torch*")) and not any(
            bench.path("uv-cache-gpuenv").rglob("torch-*.dist-info")):
        print("  (once) filling uv's cache for the warm runs: uv installs torch", flush=True)
        floor_run(bench)


# -- 3d. a second machine: its own cache empty, the team's shared cache warm -----------------------


@contextmanager
def pypiserver(packages: Path) -> Iterator[str]:
    """A pypiserver on 127.0.0.1 taking uploads into ``packages``; yields its simple index URL."""
    import socket
    import urllib.request

    packages.mkdir(parents=True, exist_ok=True)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen([sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", str(port),
                             "-a", ".", "-P", ".", "--disable-fallback", "--backend", "simple-dir",
                             str(packages)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("pypiserver did not start (pip install pypiserver: "
                                     "gpuenv's test extra)") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/simple/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def shared_setup(bench: Bench, _round: int, url: str) -> Run:
    """gpuenv setup on a "second machine": a fresh env and an empty wheel cache, the shared cache warm."""
    cache = bench.path("second-machine-cache")
    remove(cache)
    venv = bench.path("shared-venv")
    remove(venv)
    fill_uv_cache(bench)
    run = timed([bench.setup(scatter_recipe(bench), venv, "--cache-dir", str(cache), "--cache-from", url)],
                env=bench.environ(PIP_CACHE_DIR=str(bench.path("pip-cache-gpuenv")),
                                  UV_CACHE_DIR=str(bench.path("uv-cache-gpuenv"))))
    check_scatter(venv)
    if "from the shared cache" not in run.output or "built and cached" in run.output:
        raise BenchError("the second machine did not take torch-scatter from the shared cache:\n"
                         + run.output)
    remove(venv)
    return run


def compare_shared(bench: Bench) -> Result:
    """Warm local vs a second machine with the shared cache warm; one cold setup for scale."""
    cold = cold_setup(bench, 1 if warm_cache_filled(bench) else 0)  # round 0 fills the warm cache
    with pypiserver(bench.path("pypiserver-packages-" + datetime.now().strftime("%H%M%S"))) as url:
        push = bench.gpuenv("cache", "push", url, "--cache-dir", str(bench.path("warm-cache")))
        pushed = subprocess.run(push, capture_output=True, text=True, env=bench.environ(), check=False)
        if pushed.returncode != 0:
            raise BenchError(f"gpuenv cache push failed: {pushed.stderr.strip()}")
        runs = alternate([("gpuenv warm", lambda r: warm_setup(bench, r)),
                          ("second machine", lambda r: shared_setup(bench, r, url))], bench.repeat)
    warm = warm_side(runs[0])
    second = Side("second machine, shared cache warm", [r.seconds for r in runs[1]])
    ratio = second.median / warm.median
    steps = [step_seconds(r.output) for r in runs[1]]
    breakdown = ", ".join(f"{name} {median([s.get(name, 0.0) for s in steps]):.1f}" for name in steps[0])
    cold_note = (f"gpuenv cold (wheel cache empty, no shared cache: torch-scatter built): "
                 f"{cold.seconds:.1f} s, one run")
    return Result("shared", "second machine (local cache empty, shared cache warm) vs warm local", warm,
                  second, f"{ratio:.2f}x warm local", "<= 1.3x warm local", ratio <= 1.3, [
        f"gpuenv setup of torch {TORCH_CPU} + {SCATTER} into a fresh venv; the second machine's wheel cache "
        "is empty and --cache-from names a pypiserver on 127.0.0.1 holding the wheel `gpuenv cache push` put "
        "there; uv's cache is warm on both sides (torch comes from it): the row measures gpuenv's caches",
        cold_note,
        f"second machine, median seconds per step: {breakdown}",
        cpu_note("gpuenv warm", runs[0], "second machine", runs[1]),
    ])


def compare_floor(bench: Bench) -> Result:
    fill_warm_cache(bench)
    runs = alternate([("floor", lambda _: floor_run(bench)),
                      ("gpuenv warm", lambda r: warm_setup(bench, r))], bench.repeat)
    floor, warm = Side("uv venv + torch + import", [r.seconds for r in runs[0]]), warm_side(runs[1])
    ratio = warm.median / floor.median
    return Result("floor", "gpuenv warm vs the floor (fresh env)", floor, warm, f"{ratio:.2f}x the floor",
                  "<= 1.2x the floor", ratio <= 1.2, [
                      "floor: uv venv; uv pip install torch (pip's sources, uv's warm cache, the one "
                      "gpuenv's warm runs use); python -c 'import torch'",
                      cpu_note("floor", runs[0], "gpuenv warm", runs[1]), *warm_notes(runs[1])])


# -- 3d. after a torch change: does uv hand back the wheel it built for the old torch? ------


def compare_uvstale(bench: Bench) -> Result:
    """uv builds torch-scatter against torch 2.13 (CPU), then installs it into a torch 2.14.1 env.

    The check is the import in the new env: a wheel built for the old torch fails
    with an undefined symbol. gpuenv's side is its plan for the same change with
    the warm cache (which holds the torch 2.13 build only): a cache miss, a build.
    """
    cache = bench.path("uv-cache-stale")
    remove(cache)
    old, new = bench.path("uv-stale-213"), bench.path("uv-stale-214")
    environ = uv_environ(bench, cache)
    try:
        remove(old)
        first = timed(uv_workflow_commands(old), env=environ)
        check_scatter(old)
        remove(new)
        second = timed([uv_venv(new), uv_install(new, [f"torch=={TORCH_CUDA}", "setuptools", "wheel"]),
                        uv_install(new, [SCATTER], no_build_isolation=True)], env=environ)
        imported = subprocess.run([python_of(new), "-c", SCATTER_CHECK], capture_output=True, text=True,
                                  check=False)
    finally:
        remove(old)
        remove(new)
        remove(cache)
    error = (imported.stderr.strip().splitlines() or ["?"])[-1]
    works = imported.returncode == 0
    built_again = uv_built_scatter(second)
    fill_warm_cache(bench)
    recipe = bench.recipe("scatter214", f"""
        [torch]
        version = "{TORCH_CUDA}"

        [[extensions]]
        requirement = "{SCATTER}"
        import = "torch_scatter"
    """)
    planned = bench.plan_json(recipe, "--cache-dir", str(bench.path("warm-cache")))
    action = planned["extensions"][0]["action"]
    uv_said = ("rebuilt it for the new torch" if built_again else "did NOT rebuild it") + (
        ", and it imports" if works else f", and the import fails: {error}")
    return Result("uvstale", f"after a torch change ({TORCH_CPU} -> {TORCH_CUDA}): uv vs gpuenv",
                  Side("uv: torch-scatter install", [second.seconds]), Side("gpuenv plan", [0.0]),
                  f"uv {'ok' if works else 'stale'}; gpuenv {action}", "gpuenv rebuilds (action build)",
                  action == "build", [
                      f"uv built torch-scatter against torch {TORCH_CPU} ({first.seconds:.0f} s), then in a "
                      f"fresh env with torch {TORCH_CUDA} and the same uv cache, `uv pip install "
                      f"--no-build-isolation {SCATTER}` {uv_said}",
                      f"gpuenv plan for torch {TORCH_CUDA} with the warm cache: torch-scatter {action} "
                      f"({planned['extensions'][0]['reason']})"])


# -- 4. no-op --------------------------------------------------------------------------


def noop_env(bench: Bench) -> Path:
    """The env of a warm setup, matching its lock: the cycle's last one, else one made now."""
    if bench.warm_venv is None:
        fill_warm_cache(bench)
        warm_setup(bench, 0)
    assert bench.warm_venv is not None
    return bench.warm_venv


def compare_noop(bench: Bench) -> Result:
    from gpuenv.lock.lockfile import lock_path_for, read_lock

    venv = noop_env(bench)
    recipe = scatter_recipe(bench)
    locked = read_lock(lock_path_for(recipe))["scatter"]
    pins = bench.path("recipes", "pins.txt")
    pins.write_text("".join(f"{name}=={version}\n" for name, version in sorted(locked.distributions.items())),
                    encoding="utf-8")
    setup = bench.setup(recipe, venv, "--cache-dir", str(bench.path("warm-cache")))
    # The env is uv's (gpuenv's default installer): the reference is uv asked for the same pins.
    uv = uv_install(venv, ["-r", str(pins)])
    environ = uv_environ(bench, bench.path("uv-cache-gpuenv"))
    runs = alternate([("uv pip install -r", lambda _: timed([uv], env=environ)),
                      ("gpuenv no-op", lambda _: timed([setup], env=bench.environ()))], bench.repeat)
    notes = [f"gpuenv setup on the env of the last warm setup; uv pip install -r of its lock's "
             f"{len(locked.distributions)} pins into the same env (pip's sources, uv's warm cache)",
             cpu_note("uv", runs[0], "gpuenv", runs[1])]
    noop = all("nothing to do" in r.output for r in runs[1])
    if not noop:
        notes.append("gpuenv did NOT report 'nothing to do': this is not a no-op")
    gpuenv = Side("gpuenv setup (no-op)", [r.seconds for r in runs[1]])
    uv_side = Side("uv pip install -r pins", [r.seconds for r in runs[0]])
    passed = noop and gpuenv.median <= 0.3
    return Result("noop", "no-op setup on an env matching its lock", uv_side, gpuenv,
                  f"{gpuenv.median:.2f} s ({gpuenv.median / uv_side.median:.2f}x uv)", "<= 0.3 s", passed,
                  notes)


# -- 5. plan -------------------------------------------------------------------------------


def compare_plan(bench: Bench) -> Result:
    lines = "\n".join(f'[[extensions]]\nrequirement = "{r}"\n' for r in PLAN_EXTENSIONS)
    recipe = bench.recipe("five", f'[torch]\nversion = "2.13.*"\n\n{lines}')
    empty_cache = bench.path("empty-cache")
    plan = bench.gpuenv("plan", "--json", "-r", str(recipe), "--gpu", "H100", "--cache-dir", str(empty_cache))
    start = [sys.executable, "-c", "pass"]
    runs = alternate([("python -c pass", lambda _: timed([start], env=bench.environ())),
                      ("gpuenv plan", lambda _: timed([plan], env=bench.environ()))], max(bench.repeat, 5))
    output = runs[1][-1].output
    planned = json.loads(output[output.index("{"):])
    actions = ", ".join(f"{e['name']} {e['action']}" for e in planned["extensions"])
    gpuenv = Side("gpuenv plan --json", [r.seconds for r in runs[1]])
    return Result("plan", "gpuenv plan --json, five extensions, --gpu H100", Side("python -c pass",
                  [r.seconds for r in runs[0]]), gpuenv, f"{gpuenv.median:.2f} s", "< 0.5 s",
                  gpuenv.median < 0.5, [f"wall time with interpreter start; the plan: {actions}"])


# -- 6. memory --------------------------------------------------------------------------


def compare_memory(bench: Bench) -> Result:
    if not bench.builds:
        with torch_cuda_env(bench) as venv:
            for _ in range(bench.repeat):
                build_kernels(bench, venv, wheel_archs(venv))
    notes = []
    worst = 0.0
    for what in dict.fromkeys(w for w, _, _ in bench.builds):  # each kind of build, in order
        runs = [(jobs, r) for w, jobs, r in bench.builds if w == what]
        peak = max(r.peak_rss_mib or 0.0 for _, r in runs)
        available = min(r.available_mib or 0.0 for _, r in runs)
        worst = max(worst, peak / available)
        notes.append(f"{what}, MAX_JOBS={runs[0][0]} (from gpuenv's plan), {len(runs)} build(s): peak "
                     f"{peak:.0f} MiB, MemAvailable at start {available:.0f} MiB ({peak / available:.2f})")
    # A build killed for memory fails its setup, and a failed side stops the comparison (exit 1):
    # every build listed here ran to the end.
    notes.insert(0, f"{len(bench.builds)} build(s), all completed: no build killed for memory; the RSS "
                 f"of every process of the setup's session, summed every {MEMORY_SAMPLE_SECONDS} s")
    peak = max(r.peak_rss_mib or 0.0 for _, _, r in bench.builds)
    return Result("memory", "peak build memory with gpuenv's MAX_JOBS", None,
                  Side("peak RSS of a build's process tree", [peak], unit="MiB"),
                  f"{worst:.2f} of available", "none killed, < 1.0 of available", worst < 1.0, notes)


# -- the report ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "gpuenv", "probe", "--json"], capture_output=True, text=True,
                          check=False)
    probed = json.loads(done.stdout) if done.returncode == 0 else {}
    return {"cpus": os.cpu_count(), "memory_total_mib": probed.get("memory_total_mib"),
            "memory_available_mib": round(mem_available_mib()), "gpus": len(probed.get("gpus") or []),
            "nvcc": [t.get("version") for t in probed.get("toolkits") or []],
            "python": platform.python_version(), "platform": platform.platform()}


def table(results: Sequence[Result], repeat: int) -> str:
    header = ("comparison", "baseline", "median", "gpuenv", "median", "result", "target", "")
    rows = [header]
    for r in results:
        base = (r.baseline.label, r.baseline.shown()) if r.baseline else ("-", "-")
        rows.append((r.name, *base, r.gpuenv.label, r.gpuenv.shown(), r.value, r.target,
                     "PASS" if r.passed else "MISS"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"medians of {repeat} alternated runs per side (plan: at least 5); wall clock seconds")
    for r in results:
        lines.extend(f"- {r.name}: {note}" for note in r.notes)
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side, alternated (default: 3)")
    parser.add_argument("--only", default=",".join(COMPARISONS),
                        help=f"comma-separated comparisons to run (default: all: {','.join(COMPARISONS)})")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gpuenv-bench",
                        help="recipes, envs and caches; caches are kept between runs (default: %(default)s)")
    parser.add_argument("--torch-index", default="config",
                        help="passed to gpuenv setup (default: config, the installer's own sources)")
    args = parser.parse_args(argv)
    only = tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = [n for n in only if n not in COMPARISONS]
    if unknown or args.repeat < 1:
        parser.error(f"unknown comparison {', '.join(unknown)}" if unknown else "--repeat must be at least 1")
    args.only = only
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args.workdir.absolute(), args.repeat, args.torch_index, args.only)
    bench.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs: list[tuple[str, Callable[[], list[Result]]]] = [
        ("arch", lambda: [compare_arch(bench)]),
        ("warm,pip", lambda: compare_warm_and_pip(bench)),
        ("uv", lambda: compare_uv(bench)),
        ("floor", lambda: [compare_floor(bench)]),
        ("uvstale", lambda: [compare_uvstale(bench)]),
        ("noop", lambda: [compare_noop(bench)]),
        ("plan", lambda: [compare_plan(bench)]),
        ("memory", lambda: [compare_memory(bench)]),
        ("shared", lambda: [compare_shared(bench)]),
    ]
    results: list[Result] = []
    failures: dict[str, str] = {}
    for names, compare in runs:
        if not set(names.split(",")) & set(bench.only):
            continue
        print(f"== {names}", flush=True)
        try:
            results.extend(compare())
        except (BenchError, subprocess.CalledProcessError, OSError) as exc:
            # One comparison that cannot run must not cost the others (the full run is an hour).
            failures[names] = str(exc)
            print(f"error: {names}: {exc}", file=sys.stderr, flush=True)
    remove(bench.path("warm-venv"))  # venvs are ~1 GB each; the workdir keeps recipes and caches
    text = table(results, bench.repeat)
    print()
    print(text)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "repeat": bench.repeat,
        "total_seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "comparisons": [r.to_json() for r in results],
        "failures": failures,
    }
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
