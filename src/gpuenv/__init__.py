"""gpuenv: PyTorch GPU environments that actually work.

The library is the product; ``gpuenv.cli``, ``noxfile.py`` and ``tasks.py`` are thin front ends over
its API (:mod:`gpuenv.api`)::

    import gpuenv

    project = gpuenv.Project(recipe="envs/llm.toml", gpu="H100")
    plan = project.plan()                    # what setup would do; plan.blockers: what would stop it
    project.setup()                          # the env (.venv), torch and the extensions built for H100

Importing gpuenv imports nothing else: each name below is loaded when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Each public name and the module that holds it.
_WHERE = {
    "Project": "gpuenv.api", "PreparedSetup": "gpuenv.api", "Caches": "gpuenv.api",
    "CacheListing": "gpuenv.api", "Pruned": "gpuenv.api", "gpus": "gpuenv.api", "init": "gpuenv.api",
    "check_dependencies": "gpuenv.api",
    "OPTIONS": "gpuenv.options", "Option": "gpuenv.options", "Chosen": "gpuenv.options",
    "GpuenvError": "gpuenv.errors", "InputError": "gpuenv.errors", "RecipeError": "gpuenv.errors",
    "UnsatisfiableError": "gpuenv.errors", "StepError": "gpuenv.errors",
    "Plan": "gpuenv.plan.envplan", "Hardware": "gpuenv.plan.hardware", "Recipe": "gpuenv.plan.recipespec",
    "__version__": "gpuenv.version",
}

__all__ = [
    "OPTIONS", "CacheListing", "Caches", "Chosen", "GpuenvError", "Hardware", "InputError", "Option", "Plan",
    "PreparedSetup", "Project", "Pruned", "Recipe", "RecipeError", "StepError", "UnsatisfiableError",
    "__version__", "check_dependencies", "gpus", "init",
]

if TYPE_CHECKING:  # for type checkers only; at run time each is imported when first asked for
    from gpuenv.api import (
        CacheListing,
        Caches,
        PreparedSetup,
        Project,
        Pruned,
        check_dependencies,
        gpus,
        init,
    )
    from gpuenv.errors import GpuenvError, InputError, RecipeError, StepError, UnsatisfiableError
    from gpuenv.options import OPTIONS, Chosen, Option
    from gpuenv.plan.envplan import Plan
    from gpuenv.plan.hardware import Hardware
    from gpuenv.plan.recipespec import Recipe
    from gpuenv.version import __version__


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'gpuenv' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
