"""The toolkit cache: CUDA toolkits provisioned from PyPI wheels, once per CUDA release, safe to share.

PyPI holds the CUDA 13 compiler (``nvidia-cuda-nvcc``) with its headers and
runtime in separate wheels (``nvidia-cuda-crt``, ``-runtime``, ``-cccl``,
``nvidia-nvvm``), all under ``nvidia/cu13/``. Installed side by side with
``pip install --target`` (or uv's) and laid out as below, they make a ``CUDA_HOME``
that ``torch.utils.cpp_extension`` and nvcc's own ``nvcc.profile`` accept:
this machine's ``/usr/local/cuda-13.0`` was made the same way.

On disk (``root`` is ``<wheel cache>/toolkits``, see :func:`default_toolkit_dir`)::

    root/v1/cuda-13.0/                      the CUDA_HOME: bin/nvcc, include/{crt,cccl}, lib, nvvm,
                                            lib64 -> lib, targets/<arch>-linux/{include,lib}, dist-info/
    root/v1/cuda-13.0/gpuenv-toolkit.json   release, nvcc's full version, the wheels, when
    root/v1/cuda-13.0/last_used             empty; its mtime is the last use
    root/v1/.locks/cuda-13.0.lock           flock(2): shared while used, exclusive to provision or prune
    root/v1/.tmp/<...>                      toolkits being provisioned or removed

The guarantees of the store both caches keep their entries in
(:mod:`gpuenv.cache.store`): a toolkit is published by one ``rename(2)`` of a
complete directory, so a provisioning killed at any point leaves at most a
stale temporary directory (removed an hour later) and never a usable
half-toolkit; concurrent setups that need one release download it once (the
second waits on the exclusive lock, then finds it); a toolkit is removed by
prune only while nobody holds its shared lock, which every setup building
with it does. The layout above is this module's (:func:`toolkit_home`): the
planner names a toolkit still to be provisioned by asking it
(:attr:`~gpuenv.plan.toolkitchoice.ToolkitPolicy.pypi_home`, filled by :func:`toolkit_policy`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import platform
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from gpuenv.cache.files import fsync_dir, read_meta, remove_tree, touch, write_synced
from gpuenv.cache.locking import LockHolder
from gpuenv.cache.store import LAST_USED_FILE, STALE_TEMP_AGE, CacheError, OnWait, Store
from gpuenv.cache.words import aware, human_age, human_size
from gpuenv.errors import ToolkitError
from gpuenv.plan import knowledge
from gpuenv.plan.hardware import Toolkit
from gpuenv.plan.toolkitchoice import TOOLKIT_MODES, ToolkitPolicy
from gpuenv.probe.toolkitroots import _toolkit_at, is_toolkit_root, toolkit_at
from gpuenv.runner import Runner, SubprocessRunner
from gpuenv.version import __version__

META_FILE = "gpuenv-toolkit.json"

#: The version of the layout below the cache's root (``v1``).
TOOLKIT_SCHEMA = 1

#: CUDA's name of this machine's target directory (nvcc.profile reads targets/<it>/include).
_TARGETS = {"x86_64": "x86_64-linux", "aarch64": "sbsa-linux", "ppc64le": "ppc64le-linux"}

#: Stages of :meth:`ToolkitCache.provision`, for fault-injection tests.
Checkpoint = Callable[[str], None]
#: Installs the wheels (requirement lines) into a directory: pip install --target.
WheelInstaller = Callable[[Sequence[str], Path], None]


def default_toolkit_dir(cache_dir: Path | str) -> Path:
    """The toolkit cache of the wheel cache at ``cache_dir``: ``cache_dir/toolkits``."""
    return Path(cache_dir) / "toolkits"


def toolkit_home(root: Path | str, version: str) -> str:
    """Where CUDA ``version`` ("13.0") is, or will be, provisioned under the toolkit cache ``root``."""
    return os.path.join(str(root), f"v{TOOLKIT_SCHEMA}", f"cuda-{version}")


def toolkit_policy(choice: str, *, chosen_by: str = "", cache_dir: str = "",
                   runner: Runner | None = None) -> ToolkitPolicy:
    """``--toolkit``'s value (auto, system, pypi or a path) as the plan's :class:`ToolkitPolicy`, with
    where the toolkit cache at ``cache_dir`` provisions a release from PyPI."""
    mode = choice.strip().lower()
    home = functools.partial(toolkit_home, cache_dir)
    if mode in TOOLKIT_MODES:
        return ToolkitPolicy(mode=mode, pypi_home=home, chosen_by=chosen_by)
    return ToolkitPolicy(mode="path", given=toolkit_at(choice, runner), pypi_home=home, chosen_by=chosen_by)


@dataclass(frozen=True)
class ProvisionedToolkit:
    """A toolkit in the cache: where it is, what nvcc says, and its record."""

    toolkit: Toolkit
    path: Path
    meta: dict[str, Any]
    size: int
    created: datetime
    last_used: datetime

    def summary(self, now: datetime | None = None) -> str:
        """``CUDA 13.0 · nvcc 13.0.88 · 271.0 MB · 3 days ago``."""
        now = now or datetime.now(timezone.utc)
        parts = [f"CUDA {self.toolkit.version}", f"nvcc {self.toolkit.nvcc_version}", human_size(self.size),
                 human_age(now - self.created)]
        if self.last_used - self.created > timedelta(minutes=1):
            parts.append(f"used {human_age(now - self.last_used)}")
        return " · ".join(parts)


@dataclass(frozen=True)
class Provided:
    """What :meth:`ToolkitCache.use` yields: the toolkit, and whether this call downloaded it."""

    toolkit: Toolkit
    downloaded: bool
    waited: bool


class ToolkitCache:
    """Toolkits under ``root``, one per CUDA release. Nothing is touched until used."""

    def __init__(self, root: Path | str, runner: Runner | None = None) -> None:
        self.path = Path(root)
        self._base = self.path / f"v{TOOLKIT_SCHEMA}"
        # Within the wheel cache it is part of (toolkits/ is gpuenv's folder there): no folder below
        # that may be a link (see gpuenv.cache.files.own_folder).
        self._store = Store(self._base, self.path.parent)
        self._run = runner or SubprocessRunner()

    def __repr__(self) -> str:
        return f"ToolkitCache({str(self.path)!r})"

    def home(self, version: str) -> Path:
        return Path(toolkit_home(self.path, version))

    # -- lookup -------------------------------------------------------------------

    def find(self, version: str) -> ProvisionedToolkit | None:
        """The published toolkit of ``version`` if its nvcc answers with the release recorded."""
        home = self.home(version)
        try:
            entry = self._load(home)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return entry if entry.toolkit.version == version and entry.meta.get("version") == version else None

    def toolkits(self) -> list[ProvisionedToolkit]:
        """Every published toolkit that answers, newest release first."""
        if not self._base.is_dir():
            return []
        found = []
        for home in sorted(self._base.glob("cuda-*")):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                found.append(self._load(home))
        return sorted(found, key=lambda e: e.toolkit.version_tuple, reverse=True)

    def _load(self, home: Path) -> ProvisionedToolkit:
        meta = read_meta(home / META_FILE)
        if not is_toolkit_root(str(home)):
            raise ValueError(f"{home} is not a complete toolkit")
        for name, kind in (("release", str), ("created", str), ("size", int)):
            if not isinstance(meta.get(name), kind) or isinstance(meta[name], bool):
                raise TypeError(f"{META_FILE}: {name} is not a {kind.__name__}")
        toolkit = _toolkit_at(str(home), self._run)
        if toolkit is None or toolkit.release != meta["release"]:
            raise ValueError(f"{home}/bin/nvcc does not answer with {meta['release']}")
        created = aware(datetime.fromisoformat(str(meta["created"])))
        try:
            last_used = datetime.fromtimestamp((home / LAST_USED_FILE).stat().st_mtime, timezone.utc)
        except FileNotFoundError:
            last_used = created
        return ProvisionedToolkit(toolkit=Toolkit(nvcc=toolkit.nvcc, version=toolkit.version, home=str(home),
                                                  source="pypi", release=toolkit.release),
                                  path=home, meta=meta, size=int(meta["size"]), created=created,
                                  last_used=max(last_used, created))

    # -- use and provision ----------------------------------------------------------

    @contextlib.contextmanager
    def use(
        self,
        version: str,
        install: WheelInstaller,
        *,
        on_wait: Callable[[str], None] | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> Iterator[Provided]:
        """Hold CUDA ``version``'s toolkit (provisioning it first if needed) while the block runs.

        A published toolkit is taken under the shared lock. Otherwise the
        exclusive lock is taken (``on_wait`` is told once if another process
        holds it: it is provisioning the same release), the toolkit is
        looked up again, provisioned with ``install`` if still missing, and
        the lock goes back to shared for the block.
        """
        told = self._told(version, on_wait)
        fd, waited = self._lock(version, fcntl.LOCK_SH, told)
        try:
            entry = self.find(version)
            downloaded = False
            while entry is None:
                waited = self._store.relock(fd, _lock_name(version), fcntl.LOCK_EX, told) or waited
                Store.say_holder(fd)  # who provisions, for whoever waits
                entry = self.find(version)
                if entry is None:
                    entry = self.provision(version, install, checkpoint=checkpoint)
                    downloaded = True
                self._store.relock(fd, _lock_name(version), fcntl.LOCK_SH)
                entry = self.find(version)  # a prune may slip in while the lock changes mode
            touch(entry.path / LAST_USED_FILE)
            yield Provided(entry.toolkit, downloaded, waited)
        finally:
            os.close(fd)

    def _lock(self, version: str, mode: int, told: OnWait | None = None
              ) -> tuple[int, bool]:
        """CUDA ``version``'s lock, taken in ``mode``: its descriptor and whether it waited."""
        try:
            locked = self._store.lock(_lock_name(version), mode, on_wait=told)
        except OSError as exc:
            raise CacheError(
                f"cannot lock CUDA {version} in the toolkit cache {self.path}: {exc.strerror or exc}",
                hint="choose a writable cache directory with GPUENV_CACHE_DIR or --cache-dir",
            ) from exc
        assert locked is not None  # no timeout: it waits
        return locked

    def _told(self, version: str, on_wait: Callable[[str], None] | None) -> OnWait | None:
        if on_wait is None:
            return None

        def told(holder: LockHolder | None) -> None:
            by = f" ({holder})" if holder else ""
            on_wait(f"waiting for another process provisioning CUDA {version} into {self.path}{by}")
        return told

    def provision(self, version: str, install: WheelInstaller, *, checkpoint: Checkpoint | None = None
                  ) -> ProvisionedToolkit:
        """Install CUDA ``version``'s wheels into a temporary directory, lay them out, publish.

        The caller holds the exclusive lock of ``version``. An entry that is
        there but does not answer (altered since) is moved aside first.
        """
        hook = checkpoint or (lambda stage: None)
        self.remove_stale_temps()
        temp = self._store.new_temp(f"cuda-{version}")
        try:
            hook("temp-created")
            install(pinned_wheels(version), temp / "wheels")
            hook("wheels-installed")
            home = temp / "home"
            meta = lay_out(temp / "wheels", home, version)
            toolkit = _toolkit_at(str(home), self._run)
            if toolkit is None or toolkit.version != version:
                said = toolkit.version if toolkit is not None else "nothing"
                raise ToolkitError(f"the nvcc installed from PyPI for CUDA {version} says {said}",
                                   needed=version, found=[said])
            meta.update(release=toolkit.release, size=_tree_size(home),
                        created=datetime.now(timezone.utc).isoformat(), gpuenv_version=__version__)
            write_synced(home / META_FILE, json.dumps(meta, indent=2) + "\n")
            write_synced(home / LAST_USED_FILE, "")
            fsync_dir(home)
            hook("before-publish")
            final = self.home(version)
            if final.exists():
                self._store.remove(final, final.name)
            self._store.publish(home, final)
        except OSError as exc:
            raise CacheError(
                f"cannot provision CUDA {version} into the toolkit cache {self.path}: {exc.strerror or exc}",
                hint="choose a writable cache directory with GPUENV_CACHE_DIR or --cache-dir",
            ) from exc
        finally:
            remove_tree(temp)
        entry = self.find(version)
        if entry is None:
            raise CacheError(f"CUDA {version} was provisioned into {self.path} but does not answer")
        return entry

    # -- prune --------------------------------------------------------------------

    def prune(self, *, older_than: timedelta | None = None,
              unused_since: datetime | None = None) -> list[ProvisionedToolkit]:
        """Remove toolkits provisioned longer ago than ``older_than`` or unused since ``unused_since``.

        A toolkit in use (its lock held by a setup) is kept. Stale temporary
        directories go too.
        """
        self.remove_stale_temps()
        now = datetime.now(timezone.utc)
        since = aware(unused_since) if unused_since is not None else None
        removed = []
        for entry in self.toolkits():
            too_old = older_than is not None and now - entry.created > older_than
            unused = since is not None and entry.last_used < since
            if (too_old or unused) and self._remove(entry):
                removed.append(entry)
        return removed

    def _remove(self, entry: ProvisionedToolkit) -> bool:
        """Remove ``entry`` unless a setup holds its lock (using it, or provisioning it anew)."""
        try:
            fd = self._store.try_lock(_lock_name(entry.toolkit.version))
        except OSError as exc:
            raise CacheError(
                f"cannot lock CUDA {entry.toolkit.version} in the toolkit cache {self.path}: "
                f"{exc.strerror or exc}",
                hint="choose a writable cache directory with GPUENV_CACHE_DIR or --cache-dir",
            ) from exc
        if fd is None:
            return False
        try:
            return self._store.remove(entry.path, entry.path.name)
        finally:
            os.close(fd)

    def remove_stale_temps(self, older_than: timedelta = STALE_TEMP_AGE) -> list[Path]:
        """Remove temporary directories of dead processes (older than an hour); return them."""
        return self._store.remove_stale_temps(older_than)


def _lock_name(version: str) -> str:
    """The name of CUDA ``version``'s lock in the store (``.locks/cuda-13.0.lock``)."""
    return f"cuda-{version}"


# -- the wheels and their layout ---------------------------------------------------------


def pinned_wheels(version: str) -> list[str]:
    """The requirement lines of CUDA ``version``'s toolkit: every wheel pinned to the release.

    nvidia-cuda-nvcc's own requirements are unpinned, left to pip they bring the
    newest crt, runtime and nvvm; and the components do not share a version
    scheme (nvidia-cuda-cccl of CUDA 13.3 is 13.3.3.3.1). NVIDIA's meta-package
    ``cuda-toolkit`` pins each component of one release: it is installed with the
    extras that make a CUDA_HOME.
    """
    return [knowledge.pypi_toolkit_requirement(version)]


def lay_out(site: Path, home: Path, version: str) -> dict[str, Any]:
    """Make ``home`` a CUDA_HOME from the wheels pip installed into ``site``; return their record.

    The wheels share one prefix, ``nvidia/cu<major>/``: its bin, include, lib
    and nvvm become the root. Then what a toolkit from NVIDIA has and the
    wheels lack: ``lib64 -> lib``, ``targets/<arch>/{include,lib}`` (nvcc.profile
    looks there) and the unversioned ``.so`` links the linker wants (-lcudart).
    """
    prefix = site / "nvidia" / f"cu{version.split('.')[0]}"
    if not (prefix / "bin" / "nvcc").is_file():
        raise ToolkitError(f"the wheels for CUDA {version} hold no {prefix.relative_to(site)}/bin/nvcc",
                           needed=version, found=[])
    os.rename(prefix, home)
    (home / "dist-info").mkdir()
    wheels = {}
    for info in sorted(site.glob("*.dist-info")):
        name, _, rest = info.name.partition("-")
        wheels[name.replace("_", "-")] = rest.removesuffix(".dist-info")
        os.rename(info, home / "dist-info" / info.name)
    lib = home / "lib"
    lib.mkdir(exist_ok=True)
    os.symlink("lib", home / "lib64")
    target = home / "targets" / _TARGETS.get(platform.machine(), f"{platform.machine()}-linux")
    target.mkdir(parents=True)
    os.symlink("../../include", target / "include")
    os.symlink("../../lib", target / "lib")
    for versioned in sorted(lib.glob("lib*.so.*")):
        plain = lib / (versioned.name.split(".so.")[0] + ".so")
        if not plain.exists():
            os.symlink(versioned.name, plain)
    for directory in (home / "bin", home / "nvvm" / "bin"):
        for tool in directory.glob("*") if directory.is_dir() else ():
            if tool.is_file() and tool.suffix != ".profile":
                tool.chmod(tool.stat().st_mode | 0o111)  # a wheel's RECORD may drop the x bit
    return {"schema": TOOLKIT_SCHEMA, "version": version, "wheels": wheels}


def _tree_size(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total

