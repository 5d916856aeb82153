"""The step of one extension: the ABI-keyed cache, the fetch, the build, the install, the record.

A hit in the :class:`~gpuenv.cache.wheels.WheelCache` installs without building (for
an exact pin the lock records, without fetching either); a miss says which part
of the key differs from the nearest entry, builds through pyproject-hooks in
the target env and stores the wheel; a key is built once even by concurrent
setups. Each installed wheel is recorded in the state file, so a resumed run
skips it, and in the lock entry the run writes.

A dry run takes the same path: the cache is read without its lock (nothing
is touched, nothing moved aside), and a key it cannot know (the sha256 of an
sdist it does not download, the torch it does not install) is not looked up:
the step says so and goes on as on a miss.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from gpuenv.cache.entry import LookupResult
from gpuenv.cache.key import CacheKey, binary_knobs
from gpuenv.cache.keylock import LockInfo
from gpuenv.cache.store import CacheError
from gpuenv.cache.wheels import WheelCache
from gpuenv.errors import BuildError
from gpuenv.load.setupscan import scan_setup
from gpuenv.lock.lockfile import LockedExtension
from gpuenv.plan.buildplan import ExtensionPlan
from gpuenv.plan.treecheck import check_tree
from gpuenv.runner import SubprocessRunner, unknown, unknowns_in
from gpuenv.setup.builder import build_wheel, install_build_requirements
from gpuenv.setup.context import Context, Step
from gpuenv.setup.dryrun import torch_expected
from gpuenv.setup.installer import InstallOptions
from gpuenv.setup.sources import Source, fetch_source, fetched_by_pip, file_sha256
from gpuenv.setup.toolkit import needs_toolkit_step, toolkit_record
from gpuenv.setup.wheelsources import (
    Found,
    fetch_shared,
    find_audited,
    key_abi,
    prebuilt_key,
    push_built,
    shared_cache,
)


def extension_step(ext: ExtensionPlan) -> Step:
    def run(ctx: Context) -> str:
        return _build_extension(ctx, ext)

    return Step(f"extension {ext.name}", run)


def cache_key(ctx: Context, ext: ExtensionPlan, *, version: str | None, source_digest: str) -> CacheKey:
    """Everything that changes the binary of ``ext`` built from its source in this env."""
    toolkit = ctx.build_toolkit  # a toolkit from PyPI: its nvcc's full version, known once provisioned
    return CacheKey(
        name=ext.name,
        version=version or "",
        source_sha256=source_digest,
        abi=key_abi(ctx, ext),
        arch_list=ext.arch_list if ext.compiles_cuda else (),
        nvcc_version=toolkit.nvcc_version if ext.compiles_cuda and toolkit is not None else None,
        knobs=binary_knobs(ext.env, ext.build_options),
    )


def key_unknowns(ctx: Context, ext: ExtensionPlan, key: CacheKey) -> list[str]:
    """What of ``key`` a dry run cannot know (and so cannot look up); empty in a real run."""
    unknowns = [*unknowns_in(key.version), *unknowns_in(key.source_sha256)]
    if torch_expected(ctx.target):
        unknowns.append("the torch that lands")
    if ext.compiles_cuda and needs_toolkit_step(ctx.plan) and ctx.toolkit is None:
        unknowns.append("the nvcc provisioned")
    return unknowns


def _start_log(ctx: Context, ext: ExtensionPlan) -> Path:
    log = ctx.log(ext.name)

    def start() -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        # Appended, run after run: a resumed setup must not wipe the log of the build it reuses.
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"\n=== gpuenv setup {time.strftime('%Y-%m-%d %H:%M:%S')}: {ext.requirement} ===\n")

    ctx.runner.perform("", start, lambda: None)
    return log


def _build_extension(ctx: Context, ext: ExtensionPlan) -> str:
    env, torch = ctx.target, ctx.torch
    assert torch is not None
    log = _start_log(ctx, ext)
    runner = ctx.runner.with_log(log, on_line=ctx.reporter.status)
    known = ctx.prior.source_of(ext.requirement) if ctx.prior is not None and ext.path is None else None
    if known is not None:
        # The lock names the sdist by its sha256: a hit needs neither the fetch nor the build requirements.
        key = cache_key(ctx, ext, version=known.version, source_digest=known.digest)
        if not key_unknowns(ctx, ext, key):
            installed = env.installed(ctx.runner)
            outcome = _already_there(ctx, ext, key, installed) or _cached_under_lock(ctx, ext, key, installed)
            if outcome is not None:
                return outcome + "; source sha256 from the lock, not fetched"
    outcome = _prebuilt(ctx, ext, env.installed(ctx.runner))
    if outcome is not None:
        return outcome
    # pip prepares the sdist's metadata even to download it, in the target env
    # and without isolation: the build requirements must be there first.
    ctx.reporter.status(f"installing build requirements of {ext.name}")
    # A download runs the env's pip, which an env uv made lacks.
    fetcher = ["pip"] if fetched_by_pip(ext.requirement, _local_path(ext)) and not env.has_pip() else []
    install_build_requirements(env, [*ext.build_requires, *fetcher],
                               installer=ctx.installer.with_runner(runner), runner=runner)
    ctx.reporter.status(f"fetching {ext.requirement}")
    workdir = ctx.options.work / "src" / ext.name
    source = fetch_source(ext.requirement, env=env, runner=runner, workdir=workdir, path=_local_path(ext),
                          build_env=ext.env)
    key = cache_key(ctx, ext, version=source.version, source_digest=source.digest)
    installed = env.installed(ctx.runner)
    unknowns = key_unknowns(ctx, ext, key)
    outcome = None if unknowns else _already_there(ctx, ext, key, installed)
    if outcome is not None:
        return outcome
    if ctx.options.cache_dir is None:
        wheel = _build(ctx, ext, source, runner, log)
        push_built(ctx, key, wheel)
        return _install_built(ctx, ext, key, wheel, installed, wheel_sha256=_sha256(ctx, wheel),
                              how=f"built (no cache; log: {log})")
    cache = WheelCache(ctx.options.cache_dir)
    with _key_lock(ctx, cache, key) as held:
        if unknowns:  # a dry run: no key to look up
            ctx.reporter.done(f"the wheel cache {cache.path} is looked up by the wheel's ABI key, which "
                              f"needs {', '.join(unknowns)}: not known before the real run gets here; "
                              "on a miss:")
        else:
            outcome = _cached(ctx, ext, key, installed, wait=held.waited, source_name=source.name)
            if outcome is not None:
                return outcome
            ctx.reporter.done(_miss_text(cache, key))
        wheel = _build(ctx, ext, source, runner, log)
        if held.read_only:
            return _install_built(ctx, ext, key, wheel, installed, wheel_sha256=_sha256(ctx, wheel),
                                  how=f"built; not cached: {cache.path} is read-only here (log: {log})")
        stored, sha256 = _store(ctx, cache, key, wheel, known_key=not unknowns)
        push_built(ctx, key, stored)
        return _install_built(ctx, ext, key, stored, installed, wheel_sha256=sha256,
                              how=f"built and cached as {key.digest[:12]} (log: {log})")


@contextmanager
def _key_lock(ctx: Context, cache: WheelCache, key: CacheKey) -> Iterator[LockInfo]:
    """The key's lock in the wheel cache; a dry run takes none (it would make the lock file), and says
    whether the cache can be written here as the lock would."""
    if ctx.dry_run:
        base = cache.entry_dir(key).parent.parent
        yield LockInfo(key, False, 0.0, read_only=base.is_dir() and not os.access(base, os.W_OK))
        return
    with cache.lock(key, on_wait=lambda wait: ctx.reporter.status(wait.describe())) as held:
        yield held


def _lookup(ctx: Context, cache: WheelCache, key: CacheKey) -> LookupResult:
    """The cache's verified entry of ``key``. A dry run reads it without touching it: no last use
    written, a refused entry not moved aside."""
    if not ctx.dry_run:
        return cache.lookup(key)
    if not cache.entry_dir(key).exists():
        return LookupResult(None)
    entry = cache.entry_of(key.digest)
    if entry is None or entry.key.digest != key.digest:
        return LookupResult(None, refused="the entry is incomplete or unreadable")
    problem = cache.verify(entry)
    return LookupResult(None, refused=problem) if problem else LookupResult(entry)


def _store(
    ctx: Context, cache: WheelCache, key: CacheKey, wheel: Path, *, known_key: bool
) -> tuple[Path, str]:
    """Store the built ``wheel`` under ``key``: the stored copy (what is installed) and its sha256."""

    def store() -> tuple[Path, str]:
        entry = cache.store(key, wheel)
        return entry.wheel, entry.sha256

    entry_dir = cache.entry_dir(key) if known_key else cache.path / unknown("the entry of its key")
    return ctx.runner.perform(f"store it in the wheel cache {cache.path} under its key", store,
                              lambda: (entry_dir / wheel.name, unknown("its sha256")))


def _sha256(ctx: Context, wheel: Path) -> str:
    return ctx.runner.perform("", lambda: file_sha256(wheel), lambda: unknown("its sha256"))


def _cached_under_lock(
    ctx: Context, ext: ExtensionPlan, key: CacheKey, installed: dict[str, str]
) -> str | None:
    """:func:`_cached` holding the key's lock, so a prune beside this setup cannot remove the wheel
    between the lookup and its install."""
    if ctx.options.cache_dir is None:
        return None
    cache = WheelCache(ctx.options.cache_dir)
    if not cache.entry_dir(key).exists() and shared_cache(ctx) is None:
        return None  # a miss: no lock to wait for here, the fetch and build path takes it
    with _key_lock(ctx, cache, key) as held:
        return _cached(ctx, ext, key, installed, wait=held.waited)


def _already_there(ctx: Context, ext: ExtensionPlan, key: CacheKey, installed: dict[str, str]) -> str | None:
    """A resumed run: the wheel of ``key`` is what an earlier run installed here."""
    extensions = ctx.state.get("extensions")
    done = extensions.get(ext.name) if isinstance(extensions, dict) else None
    if not isinstance(done, dict) or done.get("cache-key") != key.digest or done.get("name") not in installed:
        return None
    try:
        record = _locked_from_state(done)
    except (KeyError, TypeError, ValueError):
        return None  # a damaged record: do the work again rather than trust it
    ctx.reused.append(ext.name)
    ctx.locked.append(record)
    assert ctx.torch is not None
    return f"{done['name']} {installed[done['name']]} already installed, built for torch {ctx.torch.version}"


def _cached(
    ctx: Context, ext: ExtensionPlan, key: CacheKey, installed: dict[str, str], *, wait: bool,
    source_name: str | None = None,
) -> str | None:
    """Install the cached wheel of ``key``, if the cache holds a sound one.

    The caller holds the key's lock (prune cannot remove the wheel before it is
    installed); ``wait`` says whether it waited for it. A refused entry is moved
    aside by the lookup, so it is reported here, on either path. ``source_name``:
    the name the fetched source declares, which a shared cache files its wheel
    under when it is not the key's (a local tree's key is named by its folder).
    """
    if ctx.options.cache_dir is None:
        return None
    cache = WheelCache(ctx.options.cache_dir)
    looked = _lookup(ctx, cache, key)
    if looked.refused:
        ctx.reporter.done(f"refused the cached wheel of {ext.name}: {looked.refused}; rebuilding it")
    if looked.entry is None:
        also = [source_name] if source_name else []
        return _from_elsewhere(ctx, ext, key, installed, cache, fetch_shared(ctx, key, also=also))
    assert ctx.torch is not None
    waited = " after waiting for another process that built it" if wait else ""
    ctx.cached.append(ext.name)
    return _install_built(ctx, ext, key, looked.entry.wheel, installed, wheel_sha256=looked.entry.sha256,
                          how=f"cached{waited}: key {key.digest[:12]} matched "
                              f"(torch {ctx.torch.version}, {_archs_text(key)})")


def _prebuilt(ctx: Context, ext: ExtensionPlan, installed: dict[str, str]) -> str | None:
    """A publisher's wheel of ``ext``, audited (or the one an earlier audit kept under its key)."""
    key = prebuilt_key(ctx, ext)
    if key is None or ctx.options.cache_dir is None:
        return None
    cache = WheelCache(ctx.options.cache_dir)
    with _key_lock(ctx, cache, key) as held:
        outcome = None if key_unknowns(ctx, ext, key) else _cached(ctx, ext, key, installed, wait=held.waited)
        if outcome is not None:
            return outcome
        found = find_audited(ctx, ext)
        if found is not None:
            push = not held.read_only
            return _from_elsewhere(ctx, ext, key, installed, cache, found, push=push)
    return None


def _from_elsewhere(
    ctx: Context, ext: ExtensionPlan, key: CacheKey, installed: dict[str, str], cache: WheelCache,
    found: Found | None, *, push: bool = False,
) -> str | None:
    """Install a wheel from a shared cache or a publisher, kept in the local cache under ``key``."""
    if found is None:
        return None
    try:
        entry = cache.store(key, found.wheel)
        wheel, sha = entry.wheel, entry.sha256
    except CacheError:  # a read-only cache here: install the download itself
        wheel, sha = found.wheel, file_sha256(found.wheel)
    if push:
        push_built(ctx, key, wheel)
    ctx.cached.append(ext.name)
    return _install_built(ctx, ext, key, wheel, installed, wheel_sha256=sha, how=found.how)


def _archs_text(key: CacheKey) -> str:
    return f"archs {';'.join(key.arch_list)}" if key.arch_list else "no CUDA code"


def _miss_text(cache: WheelCache, key: CacheKey) -> str:
    nearest = cache.nearest(key)
    if nearest is None:
        return f"cache miss: no wheel of {key.name} in {cache.path}; building"
    _, differences = nearest
    return f"cache miss: the nearest {key.name} wheel differs in {'; '.join(differences)}; building"


def _check_tree(ctx: Context, ext: ExtensionPlan, source: Source) -> None:
    """Stop before a long build that cannot succeed: what the fetched setup.py itself says.

    The catalog describes releases; a git checkout, a fork or a release newer than the catalog is
    what its build files say (:mod:`gpuenv.plan.treecheck`). What holds for certain stops the
    build with the file and line; what may hold is a warning.
    """
    tree = source.readable
    if tree is None:
        return  # a dry run fetched nothing: the real run reads it here
    setup_py = tree / "setup.py"
    if not setup_py.is_file():
        return
    build = scan_setup(setup_py).build
    if build is None:
        return
    toolkit = ctx.build_toolkit
    torch = ctx.facts
    verdict = check_tree(
        build, name=ext.name, env=ext.env, build_options=ext.build_options,
        nvcc=toolkit.nvcc_version if toolkit is not None and ext.compiles_cuda else None,
        torch_version=torch.version if torch is not None else (ctx.torch.version if ctx.torch else None),
        torch_cxx=torch.cxx_standard if torch is not None else None,
        compiles_cuda=ext.compiles_cuda,
    )
    for note in verdict.notes:
        ctx.reporter.done(f"warning: {note}")
    if verdict.problems:
        raise BuildError(
            ext.name, ctx.log(ext.name), problem=f"its build files say it cannot build here: "
            f"{'; '.join(verdict.problems)} (read from {tree})",
            hint=f"use a release of {ext.name} that builds with this torch and nvcc, or plan another "
            "torch or CUDA (--cuda); gpuenv read this before building, so nothing was compiled",
        )


def _build(ctx: Context, ext: ExtensionPlan, source: Source, runner: SubprocessRunner, log: Path) -> Path:
    _check_tree(ctx, ext, source)
    return build_wheel(
        source.directory,
        read_from=source.origin,
        fetched=source.fetched,
        env=ctx.target,
        installer=ctx.installer,
        runner=runner,
        build_env=ext.env,
        out_dir=ctx.options.work / "wheels",
        extra_requires=ext.build_requires,
        name=ext.name,
        log_path=log,
        on_phase=ctx.reporter.status,
        config_settings={"--build-option": list(ext.build_options)} if ext.build_options else None,
    )


def _install_built(
    ctx: Context, ext: ExtensionPlan, key: CacheKey, wheel: Path, installed: dict[str, str], *,
    wheel_sha256: str, how: str,
) -> str:
    torch = ctx.torch
    assert torch is not None
    ctx.reporter.status(f"installing {wheel.name}")
    pin = [torch.requirement]
    # One installer run. A rebuild for other archs has its version installed already,
    # with its dependencies, which an installer leaves alone: the wheel alone goes in again.
    again = _same_version(installed.get(_wheel_name(wheel)), _wheel_version(wheel))
    ctx.installer.install(ctx.target, [str(wheel)],
                          InstallOptions(constraints=pin, no_deps=again, force_reinstall=again))
    record = LockedExtension(
        name=_wheel_name(wheel), version=_wheel_version(wheel), requirement=ext.requirement,
        cache_key=key.digest, wheel=wheel.name, wheel_sha256=wheel_sha256, source=key.source_sha256,
        arch_list=key.arch_list, knobs=dict(key.knobs),
    )
    ctx.locked.append(record)
    ctx.state.setdefault("extensions", {})[ext.name] = _state_from_locked(record)
    if ext.compiles_cuda and ctx.build_toolkit is not None:
        ctx.state["toolkit"] = toolkit_record(ctx.build_toolkit)
    ctx.save_state()
    if not how.startswith(("cached", "from the shared cache", "prebuilt")):
        ctx.built.append(ext.name)
    return f"{wheel.name}: {how}"


def _wheel_name(wheel: Path) -> str:
    """The distribution a wheel installs (a local tree's directory name may differ)."""
    return canonicalize_name(wheel.name.split("-")[0])


def _same_version(installed: str | None, version: str) -> bool:
    if installed is None:
        return False
    try:
        return Version(installed) == Version(version)
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return installed == version


def _wheel_version(wheel: Path) -> str:
    parts = wheel.name.split("-")
    return parts[1] if len(parts) > 2 else ""


def _state_from_locked(record: LockedExtension) -> dict[str, Any]:
    return {"cache-key": record.cache_key, "name": record.name, "version": record.version,
            "requirement": record.requirement, "wheel": record.wheel, "wheel-sha256": record.wheel_sha256,
            "source": record.source, "arch-list": list(record.arch_list), "knobs": dict(record.knobs)}


def _locked_from_state(done: dict[str, Any]) -> LockedExtension:
    fields = {name: done[name] for name in ("name", "version", "requirement", "cache-key", "wheel",
                                            "wheel-sha256", "source")}
    if not all(isinstance(value, str) for value in fields.values()):
        raise TypeError("a field of the state file's record is not a string")
    arch_list, knobs = done["arch-list"], done["knobs"]
    if not isinstance(arch_list, list) or not isinstance(knobs, dict):
        raise TypeError("arch-list or knobs of the state file's record has the wrong type")
    return LockedExtension(
        name=fields["name"], version=fields["version"], requirement=fields["requirement"],
        cache_key=fields["cache-key"], wheel=fields["wheel"], wheel_sha256=fields["wheel-sha256"],
        source=fields["source"], arch_list=tuple(str(a) for a in arch_list),
        knobs={str(k): str(v) for k, v in knobs.items()},
    )


def _local_path(ext: ExtensionPlan) -> Path | None:
    return Path(ext.path) if ext.path is not None else None
