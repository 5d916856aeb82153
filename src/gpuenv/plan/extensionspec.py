"""The ``[[extensions]]`` tables of a recipe: what to build, and what is known about it.

:class:`ExtensionSpec` is one table, validated (its source: a PEP 508
requirement, a direct or VCS URL, or a local tree; its build environment, build
requirements and import name); :class:`CatalogOverrides` are the keys by which
it corrects gpuenv's catalog of how the extension builds; :class:`ProjectFacts`
is what a local or URL source says about itself, read before planning.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from gpuenv.plan.catalog import PrebuiltSource
from gpuenv.plan.recipevalues import (
    Where,
    as_boolean,
    as_requirement,
    as_requirements,
    as_string,
    as_strings,
    as_table,
    check_keys,
    child_key,
    describe,
    home_path,
    leaf_key,
    local_path,
)


@dataclass(frozen=True)
class CatalogOverrides:
    """What a recipe says about how an extension builds, over what gpuenv's catalog says.

    None (or an empty tuple for ``force_build``) leaves the catalog's value.
    """

    #: The environment variable that carries the arch list ("TORCH_CUDA_ARCH_LIST").
    arch_knob: str | None = None
    #: How the arch knob spells archs: "torch" (8.0;9.0) or "nodot" (80;90).
    arch_format: str | None = None
    #: The archs the package builds whatever gpuenv sets (its setup.py's own -gencode list).
    fixed_archs: tuple[str, ...] | None = None
    #: The variables that make its setup.py build instead of downloading a prebuilt wheel;
    #: they replace the catalog's.
    force_build: tuple[tuple[str, str], ...] | None = None
    #: The oldest compute capability it supports ("7.0").
    min_cc: str | None = None
    #: The oldest nvcc it builds with ("11.6").
    min_nvcc: str | None = None
    #: Options its setup.py reads from the build command ("--cpp_ext"); they replace the catalog's.
    build_options: tuple[str, ...] | None = None
    #: Where prebuilt wheels of it are published; they replace the catalog's (empty: none).
    prebuilt: tuple[PrebuiltSource, ...] | None = None

    def given(self) -> list[str]:
        """The recipe keys that were set, as the recipe spells them."""
        names = {"arch_knob": "arch-knob", "arch_format": "arch-format", "fixed_archs": "fixed-archs",
                 "force_build": "force-build", "min_cc": "min-compute-capability", "min_nvcc": "min-nvcc",
                 "build_options": "build-options", "prebuilt": "prebuilt"}
        return [key for attr, key in names.items() if getattr(self, attr) is not None]


@dataclass(frozen=True)
class ProjectFacts:
    """What a local or URL source says about itself without building it (read before planning)."""

    #: The distribution name its metadata gives (canonical), or None if it cannot be read.
    name: str | None
    #: Its version, or None if it cannot be read without building.
    version: str | None
    #: Where the facts were read ("pyproject.toml", "setup.py", "causal_conv1d/__init__.py").
    origin: str = ""


@dataclass(frozen=True)
class ExtensionSpec:
    #: What the recipe wrote: PEP 508, a direct URL, or a local path.
    requirement: str
    #: The canonical distribution name (PEP 503 normalised), e.g. "flash-attn".
    name: str
    env: tuple[tuple[str, str], ...] = ()
    build_requires: tuple[str, ...] = ()
    required: bool = False
    import_name: str | None = None
    #: For a local requirement: the absolute directory ("./ext", "/src/ext"), or what
    #: "name @ file:..." points at (a directory or a source archive); else None.
    path: Path | None = None
    #: The recipe's corrections to the catalog.
    overrides: CatalogOverrides = field(default_factory=CatalogOverrides)

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)


_EXTENSION_KEYS = ("requirement", "env", "build-requires", "required", "import", "arch-knob", "arch-format",
                   "fixed-archs", "force-build", "min-compute-capability", "min-nvcc", "build-options",
                   "prebuilt")
_ARCH_FORMATS = ("torch", "nodot")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VCS_URL = re.compile(r"(git|hg|svn|bzr)\+[A-Za-z]+://", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def extensions_table(where: Where, value: object) -> tuple[ExtensionSpec, ...]:
    if isinstance(value, Mapping):
        raise where.error(
            "extensions", "expected an array of tables, got a table; write each as [[extensions]]"
        )
    if not isinstance(value, list):
        raise where.error(
            "extensions", f"expected an array of tables ([[extensions]]), got {describe(value)}"
        )
    specs: list[ExtensionSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        spec = _extension(where, f"extensions[{i}]", item)
        if spec.name in seen:
            raise where.error(
                f"extensions[{i}].requirement",
                f"{spec.name} is already listed as extensions[{seen[spec.name]}]; list each extension once",
            )
        seen[spec.name] = i
        specs.append(spec)
    return tuple(specs)


def _extension(where: Where, key: str, value: object) -> ExtensionSpec:
    table = as_table(where, key, value)
    check_keys(where, key, table, _EXTENSION_KEYS)
    if "requirement" not in table:
        raise where.error(
            f"{key}.requirement", 'missing; write what to build, e.g. requirement = "flash-attn"'
        )
    text = as_string(where, f"{key}.requirement", table["requirement"]).strip()
    name, path = _extension_source(where, f"{key}.requirement", text)
    if name == "torch":
        raise where.error(
            f"{key}.requirement",
            f"torch is never built as an extension: it is installed from {where.header('torch')} "
            f"(set {where.prefix}torch.version there)",
        )
    import_name = table.get("import")
    return ExtensionSpec(
        requirement=text,
        name=name,
        env=_build_env(where, f"{key}.env", table.get("env", {})),
        build_requires=as_requirements(
            where,
            f"{key}.build-requires",
            table.get("build-requires", []),
            "torch is never a build requirement: extensions build against the torch of "
            + where.header("torch"),
        ),
        required=as_boolean(where, f"{key}.required", table.get("required", False)),
        import_name=None if import_name is None else _module(where, f"{key}.import", import_name),
        path=path,
        overrides=_overrides(where, key, table),
    )


def _overrides(where: Where, key: str, table: Mapping[str, Any]) -> CatalogOverrides:
    """The catalog keys an [[extensions]] table overrides."""
    arch_knob = table.get("arch-knob")
    if arch_knob is not None and not _ENV_VAR.fullmatch(as_string(where, f"{key}.arch-knob", arch_knob)):
        raise where.error(f"{key}.arch-knob", f"{arch_knob!r} is not an environment variable name")
    arch_format = table.get("arch-format")
    if arch_format is not None and as_string(where, f"{key}.arch-format", arch_format) not in _ARCH_FORMATS:
        raise where.error(f"{key}.arch-format",
                          f'{arch_format!r} is not "torch" (8.0;9.0) or "nodot" (80;90)')
    fixed = table.get("fixed-archs")
    force = table.get("force-build")
    raw_options = table.get("build-options")
    options = None if raw_options is None else tuple(as_strings(where, f"{key}.build-options", raw_options))
    for i, option in enumerate(options or ()):
        if not option.startswith("-") or any(c.isspace() for c in option):
            raise where.error(f"{key}.build-options[{i}]",
                              f"{option!r} is not one command-line option such as \"--cpp_ext\"")
    raw_prebuilt = table.get("prebuilt")
    return CatalogOverrides(
        prebuilt=None if raw_prebuilt is None else _prebuilt(where, f"{key}.prebuilt", raw_prebuilt),
        build_options=options,
        arch_knob=arch_knob,
        arch_format=arch_format,
        fixed_archs=None if fixed is None else tuple(
            _capability(where, f"{key}.fixed-archs[{i}]", text)
            for i, text in enumerate(as_strings(where, f"{key}.fixed-archs", fixed))),
        force_build=None if force is None else _build_env(where, f"{key}.force-build", force),
        min_cc=_optional_version(where, f"{key}.min-compute-capability", table, _capability),
        min_nvcc=_optional_version(where, f"{key}.min-nvcc", table, _cuda_release),
    )


def _prebuilt(where: Where, key: str, raw: object) -> tuple[PrebuiltSource, ...]:
    """``prebuilt = ["https://host/whl/torch-{torch_release}.0+{variant}.html", {url = …, local = …}]``."""
    if not isinstance(raw, list):
        raise where.error(key, "expected an array of URL templates or {url, local} tables, "
                               f"got {describe(raw)}")
    found = []
    for i, item in enumerate(raw):
        table = {"url": item} if isinstance(item, str) else as_table(where, f"{key}[{i}]", item)
        check_keys(where, f"{key}[{i}]", table, ("url", "local"))
        url = as_string(where, f"{key}[{i}].url", table.get("url"))
        if urlsplit(url.replace("{", "").replace("}", "")).scheme not in ("http", "https", "file"):
            raise where.error(f"{key}[{i}]", f"{url!r} is not an http, https or file URL template")
        found.append(PrebuiltSource(url, as_string(where, f"{key}[{i}].local", table.get("local", ""))))
    return tuple(found)


def _capability(where: Where, key: str, text: str) -> str:
    match = re.fullmatch(r"\s*([0-9]{1,2})\.([0-9])\s*", text, re.ASCII)
    if match is None:
        raise where.error(key, f'{text!r} is not a compute capability; write e.g. "8.0" or "9.0"')
    return f"{int(match[1])}.{match[2]}"


def _cuda_release(where: Where, key: str, text: str) -> str:
    match = re.fullmatch(r"\s*([0-9]{1,2})\.([0-9]{1,2})\s*", text, re.ASCII)
    if match is None:
        raise where.error(key, f'{text!r} is not a CUDA release; write e.g. "11.8" or "12.6"')
    return f"{int(match[1])}.{int(match[2])}"


def _optional_version(
    where: Where, key: str, table: Mapping[str, Any], check: Callable[[Where, str, str], str]
) -> str | None:
    value = table.get(leaf_key(key))
    if value is None:
        return None
    return check(where, key, as_string(where, key, value))


def _extension_source(where: Where, key: str, text: str) -> tuple[str, Path | None]:
    """The canonical name and, for local sources, the absolute path of what to build."""
    if _is_local_path(text):
        path = local_path(where, key, text, home_path(text, f"{where.path}: {key}"), directory_only=True)
        return _canonical_name(where, key, text, path.name), path
    if _VCS_URL.match(text):
        return _canonical_name(where, key, text, _vcs_name(text)), None
    if _URL.match(text):
        raise where.error(key, f"{text!r} is a URL without a name; write it as 'NAME @ {text}'")
    requirement = as_requirement(where, key, text)
    if requirement.url and _is_file_url_or_path(requirement.url):
        return canonicalize_name(requirement.name), local_path(
            where, key, text, _url_path(requirement.url), directory_only=False
        )
    return canonicalize_name(requirement.name), None


def _is_local_path(text: str) -> bool:
    return text in (".", "..") or text.startswith(("./", "../", "/", "~"))


def _is_file_url_or_path(url: str) -> bool:
    return url.lower().startswith("file:") or not _URL.match(url)


def _url_path(url: str) -> Path:
    """The path of "file:///abs", "file://localhost/abs", "file:rel" or a bare path."""
    if not url.lower().startswith("file:"):
        return home_path(url, "a local requirement")
    parts = urlsplit(url)
    return Path(unquote(parts.path))


def _vcs_name(url: str) -> str:
    """The project a VCS URL names: #egg=, else #subdirectory='s last part, else the repository."""
    parts = urlsplit(url)
    fragment = dict(item.partition("=")[::2] for item in parts.fragment.split("&") if item)
    if fragment.get("egg"):
        return fragment["egg"]
    if fragment.get("subdirectory"):
        return fragment["subdirectory"].rstrip("/").rsplit("/", 1)[-1]
    # The ref follows the first '@' of the path ("apex.git@release/25.09" has a '/' in the ref).
    repository = parts.path.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return repository[: -len(".git")] if repository.endswith(".git") else repository


def _canonical_name(where: Where, key: str, text: str, raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", raw):
        raise where.error(key, f"cannot tell the distribution name of {text!r}; write it as 'NAME @ {text}'")
    return canonicalize_name(raw)


def _build_env(where: Where, key: str, value: object) -> tuple[tuple[str, str], ...]:
    table = as_table(where, key, value)
    pairs: list[tuple[str, str]] = []
    for name, item in table.items():
        child = child_key(key, name)
        if not _ENV_VAR.fullmatch(name):
            raise where.error(
                child, "not an environment variable name (letters, digits and '_', no digit first)"
            )
        pairs.append((name, as_string(where, child, item)))
    return tuple(pairs)


def _module(where: Where, key: str, value: object) -> str:
    text = as_string(where, key, value)
    if _is_module_name(text):
        return text
    fixed = text.strip().replace("-", "_")
    raise where.error(
        key,
        f'{text!r} is not a Python module name; write a dotted name such as "flash_attn"',
        suggestion=fixed if fixed != text and _is_module_name(fixed) else None,
    )


def _is_module_name(text: str) -> bool:
    parts = text.split(".")
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in parts)
