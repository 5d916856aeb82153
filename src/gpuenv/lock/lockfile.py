"""gpuenv.lock: what a setup decided and installed, so it can be reproduced and checked.

One ``gpuenv.lock`` sits next to the recipe; it holds one table per
environment name (``[envs.NAME]``), so several recipes in one ``envs/``
directory share the file without overwriting each other. It is TOML, meant
to be read by people as well as by ``gpuenv setup --locked`` and ``gpuenv
doctor``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from gpuenv.env.abi import EnvAbi
from gpuenv.errors import InputError
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.outputs import check_replaceable, make_folders, path_inside, write_atomic
from gpuenv.plan.buildplan import pinned_version
from gpuenv.tomlwrite import toml_key, toml_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOCK_NAME = "gpuenv.lock"
LOCK_VERSION = 1


@dataclass(frozen=True)
class LockedExtension:
    name: str
    version: str
    requirement: str
    cache_key: str
    wheel: str
    wheel_sha256: str
    source: str
    arch_list: tuple[str, ...]
    #: The build knobs that change the binary (the cache key's knobs).
    knobs: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record by field name, lists and tables as JSON has them: what the entry's digest hashes
        and the lock file writes (with ``-`` for ``_`` in the names)."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)},
                "arch_list": list(self.arch_list), "knobs": dict(self.knobs)}


@dataclass(frozen=True)
class LockedEnv:
    name: str
    recipe: str
    recipe_sha256: str
    #: Recipe + plan + installed distributions: equal fingerprints mean "nothing to do".
    fingerprint: str
    variant: str
    cuda: str | None
    index_url: str | None
    torch_requirement: str
    arch_list: tuple[str, ...]
    toolkit: str | None
    #: The env's ABI the extensions were built for: the interpreter's, and the installed torch's.
    abi: EnvAbi
    extensions: tuple[LockedExtension, ...]
    distributions: Mapping[str, str]
    #: The archs the installed torch's wheel carries, as setup observed them ("9.0", "12.0+PTX").
    torch_arch_list: tuple[str, ...] = ()
    #: The C++ standard the installed torch's headers require (17, 20), as observed; None: unknown.
    torch_cxx_standard: int | None = None
    #: torch was given (an adopted env's own): recorded, not installed; ``--locked`` checks it is there.
    torch_given: bool = False
    #: Why this entry is not what gpuenv wrote (its content does not match its digest), or None.
    edited: str | None = field(default=None, compare=False)
    #: The digest the file holds for this entry ("" for an entry not read from a file).
    stored_digest: str = field(default="", compare=False)

    @property
    def digest(self) -> str:
        """sha256 of everything the entry records: what the lock file stores beside it."""
        return content_digest(self)

    def extension(self, name: str) -> LockedExtension | None:
        return next((e for e in self.extensions if e.name == name), None)

    def source_of(self, requirement: str) -> LockedSource | None:
        """The source this lock records for ``requirement``, when that identifies it without a fetch.

        Only an exact version pin served by an index qualifies: an index's
        release file cannot change under its name (PyPI refuses re-uploads),
        so the lock's sha256 of the sdist it built stands for the file a fetch
        would bring. A local tree, a URL, a git ref or a version range can
        change under the same text, and is fetched and hashed every time.
        """
        name = _index_project(requirement)
        pinned = pinned_version(requirement)
        version = _version(pinned) if pinned is not None else None
        if name is None or version is None:
            return None
        for record in self.extensions:
            if (canonicalize_name(record.name) == name and _index_project(record.requirement) == name
                    and record.source.startswith("sha256:") and _version(record.version) == version):
                # Spelled as the build's sdist spelled it: the cache key holds that string.
                return LockedSource(version=str(_version(record.version)), digest=record.source)
        return None


def _index_project(requirement: str) -> str | None:
    """The project ``requirement`` asks an index for; None for a URL, git or local path."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return None
    return None if req.url else canonicalize_name(req.name)


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return None


@dataclass(frozen=True)
class LockedSource:
    """An extension's source as a lock records it: its version and "sha256:<hex>" of its sdist."""

    version: str
    digest: str


#: Fields added after the lock's first version: left out of the digest at their default, so the
#: entries written before them keep their digest.
_LATER_FIELDS = {"torch_arch_list": (), "torch_cxx_standard": None, "torch_given": False}


def content_digest(env: LockedEnv) -> str:
    """"sha256:<hex>" of an entry's recorded content (not its name, nor how it was read)."""
    content = {f.name: getattr(env, f.name) for f in fields(env)
               if f.name not in ("name", "edited", "stored_digest", "abi")
               and not (f.name in _LATER_FIELDS and getattr(env, f.name) == _LATER_FIELDS[f.name])}
    content.update(env.abi.to_json())
    if "torch_arch_list" in content:
        content["torch_arch_list"] = list(env.torch_arch_list)
    content["extensions"] = [e.to_json() for e in env.extensions]
    content["arch_list"] = list(env.arch_list)
    content["distributions"] = dict(sorted(env.distributions.items()))
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class LockEditedError(InputError):
    """An entry of gpuenv.lock whose content is not what gpuenv wrote."""

    def __init__(self, env: LockedEnv) -> None:
        self.env = env
        super().__init__(
            f"{LOCK_NAME} was edited by hand: envs.{env.name}: {env.edited}",
            hint="restore it (e.g. from version control), or run 'gpuenv setup' without --locked, "
                 "which writes a new entry",
        )


def lock_path_for(recipe_path: Path) -> Path:
    return recipe_path.parent / LOCK_NAME


def env_fingerprint(
    recipe_sha256: str, signature: Mapping[str, Any], distributions: Mapping[str, str]
) -> str:
    """What must not change for a re-run to be a no-op: recipe, plan decisions, what is installed."""
    payload = json.dumps(
        {"recipe": recipe_sha256, "plan": signature, "installed": dict(sorted(distributions.items()))},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


# -- reading ----------------------------------------------------------------------


def read_lock(path: Path) -> dict[str, LockedEnv]:
    """Every environment in the lock file at ``path`` (an empty dict if there is none).

    An entry whose content does not match the digest written beside it comes
    back with :attr:`LockedEnv.edited` saying so; the callers decide (setup
    rewrites it, ``--locked`` refuses it, doctor reports it).
    """
    try:
        data = tomllib.loads(read_input(path))
    except UnreadableInput as exc:
        if exc.missing:
            return {}
        raise InputError(f"{path}: cannot read the lock file: {exc.problem}",
                         hint="delete it and run 'gpuenv setup' to write a new one") from None
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: cannot read the lock file: {exc}",
                         hint="delete it and run 'gpuenv setup' to write a new one") from None
    version = data.get("lock-version")
    if version != LOCK_VERSION:
        raise InputError(f"{path}: lock-version {version!r} is not one this gpuenv reads ({LOCK_VERSION})",
                         hint="run 'gpuenv setup' without --locked to write a new lock")
    envs = data.get("envs", {})
    try:
        if not isinstance(envs, Mapping):
            raise TypeError("envs is not a table")
        return {str(name): _checked(_env_from(str(name), raw), raw) for name, raw in envs.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: envs: malformed lock entry ({exc})",
                         hint="delete it and run 'gpuenv setup' to write a new one") from None


def _checked(env: LockedEnv, raw: Mapping[str, Any]) -> LockedEnv:
    stored = raw.get("digest")
    if not isinstance(stored, str) or not stored:
        return replace(env, edited="it has no digest (gpuenv writes one with every entry)")
    if stored != env.digest:
        return replace(env, edited="its content does not match the digest gpuenv wrote with it",
                       stored_digest=stored)
    return replace(env, stored_digest=stored)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: object) -> str | None:
    return _str(value) or None if value is not None else None


def _strs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected an array, got {type(value).__name__}")
    return tuple(_str(v) for v in value)


def _str_table(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a table, got {type(value).__name__}")
    return {_str(k): _str(v) for k, v in value.items()}


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _env_from(name: str, raw: Mapping[str, Any]) -> LockedEnv:
    torch = raw["torch"]
    if not isinstance(torch, Mapping) or not isinstance(torch["cxx11-abi"], bool):
        raise TypeError("torch: expected a table with cxx11-abi = true or false")
    if not isinstance(torch.get("given", False), bool):
        raise TypeError("torch: given must be true or false")
    extensions = raw.get("extensions", [])
    if not isinstance(extensions, list) or not all(isinstance(e, Mapping) for e in extensions):
        raise TypeError("extensions: expected an array of tables")
    return LockedEnv(
        name=name,
        recipe=_str(raw["recipe"]),
        recipe_sha256=_str(raw["recipe-sha256"]),
        fingerprint=_str(raw["fingerprint"]),
        variant=_str(raw["variant"]),
        cuda=_opt_str(raw.get("cuda")),
        index_url=_opt_str(raw.get("index-url")),
        torch_requirement=_str(raw["torch-requirement"]),
        arch_list=_strs(raw.get("arch-list", [])),
        toolkit=_opt_str(raw.get("toolkit")),
        abi=EnvAbi(python_tag=_str(raw["python"]), platform=_str(raw["platform"]),
                   torch_version=_str(torch["version"]), torch_cuda=_opt_str(torch.get("cuda")),
                   cxx11_abi=torch["cxx11-abi"]),
        torch_arch_list=_strs(torch.get("arch-list", [])),
        torch_cxx_standard=_opt_int(torch.get("cxx-standard")),
        torch_given=torch.get("given", False),
        extensions=tuple(
            LockedExtension(
                name=_str(e["name"]), version=_str(e["version"]), requirement=_str(e["requirement"]),
                cache_key=_str(e["cache-key"]), wheel=_str(e["wheel"]), wheel_sha256=_str(e["wheel-sha256"]),
                source=_str(e["source"]), arch_list=_strs(e.get("arch-list", [])),
                knobs=_str_table(e.get("knobs", {})),
            )
            for e in extensions
        ),
        distributions=_str_table(raw.get("distributions", {})),
    )


# -- writing ----------------------------------------------------------------------


def write_lock(path: Path, env: LockedEnv) -> None:
    """Put ``env`` into the lock file at ``path``, keeping the other environments; atomically."""
    envs = read_lock(path)
    envs[env.name] = replace(env, edited=None)
    text = _render(envs)
    make_folders(path.parent)
    # Next to the recipe and nowhere else: a gpuenv.lock that is a link out of its folder is refused.
    target = path_inside(path.parent, path.name)
    check_replaceable(target, shown=path)
    _remove_stale_temps(path)
    write_atomic(target, text.encode("utf-8"))


#: What the temporary files of a lock write start with (gpuenv.outputs.write_atomic names them so).
_TEMP_PREFIX = ".gpuenv.lock."

#: A lock is written in milliseconds: a temporary file this old belongs to a writer that was killed.
_STALE_TEMP_SECONDS = 60.0


def _remove_stale_temps(path: Path) -> None:
    now = time.time()
    for temp in path.parent.glob(_TEMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if temp.is_file() and now - temp.stat().st_mtime > _STALE_TEMP_SECONDS:
                temp.unlink()


def _render(envs: Mapping[str, LockedEnv]) -> str:
    lines = [
        "# gpuenv.lock: written by `gpuenv setup`. `gpuenv setup --locked` rebuilds exactly this;",
        "# `gpuenv doctor` checks an environment against it. Edit the recipe, not this file.",
        f"lock-version = {LOCK_VERSION}",
    ]
    for name in sorted(envs):
        lines += _render_env(envs[name])
    return "\n".join(lines) + "\n"


def _render_env(env: LockedEnv) -> list[str]:
    prefix = f"envs.{toml_key(env.name)}"
    lines = [
        "",
        f"[{prefix}]",
        f"recipe = {toml_value(env.recipe)}",
        f"recipe-sha256 = {toml_value(env.recipe_sha256)}",
        f"fingerprint = {toml_value(env.fingerprint)}",
        "# sha256 of this entry's content: an entry edited by hand is reported, not trusted",
        f"digest = {toml_value(env.stored_digest if env.edited else env.digest)}",
        "# the plan's decisions",
        f"variant = {toml_value(env.variant)}",
        f"cuda = {toml_value(env.cuda)}",
        f"index-url = {toml_value(env.index_url)}  # empty: the ordinary index",
        f"torch-requirement = {toml_value(env.torch_requirement)}",
        f"arch-list = {toml_value(env.arch_list)}",
        f"toolkit = {toml_value(env.toolkit)}  # nvcc version the extensions were built with",
        f"python = {toml_value(env.abi.python_tag)}",
        f"platform = {toml_value(env.abi.platform)}",
        "",
        f"[{prefix}.torch]",
        f"version = {toml_value(env.abi.torch_version)}",
        f"cuda = {toml_value(env.abi.torch_cuda)}",
        f"cxx11-abi = {toml_value(env.abi.cxx11_abi)}",
    ]
    if env.torch_arch_list:
        lines.append(f"arch-list = {toml_value(env.torch_arch_list)}  # what its wheel carries, as observed")
    if env.torch_cxx_standard is not None:
        lines.append(f"cxx-standard = {env.torch_cxx_standard}  # what its headers require, as observed")
    if env.torch_given:
        lines.append("given = true  # the env's own torch: recorded, never installed nor replaced")
    for ext in env.extensions:
        lines += ["", f"[[{prefix}.extensions]]"]
        lines += [f"{name.replace('_', '-')} = {toml_value(value)}" for name, value in ext.to_json().items()]
    lines += ["", f"[{prefix}.distributions]"]
    lines += [f"{toml_key(name)} = {toml_value(version)}"
              for name, version in sorted(env.distributions.items())]
    return lines
