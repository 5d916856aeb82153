"""The step that makes the plan's toolkit from PyPI available: provisioned once, then held while setup builds.

It runs when the plan's toolkit comes from PyPI (``toolkit.source == "pypi"``)
and some extension compiles CUDA. The toolkit cache's shared lock is held
until setup ends, so a ``gpuenv cache prune`` beside it cannot remove the
nvcc a build is using. Every toolkit a setup builds with (from PyPI or not)
is recorded in the state file, where ``gpuenv doctor`` reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpuenv.cache.toolkitcache import ToolkitCache, WheelInstaller, pinned_wheels, toolkit_home
from gpuenv.env.targetenv import TargetEnv
from gpuenv.errors import CommandError, ToolkitError
from gpuenv.plan.envplan import Plan
from gpuenv.plan.hardware import Toolkit
from gpuenv.runner import unknown
from gpuenv.setup.context import Context, Step
from gpuenv.setup.installer import Installer, InstallOptions


def needs_toolkit_step(plan: Plan) -> bool:
    return plan.toolkit is not None and plan.toolkit.source == "pypi" and any(
        e.compiles_cuda and e.action != "skip" for e in plan.extensions)


def toolkit_step(plan: Plan) -> Step:
    toolkit = plan.toolkit
    assert toolkit is not None

    def run(ctx: Context) -> str:
        return _provide(ctx, toolkit)

    return Step(f"toolkit: CUDA {toolkit.version} from PyPI", run)


def _provide(ctx: Context, planned: Toolkit) -> str:
    cache = cache_of(planned)
    log = ctx.log("toolkit")
    runner = ctx.runner.with_log(log, on_line=ctx.reporter.status)
    install = wheel_installer(ctx.installer.with_runner(runner), ctx.target)
    if ctx.dry_run:
        return _provide_recorded(ctx, cache, planned.version, install)
    provided = ctx.resources.enter_context(
        cache.use(planned.version, install, on_wait=ctx.reporter.status))
    ctx.toolkit = provided.toolkit
    record(ctx, provided.toolkit)
    how = "downloaded and provisioned" if provided.downloaded else "already in the toolkit cache"
    waited = " after waiting for another setup provisioning it" if provided.waited else ""
    return f"nvcc {provided.toolkit.release} at {provided.toolkit.nvcc}: {how}{waited} (log: {log})"


def _provide_recorded(ctx: Context, cache: ToolkitCache, version: str, install: WheelInstaller) -> str:
    """What :meth:`ToolkitCache.use` does, for a dry run: the toolkit the cache holds (its nvcc asked),
    else the install of its wheels recorded, into a folder of the cache's that the real run makes."""
    found = cache.find(version)
    if found is not None:
        ctx.toolkit = found.toolkit
        return f"nvcc {found.toolkit.release} at {found.toolkit.nvcc}: already in the toolkit cache"
    home = cache.home(version)
    folder = home.parent / ".tmp" / unknown(f"a new folder for CUDA {version}")
    ctx.reporter.done(f"CUDA {version} is not in the toolkit cache {cache.path}: under its lock, its wheels "
                      "are installed into a new folder of the cache")
    install(pinned_wheels(version), folder / "wheels")
    ctx.reporter.done(f"then laid out as a CUDA_HOME, its nvcc asked, and published as {home} (one rename); "
                      "the builds below use it")
    return f"CUDA {version} provisioned into {home}"


def cache_of(toolkit: Toolkit) -> ToolkitCache:
    """The toolkit cache a planned PyPI toolkit lives in (its home is ``<cache>/v1/cuda-X.Y``)."""
    root = Path(toolkit.root).parent.parent
    assert toolkit_home(root, toolkit.version) == toolkit.root, toolkit.root
    return ToolkitCache(root)


def record(ctx: Context, toolkit: Toolkit) -> None:
    """Note in the state file which toolkit this setup builds with (``gpuenv doctor`` says it)."""
    ctx.state["toolkit"] = toolkit_record(toolkit)
    ctx.save_state()


def toolkit_record(toolkit: Toolkit) -> dict[str, Any]:
    return {"version": toolkit.version, "release": toolkit.release, "source": toolkit.source,
            "home": toolkit.root}


def wheel_installer(installer: Installer, env: TargetEnv) -> WheelInstaller:
    """Install wheels into a directory with setup's own installer (pip or uv) and the sources it uses.

    The installer's command for ``env``, with ``--target DIR --only-binary :all:``
    before the requirements: pip and uv both take them, and the package
    sources (pip's configuration, which gpuenv passes to uv too) are the ones
    every other install of the setup uses. Dependencies are installed: the
    requirement is NVIDIA's meta-package, whose dependencies are the pinned
    component wheels.
    """

    def install(requirements: Sequence[str], target: Path) -> None:
        wanted = list(requirements)
        try:
            *first, last = installer.commands(env, wanted, InstallOptions())
            for cmd in first:  # pip put into an env that lacks it: as it is
                installer.runner(cmd, extra_environ=installer.environ())
            head = last[: len(last) - len(wanted)]
            installer.runner([*head, "--only-binary", ":all:", "--target", str(target), *wanted],
                             extra_environ=installer.environ())
        except CommandError as exc:
            release = wanted[0].split("==")[-1].removesuffix(".*") if wanted else ""
            raise ToolkitError(
                f"cannot install the CUDA toolkit wheels ({' '.join(wanted)}) from the package "
                f"sources {installer.name} is configured with: {exc}",
                needed=release, found=[],
                hint="check that the installer reaches PyPI or a mirror of it (pip config list); offline, "
                "install a CUDA toolkit of this release (conda's cuda-nvcc, your cluster's module, "
                "NVIDIA's runfile) and pass --toolkit PATH or --toolkit system",
            ) from exc

    return install
