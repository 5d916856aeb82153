"""The CUDA toolkits on disk: where their roots are and which release each one is.

Candidates come from ``CUDA_HOME``, ``CUDA_PATH``, every ``nvcc`` on ``PATH`` and
the usual install locations. A root is a directory with ``bin/nvcc`` and the
runtime headers. Two levels above an ``nvcc`` on ``PATH`` is not always a root:
a wrapper script such as ``/usr/local/bin/nvcc`` (``exec
/usr/local/cuda-13.0/bin/nvcc "$@"``) would give ``/usr/local``, and a
``CUDA_HOME`` made that way fails at link time (``ld: cannot find -lcudart``). For such an nvcc the
real root is read from the script (the ``.../bin/nvcc`` it executes) or, failing
that, asked of nvcc itself: ``nvcc --dryrun`` prints ``#$ TOP=<root>/bin/..``.

A broken candidate is skipped, never raised: the probe must answer on any box.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace

from gpuenv.errors import GpuenvError, InputError
from gpuenv.plan.hardware import Toolkit
from gpuenv.runner import CommandTimeout, Runner, SubprocessRunner, bounded, query_timeout

logger = logging.getLogger(__name__)

#: Where toolkits are installed when nothing points at them (globs, in this order).
STANDARD_LOCATIONS: tuple[str, ...] = ("/usr/local/cuda", "/usr/local/cuda-*", "/opt/cuda*")

#: "Cuda compilation tools, release 13.0, V13.0.88"
_RELEASE = re.compile(r"release ([0-9]{1,3})\.([0-9]{1,3})", re.ASCII)
_FULL = re.compile(r"\bV([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,6})", re.ASCII)
#: An absolute ``<root>/bin/nvcc`` inside a wrapper script.
_SCRIPT_NVCC = re.compile(r"(/[^\s'\"`;|&<>()]+)/bin/nvcc(?![\w.-])")
#: "#$ TOP=/usr/local/cuda-13.0/bin/.." in ``nvcc --dryrun`` output.
_TOP = re.compile(r"^#\$ TOP=(.+)$", re.MULTILINE)


def find_toolkits(
    environ: Mapping[str, str] | None = None,
    runner: Runner | None = None,
    *,
    locations: Sequence[str] = STANDARD_LOCATIONS,
) -> tuple[Toolkit, ...]:
    """Every CUDA toolkit found, newest release first, one per real root.

    ``environ`` defaults to ``os.environ``; ``runner`` to a
    :class:`SubprocessRunner` with that environment. ``nvcc --version`` runs
    once per distinct root; a wrapper ``nvcc`` on ``PATH`` costs one
    ``nvcc --dryrun`` more. Among toolkits of one release, the order of the
    candidates (``CUDA_HOME`` first) is kept.
    """
    env = os.environ if environ is None else environ
    run = runner or SubprocessRunner(env=None if environ is None else env)
    roots = _unique_roots(_candidates(env, run, locations))
    found = [tk for tk in (_toolkit_at(root, run) for root in roots) if tk is not None]
    return tuple(sorted(found, key=lambda tk: tk.version_tuple, reverse=True))


def is_toolkit_root(path: str) -> bool:
    """Whether ``path`` holds ``bin/nvcc`` and ``cuda_runtime.h`` (flat or under targets/)."""
    if not os.access(os.path.join(path, "bin", "nvcc"), os.X_OK):
        return False
    if os.path.isfile(os.path.join(path, "include", "cuda_runtime.h")):
        return True
    return bool(glob.glob(os.path.join(glob.escape(path), "targets", "*", "include", "cuda_runtime.h")))


def _candidates(env: Mapping[str, str], run: Runner, locations: Sequence[str]) -> Iterator[str]:
    for key in ("CUDA_HOME", "CUDA_PATH"):
        if env.get(key):
            yield env[key]
    for nvcc in _nvccs_on_path(env.get("PATH", "")):
        root = _root_of(nvcc, run)
        if root is not None:
            yield root
    for pattern in locations:
        yield from sorted(glob.glob(pattern))


def _nvccs_on_path(path: str) -> Iterator[str]:
    seen: set[str] = set()
    for directory in path.split(os.pathsep):
        nvcc = os.path.join(directory, "nvcc")
        if directory and nvcc not in seen and os.path.isfile(nvcc) and os.access(nvcc, os.X_OK):
            seen.add(nvcc)
            yield nvcc


def _root_of(nvcc: str, run: Runner) -> str | None:
    """The toolkit root an nvcc on PATH belongs to, or None if it cannot be told."""
    for binary in (os.path.abspath(nvcc), os.path.realpath(nvcc)):
        root = os.path.dirname(os.path.dirname(binary))
        if is_toolkit_root(root):
            return root
    return _root_in_script(nvcc) or _ask_for_root(nvcc, run)


def _root_in_script(nvcc: str) -> str | None:
    """The root of the nvcc a wrapper script executes, read without running it."""
    try:
        with open(nvcc, "rb") as f:
            head = f.read(65536)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    text = head.decode("utf-8", errors="replace")
    for match in _SCRIPT_NVCC.finditer(text):
        root = os.path.normpath(match.group(1))
        if is_toolkit_root(root):
            return root
    return None


def _ask_for_root(nvcc: str, run: Runner) -> str | None:
    # --dryrun --version prints only the banner; a dry-run preprocess of an
    # empty file prints nvcc.profile's variables, TOP among them. (nvcc 13 still
    # runs the host compiler for its properties, so this fails without gcc.)
    try:
        output = bounded(run, query_timeout())([nvcc, "--dryrun", "-x", "cu", "-E", os.devnull])
    except (GpuenvError, OSError) as exc:
        logger.debug("skipping %s: cannot ask it for its root: %s", nvcc, exc)
        return None
    match = _TOP.search(output)
    top = os.path.normpath(match.group(1).strip().strip('"')) if match else None
    if top is None or not is_toolkit_root(top):
        logger.debug("skipping %s: its root %s is not a toolkit root", nvcc, top)
        return None
    return top


def _unique_roots(candidates: Iterable[str]) -> Iterator[str]:
    seen: set[str] = set()
    for candidate in candidates:
        root = os.path.realpath(candidate)
        if root in seen:
            continue
        seen.add(root)
        if is_toolkit_root(root):
            yield root
        else:
            logger.debug("skipping %s: no bin/nvcc with include/cuda_runtime.h", candidate)


def _toolkit_at(root: str, run: Runner) -> Toolkit | None:
    nvcc = os.path.join(root, "bin", "nvcc")
    try:
        output = bounded(run, query_timeout())([nvcc, "--version"])
    except CommandTimeout as exc:
        # A toolkit that hangs is left out, and said so: it would otherwise vanish without a word.
        logger.warning("skipped the toolkit at %s: %s --version did not answer within %g s", root, nvcc,
                       exc.seconds)
        return None
    except (GpuenvError, OSError) as exc:
        logger.debug("skipping %s: %s", nvcc, exc)
        return None
    match = _RELEASE.search(output)
    if match is None:
        logger.debug("skipping %s: no 'release X.Y' in its --version output", nvcc)
        return None
    full = _FULL.search(output)
    return Toolkit(nvcc=nvcc, version=f"{match[1]}.{match[2]}", home=root, release=full[1] if full else "")


# -- the toolkit a user names --------------------------------------------------------


def toolkit_at(path: str, runner: Runner | None = None) -> Toolkit:
    """The toolkit at ``path`` (its root, its bin/ or its nvcc), checked by its nvcc version.

    Raises InputError when no nvcc there answers with a CUDA release.
    """
    given = os.path.abspath(os.path.expanduser(path))
    if os.path.basename(given) == "nvcc":
        given = os.path.dirname(given)
    root = os.path.dirname(given) if os.path.basename(given) == "bin" else given
    if not is_toolkit_root(root):
        raise InputError(f"--toolkit {path}: {root} is not a CUDA toolkit root (no bin/nvcc with "
                         "include/cuda_runtime.h)",
                         hint="give the toolkit's root (what CUDA_HOME would name), or auto, system or pypi")
    toolkit = _toolkit_at(root, runner or SubprocessRunner())
    if toolkit is None:
        raise InputError(f"--toolkit {path}: {root}/bin/nvcc does not say which CUDA release it is",
                         hint="check that it runs: " + os.path.join(root, "bin", "nvcc") + " --version")
    return replace(toolkit, source="path")
