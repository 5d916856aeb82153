"""The planner: a pure function of (Recipe, Hardware, PlanOptions) → :class:`~gpuenv.plan.envplan.Plan`.

No I/O, no subprocess, no GPU. Every decision a user sees in ``gpuenv plan``
is made here, from the compatibility data in :mod:`gpuenv.plan.knowledge`.

The torch release and its CUDA variant are chosen together: the candidates
are every release in the data the recipe's specifier (and a forced variant,
and the pins of the packages paired with torch) allows, newest first; the
first on which the GPUs and the driver run a variant and every extension can
be built wins, else the first on which every *required* one can. Each newer
release passed over is named with its reason. What stops a setup (no
matching toolkit, a required extension skipped, a driver too old for every
candidate) is a blocker: :func:`make_plan` still makes every other decision
and lists the blockers; :func:`plan` raises them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from gpuenv.errors import (
    GpuenvError,
    InputError,
    NoVariantError,
    RequiredSkipError,
    UnknownTorchError,
    UnsatisfiableError,
)
from gpuenv.options import choose, chosen_value
from gpuenv.plan import giventorch, knowledge
from gpuenv.plan.archlist import arch_list_for, arch_not_accepted, check_toolkit_archs, substitutions
from gpuenv.plan.buildplan import Draft, draft, entry_for, finish, for_toolkit, pinned_version
from gpuenv.plan.candidates import Constraint, WheelTarget, pin_pairs, torch_candidates
from gpuenv.plan.envplan import Blocker, Plan, overridden_variables
from gpuenv.plan.extensionspec import ProjectFacts
from gpuenv.plan.giventorch import TorchFacts
from gpuenv.plan.hardware import Hardware, Toolkit
from gpuenv.plan.recipespec import Recipe
from gpuenv.plan.releases import PlanKnowledge, TorchRelease, TorchReleases, shipped_releases
from gpuenv.plan.repobuild import capped, repo_build, repo_draft, repo_problem
from gpuenv.plan.sourcetrees import TreeFacts
from gpuenv.plan.toolkitchoice import TOOLKIT_MODES, ToolkitPolicy, choose_toolkit, toolkit_on_disk
from gpuenv.plan.variants import (
    VariantChoice,
    choose_variant,
    forced_hint,
    gpu_names,
    newest_runnable,
)


@dataclass(frozen=True)
class PlanOptions:
    # The options that override a recipe key: what the user gave (the command line or the environment,
    # as gpuenv.api.Project passes them); None: the recipe's. gpuenv.options.choose decides which wins.
    #: A forced variant ("12.1", "cu121", "cpu", "auto"); the recipe's torch.cuda.
    cuda: str | None = None
    #: An index template (--torch-index, GPUENV_TORCH_INDEX); the recipe's torch.index.
    torch_index: str | None = None
    #: Extensions whose wheel the cache already holds: name → why it matched.
    cached: Mapping[str, str] = field(default_factory=dict)
    #: What local and URL sources say about themselves (read before planning): extension → facts.
    sources: Mapping[str, ProjectFacts] = field(default_factory=dict)
    #: Plan exactly this torch version ("2.5.1"), as ``setup --locked`` does.
    torch_version: str | None = None
    #: Where nvcc may come from (--toolkit, GPUENV_TOOLKIT, the recipe's torch.toolkit, resolved by
    #: :func:`gpuenv.probe.toolkitroots.toolkit_policy`); None: the recipe's mode, else auto.
    toolkit: ToolkitPolicy | None = None
    #: The torch releases and pairs to plan from: the shipped data with what the index says
    #: (:func:`gpuenv.probe.torchindex.torch_releases`); None: the shipped data alone.
    releases: TorchReleases | None = None
    #: The env's Python ("3.11") and platform ("linux_x86_64") where known: a torch without a wheel
    #: for them is passed over.
    python_version: str | None = None
    platform: str | None = None
    #: The installer's constraints (pip's constraint files) on torch and the packages paired with it.
    constraints: tuple[Constraint, ...] = ()
    #: What the recipe's local trees say (read before planning: :func:`gpuenv.load.treefacts.recipe_tree`).
    tree: TreeFacts | None = None
    #: Plan for exactly this torch, observed in the env (setup once torch landed; an adopted env):
    #: no release is chosen, see :mod:`gpuenv.plan.giventorch`.
    given_torch: TorchFacts | None = None
    #: Shared caches (--cache-from, GPUENV_CACHE_FROM); None or (): the recipe's [cache] from.
    cache_from: tuple[str, ...] | None = None
    #: --push; False: the recipe's [cache] push.
    push: bool = False
    #: --no-prebuilt gives False; None: the recipe's [cache] prebuilt.
    prebuilt: bool | None = None
    #: The environment gpuenv runs in (``os.environ``, as Project passes it): read only to say which
    #: of its variables the builds get otherwise (a TORCH_CUDA_ARCH_LIST exported for another machine).
    environ: Mapping[str, str] = field(default_factory=dict)



# -- the planner ----------------------------------------------------------------


def plan(recipe: Recipe, hardware: Hardware, options: PlanOptions | None = None) -> Plan:
    """Decide everything ``setup`` will do for ``recipe`` on ``hardware``; raise what blocks it."""
    result = make_plan(recipe, hardware, options)
    result.raise_for_blockers()
    return result


def make_plan(recipe: Recipe, hardware: Hardware, options: PlanOptions | None = None) -> Plan:
    """Every decision for ``recipe`` on ``hardware``, with what would stop setup as blockers.

    Bad input (a variant that does not exist, a pin that pairs with nothing)
    raises :class:`~gpuenv.errors.InputError`; a torch release the data does
    not know, with no variant forced, raises UnknownTorchError.
    """
    options = options or PlanOptions()
    spec = SpecifierSet(recipe.torch.version)
    if options.torch_version is not None:
        spec &= SpecifierSet(f"=={options.torch_version}")
    forced, forced_by = _forced_variant(recipe, options)
    if options.given_torch is not None or recipe.torch.existing:
        return _given_plan(recipe, hardware, options, spec, forced, forced_by)
    releases = _releases(options)
    target = _target(recipe, options)
    candidates = torch_candidates(spec, recipe.torch.packages, releases, target)
    if candidates is None:
        if forced is None:
            raise _unknown_torch(recipe.torch.version, releases)
        return _assemble(recipe, hardware, options, _blind_trial(recipe, hardware, options, spec, forced,
                                                                 forced_by), spec, (), ())
    trials = [_trial(recipe, hardware, options, release, version, forced, forced_by, versions)
              for release, version, versions in candidates.releases]
    if forced is not None and all(isinstance(t.problem, InputError) for t in trials):
        raise _no_forced_variant(trials, forced, forced_by, releases)
    chosen = (next((t for t in trials if t.fits_all), None)
              or next((t for t in trials if t.fits_required), None)
              or trials[0])
    newer = [(Version(t.version or "0"), f"torch {t.version}: {t.why_not()}")
             for t in trials[:trials.index(chosen)]]
    newer += [(Version(v), f"torch {v}: {why}") for v, why in candidates.no_wheel
              if chosen.version is None or Version(v) > Version(chosen.version)]
    passed = tuple(line for _, line in sorted(newer, key=lambda pair: pair[0], reverse=True))
    extra: list[UnsatisfiableError] = []
    if chosen.problem is not None:
        extra.append(_with_newest_runnable(chosen.problem, hardware, forced, releases))
    return _assemble(recipe, hardware, options, chosen, spec, passed, tuple(extra))


def _target(recipe: Recipe, options: PlanOptions) -> WheelTarget:
    return WheelTarget(options.python_version, recipe.python, options.platform, options.constraints)


def _releases(options: PlanOptions) -> TorchReleases:
    return options.releases if options.releases is not None else shipped_releases()


def _unknown_torch(version: str, releases: TorchReleases) -> UnknownTorchError:
    known = ", ".join(releases.releases)
    return UnknownTorchError(
        f"torch {version} is not a release gpuenv knows (it knows {known})",
        hint="allow a release it knows in the recipe's torch.version, or force a variant with --cuda "
        "(e.g. --cuda 13.0; the plan then cannot check the wheels), or add the release to "
        "gpuenv/plan/data/torch.toml",
    )


def _forced_variant(recipe: Recipe, options: PlanOptions) -> tuple[str | None, str]:
    chosen = choose("cuda", options.cuda, recipe=recipe)
    if chosen is None or chosen.value.strip().lower() == "auto":
        return None, ""
    variant = knowledge.normalize_variant(chosen.value)
    if variant is None:
        raise InputError(
            f"{chosen.by}: not a CUDA variant",
            hint="give a CUDA version or variant such as 12.1, cu121 or cpu, "
            "or auto to let gpuenv choose",
        )
    return variant, chosen.by


def _no_forced_variant(trials: list[_Trial], forced: str, forced_by: str,
                       releases: TorchReleases) -> InputError:
    if len(trials) == 1 and trials[0].problem is not None:
        return InputError(str(trials[0].problem), hint=forced_hint(forced, releases.releases))
    return InputError(
        f"no torch release the recipe allows (torch{trials[0].spec_text}) has a {forced} build ({forced_by})",
        hint=forced_hint(forced, releases.releases),
    )


# -- one candidate release -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Trial:
    """A candidate torch release, planned as far as the resolver needs to judge it."""

    release: TorchRelease | None
    version: str | None
    #: The candidate versions of this release ("2.5.1", "2.5.0"), newest first.
    allowed: tuple[str, ...]
    choice: VariantChoice
    arch_list: tuple[str, ...]
    drafts: tuple[Draft, ...]
    #: Why this release cannot run here at all (variant, GPUs, driver, archs torch cannot build).
    problem: GpuenvError | None
    spec_text: str = ""

    @property
    def fits_required(self) -> bool:
        return self.problem is None and not any(d.torch_bound and d.spec.required for d in self.drafts)

    @property
    def fits_all(self) -> bool:
        return self.problem is None and not any(d.torch_bound for d in self.drafts)

    def why_not(self) -> str:
        if self.problem is not None:
            return str(self.problem)
        return "; ".join(d.skip or "" for d in self.drafts if d.torch_bound)


def _trial(
    recipe: Recipe,
    hardware: Hardware,
    options: PlanOptions,
    release: TorchRelease,
    version: str,
    forced: str | None,
    forced_by: str,
    allowed: tuple[str, ...],
    choice: VariantChoice | None = None,
) -> _Trial:
    choice = choice or choose_variant(release, forced, forced_by, hardware, _releases(options).releases)
    # Also for a variant that cannot run here: the plan shown with the blocker builds for these GPUs.
    arch_list = arch_list_for(release, choice.variant, hardware)
    drafts = _drafts(recipe, hardware, options, choice.variant, arch_list, version, release.cxx_standard)
    problem = choice.problem or repo_problem(options.tree, version)
    if problem is None and any(d.compiles_cuda for d in drafts):
        problem = arch_not_accepted(arch_list, release, _releases(options))
    return _Trial(release, version, allowed, choice, arch_list, tuple(drafts), problem,
                  str(SpecifierSet(recipe.torch.version)))


def _blind_trial(recipe: Recipe, hardware: Hardware, options: PlanOptions, spec: SpecifierSet,
                 forced: str, forced_by: str) -> _Trial:
    """A forced variant of a torch the data does not know: planned without checking the wheels."""
    arch_list = tuple(str(cc) for cc in sorted({g.cc for g in hardware.gpus})) if forced != "cpu" else ()
    choice = VariantChoice(forced, (f"{forced} forced by {forced_by}",), (
        f"torch {recipe.torch.version} is not in gpuenv's data: cannot check that {forced} exists "
        "for it or which GPUs its wheels run on",))
    drafts = _drafts(recipe, hardware, options, forced, arch_list, None, None)
    return _Trial(None, None, (), choice, arch_list, tuple(drafts), None, str(spec))


def _given_plan(recipe: Recipe, hardware: Hardware, options: PlanOptions, spec: SpecifierSet,
                forced: str | None, forced_by: str) -> Plan:
    """The plan for a torch that is there: checked against the machine, never chosen nor installed."""
    facts = options.given_torch
    if facts is None:
        raise InputError(f'{recipe.path.name} takes the torch of an existing env (use = "existing"): '
                         "gpuenv was not pointed at one",
                         hint="name the env with --python PATH or --venv PATH")
    giventorch.check_forced(facts, forced, forced_by)
    given = giventorch.given_release(facts, _releases(options))
    choice = giventorch.given_choice(facts, given, hardware)
    trial = _trial(recipe, hardware, options, given.release, facts.public, forced, forced_by, (facts.public,),
                   choice=choice)
    packages, problems = giventorch.torch_packages(facts, recipe.torch.packages, _releases(options))
    found = [trial.problem, giventorch.version_problem(facts, spec, recipe.path.name), *problems]
    result = _assemble(recipe, hardware, options, trial, spec, (),
                       tuple(p for p in found if isinstance(p, UnsatisfiableError)))
    return replace(result, index_url=None, index_note=giventorch.index_note(facts), torch=facts.requirement,
                   torch_packages=packages, torch_version=facts.version, given_torch=facts,
                   warnings=(*giventorch.data_disagreements(facts), *result.warnings))


def _drafts(recipe: Recipe, hardware: Hardware, options: PlanOptions, variant: str,
            arch_list: tuple[str, ...], torch_version: str | None, torch_cxx: int | None) -> list[Draft]:
    drafts = []
    for ext in recipe.extensions:
        facts = options.sources.get(ext.name)
        entry, how = entry_for(ext, facts)
        version = facts.version if facts is not None and facts.version else pinned_version(ext.requirement)
        drafts.append(capped(draft(ext, entry, how, variant, arch_list, torch_version, hardware, version,
                                   torch_cxx=torch_cxx), options.tree, torch_version, torch_cxx))
    return drafts


def _with_newest_runnable(problem: GpuenvError, hardware: Hardware, forced: str | None,
                          releases: TorchReleases) -> UnsatisfiableError:
    """The problem of the newest candidate, as a blocker whose hint names the newest torch that runs here."""
    if not isinstance(problem, NoVariantError):
        assert isinstance(problem, UnsatisfiableError), problem
        return problem
    newest = newest_runnable(hardware, forced, releases) if hardware.gpus else None
    if newest is None:
        return problem
    version, variant = newest
    hint = f"{problem.hint}; the newest torch that runs here is {version} ({variant}): " \
        f"allow it in the recipe, e.g. version = \"<={version}\""
    return NoVariantError(str(problem), hint=hint, code=problem.code,
                          **{**problem.details, "runs_here": f"{version} ({variant})"})


# -- the plan of the chosen release ---------------------------------------------------------------


def _assemble(
    recipe: Recipe,
    hardware: Hardware,
    options: PlanOptions,
    trial: _Trial,
    spec: SpecifierSet,
    passed_over: tuple[str, ...],
    blockers: tuple[UnsatisfiableError, ...],
) -> Plan:
    release, variant = trial.release, trial.choice.variant
    releases = _releases(options)
    warnings = [*releases.warnings, *trial.choice.warnings]
    if variant != "cpu":
        warnings += substitutions(trial.arch_list, hardware, release)
    reasons = list(trial.choice.reasons)
    found: list[UnsatisfiableError] = list(blockers)
    cuda = knowledge.variant_cuda(variant)
    template = chosen_value("torch_index", options.torch_index, recipe=recipe)
    index_url, index_note = _index(release, variant, template)
    arch_list = trial.arch_list
    if release is not None and not hardware.gpus and arch_list:
        warnings.append(
            f"no GPU given: extensions are built for every architecture torch's {variant} wheels carry "
            f"({', '.join(arch_list)}); pass --gpu or --arch to build only what your GPUs need"
        )
    drafts = list(trial.drafts)
    if cuda is not None and not arch_list and any(d.compiles_cuda and d.skip is None for d in drafts):
        raise InputError(
            "no GPU to build for: the CUDA extensions need an arch list",
            hint="say which GPUs the environment is for with --gpu NAME or --arch X.Y",
        )
    toolkit: Toolkit | None = None
    repo = repo_draft(options.tree, recipe, variant, arch_list)
    try:
        toolkit = choose_toolkit(hardware, variant, cuda, drafts + ([repo] if repo else []), release,
                                 warnings, _toolkit_policy(recipe, options))
    except UnsatisfiableError as exc:
        found.append(exc)
    if toolkit is not None:
        try:
            arch_list = check_toolkit_archs(arch_list, toolkit, hardware, warnings)
        except UnsatisfiableError as exc:
            found.append(exc)
        drafts = [for_toolkit(d, arch_list, toolkit, hardware) for d in drafts]

    build_env: dict[str, str] = {}
    if toolkit is not None:
        build_env["CUDA_HOME"] = toolkit.root
    if cuda is not None and arch_list:
        build_env["TORCH_CUDA_ARCH_LIST"] = ";".join(arch_list)

    extensions = tuple(finish(d, build_env, toolkit, hardware, options.cached, warnings) for d in drafts)
    found += [RequiredSkipError(e.name, e.reason) for e in extensions if e.action == "skip" and e.required]
    if options.tree is not None:
        found += options.tree.blockers
        warnings += options.tree.notes
    building = tuple(e.name for e in extensions if e.compiles_cuda and e.action != "skip")
    own_build = repo_build(options.tree, recipe, variant, toolkit, arch_list, hardware, warnings, found,
                           building=building)
    for d in drafts:
        if d.torch_bound and d.skip and not d.spec.required and passed_over:
            reasons.append(f"{d.spec.name} is skipped on every torch the recipe allows that runs here")
            break
    # What the builds get: each extension built here, and the repository's own build.
    built = [e.env for e in extensions if e.action == "build"]
    if own_build is not None:
        built.append({**build_env, **own_build.env})
    warnings += overridden_variables(options.environ, built)
    return Plan(
        recipe=str(recipe.path),
        env_name=recipe.name,
        variant=variant,
        cuda=cuda,
        index_url=index_url,
        index_note=index_note,
        torch=_torch_requirement(spec, trial),
        torch_release=release.release if release is not None
        else (knowledge.release_of_spec(spec) or "unknown"),
        torch_packages=pin_pairs(recipe.torch.packages, trial.version, releases, _target(recipe, options)),
        arch_list=arch_list,
        toolkit=toolkit,
        build_env=build_env,
        extensions=extensions,
        packages=recipe.packages,
        warnings=tuple(warnings),
        reasons=tuple(reasons),
        hardware_source=hardware.source,
        torch_version=trial.version,
        passed_over=passed_over,
        blockers=tuple(Blocker(e) for e in found),
        python=recipe.python,
        repo=recipe.repo,
        package_sources=recipe.package_sources,
        runtime_env=_runtime_env(cuda, arch_list, toolkit, hardware),
        knowledge=PlanKnowledge(releases.sources, release.assumed if release is not None else ()),
        repo_build=own_build,
        cache_from=tuple(chosen_value("cache_from", options.cache_from, recipe=recipe)),
        push=bool(chosen_value("push", options.push, recipe=recipe)),
        prebuilt=bool(chosen_value("prebuilt", options.prebuilt, recipe=recipe)),
    )


def _runtime_env(
    cuda: str | None, arch_list: tuple[str, ...], toolkit: Toolkit | None, hardware: Hardware
) -> dict[str, str]:
    """The build environment of kernels compiled when the env runs (cpp_extension.load, DeepSpeed ops).

    Its toolkit is the plan's, or else the one on this machine that matches torch's CUDA (no
    extension compiled at setup needed one): never the /usr/local torch would guess.
    """
    env: dict[str, str] = {}
    if cuda is not None:
        toolkit = toolkit or toolkit_on_disk(list(hardware.toolkits), cuda, minor_may_differ=True,
                                             warnings=[])
        if toolkit is not None:
            env["CUDA_HOME"] = toolkit.root
        if arch_list:
            env["TORCH_CUDA_ARCH_LIST"] = ";".join(arch_list)
    per_job = 2048
    by_memory = hardware.memory_available_mib // per_job if hardware.memory_available_mib else 1
    env["MAX_JOBS"] = str(max(1, min(hardware.cpu_count or 1, by_memory)))
    return env


def _toolkit_policy(recipe: Recipe, options: PlanOptions) -> ToolkitPolicy:
    if options.toolkit is not None:
        return options.toolkit
    chosen = choose("toolkit", recipe=recipe)
    if chosen is not None and chosen.value in TOOLKIT_MODES:
        return ToolkitPolicy(mode=chosen.value, chosen_by=chosen.by)
    raise InputError(
        f"{chosen.by if chosen else 'toolkit'}: a toolkit given by path is checked before planning",
        hint="plan through gpuenv.Project, which checks it (or pass "
        "PlanOptions(toolkit=gpuenv.cache.toolkitcache.toolkit_policy(...)))",
    )


def _torch_requirement(spec: SpecifierSet, trial: _Trial) -> str:
    """The recipe's specifier, narrowed to the release the plan was made for.

    When the paired packages' pins allow only some versions of that release,
    the requirement names the newest of them exactly.
    """
    if trial.release is None:
        return f"torch{spec}"
    release = trial.release
    every = [v for v in release.versions if spec.contains(Version(v), prereleases=True)]
    exact = any(s.operator in ("==", "===") and "*" not in s.version for s in spec)
    if trial.version is not None and (exact or len(trial.allowed) < max(1, len(every))):
        return f"torch=={trial.version}"
    if knowledge.release_of_spec(spec) != release.release:
        spec = spec & SpecifierSet(f"=={release.release}.*")
    return f"torch{spec}"


def _index(release: TorchRelease | None, variant: str, template: str) -> tuple[str | None, str]:
    if template == "config":
        return None, "torch comes from the installer's own configuration (--torch-index config)"
    if release is not None and variant == release.pypi_default:
        return None, (
            f"{variant} is the build PyPI serves for torch {release.release}: "
            "torch comes from the ordinary index, no extra index needed"
        )
    return template.replace("{variant}", variant), f"{variant} builds come from the PyTorch index"


def describe_gpus(hardware: Hardware) -> str:
    return gpu_names(hardware.gpus)
