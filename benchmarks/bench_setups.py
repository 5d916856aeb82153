"""2, 3. Warm against cold gpuenv setups; gpuenv against pip and against uv's own workflow; the floor."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench_core import (
    SCATTER,
    TORCH_CPU,
    TORCH_CUDA,
    Bench,
    BenchError,
    Result,
    Run,
    Side,
    alternate,
    ask,
    cpu_note,
    median,
    python_of,
    remove,
    speedup,
    step_seconds,
    timed,
)

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
