"""What is installed in a venv, read from its ``*.dist-info`` / ``*.egg-info`` files as its interpreter
would find them, without starting it: the no-op check of a re-run is made of little else.

Where the files alone do not answer (an env that also sees the system's
site-packages, an egg on its path), :func:`installed_on_disk` says None and the
caller asks the env's interpreter instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from packaging.utils import canonicalize_name

from gpuenv.inputs import UnreadableInput, read_input


def installed_on_disk(venv: Path) -> dict[str, str] | None:
    """What ``importlib.metadata.distributions()`` finds in ``venv``, read from the metadata files.

    The places it looks: the env's site-packages, then each directory a
    ``.pth`` file there adds, in the order ``site`` adds them (the first
    distribution of a name wins, as in the interpreter). None where the files
    alone do not answer: no single site-packages, an env that also sees the
    system's (``include-system-site-packages = true``), an egg or an archive
    on its path.
    """
    config = venv / "pyvenv.cfg"
    try:
        settings = dict(line.partition("=")[::2] for line in read_input(config).splitlines())
    except UnreadableInput:
        return None
    keys = {k.strip().lower(): v.strip().lower() for k, v in settings.items()}
    if keys.get("include-system-site-packages") != "false":
        return None
    if os.name == "nt":
        candidates = [venv / "Lib" / "site-packages"]
    else:
        candidates = sorted(venv.glob("lib/*/site-packages"))
    if len(candidates) != 1 or not candidates[0].is_dir():
        return None
    site = candidates[0]
    found: dict[str, str] = {}
    try:
        for directory in [site, *_pth_directories(site)]:
            for name, version in _metadata_in(directory):
                found.setdefault(canonicalize_name(name), version)
    except (OSError, UnreadableInput):
        return None
    return found


def _pth_directories(site: Path) -> list[Path]:
    """The directories the ``.pth`` files in ``site`` add to sys.path (lines not starting with import)."""
    added: list[Path] = []
    for pth in sorted(site.glob("*.pth")):
        for line in read_input(pth, errors="replace").splitlines():
            line = line.strip()
            if not line or line.startswith("#") or line.startswith(("import ", "import\t")):
                continue
            if "\0" in line:  # site.py finds no such directory either
                continue
            directory = Path(os.path.realpath(site / line))  # a link loop stays a path that does not exist
            if directory.suffix.lower() == ".egg" or (directory.exists() and not directory.is_dir()):
                raise OSError(f"{directory}: an egg or an archive on sys.path: the interpreter reads it")
            if directory.is_dir() and directory not in added:
                added.append(directory)
    return added


def _metadata_in(directory: Path) -> list[tuple[str, str]]:
    """(Name, Version) of each distribution whose metadata lies directly in ``directory``."""
    found = []
    for entry in sorted(directory.iterdir()):
        if entry.suffix == ".dist-info":
            headers = _headers(entry / "METADATA")
        elif entry.suffix == ".egg-info":
            headers = _headers(entry / "PKG-INFO" if entry.is_dir() else entry)
        else:
            continue
        if headers.get("name") and "version" in headers:
            found.append((headers["name"], headers["version"]))
    return found


def _headers(path: Path) -> dict[str, str]:
    """The first Name and Version headers of a core-metadata file (the headers end at a blank line)."""
    headers: dict[str, str] = {}
    if not path.is_file():
        return headers
    # errors="replace": old packages have Latin-1 METADATA; only the Name and Version are read.
    for line in read_input(path, errors="replace").splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and key.lower() in ("name", "version"):
            headers.setdefault(key.lower(), value.strip())
    return headers
