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
from typing import Any, Literal

from packaging.utils import canonicalize_name

from gpuenv.cache.lock import LockedEnv, LockedExtension, lock_path_for, read_lock
from gpuenv.errors import EXIT_OK, EXIT_STEP_FAILED, GpuenvError, RecipeError
from gpuenv.hints import hint_for
from gpuenv.plan import knowledge
from gpuenv.plan.hardware import Gpu, Hardware, Toolkit
from gpuenv.plan.recipe import Recipe, find_recipe, load_recipe
from gpuenv.plan.variants import driver_runs
from gpuenv.probe.binaries import BinaryFormatError, CudaCode, find_cuobjdump, list_elf, read_cuda_code
from gpuenv.runner import ANSWER_MARK, Runner, SubprocessRunner
from gpuenv.setup.runtime import RUNTIME_PTH, read_runtime_env
from gpuenv.setup.targetenv import TargetEnv, TorchInfo

#: "skip": the check was not made; its detail says why (never "ok" for what was not checked).
Verdict = Literal["ok", "warn", "fail", "skip"]

NO_KERNEL_IMAGE = "no kernel image is available for execution on the device"
UNDEFINED_SYMBOL = "undefined symbol"

#: The torch library whose fat binary holds its kernels (read when torch reports no arch list).
TORCH_CUDA_LIB = Path("torch") / "lib" / "libtorch_cuda.so"

_CUDA_SCRIPT = f"""
import json, torch
available = torch.cuda.is_available()
reason = None
if not available:
    try:
        torch.cuda.init()
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
print({ANSWER_MARK!r} + json.dumps({{
    "available": available,
    "count": torch.cuda.device_count() if available else 0,
    "reason": reason,
}}))
"""


# -- the report ---------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One finding: ``name`` is what was checked, ``detail`` what was found."""

    name: str
    verdict: Verdict
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Report:
    venv: Path
    checks: tuple[Check, ...]

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.verdict == "fail")

    @property
    def warnings(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.verdict == "warn")

    @property
    def exit_code(self) -> int:
        """0 when nothing fails, 1 otherwise (warnings do not count)."""
        return EXIT_STEP_FAILED if self.failures else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "venv": str(self.venv),
            "exit_code": self.exit_code,
            "checks": [c.to_json() for c in self.checks],
        }


def report_text(report: Report) -> str:
    """One line per check ("ok   torch 2.13.0+cpu, …"), its fix indented under it, and a summary."""
    lines = []
    for check in report.checks:
        lines.append(f"{check.verdict:<4} {check.name} {check.detail}")
        if check.fix:
            lines.append(f"     fix: {check.fix}")
    failed, warned = len(report.failures), len(report.warnings)
    skipped = sum(c.verdict == "skip" for c in report.checks)
    lines.append(f"{report.venv}: {failed} failed, {warned} warning{'s' if warned != 1 else ''}"
                 + (f", {skipped} skipped" if skipped else ""))
    return "\n".join(lines)


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
    torch = _torch_of(env, run, checks) if site is not None else None
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
        checks += _torch_checks(env, run, site, torch, hardware)
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


def _torch_of(env: TargetEnv, run: Runner, checks: list[Check]) -> TorchInfo | None:
    try:
        torch = env.torch_info(run)
    except GpuenvError as exc:
        checks.append(Check("torch", "fail", f"is installed but does not import: {_last_error(str(exc))}",
                            fix="reinstall it: 'gpuenv setup'"))
        return None
    if torch is None:
        checks.append(Check("torch", "fail", f"is not installed in {env.path}",
                            fix="install it: 'gpuenv setup'"))
    return torch


def _torch_checks(
    env: TargetEnv, run: Runner, site: Path, torch: TorchInfo, hardware: Hardware
) -> list[Check]:
    checks = [torch_check(torch)]
    driver = torch_driver_check(torch, hardware)
    checks += [driver] if driver is not None else []
    code, source = torch_code(torch, site)
    checks.append(torch_kernels_check(torch, code, source, hardware))
    answer = _cuda_answer(env, run) if _gpus_here(hardware) and torch.cuda else None
    checks.append(cuda_available_check(torch, hardware, answer))
    return checks


def _cuda_answer(env: TargetEnv, run: Runner) -> Mapping[str, Any]:
    try:
        answer = env.query(run, _CUDA_SCRIPT)
    except GpuenvError as exc:
        return {"available": False, "count": 0, "reason": _last_error(str(exc))}
    return answer if isinstance(answer, Mapping) else {"available": False, "count": 0, "reason": None}


# -- the machine -------------------------------------------------------------------------


def machine_checks(hardware: Hardware, torch: TorchInfo | None) -> list[Check]:
    """The driver and the CUDA it supports, then one line per GPU (or one saying there is none)."""
    if not hardware.gpus:
        return [_no_gpu_check(hardware, torch)]
    checks = [_driver_check(hardware)]
    checks += [_gpu_check(gpu) for gpu in hardware.gpus]
    return checks


def _no_gpu_check(hardware: Hardware, torch: TorchInfo | None) -> Check:
    why = (
        f"the driver {hardware.driver_version} is loaded but shows no GPU"
        if hardware.driver_version else "no NVIDIA driver is loaded"
    )
    if torch is not None and torch.cuda is None:
        return Check("gpus", "skip", f"none ({why}); torch is a CPU build: the GPU checks are skipped")
    return Check(
        "gpus", "warn", f"none ({why}): the GPU checks are skipped",
        fix="run 'gpuenv doctor' on a machine with the GPUs to check them; 'nvidia-smi' shows what it sees",
    )


def _driver_check(hardware: Hardware) -> Check:
    if hardware.driver_version is None:
        return Check("driver", "skip", f"not probed: the GPUs are described ({hardware.source})")
    cuda = hardware.cuda_driver_version or "an unknown CUDA version"
    return Check("driver", "ok", f"{hardware.driver_version}, supports CUDA {cuda}")


def _gpu_check(gpu: Gpu) -> Check:
    memory = f", {gpu.memory_total_mib} MiB" if gpu.memory_total_mib else ""
    return Check(f"gpu {gpu.index}", "ok", f"{gpu.name}, compute capability {gpu.compute_capability}{memory}")


# -- torch ---------------------------------------------------------------------------------


def _torch_build(torch: TorchInfo) -> str:
    abi = "C++11 ABI" if torch.cxx11_abi else "pre-C++11 ABI"
    kind = "a CPU build" if torch.cuda is None else f"built with CUDA {torch.cuda}"
    return f"{kind}, {abi}"


def torch_check(torch: TorchInfo) -> Check:
    return Check("torch", "ok", f"{torch.version}, {_torch_build(torch)}")


def torch_driver_check(torch: TorchInfo, hardware: Hardware) -> Check | None:
    """Whether the driver runs torch's CUDA (None: nothing to check, no GPU or a CPU torch)."""
    if torch.cuda is None or not hardware.gpus:
        return None
    runs = driver_runs(hardware, torch.cuda)
    name = f"torch CUDA {torch.cuda}"
    if runs is None:
        return Check(name, "warn", "cannot be checked against the driver: its version is unknown",
                     fix=f"make sure the driver supports CUDA {torch.cuda} ('nvidia-smi' shows it)")
    driver = f"driver {hardware.driver_version} (CUDA {hardware.cuda_driver_version})"
    if not runs:
        return Check(name, "fail", f"is newer than the {driver}: torch.cuda.is_available() will be False",
                     fix=_driver_fix(torch, hardware))
    if knowledge.version_tuple(torch.cuda) > knowledge.version_tuple(hardware.cuda_driver_version or "0"):
        return Check(name, "warn", f"runs on the {driver} only through NVIDIA's minor-version "
                     "compatibility (no JIT of newer PTX)", fix="upgrade the NVIDIA driver when you can")
    return Check(name, "ok", f"runs on the {driver}")


def _driver_fix(torch: TorchInfo, hardware: Hardware) -> str:
    major = knowledge.version_tuple(torch.cuda or "0")[0]
    minimum = knowledge.driver_minimum(major)
    upgrade = f"upgrade the NVIDIA driver (CUDA {major}.x needs ≥ {minimum})" if minimum else \
        "upgrade the NVIDIA driver"
    variant = suggest_variant(torch.version, hardware)
    return upgrade + (f", or {variant}" if variant else "")


def torch_code(torch: TorchInfo, site: Path) -> tuple[CudaCode | None, str]:
    """The GPU code torch carries, and where that was read: its arch list, else libtorch_cuda.so."""
    if torch.arch_list:
        return code_from_arch_list(torch.arch_list), "torch.cuda.get_arch_list()"
    library = site / TORCH_CUDA_LIB
    if torch.cuda is None or not library.is_file():
        return None, ""
    try:
        return read_cuda_code(library), str(library)
    except BinaryFormatError as exc:
        return None, f"{library} cannot be read ({exc.problem})"


def code_from_arch_list(arch_list: Iterable[str]) -> CudaCode:
    """``["sm_80", "sm_90", "compute_90"]`` as :class:`CudaCode`."""
    archs = [a.strip() for a in arch_list]
    return CudaCode(
        sass=frozenset(a for a in archs if a.startswith("sm_")),
        ptx=frozenset(a for a in archs if a.startswith("compute_")),
    )


def torch_kernels_check(torch: TorchInfo, code: CudaCode | None, source: str, hardware: Hardware) -> Check:
    """Whether torch's wheel carries code every GPU can run ("no kernel image …" otherwise)."""
    name = "torch kernels"
    if torch.cuda is None:
        if hardware.gpus:
            return Check(name, "warn", f"none: torch is a CPU build and the {_gpu_count(hardware)} go unused",
                         fix="install a CUDA build of torch for these GPUs: 'gpuenv setup' plans one")
        return Check(name, "ok", "not needed: torch is a CPU build")
    if code is None or code.empty:
        why = source or "torch reports no arch list and has no libtorch_cuda.so"
        return Check(name, "warn", f"cannot be read: {why}")
    archs = describe_code(code)
    if not hardware.gpus:
        return Check(name, "skip", f"{archs} (from {source}); no GPU to check them against")
    missing = [g for g in hardware.gpus if not code.runs_on(g.compute_capability)]
    if not missing:
        return Check(name, "ok", f"{archs} cover {_gpu_list(hardware.gpus)}")
    return Check(
        name, "fail",
        f"{archs} hold no code for {_gpu_list(missing)}: expect '{NO_KERNEL_IMAGE}'",
        fix=suggest_variant(torch.version, hardware) or f"no torch {_release(torch.version)} build runs on "
        f"{_gpu_list(missing)}: choose another torch.version in the recipe",
    )


def suggest_variant(torch_version: str, hardware: Hardware) -> str | None:
    """"use torch 2.14 cu126 (… ): gpuenv setup --cuda 12.6": the build of this release that fits."""
    release = knowledge.torch_releases().get(_release(torch_version))
    if release is None or not hardware.gpus:
        return None
    covering = [
        v for v in release.variants
        if all(knowledge.runs_on(release.archs(v, from_pypi=v == release.pypi_default), g.cc)
               for g in hardware.gpus)
    ]
    newest_first = sorted(covering, key=lambda v: knowledge.version_tuple(knowledge.variant_cuda(v) or "0"),
                          reverse=True)
    fitting = [v for v in newest_first if driver_runs(hardware, knowledge.variant_cuda(v) or "") is not False]
    if not fitting:
        return None
    cuda = knowledge.variant_cuda(fitting[0])
    return f"install the {fitting[0]} build of torch {release.release}, which runs on these GPUs and this " \
        f"driver: 'gpuenv setup --cuda {cuda}'"


def cuda_available_check(torch: TorchInfo, hardware: Hardware, answer: Mapping[str, Any] | None) -> Check:
    """``torch.cuda.is_available()`` where there are GPUs (``answer`` is what the env said)."""
    name = "torch.cuda.is_available()"
    if not hardware.gpus:
        return Check(name, "skip", "no GPU")
    if not _gpus_here(hardware):
        return Check(name, "skip", f"the GPUs are described ({hardware.source}), not probed here")
    if torch.cuda is None:
        return Check(name, "ok", "False, as expected of a CPU build (see 'torch kernels')")
    if answer is not None and answer.get("available"):
        return Check(name, "ok", f"True, {answer.get('count', 0)} device(s) visible")
    reason = answer.get("reason") if answer is not None else None
    return Check(
        name, "fail", f"False although there {_are(hardware)}" + (f": {reason}" if reason else ""),
        fix=_unavailable_fix(torch, hardware, str(reason or "")),
    )


def _gpus_here(hardware: Hardware) -> bool:
    """Whether the GPUs were probed on this machine (not described by --gpu, --arch or a file)."""
    return bool(hardware.gpus) and hardware.source == "nvml"


def _unavailable_fix(torch: TorchInfo, hardware: Hardware, reason: str) -> str:
    if "too old" in reason or (torch.cuda and driver_runs(hardware, torch.cuda) is False):
        return _driver_fix(torch, hardware)
    return ("check that 'nvidia-smi' works for this user and that CUDA_VISIBLE_DEVICES does not hide "
            "the GPUs")


# -- the toolkit ----------------------------------------------------------------------------


def toolkit_check(torch: TorchInfo, hardware: Hardware, *, exact_for: Sequence[str] = ()) -> Check | None:
    """The nvcc that would build extensions for this torch (``exact_for``: those needing major.minor)."""
    if torch.cuda is None:
        return Check("toolkit", "ok", "not needed: torch is a CPU build, its extensions build without CUDA")
    want = knowledge.version_tuple(torch.cuda)[:2]
    exact = [t for t in hardware.toolkits if t.version_tuple == want]
    if exact:
        return Check("toolkit", "ok", f"{_nvcc(exact[0])} matches torch's CUDA {torch.cuda}")
    if not hardware.toolkits:
        return Check("toolkit", "warn", f"none found: installed extensions still run, but none can be "
                     f"built here for torch's CUDA {torch.cuda}", fix=_toolkit_fix(torch))
    same_major = [t for t in hardware.toolkits if t.version_tuple[0] == want[0]]
    if same_major and not exact_for:
        return Check("toolkit", "warn", f"{_nvcc(same_major[0])} vs torch's CUDA {torch.cuda}: the minors "
                     "differ (torch only warns)", fix=_toolkit_fix(torch))
    if same_major:
        return Check("toolkit", "fail", f"{_nvcc(same_major[0])}, but {', '.join(exact_for)} need(s) nvcc "
                     f"{torch.cuda} exactly", fix=_toolkit_fix(torch, exact=True))
    found = hardware.toolkits[0]
    return Check(
        "toolkit", "fail",
        f"{_nvcc(found)} cannot build for torch's CUDA {torch.cuda}: builds stop with 'The detected CUDA "
        f"version ({found.version}) mismatches the version that was used to compile PyTorch ({torch.cuda})'",
        fix=_toolkit_fix(torch) + f", or use the torch build for your toolkit: 'gpuenv setup --cuda "
        f"{found.version}'",
    )


def _toolkit_fix(torch: TorchInfo, *, exact: bool = False) -> str:
    cuda = torch.cuda or ""
    wanted = cuda if exact else f"{cuda} (or another {cuda.split('.')[0]}.x)"
    return f"install the CUDA {wanted} toolkit and point CUDA_HOME at its root"


def _nvcc(toolkit: Toolkit) -> str:
    return f"nvcc {toolkit.version} at {toolkit.nvcc}"


def _exact_toolkit_names(targets: Sequence[ExtensionTarget]) -> list[str]:
    return [t.name for t in targets if knowledge.catalog_entry(t.name).toolkit_match == "minor"]


def built_with_check(venv: Path) -> Check | None:
    """The toolkit setup built this env's CUDA extensions with, as its state file records it."""
    from gpuenv.setup.steps import load_state

    record = load_state(venv).get("toolkit")
    if not isinstance(record, dict) or not record.get("home"):
        return None
    nvcc = f"nvcc {record.get('release') or record.get('version')}"
    origin = "CUDA {} from PyPI, in gpuenv's toolkit cache".format(record.get("version")) \
        if record.get("source") == "pypi" else "the toolkit"
    detail = f"the CUDA extensions were built with {origin} at {record['home']} ({nvcc})"
    if Path(str(record["home"]), "bin", "nvcc").exists():
        return Check("built with", "ok", detail)
    return Check("built with", "ok",
                 f"{detail}; it is gone since (pruned?): a rebuild takes the plan's toolkit")


# -- the lock ---------------------------------------------------------------------------------


def runtime_check(runtime: Mapping[str, str] | None, torch: TorchInfo) -> Check:
    """What kernels compiled while the env runs (cpp_extension.load, DeepSpeed ops) will build with."""
    name = "runtime builds"
    if runtime is None:
        if torch.cuda is None:
            return Check(name, "ok", "a CPU torch: kernels compiled at run time build for the CPU")
        return Check(name, "warn", f"no {RUNTIME_PTH} in the env: code that compiles CUDA kernels when it "
                     "runs guesses CUDA_HOME (often /usr/local) and the archs",
                     fix="run 'gpuenv setup' to write it")
    values = " ".join(f"{k}={v}" for k, v in sorted(runtime.items()))
    home = runtime.get("CUDA_HOME")
    if home is not None and not Path(home, "bin", "nvcc").exists():
        return Check(name, "fail", f"{values}: but {home}/bin/nvcc does not exist",
                     fix="run 'gpuenv setup' again to point it at a toolkit on this machine")
    return Check(name, "ok", f"kernels compiled at run time get {values} ({RUNTIME_PTH})")


def lock_check(locked: LockedEnv | None, torch: TorchInfo | None, has_extensions: bool) -> Check:
    if locked is None:
        if has_extensions:
            return Check("lock", "warn", "none for this env: which torch its extensions were built against "
                         "cannot be told", fix="'gpuenv setup' writes gpuenv.lock next to the recipe")
        return Check("lock", "skip", "none for this env (nothing built to compare)")
    if locked.edited is not None:
        return Check("lock", "warn", f"env '{locked.name}': gpuenv.lock was edited by hand "
                     f"({locked.edited}); its records are not trusted",
                     fix="'gpuenv setup' writes a new entry")
    if torch is None or torch_differs(locked, torch) is None:
        return Check("lock", "ok", f"env '{locked.name}' ({locked.recipe}): torch {locked.torch_version}")
    return Check(
        "lock", "warn",
        f"env '{locked.name}' locked torch {locked.torch_version}, the env has {torch.version}: "
        "something replaced it",
        fix=f"'gpuenv setup --locked' restores torch {locked.torch_version} and what was built for it; "
        f"'gpuenv setup' rebuilds the extensions for torch {torch.version}",
    )


def torch_differs(locked: LockedEnv, torch: TorchInfo) -> str | None:
    """"2.13.0+cpu → 2.14.1+cu130" when the env's torch is not the one the lock built against."""
    before = (locked.torch_version, locked.torch_cuda, locked.cxx11_abi)
    now = (torch.version, torch.cuda, torch.cxx11_abi)
    if before == now:
        return None
    if locked.torch_version != torch.version:
        return f"{locked.torch_version} → {torch.version}"
    return f"{_build_of(*before)} → {_build_of(*now)}"


def _build_of(version: str, cuda: str | None, abi: bool) -> str:
    return f"{version} ({'CPU' if cuda is None else 'CUDA ' + cuda}, {'C++11' if abi else 'pre-C++11'} ABI)"


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
    last = _last_error(error)
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
        return Check(name, "ok", f"{held} cover {_gpu_list(hardware.gpus)}{agreed}")
    where = ", ".join(sorted({p for _, p in missing}))
    gpus = tuple(dict.fromkeys(g for g, _ in missing))
    return Check(name, "fail",
                 f"{held}: no code for {_gpu_list(gpus)} in {where}: expect '{NO_KERNEL_IMAGE}'",
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
    return Check(name, verdict, f"{held}; its GPU operations will fail on {_gpu_list(hardware.gpus)}",
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


def describe_code(code: CudaCode) -> str:
    """"sm_80 sm_90 +PTX compute_90", in arch order."""
    sass = " ".join(sorted(code.sass, key=_arch_order))
    ptx = " ".join(sorted(code.ptx, key=_arch_order))
    return " ".join(part for part in (sass, f"+PTX {ptx}" if ptx else "") if part)


def _arch_order(name: str) -> tuple[int, str]:
    digits = re.search(r"(\d+)(\w?)$", name)
    return (int(digits.group(1)), digits.group(2)) if digits else (0, name)


def _gpu_list(gpus: Sequence[Gpu]) -> str:
    return ", ".join(f"GPU {g.index} {g.name} ({g.compute_capability})" for g in gpus)


def _gpu_count(hardware: Hardware) -> str:
    n = len(hardware.gpus)
    return f"{n} GPU{'s' if n != 1 else ''}"


def _are(hardware: Hardware) -> str:
    n = len(hardware.gpus)
    return f"{'is' if n == 1 else 'are'} {_gpu_count(hardware)}"


def _files(count: int) -> str:
    return f"{count} compiled file{'s' if count != 1 else ''}"


def _release(version: str) -> str:
    parts = re.findall(r"\d+", version)
    return ".".join(parts[:2])


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else text


def _last_error(text: str) -> str:
    """The line that names the error in a traceback ("ImportError: …"), else the last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception)\b", line):
            return line
    return lines[-1] if lines else text
