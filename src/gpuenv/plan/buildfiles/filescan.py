"""One Python build file read for every kind of fact: env reads, -gencode flags, -std flags, CUDA
extensions, nvcc checks, ninja, GPU detection, setup.py options.

:class:`FileScan` works on the text alone (:class:`~gpuenv.plan.buildfiles.pysource.PyFile`);
:mod:`~gpuenv.plan.buildfiles.derive` puts the scans of a package's files together.
"""

from __future__ import annotations

import ast
import re

from gpuenv.plan.buildfiles.conditions import (
    Const,
    Context,
    Env,
    Gpu,
    Knob,
    Option,
    Reader,
    spec_over,
)
from gpuenv.plan.buildfiles.envreads import EnvCheck, EnvReads, env_reads
from gpuenv.plan.buildfiles.facts import (
    ArchDefault,
    BuildOption,
    CudaExtension,
    Gencode,
    GpuGate,
    MinNvcc,
    Ninja,
    NvccThreads,
    StableAbi,
    StdFlag,
    ToolkitMatch,
)
from gpuenv.plan.buildfiles.pysource import PyFile, Where, call_name, dotted

GENCODE = re.compile(r"arch=compute_(\d+)([af]?),code=(sm|compute)_(\d+)([af]?)")
_STD = re.compile(r"^--?std=c\+\+(\d+)$")
_THREADS = re.compile(r"^--threads[= ](\d+)$")
_TARGET = re.compile(r"-DTORCH_TARGET_VERSION=0x([0-9a-fA-F]{2})([0-9a-fA-F]{2})")
#: What is known of every build before the catalog says more: nothing but the platform.
_STATIC = Context()
TORCH_ARCH_LIST = "TORCH_CUDA_ARCH_LIST"


class FileScan:
    """One Python build file, read for every kind of fact."""

    def __init__(self, source: PyFile) -> None:
        self.source = source
        self.reads: EnvReads = env_reads(source)
        self.reader = Reader(source, self.reads)

    def runs(self, node: ast.AST, depth: int = 0) -> bool:
        """Whether a Linux CUDA build can reach ``node``: not in a ROCm or Windows branch and, in a
        module-level function, one called from code that runs. A function setup.py never calls is
        dead; one a helper module never calls may be called by setup.py."""
        if self.reader.around(node).value(_STATIC) is False:
            return False
        function = self.source.function_of(node)
        if function is None or depth > 4 or function not in self.source.tree.body:
            return True
        name = function.name
        if any(isinstance(n, (ast.Name, ast.Attribute)) and (getattr(n, "id", None) == name or getattr(
                n, "attr", None) == name) and not isinstance(self.source.parent(n), ast.Call)
               for n in ast.walk(self.source.tree)):
            return True  # handed on as a value (a cmdclass, a callback): assume it runs
        calls = [c for c in self.source.calls_to(name) if self.source.function_of(c) is not function]
        if not calls:
            return self.source.name != "setup.py"
        return any(self.runs(c, depth + 1) for c in calls)

    def strings(self) -> list[tuple[ast.Constant, str]]:
        return [(n, n.value) for n in ast.walk(self.source.tree)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)]

    # -- environment --------------------------------------------------------------------------

    def env_checks(self) -> list[EnvCheck]:
        return [c for r in self.reads.reads if self.runs(r.call or r.read) for c in r.checks]

    # -- gencodes ---------------------------------------------------------------------------------

    def gencodes(self) -> list[Gencode]:
        found = []
        for node, text in self.strings():
            match = GENCODE.search(text)
            if match is None or not self.runs(node):
                continue
            condition = self.reader.around(node)
            atoms = condition.atoms()
            knobs = [a.choice for a in atoms if isinstance(a, Knob)]
            options = [a for a in atoms if isinstance(a, Option)]
            needs = tuple(dict.fromkeys([*(o for a in options for o in a.options),
                                         *(c.name for a in options for c in a.checks)]))
            shown = Context(env={}, options=frozenset(o for a in options for o in a.options),
                            knob=frozenset(knobs), gpu=None)
            digits, suffix = match.group(4), match.group(5)
            found.append(Gencode(
                arch=f"{digits[:-1]}.{digits[-1]}{suffix}",
                ptx=match.group(3) == "compute",
                condition=condition,
                nvcc=spec_over(condition, shown),
                knob_choice=knobs[0] if knobs else None,
                needs=needs,
                into=self._target(node),
                where=self.source.where(node),
            ))
        return found

    def computed_gencodes(self) -> list[Where]:
        return [self.source.where(n) for n in ast.walk(self.source.tree) if isinstance(n, ast.JoinedStr)
                and "arch=compute_" in self.source.segment(n) and self.runs(n)]

    def _target(self, node: ast.AST) -> str | None:
        """The variable a flag is put into: ``cc_flag.append(..)``, ``cc_flag += [..]``, ``x = [..]``."""
        statement = self.source.statement_of(node)
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            func = statement.value.func
            if isinstance(func, ast.Attribute) and func.attr in ("append", "extend", "insert"):
                return dotted(func.value)
        if isinstance(statement, ast.AugAssign):
            return dotted(statement.target)
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            return dotted(statement.targets[0])
        return None

    # -- extensions --------------------------------------------------------------------------------

    def cuda_extensions(self, gencode_vars: set[str]) -> list[CudaExtension]:
        makers = {"CUDAExtension"} | {
            name for name, values in self.source.assigns.items()
            if any(isinstance(n, ast.Name) and n.id == "CUDAExtension" for v in values for n in ast.walk(v))}
        for function in self.source.functions.values():
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and any(
                        isinstance(n, ast.Name) and n.id == "CUDAExtension" for n in ast.walk(node.value)):
                    makers |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        makers |= {alias.asname for node in ast.walk(self.source.tree) if isinstance(node, ast.ImportFrom)
                   for alias in node.names if alias.name == "CUDAExtension" and alias.asname}
        found = []
        for call in ast.walk(self.source.tree):
            if not (isinstance(call, ast.Call) and call_name(call) in makers and self.runs(call)):
                continue
            nvcc = self._nvcc_names(call)
            literal = any(isinstance(n, ast.Constant) and isinstance(n.value, str)
                          and GENCODE.search(n.value) is not None
                          for expr in self._nvcc_exprs(call) for n in ast.walk(expr))
            name = (call.args[0] if call.args
                    else next((k.value for k in call.keywords if k.arg == "name"), None))
            found.append(CudaExtension(
                name=self.source.segment(name).strip("'\"") if name is not None else None,
                fixed=literal or bool(nvcc & gencode_vars),
                condition=self.reader.around(call),
                where=self.source.where(call),
            ))
        return found

    def _nvcc_exprs(self, call: ast.Call) -> list[ast.expr]:
        args = next((k.value for k in call.keywords if k.arg == "extra_compile_args"), None)
        if args is None:
            return []
        dicts = [args] if isinstance(args, ast.Dict) else (
            self.source.values_of(args.id, call) if isinstance(args, ast.Name) else [])
        exprs = [v for d in dicts if isinstance(d, ast.Dict)
                 for k, v in zip(d.keys, d.values)
                 if isinstance(k, ast.Constant) and k.value == "nvcc"]
        if isinstance(args, ast.Name):  # extra_compile_args["nvcc"] = nvcc_flags, ...["nvcc"] += [...]
            scope = self.source.function_of(call) or self.source.tree
            for node in ast.walk(scope):
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target, value = node.targets[0], node.value
                elif isinstance(node, ast.AugAssign):
                    target, value = node.target, node.value
                else:
                    continue
                if (isinstance(target, ast.Subscript) and dotted(target.value) == args.id
                        and isinstance(target.slice, ast.Constant) and target.slice.value == "nvcc"):
                    exprs.append(value)
        return exprs

    def _nvcc_names(self, call: ast.Call) -> set[str]:
        names: set[str] = set()
        pending = [n.id for e in self._nvcc_exprs(call) for n in ast.walk(e) if isinstance(n, ast.Name)]
        for _ in range(3):
            more = []
            for name in pending:
                if name in names:
                    continue
                names.add(name)
                for value in self.source.values_of(name, call):
                    more += [n.id for n in ast.walk(value) if isinstance(n, ast.Name)]
            pending = more
        return names

    # -- C++ standard -------------------------------------------------------------------------------

    def std_flags(self) -> list[StdFlag]:
        found = []
        for node, text in self.strings():
            match = _STD.match(text.strip())
            if match is None or not self.runs(node):
                continue
            found.append(StdFlag(self._compiler(node), int(match.group(1)), self.reader.around(node),
                                 self.source.where(node)))
        return found

    def _compiler(self, node: ast.AST) -> str:
        for ancestor, child in self.source.ancestors(node):
            if isinstance(ancestor, ast.Dict) and child in ancestor.values:
                key = ancestor.keys[ancestor.values.index(child)]  # type: ignore[arg-type,unused-ignore]
                if isinstance(key, ast.Constant) and key.value in ("cxx", "nvcc"):
                    return str(key.value)
            if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for compiler in ("nvcc", "cxx"):
                    if compiler in ancestor.name.lower():
                        return compiler
                break
        target = self._target(node)
        return self._compiler_of_name(target, node, 0) if target else "?"

    def _compiler_of_name(self, name: str, at: ast.AST, depth: int) -> str:
        if "nvcc" in name.lower():
            return "nvcc"
        if depth > 3:
            return "?"
        scope = self.source.function_of(at) or self.source.tree
        for node in ast.walk(scope):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if (isinstance(key, ast.Constant) and key.value in ("cxx", "nvcc")
                            and any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(value))):
                        return str(key.value)
            statement = node if isinstance(node, (ast.Assign, ast.AugAssign)) else None
            if statement is not None and any(isinstance(n, ast.Name) and n.id == name
                                             for n in ast.walk(statement.value)):
                target = statement.targets[0] if isinstance(statement, ast.Assign) else statement.target
                outer = dotted(target)
                if outer and outer != name:
                    found = self._compiler_of_name(outer, node, depth + 1)
                    if found != "?":
                        return found
        return "?"

    # -- nvcc's threads, torch's stable ABI ----------------------------------------------------------

    def nvcc_threads(self) -> list[NvccThreads]:
        found = []
        for node in ast.walk(self.source.tree):
            value: ast.expr | None = None
            if isinstance(node, (ast.List, ast.Tuple)):
                for first, second in zip(node.elts, node.elts[1:]):
                    if isinstance(first, ast.Constant) and first.value == "--threads":
                        value = second
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = _THREADS.match(node.value)
                if match:
                    value = ast.Constant(match.group(1))
            elif isinstance(node, ast.JoinedStr) and self.source.segment(node).startswith(("f'--threads=",
                                                                                          'f"--threads=')):
                value = next((v.value for v in node.values if isinstance(v, ast.FormattedValue)), None)
            if value is None or not self.runs(node):
                continue
            count, knob = self._threads(value, node)
            found.append(NvccThreads(count, knob, self.reader.around(node), self.source.where(node)))
        return found

    def _threads(self, value: ast.expr, at: ast.AST) -> tuple[int | None, str | None]:
        """(the count, the variable it comes from) of ``--threads``'s argument."""
        if isinstance(value, ast.Constant):
            text = str(value.value)
            return (int(text) if text.isdigit() else None), None
        holders = self.source.values_of(value.id, at) if isinstance(value, ast.Name) else [value]
        for holder in holders:
            for node in ast.walk(holder):
                for read in self.reads.reads:
                    if read.read is node:
                        check = read.checks[0]
                        default = check.default
                        return (int(default) if default and default.isdigit() else None), check.name
        return None, None

    def stable_abi(self) -> list[StableAbi]:
        found = []
        for node, text in self.strings():
            match = _TARGET.search(text)
            if match and self.runs(node):
                version = f"{int(match.group(1), 16)}.{int(match.group(2), 16)}"
                found.append(StableAbi(version, self.reader.around(node), self.source.where(node)))
        return found

    # -- checks that stop the build ----------------------------------------------------------------

    def min_nvcc(self) -> list[MinNvcc]:
        found = []
        for node in ast.walk(self.source.tree):
            if not (isinstance(node, ast.If) and self.runs(node) and _raises(node.body)):
                continue
            test = self.reader.test(node.test)
            for atom in test.atoms():
                if getattr(atom, "axis", None) == "nvcc" and getattr(atom, "op", None) == "<":
                    found.append(MinNvcc(str(atom.version), self.reader.around(node),  # type: ignore[attr-defined]
                                         self.source.where(node)))
        return found

    def toolkit_match(self) -> list[ToolkitMatch]:
        found = []
        for node in ast.walk(self.source.tree):
            if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and _raises(node.body)
                    and len(node.test.ops) == 1 and isinstance(node.test.ops[0], ast.NotEq)
                    and self.runs(node)):
                continue
            sides = [node.test.left, node.test.comparators[0]]
            texts = [self._resolved_text(s) for s in sides]
            torch_side = ["torch.version.cuda" in t for t in texts]
            nvcc_side = [bool(re.search(r"bare_metal|nvcc", t)) for t in texts]
            if (torch_side[0] and nvcc_side[1]) or (torch_side[1] and nvcc_side[0]):
                level = "major" if all(".major" in self.source.segment(s) for s in sides) else "minor"
                found.append(ToolkitMatch(level, self.source.where(node)))
        return found

    def _resolved_text(self, node: ast.expr) -> str:
        text = self.source.segment(node)
        if isinstance(node, ast.Name):
            text += " " + " ".join(self.source.segment(v) for v in self.source.values_of(node.id, node))
        return text

    # -- ninja, GPU detection, options -------------------------------------------------------------

    def ninja_settings(self) -> list[Ninja]:
        found = []
        for node in ast.walk(self.source.tree):
            if not isinstance(node, ast.keyword) or node.arg != "use_ninja":
                continue
            value = node.value
            text = f"use_ninja={self.source.segment(value)}"
            if isinstance(value, ast.Name):
                values = self.source.values_of(value.id, value)
                text += "".join(f" = {self.source.segment(v)}" for v in values)
            condition = (Const(bool(value.value), text) if isinstance(value, ast.Constant)
                         else self.reader.test(value))
            found.append(Ninja(condition, text, self.source.where(value)))
        return found

    def uses_build_extension(self) -> Where | None:
        for node in ast.walk(self.source.tree):
            if (isinstance(node, (ast.Name, ast.Attribute))
                    and (dotted(node) or "").endswith("BuildExtension")):
                return self.source.where(node)
        return None

    def gpu_gates(self) -> list[GpuGate]:
        gates = []
        for node in ast.walk(self.source.tree):
            if not (isinstance(node, ast.If) and self.runs(node)):
                continue
            test = self.reader.test(node.test)
            if not any(isinstance(a, Gpu) for a in test.atoms()) or _sets_arch_list(node):
                continue
            if test.value(Context(gpu=True)) is False:
                continue  # a ROCm-only test (is_available() and torch.version.hip)
            assigned = {t.id for n in ast.walk(node) if isinstance(n, ast.Assign)
                        for t in n.targets if isinstance(t, ast.Name)}
            if not (assigned and any("cuda" in a.lower() for a in assigned)) and not _mentions_cuda_ext(node):
                continue
            forcing = self._forcing(assigned)
            overrides = tuple(c for cond in (test, *forcing) for a in cond.atoms() if isinstance(a, Env)
                              for c in a.checks)
            gates.append(GpuGate(test, tuple(forcing), overrides, self.source.where(node)))
        return gates

    def _forcing(self, assigned: set[str]) -> list[Env]:
        """Tests that turn CUDA on later: ``if os.getenv("FORCE_CUDA") == "1": suffices = ["cuda"]``."""
        derived = set(assigned) | {name for name, values in self.source.assigns.items()
                                   if any(isinstance(n, ast.Name) and n.id in assigned
                                          for v in values for n in ast.walk(v))}
        found = []
        for node in ast.walk(self.source.tree):
            if not isinstance(node, ast.If):
                continue
            test = self.reader.test(node.test)
            if not isinstance(test, Env):
                continue
            for statement in node.body:
                if (isinstance(statement, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id in derived for t in statement.targets)
                        and any(isinstance(n, ast.Constant) and n.value in ("cuda", True)
                                for n in ast.walk(statement.value))):
                    found.append(test)
        return found

    def options(self) -> list[BuildOption]:
        found = []
        for node in ast.walk(self.source.tree):
            if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant)
                    and isinstance(node.left.value, str) and node.left.value.startswith("--")
                    and self.source.segment(node.comparators[0]) == "sys.argv"):
                found.append(BuildOption(node.left.value, (), self.source.where(node)))
            elif isinstance(node, ast.Call) and self.reads.by_call(node):
                test = self.reader.test(node)
                if isinstance(test, Option):
                    found += [BuildOption(o, tuple(c.name for c in test.checks), self.source.where(node))
                              for o in test.options]
        return found

    def declared_version(self) -> str | None:
        for call in self.source.calls_to("setup"):
            for keyword in call.keywords:
                if keyword.arg == "version" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
        values = self.source.assigns.get("__version__", [])
        if len(values) == 1 and isinstance(values[0], ast.Constant):
            return str(values[0].value)
        return None


def _raises(body: list[ast.stmt]) -> bool:
    return any(isinstance(s, ast.Raise) for s in body)


def _sets_arch_list(node: ast.If) -> bool:
    """``if not torch.cuda.is_available(): os.environ["TORCH_CUDA_ARCH_LIST"] = ...``: a default,
    not a gate."""
    for child in ast.walk(node):
        if isinstance(child, ast.Assign):
            for target in child.targets:
                if (isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant)
                        and target.slice.value == TORCH_ARCH_LIST):
                    return True
    return False


def _mentions_cuda_ext(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "CUDAExtension" for n in ast.walk(node))


def torch_defaults(scan: FileScan) -> list[ArchDefault]:
    found = []
    for node in ast.walk(scan.source.tree):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and scan.runs(node)):
            continue
        for target in node.targets:
            if (isinstance(target, ast.Subscript) and dotted(target.value) in ("os.environ", "environ")
                    and isinstance(target.slice, ast.Constant) and target.slice.value == TORCH_ARCH_LIST
                    and node.value.value):
                nvcc = spec_over(scan.reader.around(node), Context(env={}, options=frozenset(), gpu=False))
                found.append(ArchDefault(str(node.value.value), nvcc, scan.source.where(node)))
    return found
