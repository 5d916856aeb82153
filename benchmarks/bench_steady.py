"""4-6. What a user waits for between setups: the no-op setup, the plan, and the memory a setup holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench_arch import build_kernels, torch_cuda_env, wheel_archs
from bench_core import MEMORY_SAMPLE_SECONDS, PLAN_EXTENSIONS, Bench, Result, Side, alternate, cpu_note, timed
from bench_setups import fill_warm_cache, scatter_recipe, uv_environ, uv_install, warm_setup

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
