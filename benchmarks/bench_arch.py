"""1. An arch-targeted CUDA build against the all-architectures build."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_core import (
    KERNELS,
    KERNELS_DIST,
    ONE_ARCH,
    TORCH_CUDA,
    Bench,
    BenchError,
    Result,
    Run,
    Side,
    alternate,
    ask,
    python_of,
    remove,
    speedup,
    timed,
)
from bench_setups import uv_bin

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
