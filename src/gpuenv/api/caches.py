"""The ``gpuenv cache`` commands as the library does them: list, prune, export, push.

Each takes the wheel cache's folder (``Project.cache_dir``: ``--cache-dir``, else ``GPUENV_CACHE_DIR``,
else the default); the toolkit cache sits beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpuenv.cache.entry import CacheEntry
    from gpuenv.cache.shared import PushReport
    from gpuenv.cache.toolkitcache import ProvisionedToolkit
    from gpuenv.cache.wheelhouse import WheelhouseExport


@dataclass(frozen=True)
class CacheListing:
    """What the caches hold: every wheel and every toolkit gpuenv provisioned."""

    path: Path
    toolkit_path: Path
    entries: tuple[CacheEntry, ...]
    toolkits: tuple[ProvisionedToolkit, ...]

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)


@dataclass(frozen=True)
class Pruned:
    """What ``cache prune`` removed (with ``dry_run``: would remove; toolkits are then left alone)."""

    path: Path
    dry_run: bool
    entries: tuple[CacheEntry, ...]
    toolkits: tuple[ProvisionedToolkit, ...]

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)


@dataclass(frozen=True)
class Caches:
    """The wheel cache at ``path`` and the toolkit cache beside it."""

    path: Path

    @property
    def toolkit_path(self) -> Path:
        from gpuenv.cache.toolkitcache import default_toolkit_dir

        return default_toolkit_dir(self.path)

    def listing(self) -> CacheListing:
        from gpuenv.cache.toolkitcache import ToolkitCache
        from gpuenv.cache.wheels import WheelCache

        cache = WheelCache(self.path)
        entries = cache.entries() if cache.path.exists() else []
        return CacheListing(cache.path, self.toolkit_path, tuple(entries),
                            tuple(ToolkitCache(self.toolkit_path).toolkits()))

    def prune(self, *, older_than: float | None = None, unused_since: str | None = None,
              max_size: str | None = None, dry_run: bool = False) -> Pruned:
        """Remove wheels built more than ``older_than`` days ago, unused since ``unused_since``
        (YYYY-MM-DD), then the least recently used until the cache fits ``max_size`` ("20G"); the first
        two cover the toolkit cache too."""
        from gpuenv.cache.prunelimits import prune_limits
        from gpuenv.cache.toolkitcache import ToolkitCache
        from gpuenv.cache.wheels import WheelCache

        limits = prune_limits(older_than_days=older_than, unused_since=unused_since, max_size=max_size)
        cache = WheelCache(self.path)
        removed = cache.prune(older_than=limits.older_than, unused_since=limits.unused_since,
                              max_total_bytes=limits.max_total_bytes, dry_run=dry_run)
        toolkits: list[ProvisionedToolkit] = []
        if not dry_run and (limits.older_than is not None or limits.unused_since is not None):
            toolkits = ToolkitCache(self.toolkit_path).prune(older_than=limits.older_than,
                                                             unused_since=limits.unused_since)
        return Pruned(cache.path, dry_run, tuple(removed), tuple(toolkits))

    def export(self, directory: Path) -> WheelhouseExport:
        """The wheels as find-links folders, one per ABI group, under ``directory``."""
        from gpuenv.cache.wheelhouse import export_wheelhouse
        from gpuenv.cache.wheels import WheelCache

        return export_wheelhouse(WheelCache(self.path), directory)

    def push(self, target: str) -> PushReport:
        """Upload every sound wheel to the index or folder ``target`` under its ABI key."""
        import tempfile

        from gpuenv.cache.shared import cache_source, push_cache
        from gpuenv.cache.wheels import WheelCache

        source = cache_source(target)
        with tempfile.TemporaryDirectory(prefix="gpuenv-push-") as work:
            return push_cache(WheelCache(self.path), source, Path(work))
