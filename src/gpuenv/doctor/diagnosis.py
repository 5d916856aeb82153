"""``gpuenv doctor``: will this environment really run on these GPUs?

:func:`diagnose` asks the environment's own interpreter what it holds (through
the runner), reads the GPU code of the compiled files on disk (the fat binary
reader of :mod:`gpuenv.probe.binaries`, ``cuobjdump`` as a second opinion when one is
found) and compares both with the hardware, the recipe and the lock. Each
finding is a :class:`Check` with a verdict and, where one is known, a fix. The
checks themselves are pure functions of those facts, so they are tested with
synthetic hardware, torch builds and binaries.

It runs on a machine without a GPU (it says so, skips what needs one and checks
the rest) and on an environment gpuenv did not make (no lock: what was built
against which torch cannot be told, everything else can).
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.utils import canonicalize_name

from gpuenv.cache.lock import LockedEnv, LockedExtension, lock_path_for, read_lock
from gpuenv.doctor.lock import lock_check, torch_differs
from gpuenv.doctor.machine import machine_checks
from gpuenv.doctor.report import Check, Report, Verdict
from gpuenv.doctor.toolkit import built_with_check, runtime_check, toolkit_check
from gpuenv.doctor.torch import torch_checks, torch_of
from gpuenv.doctor.wording import NO_KERNEL_IMAGE, describe_code, gpu_list, last_error
from gpuenv.errors import GpuenvError, RecipeError
from gpuenv.hints import hint_for
from gpuenv.plan import knowledge
from gpuenv.plan.hardware import Gpu, Hardware
from gpuenv.plan.recipe import Recipe, find_recipe, load_recipe
from gpuenv.probe.binaries import BinaryFormatError, CudaCode, find_cuobjdump, list_elf, read_cuda_code
from gpuenv.runner import Runner, SubprocessRunner
from gpuenv.setup.runtime import read_runtime_env
from gpuenv.setup.targetenv import TargetEnv, TorchInfo

UNDEFINED_SYMBOL = "undefined symbol"


# -- finding the recipe and the lock (for the front ends) ------------------------------------


def recipe_and_lock(recipe: Path | None, *, start: Path) -> tuple[Recipe | None, LockedEnv | None]:
    """The recipe (``recipe``, else the one the project at ``start`` has) and its lock entry.

    A recipe given explicitly must load (its errors propagate); none found is
    ``(None, None)``: doctor then checks the env without them.
    """
    if recipe is None:
        try:
            recipe = find_recipe(start)
        except RecipeError:
            return None, None
    loaded = load_recipe(recipe)
    return loaded, read_lock(lock_path_for(loaded.path)).get(loaded.name)


# -- the diagnosis ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExtensionTarget:
    """An extension to check: from the recipe, the lock, or both."""

    name: str
    #: The module to import; None: guessed from the installed distribution.
    module: str | None = None
    #: The build environment it was (to be) built with: the recipe's env, else the lock's knobs.
    env: Mapping[str, str] = field(default_factory=dict)
    locked: LockedExtension | None = None

    @property
    def skip_cuda_knob(self) -> str | None:
        """"FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE" when it was built without its CUDA module."""
        entry = knowledge.catalog_entry(self.name)
        if entry.skip_cuda_knob is None or not entry.skips_cuda(self.env):
            return None
        return f"{entry.skip_cuda_knob}={self.env[entry.skip_cuda_knob]}"


def extension_targets(recipe: Recipe | None, locked: LockedEnv | None) -> list[ExtensionTarget]:
    """The recipe's extensions in its order, then those only the lock names."""
    targets: dict[str, ExtensionTarget] = {}
    for spec in recipe.extensions if recipe is not None else ():
        record = locked.extension(spec.name) if locked is not None else None
        targets[spec.name] = ExtensionTarget(spec.name, spec.import_name, spec.env_dict, record)
    for record in locked.extensions if locked is not None else ():
        name = canonicalize_name(record.name)
        if name not in targets:
            targets[name] = ExtensionTarget(name, None, dict(record.knobs), record)
    return list(targets.values())


def diagnose(
    venv: Path,
    *,
    hardware: Hardware,
    recipe: Recipe | None = None,
    locked: LockedEnv | None = None,
    runner: Runner | None = None,
    cuobjdump: bool = True,
) -> Report:
    """Check the env at ``venv`` against ``hardware`` (and the recipe's extensions and the lock).

    ``cuobjdump=False`` skips the cuobjdump cross-check of the extensions' binaries.
    """
    run = runner or SubprocessRunner()
    env = TargetEnv.at(venv)
    checks: list[Check] = []
    site = _env_check(env, run, checks)
    torch = torch_of(env, run, checks) if site is not None else None
    checks[:0] = machine_checks(hardware, torch)
    if site is not None:
        checks += _env_checks(env, run, site, torch, hardware, extension_targets(recipe, locked), locked,
                              cuobjdump=cuobjdump)
    return Report(env.path, _with_setup_command(checks, setup_command(venv, recipe)))


def _env_checks(
    env: TargetEnv, run: Runner, site: Path, torch: TorchInfo | None, hardware: Hardware,
    targets: Sequence[ExtensionTarget], locked: LockedEnv | None, *, cuobjdump: bool,
) -> list[Check]:
    """Everything after the env itself: torch, the toolkit, the lock, each extension."""
    checks: list[Check] = []
    if torch is not None:
        checks += torch_checks(env, run, site, torch, hardware)
        toolkit = toolkit_check(torch, hardware, exact_for=_exact_toolkit_names(targets))
        checks += [toolkit] if toolkit is not None else []
        checks.append(runtime_check(read_runtime_env(site), torch))
    checks.append(lock_check(locked, torch, bool(targets)))
    built_with = built_with_check(env.path)
    checks += [built_with] if built_with is not None else []
    if not targets:
        return checks
    installed = env.installed(run)
    modules = {t.name: _module_of(site, t) for t in targets}
    importable = [modules[t.name] for t in targets
                  if t.skip_cuda_knob is None and canonicalize_name(t.name) in installed]
    errors = _import_errors(env, run, importable)
    tool = _cuobjdump(site, hardware) if cuobjdump else None
    for target in targets:
        checks += _extension_checks(env, run, site, target, installed, torch, locked, hardware, tool,
                                    module=modules[target.name],
                                    import_error=errors.get(modules[target.name]))
    return checks


def _module_of(site: Path, target: ExtensionTarget) -> str:
    _, top_level = distribution_files(site, target.name)
    return (target.module or knowledge.catalog_entry(target.name).import_name or top_level
            or target.name.replace("-", "_"))


def _import_errors(env: TargetEnv, run: Runner, modules: Sequence[str]) -> dict[str, str]:
    """Module → the error its import ends with, through setup's own check: one interpreter, torch
    imported first (a plain CppExtension needs torch's libraries loaded before it)."""
    if not modules:
        return {}
    try:
        return env.check(run, modules).failures
    except GpuenvError as exc:  # the interpreter died: every module shares the blame it names
        return {module: getattr(exc, "tail", "") or str(exc) for module in modules}


#: How a fix names the setup command; :func:`diagnose` spells out its -r and --venv.
SETUP = "'gpuenv setup"


def setup_command(venv: Path, recipe: Recipe | None) -> str:
    """"gpuenv setup -r envs/llm.toml --venv .venv": the command that (re)makes this env."""
    parts = ["gpuenv setup"]
    if recipe is not None:
        parts += ["-r", shlex.quote(str(recipe.path))]
    return " ".join([*parts, "--venv", shlex.quote(str(venv))])


def _with_setup_command(checks: Sequence[Check], command: str) -> tuple[Check, ...]:
    return tuple(
        replace(c, fix=c.fix.replace(SETUP, "'" + command)) if c.fix and SETUP in c.fix else c
        for c in checks
    )


def _env_check(env: TargetEnv, run: Runner, checks: list[Check]) -> Path | None:
    """The env's site-packages, with an "env" check; None (and a failed check) if it has no Python."""
    if not env.python.exists():
        checks.append(Check(
            "env", "fail", f"{env.path} is not a virtual environment: it has no {env.python}",
            fix="create it with 'gpuenv setup'",
        ))
        return None
    try:
        interpreter = env.interpreter(run)
    except GpuenvError as exc:
        checks.append(Check("env", "fail", f"{env.python} does not run: {_first_line(str(exc))}",
                            fix="recreate the virtual environment"))
        return None
    checks.append(Check("env", "ok", f"{env.path}: Python {interpreter.version}"))
    return interpreter.site_packages


def _exact_toolkit_names(targets: Sequence[ExtensionTarget]) -> list[str]:
    return [t.name for t in targets if knowledge.catalog_entry(t.name).toolkit_match == "minor"]


# -- the extensions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Binary:
    """A compiled file of a distribution and the GPU code it holds (None: unreadable)."""

    path: Path
    code: CudaCode | None
    #: What cuobjdump --list-elf said, when it was asked.
    cuobjdump_sass: frozenset[str] | None = None


def distribution_files(site: Path, name: str) -> tuple[list[Path], str | None]:
    """The shared objects the distribution ``name`` installed (from its RECORD) and its top-level module."""
    for dist in importlib.metadata.distributions(path=[str(site)]):
        if canonicalize_name(dist.metadata["Name"] or "") != canonicalize_name(name):
            continue
        files = [Path(str(dist.locate_file(f))) for f in dist.files or () if _is_shared_object(f.name)]
        top = (dist.read_text("top_level.txt") or "").split()
        return files, top[0] if top else None
    return [], None


def _is_shared_object(filename: str) -> bool:
    return filename.endswith(".so") or ".so." in filename


def read_binaries(paths: Iterable[Path], cuobjdump: Path | None = None,
                  runner: Runner | None = None) -> list[Binary]:
    """Each file's GPU code; cuobjdump's answer too where the file holds some and a cuobjdump is given."""
    binaries = []
    for path in paths:
        try:
            code: CudaCode | None = read_cuda_code(path)
        except BinaryFormatError:
            code = None
        listed = None
        if cuobjdump is not None and code is not None and not code.empty:
            try:
                listed = list_elf(path, cuobjdump, runner)
            except GpuenvError:
                listed = None
        binaries.append(Binary(path, code, listed))
    return binaries


def _extension_checks(
    env: TargetEnv, run: Runner, site: Path, target: ExtensionTarget, distributions: Mapping[str, str],
    torch: TorchInfo | None, locked: LockedEnv | None, hardware: Hardware, cuobjdump: Path | None, *,
    module: str, import_error: str | None,
) -> list[Check]:
    installed = distributions.get(canonicalize_name(target.name))
    if installed is None:
        return [Check(target.name, "fail", f"is not installed in {env.path}",
                      fix="'gpuenv setup' builds and installs it")]
    files, _ = distribution_files(site, target.name)
    checks = [Check(target.name, "ok", f"{installed} is installed")]
    checks.append(import_check(target, module, import_error))
    checks.append(archs_check(target, read_binaries(files, cuobjdump, run), hardware))
    checks.append(built_against_check(target, installed, locked, torch))
    return checks


def import_check(target: ExtensionTarget, module: str, error: str | None) -> Check:
    name = f"{target.name} import"
    if target.skip_cuda_knob is not None:
        return Check(name, "skip", f"built with {target.skip_cuda_knob}, it has no compiled module")
    if error is None:
        return Check(name, "ok", f"{module} works")
    last = last_error(error)
    return Check(name, "fail", f"{module} fails: {last}", fix=_import_fix(target, module, error))


def _import_fix(target: ExtensionTarget, module: str, error: str) -> str:
    if UNDEFINED_SYMBOL in error:
        return "it was built against another torch or C++ ABI: 'gpuenv setup' rebuilds it against this one"
    missing = re.search(r"No module named '([\w.]+)'", error)
    if missing and missing.group(1) == module:
        return f"{target.name} has no module {module}: set import = \"...\" for it in the recipe"
    return hint_for(error) or "see the error above; 'gpuenv setup' reinstalls and verifies it"


def archs_check(target: ExtensionTarget, binaries: Sequence[Binary], hardware: Hardware) -> Check:
    """Whether the GPU code in the extension's compiled files runs on every GPU."""
    name = f"{target.name} archs"
    with_code = [b for b in binaries if b.code is not None and not b.code.empty]
    unreadable = [b.path.name for b in binaries if b.code is None]
    if not with_code:
        return _no_gpu_code_check(name, target, binaries, unreadable, hardware)
    union = merged_code(b.code for b in with_code if b.code is not None)
    held = f"{describe_code(union)} in {_files(len(with_code))}"
    disagree = [b for b in with_code if b.cuobjdump_sass is not None and b.code
                and b.cuobjdump_sass != b.code.sass]
    if disagree:
        b = disagree[0]
        return Check(name, "warn", f"{held}; but cuobjdump lists {' '.join(sorted(b.cuobjdump_sass or ()))} "
                     f"in {b.path.name}", fix="report this to gpuenv with the file")
    agreed = "; cuobjdump agrees" if any(b.cuobjdump_sass is not None for b in with_code) else ""
    if not hardware.gpus:
        return Check(name, "skip", f"{held}{agreed}; no GPU to check them against")
    missing = _uncovered(with_code, hardware.gpus)
    if not missing:
        return Check(name, "ok", f"{held} cover {gpu_list(hardware.gpus)}{agreed}")
    where = ", ".join(sorted({p for _, p in missing}))
    gpus = tuple(dict.fromkeys(g for g, _ in missing))
    return Check(name, "fail",
                 f"{held}: no code for {gpu_list(gpus)} in {where}: expect '{NO_KERNEL_IMAGE}'",
                 fix="'gpuenv setup' rebuilds it for the GPUs it detects (or pass --gpu/--arch for others)")


def merged_code(codes: Iterable[CudaCode]) -> CudaCode:
    sass: set[str] = set()
    ptx: set[str] = set()
    for code in codes:
        sass |= code.sass
        ptx |= code.ptx
    return CudaCode(sass=frozenset(sass), ptx=frozenset(ptx))


def _uncovered(binaries: Sequence[Binary], gpus: Sequence[Gpu]) -> list[tuple[Gpu, str]]:
    return [(g, b.path.name) for b in binaries for g in gpus
            if b.code is not None and not b.code.runs_on(g.compute_capability)]


def _no_gpu_code_check(
    name: str, target: ExtensionTarget, binaries: Sequence[Binary], unreadable: Sequence[str],
    hardware: Hardware,
) -> Check:
    if unreadable:
        return Check(name, "warn", f"cannot read {', '.join(unreadable)}")
    if target.skip_cuda_knob is not None:
        return Check(name, "ok", f"none: built with {target.skip_cuda_knob}")
    if not binaries:
        return Check(name, "ok", "none: no compiled files")
    entry = knowledge.catalog_entry(target.name)
    held = f"no GPU code in {_files(len(binaries))}: a CPU-only build"
    if not hardware.gpus:
        return Check(name, "ok", held)
    verdict: Verdict = "fail" if entry.cuda == "required" else "warn"
    return Check(name, verdict, f"{held}; its GPU operations will fail on {gpu_list(hardware.gpus)}",
                 fix="'gpuenv setup' rebuilds it with CUDA for these GPUs")


def built_against_check(
    target: ExtensionTarget, installed: str, locked: LockedEnv | None, torch: TorchInfo | None
) -> Check:
    """Whether the extension was built against the torch now installed (the lock's key vs the env)."""
    name = f"{target.name} built against"
    record = target.locked
    if locked is None or record is None:
        return Check(name, "warn", "an unknown torch: no lock records its build",
                     fix="'gpuenv setup' builds it and records the torch in gpuenv.lock")
    if record.version and record.version != installed:
        return Check(name, "warn", f"an unknown torch: the lock records {record.version} but {installed} "
                     "is installed", fix="'gpuenv setup' rebuilds the locked one")
    if torch is None:
        return Check(name, "fail", f"torch {locked.torch_version}, which is no longer installed",
                     fix="'gpuenv setup' reinstalls torch")
    change = torch_differs(locked, torch)
    if change is None:
        return Check(name, "ok", f"torch {torch.version}, the one installed")
    return Check(
        name, "fail",
        f"torch {locked.torch_version}, but torch changed since this extension was built ({change}): "
        f"expect '{UNDEFINED_SYMBOL}' on import",
        fix=f"run 'gpuenv setup' to rebuild it against torch {torch.version}",
    )


def _cuobjdump(site: Path, hardware: Hardware) -> Path | None:
    dirs: list[Path | str] = [site, *(Path(t.nvcc).parent for t in hardware.toolkits)]
    return find_cuobjdump(dirs)


# -- wording ---------------------------------------------------------------------------------------


def _files(count: int) -> str:
    return f"{count} compiled file{'s' if count != 1 else ''}"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else text


