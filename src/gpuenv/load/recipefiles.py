"""The lines of a recipe's ``[packages] requirements-files`` the recipe does not install itself.

The repository's files stay the source of truth: they are read again every time
the recipe is loaded, with pip's grammar (:mod:`gpuenv.load.requirements`).
torch and its paired packages come from ``[torch]``, an extension from its
``[[extensions]]`` table, the repository itself from ``[repo]``: their lines
are left out, each with why. Two pins of one distribution that cannot hold
together keep the one of the file named first. A line pip refuses is left out
and reported (:attr:`FilesPackages.refused`): the plan stops on it, naming the
file and line, rather than setup failing in pip.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gpuenv.errors import InputError
from gpuenv.load.gitindex import repo_key
from gpuenv.load.requirements import read_requirements
from gpuenv.plan.pins import conflict


@dataclass
class FilesPackages:
    kept: dict[str, None] = field(default_factory=dict)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    #: "requirements.txt:41: -e ./sd-scripts: pip refuses it (…)".
    refused: list[str] = field(default_factory=list)


def read_files(
    files: tuple[Path, ...],
    handled: Mapping[str, str],
    local: Mapping[Path, str],
    base: Path | None,
    repositories: Mapping[str, str] | None = None,
) -> FilesPackages:
    """Read ``files`` in order; ``handled`` maps a distribution the recipe installs itself to why, ``local``
    a local tree (resolved) to why, ``repositories`` a git repository the recipe builds from
    (:func:`gpuenv.load.gitindex.repo_key`) to why. Raises InputError for a file that cannot be read."""
    repositories = repositories or {}
    out = FilesPackages()
    pins: dict[str, tuple[str, str, str]] = {}
    for path in files:
        parsed = read_requirements(path, base=base or project_base(path), lenient=True)
        for line in parsed.requirements:
            tree = line.parsed.local if line.parsed is not None else None
            if tree is not None and resolved(tree) in local:
                out.left_out.append(f"{line.where}: {line.text}: {local[resolved(tree)]}")
                continue
            if line.name is not None and line.name in handled:
                out.left_out.append(f"{line.where}: {line.text}: {handled[line.name]}")
                continue
            key = repo_key(line.parsed.url or "") if line.parsed is not None and line.parsed.vcs else ""
            if key in repositories:
                out.left_out.append(f"{line.where}: {line.text}: {repositories[key]}")
                continue
            spec = line.parsed.specifier if line.parsed is not None else ""
            first = pins.get(line.name or "")
            if line.name and first is not None and conflict(spec, first[0]):
                out.left_out.append(
                    f"{line.where}: {line.text}: conflicts with {first[2]} ({first[1]}), which comes first"
                )
                continue
            if line.name and first is None:
                pins[line.name] = (spec, line.where, line.text)
            out.kept[line.text] = None
            out.left_out += [
                f"{line.where}: {option}: ignored by pip on a requirement line"
                for option in line.ignored_options
            ]
        out.left_out += [f"{line.where}: {line.text}: {why}" for line, why in parsed.ignored]
        for line, why in parsed.invalid:
            out.refused.append(f"{line.where}: {line.text!r}: pip refuses it: {why}")
            out.left_out.append(f"{line.where}: {line.text}: pip refuses it: {why}")
        out.index_url = out.index_url or parsed.index_url
        out.extra_index_urls += parsed.extra_index_urls
        out.find_links += parsed.find_links
    return out


def project_base(path: Path) -> Path:
    """Where pip would run for a requirements file: the root of the project that holds it."""
    start = Path(os.path.abspath(path)).parent
    for directory in (start, *start.parents):
        if any((directory / f).exists() for f in ("pyproject.toml", "setup.py", "setup.cfg", ".git")):
            return directory
    return start


def resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop
        return path


__all__ = ["FilesPackages", "InputError", "project_base", "read_files", "resolved"]
