"""The files ``gpuenv init`` writes besides the recipe: the noxfile (and what to add to one that
exists), tasks.py (and its lines), and the README section, with the commands that use the recipe."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from gpuenv.init.origin import NOX_SESSIONS, REQUIREMENT_VARIABLE
from gpuenv.load.recipe import PYPROJECT_TABLE

README_HEADING = "## GPU environment"


def noxfile_text(origin: str) -> str:
    """The noxfile init writes: gpuenv's sessions, without importing gpuenv (nox -l works with nox alone)."""
    return f'''\
"""nox sessions: `nox -s gpu-env` sets up this repository's GPU environment with gpuenv.

gpu-env, gpu-plan and gpu-doctor run `gpuenv setup`, `plan` and `doctor` with the
arguments after `--` (e.g. `nox -s gpu-env -- --gpu H100`).
"""

from __future__ import annotations

import os

import nox

# gpuenv is installed into each session, not next to nox: from ${REQUIREMENT_VARIABLE}
# (a version, a git URL or a path), else from where `gpuenv init` ran from.
GPUENV = os.environ.get("{REQUIREMENT_VARIABLE}", {json.dumps(origin)})


{nox_snippet()}'''


def noxfile_addition(origin: str) -> str:
    """What to add by hand to a noxfile that exists: gpuenv's sessions and what they install."""
    return (f"import os\n\nimport nox\n\nGPUENV = os.environ.get({json.dumps(REQUIREMENT_VARIABLE)}, "
            f"{json.dumps(origin)})\n\n\n{nox_snippet()}")


def nox_snippet() -> str:
    return f'''\
def _gpuenv_session(command: str):  # type: ignore[no-untyped-def]
    def session(session: nox.Session) -> None:
        session.install(GPUENV, "uv")  # uv: the installer gpuenv picks when it is there
        session.run("python", "-m", "gpuenv", command, *session.posargs)

    session.__doc__ = f"gpuenv {{command}} (arguments after -- go to it)"
    return session


for _name, _command in {json.dumps(NOX_SESSIONS)}.items():
    nox.session(name=_name, default=False)(_gpuenv_session(_command))
'''


def tasks_text(origin: str) -> str:
    """The tasks.py init writes: gpuenv's invoke collection (setup, plan, probe, doctor, cache)."""
    return f'''\
"""invoke tasks: `invoke setup` sets up this repository's GPU environment with gpuenv.

Also plan, probe, doctor and cache; each task has every option its gpuenv command has
(`invoke --help setup`).
"""

{tasks_snippet(origin)}'''


def tasks_snippet(origin: str) -> str:
    return f'''\
try:
    from gpuenv.integrations import invoke_collection
except ImportError as exc:  # invoke runs in an interpreter without gpuenv
    raise SystemExit("these tasks need gpuenv next to invoke: "
                     {json.dumps("pip install " + shlex.quote(with_extra(origin, "frontends")))}) from exc

namespace = invoke_collection()
'''


def with_extra(origin: str, extra: str) -> str:
    """gpuenv from ``origin`` with an extra: "/src/gpuenv[frontends]", "gpuenv[frontends] @ URL"."""
    if origin.startswith("gpuenv @ "):
        return f"gpuenv[{extra}] @ " + origin.removeprefix("gpuenv @ ")
    if origin.startswith("gpuenv=="):
        return f"gpuenv[{extra}]==" + origin.removeprefix("gpuenv==")
    if origin == "gpuenv":
        return f"gpuenv[{extra}]"
    return f"{origin}[{extra}]"


def readme_section(recipe: Path, origin: str) -> str:
    """The README section: what the recipe is and the commands that use it."""
    where = f"the `[{PYPROJECT_TABLE}]` table of `pyproject.toml`" if recipe.name == "pyproject.toml" \
        else f"`{recipe.as_posix()}`"
    install = shlex.quote(with_extra(origin, "frontends"))
    return f"""\
{README_HEADING}

The GPU environment of this repository is described by {where} and set up by
gpuenv: it picks the PyTorch release and CUDA build for this machine's GPUs and
driver, builds the CUDA extensions against that torch, and installs this
repository itself last.

```
pip install {install}   # once: gpuenv, with nox and invoke
gpuenv probe                      # what this machine has
gpuenv plan                       # what setup would install here
nox -s gpu-env                    # set up .venv (or: invoke setup, gpuenv setup)
gpuenv doctor --venv .venv        # check that it runs on these GPUs
```

The nox sessions (gpu-env, gpu-plan, gpu-doctor) install gpuenv from
`${REQUIREMENT_VARIABLE}` (default: `{origin}`; a version, a git URL or a path).
Arguments after `--` go to gpuenv, e.g. `nox -s gpu-env -- --gpu H100` to build
for a GPU this machine does not have. Kernels the code compiles when it runs
(`torch.utils.cpp_extension.load`) get the same toolkit and GPU archs.
"""
