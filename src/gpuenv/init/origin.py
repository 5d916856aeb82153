"""Where the gpuenv running now came from, and what a repository's nox sessions install and run: what
``gpuenv init`` writes into a repository's noxfile, and what gpuenv's own nox sessions do."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

#: What a nox session installs to get gpuenv when nothing says otherwise.
DEFAULT_REQUIREMENT = "gpuenv"
#: The variable that overrides it: a version pin, a git URL or the path of a checkout.
REQUIREMENT_VARIABLE = "GPUENV_REQUIREMENT"
#: nox session → the gpuenv command it runs.
NOX_SESSIONS = {"gpu-env": "setup", "gpu-plan": "plan", "gpu-doctor": "doctor"}


def gpuenv_origin() -> str:
    """A requirement that installs the gpuenv running now: its checkout, its git URL, or its version.

    Read from the install's own record (PEP 610 ``direct_url.json``); a gpuenv
    run from a source tree without being installed is that tree.
    """
    try:
        dist = metadata.distribution("gpuenv")
    except metadata.PackageNotFoundError:
        return source_tree() or DEFAULT_REQUIREMENT
    text = dist.read_text("direct_url.json")
    if text:
        try:
            record = json.loads(text)
        except ValueError:
            record = {}
        url = str(record.get("url", ""))
        vcs = record.get("vcs_info")
        if isinstance(vcs, dict) and url:
            commit = vcs.get("commit_id") or vcs.get("requested_revision")
            return f"gpuenv @ {vcs.get('vcs', 'git')}+{url}" + (f"@{commit}" if commit else "")
        if url.startswith("file://"):
            path = url[len("file://"):]
            return path if Path(path).is_dir() else f"gpuenv @ {url}"
        if url:
            return f"gpuenv @ {url}"
    return f"gpuenv=={dist.version}"


def source_tree() -> str | None:
    """The checkout this gpuenv runs from (src/gpuenv/init/origin.py → the folder with pyproject.toml)."""
    root = Path(__file__).resolve().parents[3]
    return str(root) if (root / "pyproject.toml").is_file() else None
