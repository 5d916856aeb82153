"""The doctor's extension checks: each one the recipe or the lock names is installed, imports, holds GPU
code for every GPU (its compiled files read on disk, cuobjdump's opinion too) and was built against
the torch installed now."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from gpuenv.doctor.lock import torch_differs
from gpuenv.doctor.report import Check, Verdict
from gpuenv.doctor.wording import NO_KERNEL_IMAGE, describe_code, gpu_list, last_error
from gpuenv.env.targetenv import TargetEnv, TorchInfo
from gpuenv.errors import GpuenvError
from gpuenv.hints import hint_for
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.load.treemeta import tree_name
from gpuenv.lock.lockfile import LockedEnv, LockedExtension
from gpuenv.plan import catalog
from gpuenv.plan.extensionspec import ExtensionSpec
from gpuenv.plan.hardware import Gpu, Hardware
from gpuenv.plan.recipespec import Recipe
from gpuenv.probe.binaries import BinaryFormatError, CudaCode, list_elf, read_cuda_code
from gpuenv.runner import Runner

#: What importing an extension built against another torch (or C++ ABI) fails with.
UNDEFINED_SYMBOL = "undefined symbol"


@dataclass(frozen=True)
class ExtensionTarget:
    """An extension to check: from the recipe, the lock, or both."""

    name: str
    #: The module to import; None: guessed from the installed distribution.
    module: str | None = None
    #: The build environment it was (to be) built with: the recipe's env, else the lock's knobs.
    env: Mapping[str, str] = field(default_factory=dict)
    locked: LockedExtension | None = None
    #: The distribution it installs when that is not ``name``: a local tree's ``name`` is its folder's,
    #: its distribution the one its files declare ("ops" installs "mmcv-ops").
    distribution: str | None = None

    @property
    def installs(self) -> str:
        """The distribution to look for in the env."""
        return self.distribution or self.name

    @property
    def skip_cuda_knob(self) -> str | None:
        """"FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE" when it was built without its CUDA module."""
        entry = catalog.catalog_entry(self.name)
        if entry.skip_cuda_knob is None or not entry.skips_cuda(self.env):
            return None
        return f"{entry.skip_cuda_knob}={self.env[entry.skip_cuda_knob]}"


def extension_targets(recipe: Recipe | None, locked: LockedEnv | None) -> list[ExtensionTarget]:
    """The recipe's extensions in its order, then those only the lock names."""
    targets: dict[str, ExtensionTarget] = {}
    claimed: set[str] = set()
    for spec in recipe.extensions if recipe is not None else ():
        record = _record_of(spec, locked)
        if record is not None:
            claimed.add(canonicalize_name(record.name))
        installs = canonicalize_name(record.name) if record is not None else _declared_name(spec)
        targets[spec.name] = ExtensionTarget(spec.name, spec.import_name, spec.env_dict, record,
                                             distribution=installs if installs != spec.name else None)
    for record in locked.extensions if locked is not None else ():
        name = canonicalize_name(record.name)
        if name not in targets and name not in claimed:
            targets[name] = ExtensionTarget(name, None, dict(record.knobs), record)
    return list(targets.values())


def _record_of(spec: ExtensionSpec, locked: LockedEnv | None) -> LockedExtension | None:
    """The lock's record of ``spec``: by name, else by the requirement it was built from (a local
    tree's record is named by the distribution it installed, not by its folder)."""
    if locked is None:
        return None
    return locked.extension(spec.name) or next(
        (e for e in locked.extensions if e.requirement == spec.requirement), None)


def _declared_name(spec: ExtensionSpec) -> str:
    """The distribution a local tree declares (static metadata), else the recipe's name for it."""
    if spec.path is None or not spec.path.is_dir():
        return spec.name
    declared = tree_name(spec.path)
    return canonicalize_name(declared) if declared else spec.name


def module_of(site: Path, target: ExtensionTarget) -> str:
    """The module to import: the recipe's, the catalog's, the top-level module it installed, else its name."""
    _, top_level = distribution_files(site, target.installs)
    return (target.module or catalog.catalog_entry(target.name).import_name or top_level
            or target.name.replace("-", "_"))


def import_errors(env: TargetEnv, run: Runner, modules: Sequence[str]) -> dict[str, str]:
    """Module → the error its import ends with, through setup's own check: one interpreter, torch
    imported first (a plain CppExtension needs torch's libraries loaded before it)."""
    if not modules:
        return {}
    try:
        return env.check(run, modules).failures
    except GpuenvError as exc:  # the interpreter died: every module shares the blame it names
        return {module: getattr(exc, "tail", "") or str(exc) for module in modules}


@dataclass(frozen=True)
class Binary:
    """A compiled file of a distribution and the GPU code it holds (None: unreadable)."""

    path: Path
    code: CudaCode | None
    #: What cuobjdump --list-elf said, when it was asked.
    cuobjdump_sass: frozenset[str] | None = None


def distribution_files(site: Path, name: str) -> tuple[list[Path], str | None]:
    """The shared objects the distribution ``name`` installed (from its RECORD) and its top-level module.

    Read from the files, through the bounded reader, whatever their encoding (old packages have
    Latin-1 METADATA and RECORD files): an env gpuenv did not make is read, not trusted.
    """
    wanted = canonicalize_name(name)
    for info in sorted(site.glob("*.dist-info")):
        if canonicalize_name(_header(info / "METADATA", "name") or "") != wanted:
            continue
        files = [site / line for line in _record_paths(info / "RECORD") if _is_shared_object(line)]
        top = _small_text(info / "top_level.txt").split()
        return files, top[0] if top else None
    return [], None


def _small_text(path: Path) -> str:
    """A metadata file's text, "" when it is missing or unreadable (a FIFO, a huge file, a loop)."""
    try:
        return read_input(path, errors="replace")
    except UnreadableInput:
        return ""


def _header(path: Path, name: str) -> str | None:
    for line in _small_text(path).splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name:
            return value.strip()
    return None


def _record_paths(record: Path) -> list[str]:
    """The paths a RECORD lists, inside site-packages (no absolute path, no NUL, no climbing out)."""
    rows = csv.reader(_small_text(record).replace("\0", "").splitlines())
    paths = []
    for row in rows:
        if row and row[0] and not row[0].startswith("/") and ".." not in row[0].split("/"):
            paths.append(row[0])
    return paths


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


def extension_checks(
    env: TargetEnv, run: Runner, site: Path, target: ExtensionTarget, distributions: Mapping[str, str],
    torch: TorchInfo | None, locked: LockedEnv | None, hardware: Hardware, cuobjdump: Path | None, *,
    module: str, import_error: str | None,
) -> list[Check]:
    """One extension: installed, then its import, its archs and the torch it was built against."""
    installed = distributions.get(canonicalize_name(target.installs))
    if installed is None:
        return [Check(target.name, "fail", f"is not installed in {env.path}",
                      fix="'gpuenv setup' builds and installs it")]
    files, _ = distribution_files(site, target.installs)
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
    entry = catalog.catalog_entry(target.name)
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
        return Check(name, "fail", f"torch {locked.abi.torch_version}, which is no longer installed",
                     fix="'gpuenv setup' reinstalls torch")
    change = torch_differs(locked, torch)
    if change is None:
        return Check(name, "ok", f"torch {torch.version}, the one installed")
    return Check(
        name, "fail",
        f"torch {locked.abi.torch_version}, but torch changed since this extension was built ({change}): "
        f"expect '{UNDEFINED_SYMBOL}' on import",
        fix=f"run 'gpuenv setup' to rebuild it against torch {torch.version}",
    )


def _files(count: int) -> str:
    return f"{count} compiled file{'s' if count != 1 else ''}"
