"""What an env's interpreter says, read as data from a process gpuenv does not trust: its answers
checked for the shape gpuenv's scripts print (:class:`AnswerError` otherwise), the script text that
reads a damaged distribution's metadata without failing or waiting, and the files Python reads when
it starts, checked before it is started (a FIFO there would make it wait forever)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gpuenv.errors import StepError

#: Script text (for the env's interpreter) that reads one distribution's metadata however damaged it
#: is: a METADATA that is not UTF-8 (old packages have Latin-1 ones) fails importlib.metadata, so it
#: is read as bytes and its headers decoded with replacement; a FIFO or a device where the metadata
#: goes is not read at all (it would hang the query). ``meta_header(dist, name)`` gives one header.
DISTRIBUTION_READER = """
import importlib.metadata, json, os, stat
def _metadata_files(dist):
    base = getattr(dist, "_path", None)
    if base is None:
        return []
    base = str(base)
    return [os.path.join(base, f) for f in ("METADATA", "PKG-INFO")] if os.path.isdir(base) else [base]
def _regular(path):
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True
def _headers(dist):
    for path in _metadata_files(dist):
        try:
            with open(path, "rb") as handle:
                raw = handle.read(1 << 24)
        except OSError:
            continue
        headers = {}
        for line in raw.decode("utf-8", "replace").splitlines():
            if not line.strip():
                break
            key, sep, value = line.partition(":")
            if sep:
                headers.setdefault(key.strip().lower(), value.strip())
        return headers
    return {}
def meta_header(dist, name):
    if not all(_regular(path) for path in _metadata_files(dist)):
        return None
    try:
        return dist.metadata[name]
    except Exception:
        return _headers(dist).get(name.lower())
def name_and_version(dist):
    name = meta_header(dist, "Name")
    if not name:
        return None, ""
    try:
        return name, dist.version
    except Exception:
        return name, meta_header(dist, "Version") or ""
"""


class AnswerError(StepError):
    """The env's interpreter answered a query with something gpuenv's script does not print (a
    ``python`` that is a wrapper, a damaged site-packages, a hostile sitecustomize)."""

    def __init__(self, what: str, data: Any) -> None:
        shown = repr(data)
        super().__init__(f"the env's interpreter answered gpuenv's query with something else than asked "
                         f"({what}): {shown[:200]}{'…' if len(shown) > 200 else ''}",
                         hint="is the env's python a real Python? recreate the env with 'gpuenv setup'")


def answer_field(data: Any, key: str) -> Any:
    """``data[key]`` of an answer, or :class:`AnswerError`."""
    if not isinstance(data, dict) or key not in data:
        raise AnswerError(f"no '{key}'", data)
    return data[key]


def answer_text(data: Any, key: str, *, optional: bool = False) -> Any:
    value = answer_field(data, key)
    if not (isinstance(value, str) or (optional and value is None)):
        raise AnswerError(f"a {key} that is not a string", data)
    return value


def check_startup_files(venv: Path) -> None:
    """Raise StepError if a file the env's Python reads when it starts (``pyvenv.cfg``, a ``.pth``
    of site-packages) is a FIFO or a device: Python would wait on it forever."""
    candidates = [venv / "pyvenv.cfg", *venv.glob("lib/*/site-packages/*.pth"),
                  *venv.glob("Lib/site-packages/*.pth")]
    for path in candidates:
        if os.path.exists(path) and not os.path.isfile(path):
            raise StepError(f"{path} is not a regular file (a FIFO or a device): the env's Python would "
                            "wait on it forever when it starts", hint="remove it, or recreate the env")
