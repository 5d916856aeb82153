"""What the installer's configuration tells the plan: the torch releases on its indexes, its constraints.

The indexes are pip's (its index-url, else pip's own default, and its
extra-index-urls, read from its configuration files by
:mod:`gpuenv.env.pipconfig`) and the variant indexes of the recipe's (or
``--torch-index``'s) template, for the variants the recipe's torch range may
use. ``offline`` asks no index and reads no cache: the plan is made from the
data this gpuenv shipped with, exactly as released. :func:`installer_constraints`
reads pip's constraint files for what they allow of torch and its pairs.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from gpuenv.env.pipconfig import PipSources, pip_config, pip_sources
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.options import chosen_value
from gpuenv.plan.candidates import Constraint
from gpuenv.plan.knowledge import normalize_variant
from gpuenv.plan.recipespec import Recipe
from gpuenv.plan.releases import KnowledgeSource, TorchReleases, shipped_releases


def plan_releases(
    recipe: Recipe, *, cache_dir: Path, torch_index: str | None = None, cuda: str | None = None,
    refresh: bool = False, offline: bool = False, progress: Callable[[str], None] | None = None,
) -> TorchReleases:
    """What ``gpuenv plan`` and ``setup`` plan from (see the module's docstring)."""
    shipped = shipped_releases()
    if offline:
        source = shipped.sources[0]
        note = "offline: no index asked"
        shipped_only = KnowledgeSource(source.kind, source.where, source.date, note)
        return TorchReleases(shipped.releases, shipped.companions, (shipped_only,), shipped.warnings)
    from gpuenv.probe.torchindex import IndexQuery, ReadOptions, torch_releases

    sources = pip_sources(pip_config())
    ordinary: list[str] = []
    if not sources.no_index:
        default = sources.index_url or _pip_default_index()
        ordinary = [u for u in (default, *sources.extra_index_urls) if u]
    template = chosen_value("torch_index", torch_index, recipe=recipe)
    wanted = chosen_value("cuda", cuda, recipe=recipe)
    forced = None if wanted is None or wanted.strip().lower() == "auto" else normalize_variant(wanted)
    query = IndexQuery(
        ordinary=tuple(dict.fromkeys(ordinary)),
        variant_template=None if template == "config" else template,
        variants=shipped.variants_for(SpecifierSet(recipe.torch.version), forced),
        cafile=sources.cert,
    )
    options = ReadOptions(cache_dir=cache_dir, refresh=refresh, progress=progress)
    return torch_releases(query, shipped, options)


def installer_constraints(sources: PipSources | None = None) -> tuple[Constraint, ...]:
    """What pip's constraint files (its ``constraint`` setting) say of torch and the packages paired with it.

    pip holds every install to them, and gpuenv gives uv the same files: a plan outside them would fail
    at install. A file that cannot be read, or a line that is not a requirement, says nothing here (pip
    itself reports those when it installs).
    """
    sources = sources if sources is not None else pip_sources(pip_config())
    names = {"torch", *shipped_releases().packages}
    found: list[Constraint] = []
    for name in sources.constraints:
        path = Path(name.removeprefix("file://"))
        try:
            text = read_input(path)
        except UnreadableInput:
            continue
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith(("#", "-")):
                continue
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if canonicalize_name(req.name) in names and (req.marker is None or req.marker.evaluate()):
                found.append(Constraint(str(req), str(path)))
    return tuple(found)


def _pip_default_index() -> str | None:
    """The index pip uses when its configuration names none, as pip itself defines it."""
    try:
        from pip._internal.models.index import PyPI
    except ImportError:
        return None
    url: str = PyPI.simple_url
    return url


def env_python(recipe: Recipe) -> str | None:
    """The Python the env will have ("3.11", "3.13t"), when the recipe does not choose one: gpuenv's own."""
    if recipe.python is not None:
        return None
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    return f"{sys.version_info.major}.{sys.version_info.minor}" + ("t" if free_threaded else "")


def host_platform() -> str:
    """This machine's platform as wheels group them: "linux_x86_64", "macos_arm64", "win_amd64"."""
    from gpuenv.plan.indexfacts import platform_of

    return platform_of(sysconfig.get_platform().replace("-", "_").replace(".", "_"))
