"""The planner: a pure function of (Recipe, Hardware, PlanOptions) → Plan.

No I/O, no subprocess, no GPU. Every decision a user sees in ``gpuenv plan``
is made here, from the compatibility data in :mod:`gpuenv.knowledge`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gpuenv.hardware import Toolkit

Action = Literal["build", "cached", "skip"]


@dataclass(frozen=True)
class PlanOptions:
    #: A forced variant from the command line ("12.1", "cu121", "cpu"); wins over the recipe.
    cuda: str | None = None
    #: An index template from --torch-index / GPUENV_TORCH_INDEX; wins over the recipe.
    torch_index: str | None = None
    #: Extensions whose wheel the cache already holds: name → why it matched.
    cached: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExtensionPlan:
    name: str
    requirement: str
    action: Action
    reason: str
    #: The complete build environment of this extension (build_env + its own knobs + recipe env).
    env: Mapping[str, str]
    #: Build requirements to install into the target env first (catalog + recipe), never torch.
    build_requires: tuple[str, ...] = ()
    #: Whether this build compiles CUDA code.
    compiles_cuda: bool = False
    #: The architectures this extension is built for (may be narrower than the plan's).
    arch_list: tuple[str, ...] = ()
    import_name: str | None = None
    required: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requirement": self.requirement,
            "action": self.action,
            "reason": self.reason,
            "env": dict(self.env),
            "build_requires": list(self.build_requires),
            "compiles_cuda": self.compiles_cuda,
            "arch_list": list(self.arch_list),
            "import": self.import_name,
            "required": self.required,
        }


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
    #: Installed together with torch, from the same index.
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
            "torch_packages": list(self.torch_packages),
            "arch_list": list(self.arch_list),
            "toolkit": None
            if self.toolkit is None
            else {"nvcc": self.toolkit.nvcc, "version": self.toolkit.version, "home": self.toolkit.root},
            "build_env": dict(self.build_env),
            "extensions": [e.to_json() for e in self.extensions],
            "packages": list(self.packages),
            "warnings": list(self.warnings),
            "reasons": list(self.reasons),
            "hardware_source": self.hardware_source,
        }
