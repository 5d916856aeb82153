"""The plan of one environment: what the planner decided, as data.

:class:`Plan` holds every decision ``setup`` carries out (torch and its
variant, the index, the arch list, the toolkit, each extension's plan, the
build and runtime environments) and its JSON form; :class:`Blocker` is what
stops ``setup`` on it; :func:`group_name` names the wheelhouse group a node
running it installs from. Made by :mod:`gpuenv.plan.planner`; read by setup,
the cache, the lock and the front ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.version import Version

from gpuenv.errors import PlanBlockedError, UnsatisfiableError
from gpuenv.plan.buildplan import ExtensionPlan
from gpuenv.plan.cachespec import redact, wheel_origins
from gpuenv.plan.giventorch import TorchFacts
from gpuenv.plan.hardware import Toolkit
from gpuenv.plan.recipespec import PackageSources, RepoSpec
from gpuenv.plan.releases import PlanKnowledge
from gpuenv.plan.repobuild import RepoBuild


@dataclass(frozen=True)
class Blocker:
    """Something that stops ``setup`` on this plan, with the hint that gets past it."""

    error: UnsatisfiableError = field(compare=False)

    def to_json(self) -> dict[str, Any]:
        """Its stable ``code`` ("toolkit-missing"), ``message``, ``hint`` and the data it is about."""
        return self.error.to_json()


@dataclass(frozen=True)
class Plan:
    recipe: str
    env_name: str
    #: "cu121", "cu130", "cpu".
    variant: str
    #: "12.1" or None for cpu.
    cuda: str | None
    #: The index torch comes from, or None when the ordinary index serves this variant.
    index_url: str | None
    #: Why the index is what it is (e.g. "cu130 is PyPI's default build of torch 2.14").
    index_note: str
    #: The torch requirement that will be installed, e.g. "torch==2.4.*".
    torch: str
    #: The torch minor release planned for, e.g. "2.4".
    torch_release: str
    #: Installed together with torch, from the same index (paired packages pinned to their pair).
    torch_packages: tuple[str, ...]
    arch_list: tuple[str, ...]
    #: The toolkit extensions compile with, or None when nothing compiles CUDA.
    toolkit: Toolkit | None
    #: The environment common to all builds (CUDA_HOME, TORCH_CUDA_ARCH_LIST, …).
    build_env: Mapping[str, str]
    extensions: tuple[ExtensionPlan, ...]
    #: Ordinary requirements, installed last.
    packages: tuple[str, ...]
    warnings: tuple[str, ...]
    #: Why this variant: one line per rule that decided it.
    reasons: tuple[str, ...] = ()
    #: Where the hardware facts came from ("nvml", "--gpu H100", "file nodes.json").
    hardware_source: str = "nvml"
    #: The newest torch version of the chosen release the data knows ("2.5.1"), or None.
    torch_version: str | None = None
    #: Each newer torch the recipe allows that was passed over, with the reason: one line each.
    passed_over: tuple[str, ...] = ()
    #: What stops setup on this plan; empty when it can run.
    blockers: tuple[Blocker, ...] = ()
    #: The Python the env must have (a specifier), or None for the one gpuenv runs in.
    python: str | None = None
    #: The repository itself, installed last (editable, with its extras), or None.
    repo: RepoSpec | None = None
    #: Index options of the recipe's requirements files, for the packages step.
    package_sources: PackageSources = field(default_factory=PackageSources)
    #: What code that compiles kernels when it runs inside the env gets (CUDA_HOME, TORCH_CUDA_ARCH_LIST,
    #: MAX_JOBS): ``torch.utils.cpp_extension.load`` then builds with the planned toolkit and archs.
    runtime_env: Mapping[str, str] = field(default_factory=dict)
    #: The torch the plan was made for as observed in the env (None: planned from the data alone).
    given_torch: TorchFacts | None = None
    #: Where the torch releases and pairs came from (shipped data, an index), with their dates, and the
    #: facts of the chosen release that were assumed from another.
    knowledge: PlanKnowledge = field(default_factory=PlanKnowledge)
    #: How the repository itself is built, when its setup.py builds an extension (None otherwise).
    repo_build: RepoBuild | None = None
    #: Shared caches setup asks before building, in order (URLs or folders).
    cache_from: tuple[str, ...] = ()
    #: Whether setup pushes what it builds to them.
    push: bool = False
    #: Whether a publisher's prebuilt wheel may be used (after an audit) instead of a build.
    prebuilt: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "env_name": self.env_name,
            "variant": self.variant,
            "cuda": self.cuda,
            "index_url": self.index_url,
            "index_note": self.index_note,
            "torch": self.torch,
            "torch_release": self.torch_release,
            "torch_version": self.torch_version,
            "torch_packages": list(self.torch_packages),
            "arch_list": list(self.arch_list),
            "toolkit": None
            if self.toolkit is None
            else {"nvcc": self.toolkit.nvcc, "version": self.toolkit.version, "home": self.toolkit.root,
                  "source": self.toolkit.source, "release": self.toolkit.release},
            "build_env": dict(self.build_env),
            "extensions": [{**e.to_json(), "wheel_sources": self.wheel_sources(e)} for e in self.extensions],
            "packages": list(self.packages),
            "warnings": list(self.warnings),
            "reasons": list(self.reasons),
            "passed_over": list(self.passed_over),
            "blockers": [b.to_json() for b in self.blockers],
            "hardware_source": self.hardware_source,
            "python": self.python,
            "repo": None if self.repo is None else {
                "path": str(self.repo.path), "editable": self.repo.editable, "extras": list(self.repo.extras),
                "build_isolation": self.repo.isolation},
            "runtime_env": dict(self.runtime_env),
            "repo_build": None if self.repo_build is None else self.repo_build.to_json(),
            "wheelhouse_group": self.wheelhouse_group,
            "given_torch": None if self.given_torch is None else self.given_torch.to_json(),
            "knowledge": self.knowledge.to_json(),
            "cache_from": [redact(u) for u in self.cache_from],
            "push": self.push,
            "prebuilt": self.prebuilt,
        }

    def wheel_sources(self, ext: ExtensionPlan) -> list[str]:
        """What setup asks for ``ext``'s wheel before building it, in order, in words."""
        return wheel_origins(ext, self.cache_from, prebuilt=self.prebuilt, push=self.push)

    @property
    def torch_build(self) -> str | None:
        """The torch the plan expects to land: "2.5.1+cu121" from the PyTorch index, "2.5.1" from PyPI."""
        if self.torch_version is None:
            return None
        if self.index_url is not None and "+" not in self.torch_version:
            return f"{self.torch_version}+{self.variant}"
        return self.torch_version

    @property
    def wheelhouse_group(self) -> str | None:
        """The group of a ``gpuenv cache export`` a node running this plan installs its wheels from."""
        if self.torch_version is None:
            return None
        compiles = any(e.compiles_cuda for e in self.extensions if e.action != "skip")
        return group_name(self.torch_version, self.variant, self.arch_list if compiles else ())

    def raise_for_blockers(self) -> None:
        """Raise what stops setup: the blocker itself, or all of them at once."""
        if len(self.blockers) == 1:
            raise self.blockers[0].error
        if self.blockers:
            raise PlanBlockedError([b.error for b in self.blockers])


def group_name(torch_version: str, variant: str, arch_list: tuple[str, ...]) -> str:
    """A wheelhouse group: ``torch-2.14.1-cu130-sm80-sm90``; ``torch-2.13.0-cpu`` without CUDA code."""
    try:
        public = Version(torch_version).public
    except ValueError:  # InvalidVersion, or more digits than int() converts
        public = torch_version.partition("+")[0]
    return f"torch-{public}-{variant}" + "".join(f"-sm{a.replace('.', '')}" for a in arch_list)


def overridden_variables(environ: Mapping[str, str], build_envs: Iterable[Mapping[str, str]]) -> list[str]:
    """One warning per variable of ``environ`` that gpuenv's builds get with another value.

    The plan's build variables replace the user's for gpuenv's own builds; a value exported for
    another machine or an earlier build (TORCH_CUDA_ARCH_LIST, MAX_JOBS, CUDA_HOME) would otherwise
    be dropped without a word.
    """
    planned: dict[str, list[str]] = {}
    for env in build_envs:
        for name, value in env.items():
            if name in environ and environ[name] != value and value not in planned.setdefault(name, []):
                planned[name].append(value)
    found = []
    for name, values in planned.items():
        if not values:
            continue
        if name == "CUDA_HOME":
            how = "pass --toolkit PATH to build with another toolkit"
        elif "ARCH" in name:
            how = (f"pass --arch X.Y (or --gpu NAME) to build for other GPUs, or keep yours with env = "
                   f'{{ {name} = "..." }} in the extension\'s recipe table')
        else:
            how = f'set it in the recipe (env = {{ {name} = "..." }} of the extension) to change it'
        shown = " or ".join(values)
        user = environ[name] if len(environ[name]) <= 80 else environ[name][:77] + "..."
        found.append(f"{name}={user} is set in this environment; gpuenv's builds get {name}={shown} "
                     f"(the plan's): {how}")
    return found
