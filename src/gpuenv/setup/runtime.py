"""What kernels compiled while the env runs get: the plan's toolkit, archs and job count.

``torch.utils.cpp_extension.load``, DeepSpeed's op builder and the like build
CUDA code when the program runs, long after setup. Without help they guess:
``No CUDA runtime is found, using CUDA_HOME='/usr/local'``, every arch of the
wheel or an ``IndexError`` with no GPU. Setup writes a ``.pth`` file into the
env's site-packages that fills in ``CUDA_HOME``, ``TORCH_CUDA_ARCH_LIST`` and
``MAX_JOBS`` at interpreter start, so it holds whether the env is activated or
its python is run by path. What the user set wins: ``TORCH_CUDA_ARCH_LIST=9.0
python train.py`` keeps 9.0; the file only fills what is unset.
``GPUENV_RUNTIME_ENV=0`` turns it off for one run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from gpuenv.inputs import UnreadableInput, parse_json, read_input
from gpuenv.outputs import path_inside, write_atomic
from gpuenv.runner import RUNTIME_OFF_SWITCH

#: The file in site-packages; the leading underscore sorts it before most .pth files.
RUNTIME_PTH = "_gpuenv_runtime.pth"


#: What the line holds around the JSON of the variables: they are set where the environment has
#: none of them (a .pth line is one statement list, so a filtered update rather than a loop).
_FILL_START = "os.environ.update({k: v for k, v in "
_FILL_END = ".items() if k not in os.environ})"
#: How earlier setups wrote it (every variable replaced): still read, so doctor reports such an env.
_OLD_START = "os.environ.update("


def runtime_pth_line(env: Mapping[str, str]) -> str:
    """The one import line a .pth may hold: fill in each variable the user has not set, unless off."""
    values = json.dumps(dict(sorted(env.items())))
    return (f"import os; os.environ.get({RUNTIME_OFF_SWITCH!r}) == '0' or "
            f"{_FILL_START}{values}{_FILL_END}  # written by gpuenv setup\n")


def write_runtime_env(site_packages: Path, env: Mapping[str, str], *, inside: Path | None = None) -> Path:
    """Write (atomically) the .pth that gives ``env`` to code running in the env; remove it if empty.

    ``inside``: the env, which the site-packages its interpreter named must be in (an env that
    answers with another folder does not get gpuenv to write there).
    """
    path = site_packages / RUNTIME_PTH
    if inside is not None:
        path_inside(inside, path)
    if not env:
        path.unlink(missing_ok=True)
        return path
    write_atomic(path, runtime_pth_line(env).encode("utf-8"))
    return path


def read_runtime_env(site_packages: Path) -> dict[str, str] | None:
    """The variables the env's .pth sets, or None when there is none (or it is not gpuenv's)."""
    try:
        text = read_input(site_packages / RUNTIME_PTH)
    except UnreadableInput:
        return None
    start, end = text.find(_FILL_START), text.rfind(_FILL_END)
    if start >= 0 and end > start:
        start += len(_FILL_START)
    else:
        start, end = text.find(_OLD_START), text.rfind(")")
        if start < 0 or end < start:
            return None
        start += len(_OLD_START)
    try:
        data = parse_json(text[start:end])
    except UnreadableInput:
        return None
    if not isinstance(data, dict):
        return None
    # A value that is not a string, or holds a NUL, is not one gpuenv wrote (and no path holds it).
    return {str(k): v for k, v in data.items() if isinstance(v, str) and "\0" not in v and "\0" not in k}
