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

The guarantees of the wheel cache (:mod:`gpuenv.cache.wheels`, whose locks and
file operations, :mod:`gpuenv.cache.locking` and :mod:`gpuenv.cache.files`,
this module uses too): a toolkit is published by one ``rename(2)`` of a
complete directory, so a provisioning killed at any point leaves at most a
stale temporary directory (removed an hour later) and never a usable
half-toolkit; concurrent setups that need one release download it once (the
second waits on the exclusive lock, then finds it); a toolkit is removed by
prune only while nobody holds its shared lock, which every setup building
with it does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from gpuenv import __version__
from gpuenv.cache.files import (
    fsync_dir,
    own_folder,
    read_meta,
    remove_older,
    remove_tree,
    touch,
    write_synced,
)
from gpuenv.cache.locking import open_lock_file, read_holder, try_flock, wait_flock, write_holder
from gpuenv.cache.wheels import LAST_USED_FILE, STALE_TEMP_AGE, CacheError
from gpuenv.cache.words import aware, human_age, human_size
from gpuenv.errors import ToolkitError
from gpuenv.plan import knowledge
from gpuenv.plan.buildplan import TOOLKIT_SCHEMA, toolkit_home
from gpuenv.plan.hardware import Toolkit
from gpuenv.probe.toolkits import _toolkit_at, is_toolkit_root
from gpuenv.runner import Runner, SubprocessRunner

META_FILE = "gpuenv-toolkit.json"

#: CUDA's name of this machine's target directory (nvcc.profile reads targets/<it>/include).
_TARGETS = {"x86_64": "x86_64-linux", "aarch64": "sbsa-linux", "ppc64le": "ppc64le-linux"}

#: Stages of :meth:`ToolkitCache.provision`, for fault-injection tests.
Checkpoint = Callable[[str], None]
#: Installs the wheels (requirement lines) into a directory: pip install --target.
WheelInstaller = Callable[[Sequence[str], Path], None]


def default_toolkit_dir(cache_dir: Path | str) -> Path:
    """The toolkit cache of the wheel cache at ``cache_dir``: ``cache_dir/toolkits``."""
    return Path(cache_dir) / "toolkits"


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
        #: The wheel cache it is part of (toolkits/ is gpuenv's folder there): no folder below it is
        #: a link (see gpuenv.cache.files.own_folder).
        self._within = self.path.parent
        self._run = runner or SubprocessRunner()

    def __repr__(self) -> str:
        return f"ToolkitCache({str(self.path)!r})"

    def home(self, version: str) -> Path:
        return Path(toolkit_home(self.path, version))

    def _lock_path(self, version: str) -> Path:
        return self._base / ".locks" / f"cuda-{version}.lock"

    @property
    def _tmp(self) -> Path:
        return self._base / ".tmp"

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
        fd = self._open_lock(version)
        try:
            waited = self._lock(fd, version, fcntl.LOCK_SH, on_wait)
            entry = self.find(version)
            downloaded = False
            while entry is None:
                waited = self._lock(fd, version, fcntl.LOCK_EX, on_wait) or waited
                write_holder(fd)  # who provisions, for whoever waits
                entry = self.find(version)
                if entry is None:
                    entry = self.provision(version, install, checkpoint=checkpoint)
                    downloaded = True
                self._lock(fd, version, fcntl.LOCK_SH, None)
                entry = self.find(version)  # a prune may slip in while the lock changes mode
            touch(entry.path / LAST_USED_FILE)
            yield Provided(entry.toolkit, downloaded, waited)
        finally:
            os.close(fd)

    def _open_lock(self, version: str) -> int:
        try:
            return open_lock_file(self._lock_path(version), self._within)
        except OSError as exc:
            raise CacheError(
                f"cannot lock CUDA {version} in the toolkit cache {self.path}: {exc.strerror or exc}",
                hint="choose a writable cache directory with GPUENV_CACHE_DIR or --cache-dir",
            ) from exc

    def _lock(self, fd: int, version: str, mode: int, on_wait: Callable[[str], None] | None) -> bool:
        if try_flock(fd, mode):
            return False
        if on_wait is not None:
            holder = read_holder(self._lock_path(version))
            by = f" ({holder})" if holder else ""
            on_wait(f"waiting for another process provisioning CUDA {version} into {self.path}{by}")
        wait_flock(fd, None, 0.2, mode)
        return True

    def provision(self, version: str, install: WheelInstaller, *, checkpoint: Checkpoint | None = None
                  ) -> ProvisionedToolkit:
        """Install CUDA ``version``'s wheels into a temporary directory, lay them out, publish.

        The caller holds the exclusive lock of ``version``. An entry that is
        there but does not answer (altered since) is moved aside first.
        """
        hook = checkpoint or (lambda stage: None)
        self.remove_stale_temps()
        temp = self._new_temp(f"cuda-{version}")
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
            own_folder(final.parent, self._within)
            if final.exists():
                remove_tree(self._set_aside(final))
            os.rename(home, final)
            fsync_dir(final.parent)
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

    def _new_temp(self, prefix: str) -> Path:
        own_folder(self._tmp, self._within)
        temp = self._tmp / f"{prefix}-{os.getpid()}-{secrets.token_hex(6)}"
        temp.mkdir()
        return temp

    def _set_aside(self, path: Path) -> Path:
        trash = self._new_temp(f"{path.name}-removing")
        os.rename(path, trash / "entry")  # vanishes at once for lookups
        return trash

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
        fd = self._open_lock(entry.toolkit.version)
        try:
            if not try_flock(fd):
                return False
            try:
                trash = self._set_aside(entry.path)
            except FileNotFoundError:
                return False
            remove_tree(trash)
            return True
        finally:
            os.close(fd)

    def remove_stale_temps(self, older_than: timedelta = STALE_TEMP_AGE) -> list[Path]:
        """Remove temporary directories of dead processes (older than an hour); return them."""
        return remove_older(self._tmp, older_than, self._within)


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

