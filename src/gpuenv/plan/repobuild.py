"""The plan's part for local build trees: the repository's own CUDA build, and removed-API caps.

Pure (the facts were read before planning, :mod:`gpuenv.load.treefacts`). A
repository whose ``setup.py`` builds a ``CUDAExtension`` is a no-isolation CUDA
build: it takes part in the toolkit choice like an extension (no matching nvcc
is a blocker), and its build gets ``CUDA_HOME``, the arch list and the switches
its ``setup.py`` reads to compile CUDA without a visible GPU (``FORCE_CUDA=1``).
A ``setup.py`` that compiles CUDA only when torch sees a GPU is a blocker when
the plan is not for GPUs this machine sees, and a warning otherwise. Local code
that uses an API a torch release removed makes that release (and newer ones)
unfit for it: for the repository itself the release is passed over, for an
extension the build is skipped on it (the resolver then prefers an older torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gpuenv.errors import TorchCapError, UnsatisfiableError, VisibleGpuError
from gpuenv.plan.buildplan import Draft
from gpuenv.plan.catalog import shipped
from gpuenv.plan.extensionspec import ExtensionSpec
from gpuenv.plan.hardware import Hardware, Toolkit
from gpuenv.plan.recipespec import Recipe
from gpuenv.plan.sourcetrees import SetupFacts, TreeFacts, blocking
from gpuenv.plan.treecheck import check_tree

REPO_NAME = "the repository"


@dataclass(frozen=True)
class RepoBuild:
    """How setup builds the repository itself."""

    compiles_cuda: bool
    #: Its build environment on top of the plan's (CUDA_HOME, TORCH_CUDA_ARCH_LIST, FORCE_CUDA…).
    env: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"compiles_cuda": self.compiles_cuda, "env": dict(self.env), "reason": self.reason}


def builds_cuda(tree: TreeFacts | None, recipe: Recipe, variant: str) -> bool:
    return (
        tree is not None
        and tree.repo is not None
        and tree.repo.compiles_cuda
        and recipe.repo is not None
        and not recipe.repo.isolation
        and variant != "cpu"
    )


def repo_draft(
    tree: TreeFacts | None, recipe: Recipe, variant: str, arch_list: tuple[str, ...]
) -> Draft | None:
    """The repository's CUDA build as a draft, for the toolkit choice; None when it compiles no CUDA."""
    if not builds_cuda(tree, recipe, variant):
        return None
    assert recipe.repo is not None
    spec = ExtensionSpec(requirement=str(recipe.repo.path), name=REPO_NAME, path=recipe.repo.path)
    return Draft(spec, shipped().generic(REPO_NAME), None, True, arch_list, "", gpu_archs=arch_list)


def repo_problem(tree: TreeFacts | None, torch_version: str | None) -> UnsatisfiableError | None:
    """Why the repository's own code cannot compile against torch ``torch_version``, or None."""
    if tree is None or tree.repo is None:
        return None
    hit = blocking(tree.repo.hits, torch_version)
    if hit is None:
        return None
    return TorchCapError(
        f"the repository's own CUDA code: {hit.reason(str(torch_version))}",
        hint=f"allow a torch older than {hit.removed_in} in the recipe (version = "
        f'"<{hit.removed_in}"), or update the code: {hit.fix}',
        torch=torch_version, removed_in=str(hit.removed_in),
    )


def capped(d: Draft, tree: TreeFacts | None, torch_version: str | None, torch_cxx: int | None) -> Draft:
    """``d`` for a local tree: with the switches its setup.py needs to compile CUDA without a visible GPU,
    and skipped on a torch it cannot compile against (a removed API it uses, an older -std it hard-codes)."""
    if tree is None or d.skip is not None:
        return d
    setup = tree.setups.get(d.spec.name)
    if setup is not None and setup.switches and d.compiles_cuda:
        given = d.spec.env_dict
        d = replace(
            d, spec=replace(d.spec, env=d.spec.env + tuple(s for s in setup.switches if s[0] not in given))
        )
    problem = None
    hit = blocking(tree.hits.get(d.spec.name, ()), torch_version)
    if hit is not None:
        problem = hit.reason(str(torch_version))
    elif setup is not None and setup.build is not None:
        verdict = check_tree(
            setup.build,
            name=d.spec.name,
            env=d.spec.env_dict,
            build_options=d.entry.build_options,
            nvcc=None,
            torch_version=torch_version,
            torch_cxx=torch_cxx,
            compiles_cuda=False,
        )
        problem = verdict.problems[0] if verdict.problems else None
    if problem is None:
        return d
    return replace(d, skip=f"{d.spec.name}: {problem}", compiles_cuda=False, arch_list=(), torch_bound=True)


def repo_build(
    tree: TreeFacts | None,
    recipe: Recipe,
    variant: str,
    toolkit: Toolkit | None,
    arch_list: tuple[str, ...],
    hardware: Hardware,
    warnings: list[str],
    found: list[UnsatisfiableError],
    *,
    building: tuple[str, ...] = (),
) -> RepoBuild | None:
    """The repository's build environment, and what it and the local extensions ``building`` (those that
    compile CUDA) need said: a GPU they must see."""
    for name in building:
        setup = tree.setups.get(name) if tree is not None else None
        if setup is not None:
            _visible_gpu(setup, name, hardware, warnings, found)
    if tree is None or tree.repo is None or recipe.repo is None:
        return None
    setup = tree.repo.setup
    if not builds_cuda(tree, recipe, variant):
        if tree.repo.compiles_cuda and variant == "cpu":
            return RepoBuild(False, {}, "its setup.py builds CUDA code, and the plan is the CPU build")
        return None
    env: dict[str, str] = {}
    if toolkit is not None:
        env["CUDA_HOME"] = toolkit.root
    if arch_list:
        env["TORCH_CUDA_ARCH_LIST"] = ";".join(arch_list)
    env.update(dict(setup.switches))
    where = f"setup.py:{setup.cuda_lines[0]}"
    reason = f"its {where} builds a CUDAExtension: without isolation, against the env's torch"
    if setup.switches:
        reason += ", with " + " ".join(f"{k}={v}" for k, v in setup.switches) + " so it compiles CUDA here"
    _visible_gpu(setup, "the repository", hardware, warnings, found)
    if setup.swallowed:
        warnings.append(
            f"the repository's setup.py hides a failed CUDA build (try/except at setup.py:"
            f"{setup.swallowed[0]}): check the build log for 'Compiling without CUDA' or errors"
        )
    return RepoBuild(True, env, reason)


def _visible_gpu(
    setup: SetupFacts, what: str, hardware: Hardware, warnings: list[str], found: list[UnsatisfiableError]
) -> None:
    needs = setup.needs_visible_gpu
    if needs is None and setup.gpu_queries:
        line, what = setup.gpu_queries[0]
        needs = f"setup.py:{line} asks the GPU it runs on ({what}) and builds for it"
    if needs is None:
        return
    if hardware.source == "nvml" and hardware.gpus:
        warnings.append(f"{what}: {needs}: setup runs here, where torch sees the GPUs")
        return
    found.append(
        VisibleGpuError(
            f"{what}: {needs}, and the plan is for GPUs this machine does not show ({hardware.source}): "
            "built "
            "here, it would compile no CUDA code (the import then fails at run time)",
            hint="run 'gpuenv setup' on a machine with the GPUs, or change the setup.py test (e.g. accept "
            "FORCE_CUDA=1 or TORCH_CUDA_ARCH_LIST)",
            name=what, hardware=hardware.source,
        )
    )
