"""Paths in the recipe ``gpuenv init`` writes: found relative to the repository root, written relative
to the recipe (as the recipe loader resolves them)."""

from __future__ import annotations

import os


def from_root(requirement: str, to_root: str) -> str:
    """A path relative to the repository root, made relative to the recipe (paths in a recipe are); also
    the path of "NAME @ ./path" and "NAME @ file:path" (a folder whose name is no distribution name)."""
    name, at, target = requirement.partition(" @ ")
    if at and target.startswith("file:") and not target.startswith("file:/"):
        return f"{name} @ file:{from_root('./' + target.removeprefix('file:'), to_root)}"
    if at and target.startswith(("./", "../")):
        return f"{name} @ {from_root(target, to_root)}"
    if not requirement.startswith(("./", "../")) and requirement not in (".", ".."):
        return requirement
    joined = os.path.normpath(os.path.join(to_root, requirement))
    return joined if joined.startswith("..") or joined == "." else "./" + joined
