"""A recipe on a machine, with options: what every front end composes before it plans, sets up, checks or
exports.

:class:`Project` takes the options by their names (:data:`gpuenv.options.OPTIONS`: ``recipe``,
``gpu``, ``cuda``, ``venv``…) and decides each as :func:`gpuenv.options.choose` says: given, else its
environment variable, else the recipe's key, else its default. Nothing is read until asked for; the
recipe, the hardware and the plan options are read once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuenv.api.caches import Caches
from gpuenv.errors import InputError
from gpuenv.options import OPTIONS, Chosen, choose

if TYPE_CHECKING:
    from gpuenv.doctor.report import Report
    from gpuenv.export.uv import UvExport
    from gpuenv.lock.lockfile import LockedEnv
    from gpuenv.plan.envplan import Plan
    from gpuenv.plan.giventorch import TorchFacts
    from gpuenv.plan.hardware import Hardware
    from gpuenv.plan.planner import PlanOptions
    from gpuenv.plan.recipespec import Recipe
    from gpuenv.plan.toolkitchoice import ToolkitPolicy
    from gpuenv.setup.adopt import Target
    from gpuenv.setup.context import Reporter, SetupOptions
    from gpuenv.setup.run import SetupResult

Progress = Callable[[str], None]


class Project:
    """A recipe, the hardware it is for and the options, as ``gpuenv plan``/``setup``/``doctor``/``export``
    see them::

        project = Project(recipe="envs/llm.toml", gpu="H100", cuda="12.1")
        print(project.plan().torch)          # the torch requirement setup installs
        project.setup()                      # makes .venv (venv="..." for another)

    ``recipe`` may be a path or a loaded :class:`~gpuenv.plan.recipespec.Recipe`, ``hardware`` a
    ``gpuenv probe --json`` file or a :class:`~gpuenv.plan.hardware.Hardware`; every other option is
    given as the command line gives it. ``environ`` (default: ``os.environ``) holds the options'
    environment variables; ``cwd`` is where the recipe is looked for; ``progress`` hears what takes a
    while (reading the indexes).
    """

    def __init__(self, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None,
                 progress: Progress | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise TypeError(f"Project() got unknown options: {', '.join(unknown)} "
                            "(gpuenv.options.OPTIONS lists them)")
        self.given: dict[str, Any] = options
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.cwd = cwd
        self.progress = progress

    # -- options ---------------------------------------------------------------------------------

    def chosen(self, name: str, *, with_recipe: bool = False) -> Chosen | None:
        """Option ``name`` as decided: given, its environment variable, the recipe (``with_recipe``), its
        default."""
        return choose(name, self.given.get(name), environ=self.environ,
                      recipe=self.recipe if with_recipe else None)

    def value(self, name: str) -> Any:
        """Option ``name``: given, else its environment variable, else its default. An option that
        overrides a recipe key (cuda, toolkit…) is None here when the user left it to the recipe: the
        planner adds the recipe's by the same rule (``chosen(name, with_recipe=True)`` shows the result)."""
        found = self.chosen(name)
        return None if found is None else found.value

    @cached_property
    def cache_dir(self) -> Path:
        from gpuenv.cache.wheels import default_cache_dir

        given = self.value("cache_dir")
        return Path(given) if given is not None else default_cache_dir(self.environ)

    @property
    def toolkit_dir(self) -> Path:
        return self.caches.toolkit_path

    @property
    def caches(self) -> Caches:
        """The wheel cache (``cache_dir``) and the toolkit cache beside it."""
        return Caches(self.cache_dir)

    # -- the recipe, the machine, the env ------------------------------------------------------

    @cached_property
    def recipe(self) -> Recipe:
        from gpuenv.load.recipe import find_recipe, load_recipe
        from gpuenv.plan.recipespec import Recipe

        given = self.given.get("recipe")
        if isinstance(given, Recipe):
            return given
        return load_recipe(Path(given) if given is not None else find_recipe(self.cwd or Path.cwd()))

    def probe(self) -> Hardware:
        """This machine, its toolkits including those in gpuenv's toolkit cache."""
        from gpuenv.cache.toolkitcache import ToolkitCache
        from gpuenv.probe.host import probe

        return probe(provisioned=[p.toolkit for p in ToolkitCache(self.toolkit_dir).toolkits()])

    def hardware(self, *, local_host: bool = False) -> Hardware:
        """What is planned for: ``hardware`` (a file or a Hardware), ``gpu``/``arch``, else the probe.

        ``local_host`` keeps this machine's CPUs, memory and toolkits (setup builds here).
        """
        from gpuenv.plan.hardware import Hardware
        from gpuenv.probe.machine import describe_machine

        given = self.given.get("hardware")
        if isinstance(given, Hardware):
            return describe_machine(gpu=self.value("gpu"), arch=self.value("arch"), prober=lambda: given)
        return describe_machine(hardware_file=given, gpu=self.value("gpu"), arch=self.value("arch"),
                                local_host=local_host, prober=self.probe)

    def target(self, *, for_recipe: bool = True) -> Target:
        """The env ``venv`` or ``python`` names (with ``use = "existing"``: the Python gpuenv runs in)."""
        from gpuenv.runner import SubprocessRunner
        from gpuenv.setup.adopt import find_target

        existing = for_recipe and self.recipe.torch.existing
        return find_target(venv=self.value("venv"), python=self.value("python"), existing=existing,
                           runner=SubprocessRunner())

    def given_torch(self, target: Target) -> TorchFacts | None:
        from gpuenv.runner import SubprocessRunner
        from gpuenv.setup.adopt import given_torch

        return given_torch(target, SubprocessRunner(), existing=self.recipe.torch.existing)

    # -- the plan --------------------------------------------------------------------------------

    def toolkit_policy(self) -> ToolkitPolicy:
        from gpuenv.cache.toolkitcache import toolkit_policy

        chosen = self.chosen("toolkit", with_recipe=True)
        choice, by = (chosen.value, chosen.by) if chosen is not None else ("auto", "default")
        return toolkit_policy(choice, chosen_by=by, cache_dir=str(self.toolkit_dir))

    def cache_from(self) -> tuple[str, ...] | None:
        """The shared caches the user named (the recipe's [cache] from otherwise), checked now."""
        from gpuenv.cache.shared import cache_source

        given = self.value("cache_from")
        for text in given or ():
            cache_source(text)  # bad input is an error now, not at the first extension
        return tuple(given) if given else None

    def torch_index(self) -> str | None:
        from gpuenv.inputs import index_template

        given = self.value("torch_index")
        return index_template(given) if given is not None else None

    @cached_property
    def plan_options(self) -> PlanOptions:
        """What the planner needs besides the recipe and the hardware; reads the indexes (see --offline)."""
        from gpuenv.load.treefacts import recipe_tree
        from gpuenv.load.treemeta import recipe_sources
        from gpuenv.plan.planner import PlanOptions
        from gpuenv.setup.indexquery import env_python, host_platform, installer_constraints, plan_releases

        recipe, cuda, torch_index = self.recipe, self.value("cuda"), self.torch_index()
        releases = plan_releases(recipe, cache_dir=self.cache_dir, torch_index=torch_index, cuda=cuda,
                                 refresh=bool(self.value("refresh")), offline=bool(self.value("offline")),
                                 progress=self.progress)
        return PlanOptions(cuda=cuda, torch_index=torch_index, sources=recipe_sources(recipe),
                           toolkit=self.toolkit_policy(), releases=releases,
                           python_version=env_python(recipe), platform=host_platform(),
                           constraints=installer_constraints(), tree=recipe_tree(recipe),
                           cache_from=self.cache_from(), push=bool(self.value("push")),
                           prebuilt=self.value("prebuilt"), environ=_build_variables(self.environ))

    def plan(self) -> Plan:
        """What ``gpuenv plan`` shows: every decision, what would stop setup as blockers, cache hits."""
        from gpuenv.plan.planner import make_plan

        recipe, hardware, options = self.recipe, self.hardware(), self.plan_options
        if self.value("venv") is not None or self.value("python") is not None or recipe.torch.existing:
            # Planned for the torch of that env, as setup would build into it.
            options = replace(options, given_torch=self.given_torch(self.target()))
        result = make_plan(recipe, hardware, options)
        if not self.value("no_cache") and not result.blockers:
            from gpuenv.cache.hits import predicted_hits
            from gpuenv.cache.wheels import WheelCache

            hits = predicted_hits(result, WheelCache(self.cache_dir))
            if hits:
                result = make_plan(recipe, hardware, replace(options, cached=hits))
        return result

    # -- setup -----------------------------------------------------------------------------------

    def prepare_setup(self) -> PreparedSetup:
        """The plan setup runs (locked with ``locked``) and the options it runs with; nothing changes yet.

        An env gpuenv did not create is planned for its torch, which nothing replaces; one whose Python
        its distribution manages is refused here (unless ``break_system_packages``), before anything
        is written.
        """
        from gpuenv.lock.lockfile import lock_path_for, read_lock
        from gpuenv.lock.lockplan import plan_locked
        from gpuenv.plan.planner import make_plan, plan

        recipe, hardware = self.recipe, self.hardware(local_host=True)
        target = self.target()
        if target.adopted and not self.value("dry_run"):  # before anything is written, logs included
            from gpuenv.runner import SubprocessRunner
            from gpuenv.setup.adopt import check_externally_managed

            check_externally_managed(target.env, target.env.interpreter(SubprocessRunner()),
                                     allowed=bool(self.value("break_system_packages")))
        options = replace(self.plan_options, given_torch=self.given_torch(target))
        lock_file = lock_path_for(recipe.path)
        locked = bool(self.value("locked"))
        if locked:
            entry = read_lock(lock_file).get(recipe.name)
            if entry is None:
                raise InputError(f"{lock_file} has no environment {recipe.name}",
                                 hint="run 'gpuenv setup' without --locked first to write it")
            result = plan_locked(recipe, hardware, entry, options)
        else:
            result = plan(recipe, hardware, options)
        def replan(facts: TorchFacts) -> Plan:
            return make_plan(recipe, hardware, replace(options, given_torch=facts))

        return PreparedSetup(result, self._setup_options(result, target, lock_file, options), target,
                             None if locked or options.given_torch is not None else replan)

    def _setup_options(self, result: Plan, target: Target, lock_file: Path, options: PlanOptions
                       ) -> SetupOptions:
        from gpuenv.cache.shared import cache_source
        from gpuenv.setup.adopt import adopted_work_dir
        from gpuenv.setup.context import SetupOptions
        from gpuenv.setup.sources import file_sha256

        work_dir = self.value("work_dir")
        return SetupOptions(
            venv=target.path, python=target.python, adopted=target.adopted,
            break_system_packages=bool(self.value("break_system_packages")),
            installer=self.value("installer"),
            work_dir=Path(work_dir) if work_dir else (adopted_work_dir(target.path) if target.adopted
                                                      else None),
            preflight=options.torch_index != "config" and options.given_torch is None,
            cache_dir=None if self.value("no_cache") else self.cache_dir,
            # --locked reproduces the lock; it does not rewrite it.
            lock_file=None if self.value("locked") else lock_file,
            recipe_sha256=file_sha256(self.recipe.path),
            cache_from=tuple(cache_source(u) for u in result.cache_from), push=result.push,
            prebuilt=result.prebuilt,
        )

    def setup(self, reporter: Reporter | None = None) -> SetupResult:
        """Set the env up (with ``dry_run``: only list the commands, in ``SetupResult.commands``)."""
        prepared = self.prepare_setup()
        return prepared.dry_run() if self.value("dry_run") else prepared.run(reporter)

    # -- doctor and export -----------------------------------------------------------------------

    def recipe_and_lock(self) -> tuple[Recipe | None, LockedEnv | None]:
        """The recipe (given, else the project's if it has one) and its lock entry: doctor and export
        pylock work without them."""
        from gpuenv.doctor.diagnosis import recipe_and_lock
        from gpuenv.lock.lockfile import lock_path_for, read_lock
        from gpuenv.plan.recipespec import Recipe

        given = self.given.get("recipe")
        if isinstance(given, Recipe):
            return given, read_lock(lock_path_for(given.path)).get(given.name)
        return recipe_and_lock(None if given is None else Path(given), start=self.cwd or Path.cwd())

    def doctor(self) -> Report:
        """``gpuenv doctor``: the env's checks against this machine (or ``gpu``/``arch``/``hardware``)."""
        from gpuenv.doctor.diagnosis import diagnose

        recipe, locked = self.recipe_and_lock()
        target = self.target(for_recipe=False)
        return diagnose(target.path, python=target.python, hardware=self.hardware(local_host=True),
                        recipe=recipe, locked=locked)

    def export_uv(self) -> UvExport:
        """``gpuenv export uv``: the plan as [tool.uv] settings (merged into ``write`` if given)."""
        from gpuenv.export.uv import export_uv
        from gpuenv.plan.planner import plan

        result = plan(self.recipe, self.hardware(), self.plan_options)
        return export_uv(result, self.plan_options, write=self.value("write"))

    def export_pylock(self) -> str:
        """``gpuenv export pylock``: a PEP 751 lock of the set-up env (written to ``output`` if given)."""
        from gpuenv.export.pylock import export_pylock

        _, locked = self.recipe_and_lock()
        venv = Path(self.value("venv") or ".venv")
        return export_pylock(venv.absolute(), locked=locked, cache_dir=self.cache_dir,
                             output=self.value("output"))


@dataclass(frozen=True)
class PreparedSetup:
    """A setup ready to run: its plan, its options, the env it works on."""

    plan: Plan
    options: SetupOptions
    target: Target
    #: Plans again for the torch that landed (None: the torch is given, or --locked).
    replan: Callable[[TorchFacts], Plan] | None = None

    @property
    def logs(self) -> Path:
        return self.options.work / "logs"

    def dry_run(self) -> SetupResult:
        """The commands setup would run, in order (``SetupResult.commands``); changes nothing."""
        from gpuenv.setup.run import run_setup

        return run_setup(self.plan, self.options, dry_run=True, replan=self.replan)

    def run(self, reporter: Reporter | None = None) -> SetupResult:
        from gpuenv.setup.run import run_setup

        return run_setup(self.plan, self.options, reporter=reporter, replan=self.replan)


def _build_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` as the planner compares it with the builds' variables: CUDA_HOME by the folder it
    names, as toolkits are found (``/usr/local/cuda`` is the ``/usr/local/cuda-13.0`` it links to)."""
    found = dict(environ)
    if found.get("CUDA_HOME"):
        found["CUDA_HOME"] = os.path.realpath(found["CUDA_HOME"])
    return found
