"""3d. A second machine: its own cache empty, the team's shared cache (a pypiserver) warm."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from bench_core import (
    SCATTER,
    TORCH_CPU,
    Bench,
    BenchError,
    Result,
    Run,
    Side,
    alternate,
    cpu_note,
    median,
    remove,
    step_seconds,
    timed,
)
from bench_setups import (
    check_scatter,
    cold_setup,
    fill_uv_cache,
    scatter_recipe,
    warm_cache_filled,
    warm_setup,
    warm_side,
)

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
