"""What a noxfile.py or tasks.py imports to run gpuenv, so a repo keeps no copy of its logic.

Both front ends run the same code path: ``python -m gpuenv setup ARGS`` in an
interpreter that has gpuenv installed. This module imports only the standard
library, so a noxfile can import it before gpuenv's dependencies are installed.

noxfile.py::

    from gpuenv.integrations import nox_gpu_env

    @nox.session(name="gpu-env")
    def gpu_env(session):
        \"\"\"Set up the GPU environment (args after -- go to gpuenv setup).\"\"\"
        nox_gpu_env(session)

tasks.py::

    from invoke import task
    from gpuenv.integrations import invoke_setup

    @task(help=...)
    def setup(c, recipe=None, cuda=None, gpu=None, venv=None, dry_run=False):
        invoke_setup(c, recipe=recipe, cuda=cuda, gpu=gpu, venv=venv, dry_run=dry_run)
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from typing import Any

#: What a nox session installs to get gpuenv: the package, or a path to a checkout.
DEFAULT_REQUIREMENT = "gpuenv"


def setup_command(python: str, args: Sequence[str]) -> list[str]:
    """The one command both front ends run."""
    return [python, "-m", "gpuenv", "setup", *args]


def nox_gpu_env(session: Any, *, requirement: str = DEFAULT_REQUIREMENT) -> None:
    """Install gpuenv into the session and run ``gpuenv setup`` with the session's posargs.

    uv comes along (gpuenv's ``uv`` extra, whatever ``requirement`` says), so
    ``--installer auto``, the default, finds it next to the session's interpreter.
    """
    session.install(requirement, "uv")
    session.run(*setup_command("python", session.posargs))


def setup_args(
    *,
    recipe: str | None = None,
    cuda: str | None = None,
    gpu: str | None = None,
    arch: str | None = None,
    venv: str | None = None,
    torch_index: str | None = None,
    installer: str | None = None,
    dry_run: bool = False,
) -> list[str]:
    args: list[str] = []
    for flag, value in (("--recipe", recipe), ("--cuda", cuda), ("--gpu", gpu), ("--arch", arch),
                        ("--venv", venv), ("--torch-index", torch_index), ("--installer", installer)):
        if value:
            args += [flag, value]
    if dry_run:
        args.append("--dry-run")
    return args


def invoke_setup(c: Any, *, python: str | None = None, **options: Any) -> Any:
    """Run ``gpuenv setup`` from an invoke task; options as in :func:`setup_args`."""
    command = setup_command(python or sys.executable, setup_args(**options))
    return c.run(shlex.join(command), pty=False)
