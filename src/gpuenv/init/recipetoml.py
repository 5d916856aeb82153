"""The recipe ``gpuenv init`` writes: what goes in it, sorted from the repository scan and the
command line (:class:`RecipeParts`), and its TOML text, for envs/default.toml or pyproject.toml."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

from gpuenv.init.recipepaths import from_root
from gpuenv.init.reposcan import RepoScan
from gpuenv.tomlwrite import toml_value

#: The torch a recipe allows when the repository pins none.
DEFAULT_TORCH = ">=2.1"

#: What envs/default.toml starts with (a table appended to pyproject.toml has none).
RECIPE_HEADER = """\
# This repository's GPU environment, for gpuenv: `gpuenv plan` shows what it would
# install on this machine, `nox -s gpu-env` (or `gpuenv setup`) sets it up in .venv.
# Written by `gpuenv init` from what the repository declares; edit it freely.

"""


@dataclass(frozen=True)
class RecipeParts:
    """What the recipe holds, sorted from the repository and the command line."""

    name: str | None = None
    python: str | None = None
    torch_version: str = DEFAULT_TORCH
    cuda: str | None = None
    torch_packages: tuple[str, ...] = ()
    #: Requirements or paths, relative to the repository root ("./csrc/ext").
    extensions: tuple[str, ...] = ()
    requirement_files: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    repo: bool = False
    repo_extras: tuple[str, ...] = ()
    #: Where a forced CUDA variant came from ("torch==2.0.1+cu118 in requirements.txt:2").
    cuda_origin: str = ""
    #: Requirements files for extras, not installed: (path, extra, why), written as comments.
    optional_files: tuple[tuple[str, str, str], ...] = ()
    #: The torch already in the env init runs in, which the recipe takes as it is (use = "existing").
    existing: str = ""


def recipe_parts(scan: RepoScan, name: str | None, torch_version: str | None,
                  extensions: Sequence[str]) -> RecipeParts:
    paired: list[str] = []
    for f in scan.placed("paired"):
        text = _without_local_label(f.text)
        if text not in paired and not any(_name(p) == _name(text) for p in paired):
            paired.append(text)
    exts = list(dict.fromkeys([*extensions, *(f.text for f in scan.placed("extension")),
                               *(f.text for f in scan.placed("local-extension"))]))
    packages = [f.text for f in scan.placed("package") if f.kept_in is None]
    return RecipeParts(
        name=name, python=scan.python, torch_version=torch_version or scan.torch_version or DEFAULT_TORCH,
        cuda=scan.cuda, torch_packages=tuple(paired), extensions=tuple(exts),
        requirement_files=scan.requirement_files, packages=tuple(dict.fromkeys(packages)),
        repo=scan.installable,
        repo_extras=scan.selected_extras, cuda_origin=scan.cuda_origin, optional_files=scan.optional_files,
    )


def _name(text: str) -> str:
    try:
        return Requirement(text).name.lower()
    except InvalidRequirement:
        return text


def _without_local_label(text: str) -> str:
    """"torchvision==0.15.2+cu118" → "torchvision==0.15.2": the variant is the plan's choice."""
    return re.sub(r"(==\s*[0-9][0-9.]*)\+[A-Za-z0-9.]+", r"\1", text)


def recipe_toml(parts: RecipeParts, *, table: str = "", to_root: str = ".") -> str:
    """The recipe's TOML; ``table`` ("tool.gpuenv") prefixes every table, for a pyproject.toml.

    ``to_root`` is the repository root relative to the recipe's directory ("..", ".").
    """
    prefix = f"{table}." if table else ""
    lines = []
    if parts.name is not None or parts.python is not None:
        lines.append(f"[{prefix}env]")
        if parts.name is not None:
            lines.append(f"name = {toml_value(parts.name)}")
        if parts.python is not None:
            lines.append(f"python = {toml_value(parts.python)}  # the env's Python satisfies it")
        lines.append("")
    if parts.existing:
        lines += [
            f"[{prefix}torch]",
            f'use = "existing"  # {parts.existing}: built against, never replaced; '
            'use = "install" and a version to let gpuenv make a venv with its own',
        ]
    else:
        lines += [
            f"[{prefix}torch]",
            f"version = {toml_value(parts.torch_version)}  # or a specifier: the newest that runs here",
            f"cuda = {toml_value(parts.cuda)}  # from {parts.cuda_origin}; \"auto\" lets gpuenv choose"
            if parts.cuda else 'cuda = "auto"  # the CUDA build this machine\'s GPUs and driver run',
        ]
    if parts.torch_packages:
        lines.append(f"packages = {toml_value(list(parts.torch_packages))}  # unpinned: paired with torch")
    for requirement in parts.extensions:
        text = from_root(requirement, to_root)
        lines += ["", f"[[{prefix}extensions]]  # built without isolation, against this torch, for your GPUs",
                  f"requirement = {toml_value(text)}"]
    if parts.repo:
        lines += ["", f"[{prefix}repo]  # this repository itself, installed last, against the env's torch",
                  f"path = {toml_value(to_root)}", "editable = true"]
        if parts.repo_extras:
            lines.append(f"extras = {toml_value(list(parts.repo_extras))}")
    if parts.requirement_files or parts.packages:
        lines += ["", f"[{prefix}packages]"]
        if parts.requirement_files:
            files = [from_root("./" + f, to_root) for f in parts.requirement_files]
            lines.append(f"requirements-files = {toml_value(files)}  # read at every plan, minus torch and "
                         "what the recipe builds itself")
        if parts.packages:
            lines.append(f"requirements = {toml_value(list(parts.packages))}")
        if parts.optional_files:
            lines.append("# optional parts: add a file to requirements-files to install it")
            lines += [f"#   {toml_value(from_root('./' + path, to_root))}  # {extra}: {why}"
                      for path, extra, why in parts.optional_files]
    else:
        lines += ["", f"# [{prefix}packages]", '# requirements = ["transformers>=4.40"]']
    return "\n".join(lines) + "\n"
