"""gpuenv.lock: what a setup decided and installed, so it can be reproduced and checked.

One ``gpuenv.lock`` sits next to the recipe; it holds one table per
environment name (``[envs.NAME]``), so several recipes in one ``envs/``
directory share the file without overwriting each other. It is TOML, meant
to be read by people as well as by ``gpuenv setup --locked`` and ``gpuenv
doctor``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from gpuenv.errors import InputError, UnsatisfiableError
from gpuenv.hardware import Hardware
from gpuenv.plan import ExtensionPlan, Plan, PlanOptions, pinned_version
from gpuenv.recipe import Recipe

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
    python_tag: str
    platform: str
    torch_version: str
    torch_cuda: str | None
    cxx11_abi: bool
    extensions: tuple[LockedExtension, ...]
    distributions: Mapping[str, str]

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
    except InvalidVersion:
        return None


@dataclass(frozen=True)
class LockedSource:
    """An extension's source as a lock records it: its version and "sha256:<hex>" of its sdist."""

    version: str
    digest: str


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
    """Every environment in the lock file at ``path`` (an empty dict if there is none)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: cannot read the lock file: {exc}",
                         hint="delete it and run 'gpuenv setup' to write a new one") from None
    version = data.get("lock-version")
    if version != LOCK_VERSION:
        raise InputError(f"{path}: lock-version {version!r} is not one this gpuenv reads ({LOCK_VERSION})",
                         hint="run 'gpuenv setup' without --locked to write a new lock")
    envs = data.get("envs", {})
    try:
        return {name: _env_from(name, raw) for name, raw in envs.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: envs: malformed lock entry ({exc})",
                         hint="delete it and run 'gpuenv setup' to write a new one") from None


def _env_from(name: str, raw: Mapping[str, Any]) -> LockedEnv:
    torch = raw["torch"]
    return LockedEnv(
        name=name,
        recipe=str(raw["recipe"]),
        recipe_sha256=str(raw["recipe-sha256"]),
        fingerprint=str(raw["fingerprint"]),
        variant=str(raw["variant"]),
        cuda=raw.get("cuda") or None,
        index_url=raw.get("index-url") or None,
        torch_requirement=str(raw["torch-requirement"]),
        arch_list=tuple(raw.get("arch-list", [])),
        toolkit=raw.get("toolkit") or None,
        python_tag=str(raw["python"]),
        platform=str(raw["platform"]),
        torch_version=str(torch["version"]),
        torch_cuda=torch.get("cuda") or None,
        cxx11_abi=bool(torch["cxx11-abi"]),
        extensions=tuple(
            LockedExtension(
                name=str(e["name"]), version=str(e["version"]), requirement=str(e["requirement"]),
                cache_key=str(e["cache-key"]), wheel=str(e["wheel"]), wheel_sha256=str(e["wheel-sha256"]),
                source=str(e["source"]), arch_list=tuple(e.get("arch-list", [])),
                knobs=dict(e.get("knobs", {})),
            )
            for e in raw.get("extensions", [])
        ),
        distributions=dict(raw.get("distributions", {})),
    )


# -- writing ----------------------------------------------------------------------


def write_lock(path: Path, env: LockedEnv) -> None:
    """Put ``env`` into the lock file at ``path``, keeping the other environments; atomically."""
    envs = read_lock(path)
    envs[env.name] = env
    text = _render(envs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".gpuenv.lock.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _q(value: object) -> str:
    """A TOML value: strings are JSON-quoted (valid TOML basic strings), lists inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_q(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_q(v)}" for k, v in value.items()) + " }" if value else "{}"
    return json.dumps("" if value is None else str(value), ensure_ascii=False)


def _key(key: str) -> str:
    bare = key.replace("-", "").replace("_", "").isalnum()
    return key if bare else json.dumps(key)


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
    prefix = f"envs.{_key(env.name)}"
    lines = [
        "",
        f"[{prefix}]",
        f"recipe = {_q(env.recipe)}",
        f"recipe-sha256 = {_q(env.recipe_sha256)}",
        f"fingerprint = {_q(env.fingerprint)}",
        "# the plan's decisions",
        f"variant = {_q(env.variant)}",
        f"cuda = {_q(env.cuda)}",
        f"index-url = {_q(env.index_url)}  # empty: the ordinary index",
        f"torch-requirement = {_q(env.torch_requirement)}",
        f"arch-list = {_q(env.arch_list)}",
        f"toolkit = {_q(env.toolkit)}  # nvcc version the extensions were built with",
        f"python = {_q(env.python_tag)}",
        f"platform = {_q(env.platform)}",
        "",
        f"[{prefix}.torch]",
        f"version = {_q(env.torch_version)}",
        f"cuda = {_q(env.torch_cuda)}",
        f"cxx11-abi = {_q(env.cxx11_abi)}",
    ]
    for ext in env.extensions:
        lines += [
            "",
            f"[[{prefix}.extensions]]",
            f"name = {_q(ext.name)}",
            f"version = {_q(ext.version)}",
            f"requirement = {_q(ext.requirement)}",
            f"cache-key = {_q(ext.cache_key)}",
            f"wheel = {_q(ext.wheel)}",
            f"wheel-sha256 = {_q(ext.wheel_sha256)}",
            f"source = {_q(ext.source)}",
            f"arch-list = {_q(ext.arch_list)}",
            f"knobs = {_q(dict(ext.knobs))}",
        ]
    lines += ["", f"[{prefix}.distributions]"]
    lines += [f"{_key(name)} = {_q(version)}" for name, version in sorted(env.distributions.items())]
    return lines


# -- rebuilding a locked environment ------------------------------------------------


def check_machine(locked: LockedEnv, hardware: Hardware) -> None:
    """Stop (exit 3) if this machine's GPUs or driver cannot use the locked environment."""
    from gpuenv import knowledge
    from gpuenv.plan import driver_runs

    if locked.cuda is None:
        return
    uncovered = [g for g in hardware.gpus if not knowledge.runs_on(locked.arch_list, g.cc)]
    if uncovered and locked.arch_list:
        names = ", ".join(f"{g.name} ({g.compute_capability})" for g in uncovered)
        raise UnsatisfiableError(
            f"the locked environment {locked.name} was built for {', '.join(locked.arch_list)}; "
            f"it has no code for {names}",
            hint="run 'gpuenv setup' without --locked to plan and build for these GPUs",
        )
    if driver_runs(hardware, locked.cuda) is False:
        raise UnsatisfiableError(
            f"the locked environment {locked.name} is {locked.variant}, and driver "
            f"{hardware.driver_version} (CUDA {hardware.cuda_driver_version or '?'}) "
            f"cannot run CUDA {locked.cuda}",
            hint="upgrade the driver, or run 'gpuenv setup' without --locked to plan for this driver",
        )


def plan_locked(recipe: Recipe, hardware: Hardware, locked: LockedEnv, options: PlanOptions) -> Plan:
    """The plan that rebuilds ``locked``: its variant, index, archs and every exact version."""
    from gpuenv.hardware import with_arch_override
    from gpuenv.plan import plan

    check_machine(locked, hardware)
    if locked.cuda is not None and locked.arch_list:
        target = with_arch_override(hardware, ",".join(locked.arch_list))
    else:
        target = replace(hardware, gpus=())
    base = plan(recipe, target, replace(options, cuda=locked.variant))
    pins = dict(locked.distributions)
    # Extensions come from their own step; the lock names them by distribution.
    extension_names = {e.name for e in base.extensions} | {e.name for e in locked.extensions}
    torch_names = [canonicalize_name(Requirement(p).name) for p in base.torch_packages]
    exact_torch_packages = tuple(f"{n}=={pins[n]}" for n in torch_names if n in pins)
    others = {n: v for n, v in pins.items()
              if n not in extension_names and n not in torch_names and n not in ("torch", "pip")}
    return replace(
        base,
        # By the distribution's version: the cu130 wheel of PyPI is "2.14.1", its
        # torch.__version__ (the lock's [torch] version) "2.14.1+cu130".
        torch=f"torch=={pins.get('torch') or locked.torch_version}",
        index_url=locked.index_url,
        torch_packages=exact_torch_packages,
        extensions=tuple(_pin_extension(e, locked) for e in base.extensions),
        packages=tuple(f"{n}=={v}" for n, v in sorted(others.items())),
        reasons=(*base.reasons, f"--locked: {locked.name} as written in the lock"),
    )


def _pin_extension(ext: ExtensionPlan, locked: LockedEnv) -> ExtensionPlan:
    record = locked.extension(ext.name)
    if record is None or ext.action == "skip":
        return ext
    try:
        requirement = Requirement(ext.requirement)
    except InvalidRequirement:
        return ext  # a local path: its content is checked through the cache key
    if requirement.url:
        return ext
    return replace(ext, requirement=f"{ext.name}=={record.version}")
