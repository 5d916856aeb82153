"""gpuenv's library API: what the command, the nox sessions, the invoke tasks and scripts call.

- :class:`Project`: a recipe on a machine with options (by the names of :data:`gpuenv.options.OPTIONS`);
  it plans, sets up, checks (doctor) and exports.
- :class:`Caches`: the wheel and toolkit caches (``Project(...).caches``): list, prune, export, push.
- :func:`gpus` and :func:`init`: the GPU names gpuenv knows, and a repository bootstrapped.
- :func:`check_dependencies`: gpuenv run from a checkout, in a Python that may lack what it needs.

The api layer sits on the command packages (doctor, init, export), setup, cache, probe and plan;
only the front ends (cli, integrations) and scripts import it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gpuenv.api.caches import CacheListing, Caches, Pruned
from gpuenv.api.project import PreparedSetup, Project
from gpuenv.errors import InputError
from gpuenv.init.origin import (
    DEFAULT_REQUIREMENT,
    NOX_SESSIONS,
    REQUIREMENT_VARIABLE,
    gpuenv_origin,
    source_tree,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gpuenv.init.writer import InitResult
    from gpuenv.plan.knowledge import GpuModel

__all__ = ["DEFAULT_REQUIREMENT", "NOX_SESSIONS", "REQUIREMENT_VARIABLE", "CacheListing", "Caches",
           "PreparedSetup", "Project", "Pruned", "check_dependencies", "gpuenv_origin", "gpus", "init"]


def gpus(substring: str = "") -> list[GpuModel]:
    """The GPU models gpuenv knows whose name contains ``substring`` (ignoring case, spaces, dashes)."""
    from gpuenv.probe.machine import gpu_models_matching

    return gpu_models_matching(substring)


def init(root: Path | None = None, *, name: str | None = None, pyproject: bool = False,
         torch: str | None = None, extension: Sequence[str] = ()) -> InitResult:
    """``gpuenv init``: write gpuenv's files into the repository at ``root`` (default: here) from what it
    declares; what exists is skipped."""
    from gpuenv.init.existing import torch_in_this_python
    from gpuenv.init.writer import init_repo

    return init_repo(root or Path.cwd(), name=name, into_pyproject=pyproject, torch_version=torch,
                     extensions=extension, here=torch_in_this_python())


def check_dependencies() -> None:
    """Raise :class:`~gpuenv.errors.InputError` if this Python lacks a package gpuenv needs.

    Installed gpuenv always has them; a checkout's tasks.py run by an invoke installed alone does not.
    Checked before a command starts, so it stops before it changes anything.
    """
    try:
        import gpuenv.doctor.diagnosis
        import gpuenv.export.uv
        import gpuenv.init.writer
        import gpuenv.setup.run  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "gpuenv").split(".")[0] == "gpuenv":
            raise
        tree = source_tree()
        install = f"{sys.executable} -m pip install " + (f"-e {tree}" if tree else DEFAULT_REQUIREMENT)
        raise InputError(f"gpuenv needs the module {exc.name!r}, which {sys.executable} does not have",
                         hint=f"install gpuenv with its dependencies into that Python: {install}") from None
