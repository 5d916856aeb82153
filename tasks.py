"""invoke tasks: `invoke setup --cuda 12.1` sets up the GPU environment (needs gpuenv installed)."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import task

try:
    from gpuenv.integrations import invoke_setup
except ImportError:  # a checkout where gpuenv is not installed next to invoke
    sys.path.insert(0, str(Path(__file__).parent / "src"))
    from gpuenv.integrations import invoke_setup


@task(
    help={
        "recipe": "recipe file (default: envs/default.toml)",
        "cuda": "force the torch variant: 12.1, cu121 or cpu",
        "gpu": "build for these GPUs instead of the probed ones (H100, 8xA100…)",
        "arch": "build for these compute capabilities (9.0,8.0)",
        "venv": "target virtual environment (default: .venv)",
        "torch_index": "torch index template with {variant}, or 'config'",
        "installer": "auto (default: uv if installed, else pip), pip or uv",
        "dry_run": "print the commands and change nothing",
    }
)
def setup(c, recipe=None, cuda=None, gpu=None, arch=None, venv=None, torch_index=None,  # type: ignore[no-untyped-def]
          installer=None, dry_run=False):
    """Set up the GPU environment (runs `gpuenv setup`)."""
    invoke_setup(c, recipe=recipe, cuda=cuda, gpu=gpu, arch=arch, venv=venv, torch_index=torch_index,
                 installer=installer, dry_run=dry_run)
