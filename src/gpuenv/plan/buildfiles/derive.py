"""Read a package's build facts from its build files' text: pure, nothing is run or imported.

:func:`derive` takes the files' text (``{"setup.py": "...", "build_tools/utils.py": "..."}``)
and returns :class:`~gpuenv.plan.buildfiles.facts.BuildFacts`: the arch knob, the force-build
and skip variables with the values they are compared with, ``-std=c++NN`` per compiler, the
hard-coded ``-gencode`` flags with the nvcc versions each needs, whether ninja builds it, the
oldest nvcc it accepts, whether it compiles CUDA only when it sees a GPU. Code a Linux CUDA
build does not run (a ROCm branch, a Windows branch) is left out. :func:`imported_files`
says which helper modules setup.py reads, so a downloader unpacks only those.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Collection, Mapping

from gpuenv.inputs import parse_python
from gpuenv.plan.buildfiles.conditions import (
    Const,
    Context,
    Unknown,
    spec_over,
)
from gpuenv.plan.buildfiles.envreads import EnvCheck
from gpuenv.plan.buildfiles.facts import (
    ArchChoice,
    ArchDefault,
    ArchKnob,
    BuildFacts,
    BuildOption,
    CudaExtension,
    Gencode,
    Ninja,
    StdFlag,
)
from gpuenv.plan.buildfiles.filescan import TORCH_ARCH_LIST, FileScan, torch_defaults
from gpuenv.plan.buildfiles.pysource import PyFile, Where

#: The build files read from the top of a package, besides the helpers setup.py imports.
TOP_FILES = ("setup.py", "pyproject.toml", "setup.cfg", "CMakeLists.txt")
#: Helper modules followed from setup.py, at most this many imports deep.
IMPORT_DEPTH = 2

_CMAKE_STD = re.compile(r"set\s*\(\s*CMAKE_(CXX|CUDA)_STANDARD\s+(\d+)\s*\)", re.IGNORECASE)
#: FLASH_ATTN_CUDA_ARCHS, NVTE_CUDA_ARCHS, TORCH_CUDA_ARCH_LIST (not APEX_PERMUTATION_SEARCH).
_ARCH_VAR = re.compile(r"(?:^|_)ARCH(?:S|ITECTURES)?(?:_|$)", re.IGNORECASE)
_NOT_CUDA = re.compile(r"HIP|ROCM", re.IGNORECASE)


def imported_files(name: str, text: str, available: Collection[str]) -> list[str]:
    """The files of ``available`` that the module ``name`` (a path) imports: ``from build_tools.utils
    import x`` → build_tools/utils.py, ``from .builder import B`` → its sibling builder.py."""
    try:
        tree = parse_python(text, name)
    except SyntaxError:
        return []
    here = posixpath.dirname(name)
    found: list[str] = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = here.split("/") if here else []
                parts = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *([base] if base else [])])
            modules = [base] + [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
        for module in modules:
            path = module.replace(".", "/")
            for candidate in (f"{path}.py", f"{path}/__init__.py"):
                if candidate in available and candidate != name and candidate not in found:
                    found.append(candidate)
    return found


def derive(files: Mapping[str, str]) -> BuildFacts:
    """The build facts of the package whose build files ``files`` are (path → text)."""
    scans: list[FileScan] = []
    notes: list[str] = []
    std_flags: list[StdFlag] = []
    for name, text in files.items():
        if name.endswith(".py"):
            try:
                scans.append(FileScan(PyFile(name, text)))
            except SyntaxError as exc:
                where = f", line {exc.lineno}" if exc.lineno else ""
                notes.append(f"{name}: unrecognised: it does not parse ({exc.msg}{where})")
        elif posixpath.basename(name) == "CMakeLists.txt" and _uses_cmake(files):
            std_flags += _cmake_std(name, text)
    for scan in scans:
        notes += [f"{where}: an environment variable whose name is computed: {text}"
                  for where, text in scan.reads.unresolved]
    env = tuple(c for s in scans for c in s.env_checks())
    gencodes = tuple(sorted((g for s in scans for g in s.gencodes()),
                            key=lambda g: (g.where.file, g.where.line)))
    extensions = tuple(e for s in scans for e in s.cuda_extensions({g.into for g in gencodes if g.into}))
    setup = next((s for s in scans if s.source.name == "setup.py"), None)
    return BuildFacts(
        files=tuple(files),
        env=env,
        arch_knob=_arch_knob(scans, env, gencodes, extensions),
        gencodes=gencodes,
        computed_gencodes=tuple(w for s in scans for w in s.computed_gencodes()),
        cuda_extensions=extensions,
        std_flags=(*std_flags, *(f for s in scans for f in s.std_flags())),
        min_nvcc=tuple(m for s in scans for m in s.min_nvcc()),
        ninja=_ninja(scans),
        gpu_gates=tuple(g for s in scans for g in s.gpu_gates()),
        options=_options(scans),
        toolkit_match=tuple(t for s in scans for t in s.toolkit_match()),
        nvcc_threads=tuple(t for s in scans for t in s.nvcc_threads()),
        stable_abi=tuple(a for s in scans for a in s.stable_abi()),
        declared_version=setup.declared_version() if setup else None,
        notes=tuple(notes),
    )


def _uses_cmake(files: Mapping[str, str]) -> bool:
    """Whether the Python build runs CMake (a CMakeLists.txt beside a plain setuptools build is for
    another build of the C++ library, not this one)."""
    return any(re.search(r"\bcmake\b", text, re.IGNORECASE)
               for name, text in files.items() if name.endswith(".py"))


def _cmake_std(name: str, text: str) -> list[StdFlag]:
    flags = []
    for match in _CMAKE_STD.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        compiler = "nvcc" if match.group(1).upper() == "CUDA" else "cxx"
        flags.append(StdFlag(compiler, int(match.group(2)), Const(True, "CMake"), Where(name, line)))
    return flags


# -- facts over all files ----------------------------------------------------------------------------


def _arch_knob(scans: list[FileScan], env: tuple[EnvCheck, ...], gencodes: tuple[Gencode, ...],
               extensions: tuple[CudaExtension, ...]) -> ArchKnob:
    own = [c for c in env if _ARCH_VAR.search(c.name) and c.name != TORCH_ARCH_LIST
           and not _NOT_CUDA.search(c.name)]
    if own:
        first = min(own, key=lambda c: (c.where.file != "setup.py", c.where.line))
        defaults = _own_defaults(scans, first)
        choices = tuple(ArchChoice(g.knob_choice, g.nvcc, g.where) for g in gencodes if g.knob_choice)
        values = [d.value for d in defaults] + [c.value for c in choices]
        return ArchKnob(first.name, _format(values), defaults, choices, first.where)
    fixed = [e for e in extensions if e.fixed]
    if extensions and len(fixed) == len(extensions):
        return ArchKnob(None, None, (), (), fixed[0].where,
                        note="every CUDA extension passes its own -gencode flags")
    torch_reads = [c for c in env if c.name == TORCH_ARCH_LIST]
    defaults = tuple(d for s in scans for d in torch_defaults(s))
    if extensions:
        note = ("partly fixed: " + ", ".join(f"{e.name} ({e.where})" for e in fixed)
                + " pass their own -gencode flags") if fixed else ""
        return ArchKnob(TORCH_ARCH_LIST, "torch", defaults, (), extensions[0].where, note=note)
    if torch_reads:
        return ArchKnob(TORCH_ARCH_LIST, "torch", defaults, (), torch_reads[0].where,
                        note="no CUDAExtension in the files read; TORCH_CUDA_ARCH_LIST is read")
    return ArchKnob(None, None, (), (), None, recognised=False,
                    note="no CUDAExtension and no arch variable in the files read")


def _own_defaults(scans: list[FileScan], knob: EnvCheck) -> tuple[ArchDefault, ...]:
    defaults = []
    if knob.default is not None:
        defaults.append(ArchDefault(knob.default, "", knob.where))
    for scan in scans:
        for read in scan.reads.reads:
            if not any(c.name == knob.name for c in read.checks):
                continue
            statement = scan.source.statement_of(read.read)
            if not (isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name)):
                continue
            holder = statement.targets[0].id
            scope = scan.source.function_of(statement) or scan.source.tree
            for node in ast.walk(scope):
                if (isinstance(node, ast.Assign) and node is not statement
                        and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                        and any(isinstance(t, ast.Name) and t.id == holder for t in node.targets)):
                    nvcc = spec_over(scan.reader.around(node), Context(env={}, options=frozenset()))
                    defaults.append(ArchDefault(node.value.value, nvcc, scan.source.where(node)))
    return tuple(defaults)


def _format(values: list[str]) -> str | None:
    items = [i.removesuffix("+PTX") for v in values for i in re.split(r"[;,\s]+", v) if i]
    if items and all(re.fullmatch(r"\d{2,3}[af]?", i) for i in items):
        return "nodot"
    if items and all(re.fullmatch(r"\d+\.\d+[af]?", i) for i in items):
        return "torch"
    return None


def _ninja(scans: list[FileScan]) -> Ninja:
    settings = [n for s in scans for n in s.ninja_settings()]
    if settings:
        return settings[0]
    where = next((w for s in scans if (w := s.uses_build_extension()) is not None), None)
    if where is not None:
        return Ninja(Const(True, "torch's BuildExtension uses ninja unless told not to"),
                     "BuildExtension (use_ninja not given)", where)
    return Ninja(Unknown("no BuildExtension in the files read"), "no BuildExtension in the files read", None)


def _options(scans: list[FileScan]) -> tuple[BuildOption, ...]:
    seen: dict[str, BuildOption] = {}
    found = sorted((o for s in scans for o in s.options()), key=lambda o: (o.where.file, o.where.line))
    for option in found:
        known = seen.get(option.option)
        if known is None or (option.env and not known.env):
            seen[option.option] = option
    return tuple(seen.values())
