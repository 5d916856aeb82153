"""Where an extension's wheel comes from when it is not built here: shared caches and publishers.

The extension step (:mod:`gpuenv.setup.extension`) asks, in order: the local
wheel cache; the shared caches (``--cache-from``), for the exact key
(:func:`fetch_shared`); for an extension whose publisher puts prebuilt wheels
somewhere (the catalog's or the recipe's ``prebuilt``), a wheel that passes the
audit and imports in the env (:func:`find_audited`); and only then builds, and
with ``--push`` puts the built wheel on the shared caches (:func:`push_built`).
What comes from elsewhere is stored in the local cache under its key, so the
next setup on this machine finds it there.

A prebuilt wheel is keyed by where it came from and what it was audited
against (:func:`prebuilt_key`): not the source's hash, which a publisher's
wheel does not have, but the requirement, the interpreter, torch, CUDA, ABI,
the archs and the publisher's URL. An extension built against torch's stable
ABI (``stable_abi`` in the catalog) is keyed by that floor instead of the exact
torch: its wheel runs on every torch at or above it.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gpuenv.cache.audit import Target, torch_libraries
from gpuenv.cache.key import CacheKey
from gpuenv.cache.prebuilt import PrebuiltResult, find_prebuilt, source_url
from gpuenv.cache.remote import IndexClient, RemoteError
from gpuenv.cache.shared import CacheSource, Fetched, SharedCache
from gpuenv.env.abi import EnvAbi, env_abi
from gpuenv.errors import CommandError
from gpuenv.plan.buildplan import ExtensionPlan, pinned_version
from gpuenv.setup.context import Context

#: Seconds a shared cache or a publisher has to answer (each connection and each read).
REMOTE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Found:
    """A wheel from elsewhere, ready to install: ``how`` says where from, in words."""

    wheel: Path
    how: str


def shared_cache(ctx: Context) -> SharedCache | None:
    """The run's shared caches (one client: a server found down stays skipped), or None without any."""
    if not ctx.options.cache_from:
        return None
    if ctx.shared is None:
        ctx.shared = SharedCache(ctx.options.cache_from, ctx.options.work / "shared",
                                 client=IndexClient(timeout=REMOTE_TIMEOUT), warn=ctx.reporter.done)
    return ctx.shared


def fetch_shared(ctx: Context, key: CacheKey, *, also: Sequence[str] = ()) -> Found | None:
    """The wheel of exactly ``key`` from the first shared cache that holds a sound one; ``also``: the
    distribution names the wheel may be filed under besides the key's (a local tree's own name)."""
    shared = shared_cache(ctx)
    if shared is None:
        return None
    ctx.reporter.status(f"asking the shared caches for {key.name} (key {key.digest[:12]})")
    fetched: Fetched | None = ctx.runner.perform(
        f"ask the shared caches ({', '.join(s.text for s in shared.sources)}) for the wheel of "
        f"{key.name} with key {key.digest[:12]} (a dry run asks none; on a miss:)",
        lambda: shared.fetch(key, also=also), lambda: None)
    if fetched is None:
        return None
    return Found(fetched.wheel, f"from the shared cache {fetched.source}: key {key.digest[:12]} matched "
                                f"(sha256 {fetched.sha256[:12]}, checked against its RECORD and packed key)")


def push_built(ctx: Context, key: CacheKey, wheel: Path) -> None:
    """With ``--push``: put ``wheel`` of ``key`` on every shared cache; a failure is a warning."""
    shared = shared_cache(ctx)
    if not ctx.options.push or shared is None:
        return
    for target in shared.sources:
        ctx.reporter.status(f"pushing {wheel.name} to {target}")
        def push(target: CacheSource = target) -> str:
            return shared.push(key, wheel, target)

        try:
            said = ctx.runner.perform(f"push it to {target.text} (--push)", push, lambda: "")
        except (RemoteError, OSError) as exc:
            ctx.reporter.done(f"warning: could not push {wheel.name} to {target}: {exc}")
        else:
            if said:
                ctx.reporter.done(said)


# -- prebuilt wheels from their publishers ------------------------------------------------------


def target_for(ctx: Context, ext: ExtensionPlan) -> Target:
    torch = ctx.torch
    assert torch is not None
    interpreter = ctx.target.interpreter(ctx.runner)
    specifier = str(_specifier(ext.requirement))
    return Target(name=ext.name, specifier=specifier, python_version=_major_minor(interpreter.version),
                  abi_tag=interpreter.abi_tag, torch_version=torch.version, torch_cuda=torch.cuda,
                  cxx11_abi=torch.cxx11_abi, arch_list=ext.arch_list if ext.compiles_cuda else (),
                  stable_abi=ext.stable_abi)


def prebuilt_key(ctx: Context, ext: ExtensionPlan) -> CacheKey | None:
    """The key a prebuilt wheel of ``ext`` is kept under; None when nothing prebuilt may be used."""
    if not ctx.options.prebuilt or not ext.prebuilt or ext.path is not None or ctx.torch is None:
        return None
    target = target_for(ctx, ext)
    version = pinned_version(ext.requirement)
    urls = [u for u in (source_url(s, target, version) for s in ext.prebuilt) if u]
    if not urls:
        return None
    origin = hashlib.sha256("\n".join(["prebuilt", ext.requirement, *urls]).encode()).hexdigest()
    return CacheKey(
        name=ext.name, version=version or "", source_sha256=origin, abi=key_abi(ctx, ext),
        arch_list=target.arch_list, nvcc_version=None, knobs=(("prebuilt-from", urls[0]),),
    )


def key_abi(ctx: Context, ext: ExtensionPlan) -> EnvAbi:
    """The ABI a key of ``ext`` holds: the env's, with the stable-ABI floor as torch's version for an
    extension built against it (one wheel serves every torch from that release on)."""
    assert ctx.torch is not None
    abi = env_abi(ctx.target.interpreter(ctx.runner), ctx.torch)
    return replace(abi, torch_version=ext.stable_abi) if ext.stable_abi else abi


def find_audited(ctx: Context, ext: ExtensionPlan) -> Found | None:
    """A publisher's wheel of ``ext`` that passes the audit and imports in the env; None says why not."""
    target = target_for(ctx, ext)
    ctx.reporter.status(f"looking for a prebuilt {ext.name} for torch {target.torch_version}")
    downloads = ctx.options.work / "prebuilt"

    def find() -> PrebuiltResult:
        torch_libs = torch_libraries(ctx.target.site_packages(ctx.runner))
        return find_prebuilt(ext.prebuilt, target, version=pinned_version(ext.requirement),
                             client=_client(ctx), work_dir=downloads, torch_libs=torch_libs,
                             accept=lambda wheel: import_problem(ctx, ext, wheel))

    result = ctx.runner.perform(
        f"look for a prebuilt {ext.name} wheel where its publisher puts them, audit it against this torch "
        "and try its import (a dry run asks no publisher; if none fits:)", find, lambda: None)
    if result is None:
        return None
    if result.wheel is None or result.verdict is None:
        ctx.reporter.done(f"no prebuilt {ext.name} fits: {result.why_not()}; building it")
        return None
    for refusal in result.refused:
        ctx.reporter.done(f"refused prebuilt {refusal}")
    checks = ", ".join(result.verdict.passed)
    return Found(result.wheel, f"prebuilt, from {result.url}; audited: {checks}, imports")


def _client(ctx: Context) -> IndexClient:
    shared = shared_cache(ctx)
    return shared.client if shared is not None else IndexClient(timeout=REMOTE_TIMEOUT)


def import_problem(ctx: Context, ext: ExtensionPlan, wheel: Path) -> str | None:
    """Why the wheel's module does not import in the env's interpreter (unpacked beside it, nothing
    installed), or None. Without an import name there is nothing to try: None."""
    module = ext.import_name
    if not module:
        return None
    with tempfile.TemporaryDirectory(prefix="gpuenv-import-") as scratch:
        try:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(scratch)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            return f"cannot unpack it: {exc}"
        code = f"import sys; sys.path.insert(0, {scratch!r}); import torch, {module}"
        try:
            ctx.runner([str(ctx.target.python), "-c", code], cwd=scratch)
        except CommandError as exc:
            lines = [line for line in exc.tail.splitlines() if line.strip()]
            return f"import {module} fails: {lines[-1] if lines else 'no output'}"
    return None


def _specifier(requirement: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return str(Requirement(requirement).specifier)
    except InvalidRequirement:
        return ""


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
