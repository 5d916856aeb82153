"""One row per fact: the catalog's entry for a version against what its build files say.

Each fact is judged for the build the plan makes: Linux, CUDA, no GPU visible while
building, the variables and options the catalog sets. Arch lists that depend on the
nvcc are compared at every nvcc release where either side changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from gpuenv.catalogcheck.catalogview import CatalogView
from gpuenv.plan import knowledge
from gpuenv.plan.buildfiles.conditions import Context, Env, Option, Versioned
from gpuenv.plan.buildfiles.envreads import EnvCheck
from gpuenv.plan.buildfiles.facts import BuildFacts, Gencode

Verdict = Literal["agree", "DISAGREE", "not in catalog", "unrecognised"]
VERDICTS: tuple[Verdict, ...] = ("agree", "DISAGREE", "not in catalog", "unrecognised")

#: Variables torch.utils.cpp_extension reads itself: a build file need not mention them.
TORCH_READS = frozenset({
    "MAX_JOBS", "TORCH_CUDA_ARCH_LIST", "CUDA_HOME", "CUDA_PATH", "PYTORCH_NVCC", "NVCC_APPEND_FLAGS",
    "NVCC_PREPEND_FLAGS", "TORCH_DONT_CHECK_COMPILER_ABI", "CC", "CXX",
})
_JOBS = re.compile(r"JOBS")
#: The skip flag values a user might try; the catalog and the source must agree on each.
_SKIP_PROBES = ("1", "TRUE", "true", "True", "yes", "on", "0", "FALSE")


@dataclass(frozen=True)
class Row:
    extension: str
    version: str
    fact: str
    catalog: str
    source: str
    verdict: Verdict
    where: str



class FactRows:
    """The rows of one version, built fact by fact."""

    def __init__(self, name: str, version: str, view: CatalogView, facts: BuildFacts) -> None:
        self.name, self.version, self.view, self.facts = name, version, view, facts
        self.rows: list[Row] = []
        knob = {view.arch_knob: "80" if view.arch_format == "nodot" else "8.0"} if view.arch_knob else {}
        self.planned_env = {**view.env, **view.cuda_env, **view.force_build, **knob}
        #: The build the plan makes: no GPU visible, the catalog's variables and options.
        self.ctx = Context(env=self.planned_env, options=frozenset(view.build_options), gpu=False)

    def add(self, fact: str, catalog: str, source: str, verdict: Verdict, where: str) -> None:
        self.rows.append(Row(self.name, self.version, fact, catalog, source, verdict, where or "-"))

    # -- archs -----------------------------------------------------------------------------------

    def arch(self) -> None:
        knob, view = self.facts.arch_knob, self.view
        source = knob.name or "none: fixed -gencode flags"
        partly = self._partly_fixed()
        if knob.name and partly:
            source += f" (but {', '.join(partly)} pass their own -gencode flags)"
        where = str(knob.where or "")
        catalog = view.arch_knob or "none: fixed archs"
        if not knob.recognised:
            self.add("arch knob", catalog, f"unrecognised: {knob.note}", "unrecognised", where)
            return
        self.add("arch knob", catalog, source, "agree" if knob.name == view.arch_knob else "DISAGREE", where)
        if knob.name is None or knob.name != view.arch_knob:
            return
        if knob.format is None:
            self.add("arch format", view.arch_format, "unrecognised", "unrecognised", where)
        else:
            self.add("arch format", view.arch_format, knob.format,
                     "agree" if knob.format == view.arch_format else "DISAGREE", where)
        if knob.choices or view.arch_choices:
            self._choices()

    def _choices(self) -> None:
        """The archs the knob may name, compared at each nvcc release where either side changes."""
        knob, view = self.facts.arch_knob, self.view
        gated = [g for g in self.facts.gencodes if g.knob_choice]
        everything = frozenset(g.knob_choice for g in gated if g.knob_choice)
        shown = ", ".join(_dotted(c.value) + _nvcc(c.nvcc) for c in knob.choices) or "any"
        catalog = ", ".join(f.arch + _nvcc(f.nvcc) for f in view.arch_choices) or "any"
        differences, unsure = [], False
        for nvcc in self._nvcc_samples(gated, [f.nvcc for f in view.arch_choices]):
            ctx = self._at(nvcc, knob=everything)
            definite = {_dotted(g.knob_choice or "") for g in gated if g.condition.value(ctx) is True}
            possible = {_dotted(g.knob_choice or "") for g in gated if g.condition.value(ctx) is not False}
            expected = set(view.choices_for(nvcc))
            differences.append((nvcc, expected - possible, definite - expected))
            unsure = unsure or possible != definite
        wrong = any(missing or extra for _, missing, extra in differences)
        verdict: Verdict = "DISAGREE" if wrong else "unrecognised" if unsure else "agree"
        if wrong:
            shown += " - " + _describe_differences(differences, "offers")
        self.add("arch choices", catalog, shown, verdict, _lines(c.where for c in knob.choices))

    def _partly_fixed(self) -> list[str]:
        """The extensions of the planned build that fix their own archs, when others take the knob."""
        built = [e for e in self.facts.cuda_extensions if e.condition.value(self.ctx) is not False]
        fixed = [e for e in built if e.fixed]
        return sorted({e.name or "?" for e in fixed}) if fixed and len(fixed) < len(built) else []

    def fixed_archs(self) -> None:
        fixed = [g for g in self.facts.gencodes if g.knob_choice is None]
        view = self.view
        if not fixed and not view.fixed_archs:
            return
        catalog = " ".join(f.arch + _nvcc(f.nvcc) for f in view.fixed_archs) or "none"
        planned = [g for g in fixed if g.condition.value(self.ctx) is not False]
        source = " ".join(g.label + _nvcc(g.nvcc) for g in planned) or "none"
        where = _lines(g.where for g in planned) if planned else ""
        partly = self._partly_fixed()
        if planned and partly:
            source += " - for " + ", ".join(partly)
        differences, unsure = [], False
        for nvcc in self._nvcc_samples(planned, [f.nvcc for f in view.fixed_archs]):
            ctx = self._at(nvcc)
            definite = {g.label for g in planned if g.condition.value(ctx) is True}
            possible = {g.label for g in planned if g.condition.value(ctx) is not False}
            expected = set(view.fixed_archs_for(nvcc))
            differences.append((nvcc, expected - possible, definite - expected))
            unsure = unsure or possible != definite
        wrong = any(missing or extra for _, missing, extra in differences)
        verdict: Verdict = "DISAGREE" if wrong else "unrecognised" if unsure else "agree"
        if wrong:
            source += " - " + _describe_differences(differences, "builds")
        self.add("fixed archs", catalog, source, verdict, where)

    def _at(self, nvcc: str, knob: frozenset[str] | None = None) -> Context:
        c = self.ctx
        return Context(Version(nvcc), c.torch, knob, c.env, c.options, c.gpu)

    def _nvcc_samples(self, gencodes: list[Gencode], specs: list[str]) -> list[str]:
        bounds: set[Version] = {Version("11.0"), Version("12.0"), Version("13.0")}
        for g in gencodes:
            bounds |= {a.version for a in g.condition.atoms()
                       if isinstance(a, Versioned) and a.axis == "nvcc"}
        for spec in specs:
            bounds |= {Version(s.version) for s in _spec(spec)}
        floor = max([Version(m) for m in (self._min_nvcc(), self.view.min_nvcc) if m] or [Version("11.0")])
        samples: set[Version] = {floor}
        for b in bounds:
            samples |= {b, _release_before(b)}
        return [str(v) for v in sorted(samples) if v >= floor]

    # -- nvcc and C++ ------------------------------------------------------------------------------------

    def _min_nvcc(self) -> str | None:
        found = [m for m in self.facts.min_nvcc if m.condition.value(self.ctx) is not False]
        return str(max(Version(m.version) for m in found)) if found else None

    def min_nvcc(self) -> None:
        source = self._min_nvcc()
        where = _lines(m.where for m in self.facts.min_nvcc if m.version == source)
        catalog = self.view.min_nvcc
        same = (source is None and catalog is None) or (
            source is not None and catalog is not None and Version(source) == Version(catalog))
        self.add("min nvcc", catalog or "none", source or "no check", "agree" if same else "DISAGREE", where)

    def cxx_std(self) -> None:
        by_compiler: dict[str, list[tuple[int, str]]] = {}
        fixed: dict[str, int] = {}
        varies: set[str] = set()
        for flag in self.facts.std_flags:
            truth = flag.condition.value(self.ctx)
            if truth is False:
                continue
            by_compiler.setdefault(flag.compiler, []).append((flag.std, str(flag.where)))
            if truth is None:
                varies.add(flag.compiler)
        for compiler, flags in by_compiler.items():
            if compiler not in varies and len({s for s, _ in flags}) == 1:
                fixed[compiler] = flags[0][0]
        parts = [f"{c}: " + ("/".join(f"c++{s}" for s in sorted({s for s, _ in flags}))
                             + (" (conditional)" if c in varies else ""))
                 for c, flags in sorted(by_compiler.items())]
        source = "; ".join(parts) or "none passed (torch's default)"
        value = min(fixed.values()) if fixed else None
        where = _lines(w for flags in by_compiler.values() for _, w in flags)
        catalog = self.view.cxx_std
        verdict: Verdict = "agree" if catalog == value else "DISAGREE"
        self.add("C++ standard", f"c++{catalog}" if catalog else "not fixed", source, verdict, where)

    def stable_abi(self) -> None:
        found = [a for a in self.facts.stable_abi if a.condition.value(self.ctx) is not False]
        catalog = self.view.stable_abi
        if not found and not catalog:
            return
        versions = sorted({a.version for a in found}, key=Version)
        source = ("torch " + "/".join(versions) + " (TORCH_TARGET_VERSION)") if versions else "none"
        verdict: Verdict = "agree" if versions == ([catalog] if catalog else []) else "DISAGREE"
        self.add("stable ABI", f"torch {catalog}" if catalog else "none", source, verdict,
                 _lines(a.where for a in found))

    def threads(self) -> None:
        found = [t for t in self.facts.nvcc_threads if t.condition.value(self.ctx) is not False]
        view = self.view
        if not found and not view.threads_knob and view.nvcc_threads is None:
            return
        said = [view.threads_knob or "", f"--threads {view.nvcc_threads}" if view.nvcc_threads else ""]
        catalog = " ".join(s for s in said if s) or "none"
        parts = [(f"{t.knob} (default {t.count})" if t.count else t.knob) if t.knob
                 else f"--threads {t.count}" for t in found]
        source = "; ".join(dict.fromkeys(str(p) for p in parts)) or "none"
        knobs = {t.knob for t in found if t.knob}
        counts = {t.count for t in found if t.count and not t.knob}
        same = knobs == ({view.threads_knob} if view.threads_knob else set()) and (
            bool(view.threads_knob) or counts == ({view.nvcc_threads} if view.nvcc_threads else set()))
        self.add("nvcc threads", catalog, source, "agree" if same else "DISAGREE",
                 _lines(t.where for t in found))

    # -- switches and variables -----------------------------------------------------------------------

    def switches(self) -> None:
        view, seen = self.view, set()
        for check in self.facts.env:
            if "FORCE_BUILD" not in check.name or check.name in seen:
                continue
            seen.add(check.name)
            value = view.force_build.get(check.name, view.env.get(check.name))
            checks = self.facts.reads(check.name)
            source = f"{check.name} {_describe(checks)}"
            if value is None:
                self.add(f"force build {check.name}", "not set",
                         source + ": unset, it tries a prebuilt wheel first", "DISAGREE",
                         _lines(c.where for c in checks))
            else:
                self._value_row(f"force build {check.name}", check.name, value, checks)
        skips = sorted({c.name for c in self.facts.env if "SKIP_CUDA_BUILD" in c.name})
        knob = view.skip_cuda_knob
        if not skips and not knob:
            return
        catalog = (f'{knob} == "{view.skip_cuda_value}"' if knob and view.skip_cuda_value
                   else f"{knob} in 1/true/yes/on" if knob else "none")
        if knob not in skips:
            shown = "; ".join(f"{n} {_describe(self.facts.reads(n))}" for n in skips) or "none read"
            self.add("skip CUDA", catalog, shown, "DISAGREE",
                     _lines(c.where for n in skips for c in self.facts.reads(n)))
            return
        assert knob is not None
        checks = self.facts.reads(knob)
        wrong = [v for v in (*_SKIP_PROBES, view.skip_cuda_value or "1")
                 if view.skips_cuda({knob: v}) != any(c.accepts(v) for c in checks)]
        source = f"{knob} {_describe(checks)}"
        if wrong:
            source += " - differs for " + ", ".join(f'"{v}"' for v in dict.fromkeys(wrong))
        self.add("skip CUDA", catalog, source, "DISAGREE" if wrong else "agree",
                 _lines(c.where for c in checks))

    def env(self) -> None:
        view = self.view
        handled = set(view.force_build) | {view.skip_cuda_knob}
        for label, table in (("env", view.env), ("cuda env", view.cuda_env), ("cpu env", view.cpu_env)):
            for name, value in table.items():
                if name in handled or name == view.arch_knob:
                    continue
                self._value_row(f"{label} {name}", name, value, self.facts.reads(name))

    def _value_row(self, fact: str, name: str, value: str, checks: tuple[EnvCheck, ...]) -> None:
        catalog = f'{name}="{value}"'
        where = _lines(c.where for c in checks)
        if not checks:
            if name in TORCH_READS:
                self.add(fact, catalog, "read by torch.utils.cpp_extension", "agree", "")
            else:
                self.add(fact, catalog, f"not read by {', '.join(self._py_files())}", "DISAGREE", "")
            return
        results = {c.accepts(value) for c in checks}
        source = f"{name} {_describe(checks)}"
        if False in results:
            self.add(fact, catalog, source + f': "{value}" is not on', "DISAGREE", where)
        else:
            self.add(fact, catalog, source, "agree", where)

    def _py_files(self) -> list[str]:
        return [f for f in self.facts.files if f.endswith(".py")] or ["the files read"]

    def jobs(self) -> None:
        uses = self.facts.ninja.condition.value(self.ctx)
        catalog = "no ninja: MAX_JOBS ignored" if self.view.ignores_jobs else "ninja: MAX_JOBS counts"
        where = str(self.facts.ninja.where or "")
        said = "ninja" if uses else "no ninja" if uses is False else "unrecognised"
        source = f"{said} ({self.facts.ninja.text})"
        verdict: Verdict = ("unrecognised" if uses is None
                            else "agree" if uses != self.view.ignores_jobs else "DISAGREE")
        self.add("ninja (MAX_JOBS counts)", catalog, source, verdict, where)
        read = sorted({c.name for c in self.facts.env if _JOBS.search(c.name)})
        listed = set(self.view.jobs_knobs)
        unknown = [k for k in listed if k not in read and k != "MAX_JOBS"]
        extra = [k for k in read if k not in listed]
        verdict = "DISAGREE" if unknown else "not in catalog" if extra else "agree"
        shown = ", ".join(read) or "none (torch reads MAX_JOBS)"
        if unknown:
            shown += f" - never reads {', '.join(unknown)}"
        self.add("jobs knobs", ", ".join(self.view.jobs_knobs), shown, verdict,
                 _lines(c.where for c in self.facts.env if _JOBS.search(c.name)))

    def gpu(self) -> None:
        if self.view.cuda == "none":
            return
        gates = self.facts.gpu_gates
        if not gates:
            self.add("CUDA without a GPU", "-", "builds CUDA without asking torch for a GPU", "agree", "")
            return
        for gate in gates:
            names = dict.fromkeys(c.name for c in gate.overrides)
            catalog = "; ".join(f'{n}="{self.planned_env[n]}"' for n in names if n in self.planned_env) or (
                "sets none of " + ", ".join(names))
            builds = gate.builds_cuda(self.ctx)
            overrides = ", ".join(f"{c.name} {c.describe()}" for c in gate.overrides) or "nothing"
            source = f"CUDA only when torch sees a GPU, or {overrides}"
            verdict: Verdict = "agree" if builds else "DISAGREE" if builds is False else "unrecognised"
            if builds is False:
                source += ": the plan's build on a GPU-less host is CPU-only"
            self.add("CUDA without a GPU", catalog, source, verdict, str(gate.where))

    def toolkit(self) -> None:
        found = [t for t in self.facts.toolkit_match]
        level = found[0].level if found else "major"
        source = (f"nvcc must equal torch's CUDA {'major.minor' if level == 'minor' else 'major'}"
                  if found else "no check of its own (torch's: the major)")
        self.add("toolkit match", self.view.toolkit_match, source,
                 "agree" if level == self.view.toolkit_match else "DISAGREE", _lines(t.where for t in found))

    def options(self) -> None:
        options = self.facts.options
        catalog = self.view.build_options
        if not options and not catalog:
            return
        shown = ", ".join(o.option + (f" ({'/'.join(o.env)})" if o.env else "") for o in options) or "none"
        where = _lines(o.where for o in options)
        read = {o.option for o in options}
        unknown = [o for o in catalog if o not in read]
        verdict: Verdict = "DISAGREE" if unknown else "agree" if catalog else "not in catalog"
        if unknown:
            shown += f" - never reads {', '.join(unknown)}"
        self.add("build options", ", ".join(catalog) or "none", shown, verdict, where)

    def extensions(self) -> None:
        """Whether the plan's variables and options make it compile any CUDA extension at all."""
        extensions = self.facts.cuda_extensions
        gated = any(isinstance(a, (Env, Option)) for e in extensions for a in e.condition.atoms())
        if not extensions or not gated or self.view.cuda == "none":
            return
        # An extension that depends on the nvcc only (apex's sm_70-and-up one) counts as built.
        possible = [e for e in extensions if e.condition.value(self.ctx) is not False]
        definite = [e for e in possible if e.condition.value(self.ctx) is True]
        settings = {**self.view.env, **self.view.force_build}
        catalog = "; ".join([*(f'{k}="{v}"' for k, v in settings.items()), *self.view.build_options])
        catalog = catalog or "nothing set"
        names = ", ".join(e.name or "?" for e in possible)
        where = _lines(e.where for e in possible)
        if definite:
            self.add("CUDA extensions built", catalog, f"{names} ({len(possible)} of {len(extensions)})",
                     "agree", where)
        elif possible:
            self.add("CUDA extensions built", catalog, f"cannot tell ({names})", "unrecognised", where)
        else:
            self.add("CUDA extensions built", catalog,
                     f"none of its {len(extensions)}: each needs an option or variable the plan does not set",
                     "DISAGREE", _lines(e.where for e in extensions))


def _describe(checks: tuple[EnvCheck, ...]) -> str:
    tests = list(dict.fromkeys(c.describe() for c in checks if c.test != "value")) or ["its value, as it is"]
    return " / ".join(tests)


def _dotted(choice: str) -> str:
    """A nodot knob value as an arch: "90" -> "9.0", "100a" -> "10.0a"; "9.0" stays."""
    match = re.fullmatch(r"(\d+)(\d)([af]?)", choice)
    return f"{match.group(1)}.{match.group(2)}{match.group(3)}" if match and "." not in choice else choice


def _release_before(version: Version) -> Version:
    """The CUDA release just before ``version`` (12.0 -> 11.8, 12.8 -> 12.6): a sample on the other side."""
    major, minor = (*version.release, 0)[:2]
    for candidate in ([f"{major}.{m}" for m in range(minor - 1, -1, -1)]
                      + [f"{major - 1}.{m}" for m in range(9, -1, -1)]):
        if knowledge.toolkit_driver(candidate) is not None:
            return Version(candidate)
    return Version(f"{major}.{minor - 1}") if minor else Version(f"{major - 1}.9")


def _describe_differences(differences: list[tuple[str, set[str], set[str]]], verb: str) -> str:
    """Runs of nvcc releases (every sample, in order) with the same difference, in words."""
    groups: list[tuple[list[str], set[str], set[str]]] = []
    for nvcc, missing, extra in differences:
        if groups and groups[-1][1] == missing and groups[-1][2] == extra:
            groups[-1][0].append(nvcc)
        else:
            groups.append(([nvcc], missing, extra))
    last = differences[-1][0] if differences else ""
    parts = []
    for versions, missing, extra in groups:
        if not (missing or extra):
            continue
        span = (f"{versions[0]} and later" if versions[-1] == last
                else versions[0] if len(versions) == 1 else f"{versions[0]} to {versions[-1]}")
        said = []
        if missing:
            said.append("catalog has " + " ".join(sorted(missing, key=_arch_key))
                        + f" that it does not {verb.removesuffix('s')}")
        if extra:
            said.append(f"it {verb} " + " ".join(sorted(extra, key=_arch_key)) + " the catalog lacks")
        parts.append(f"with nvcc {span}: " + ", ".join(said))
    return "; ".join(parts)


def _arch_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def _spec(text: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return SpecifierSet()


def _lines(wheres: Iterable[object]) -> str:
    """"setup.py:180-199" for lines of one file, else each file's span, joined by ", "."""
    spans: dict[str, list[int]] = {}
    for where in wheres:
        file, _, line = str(where).rpartition(":")
        if file and line.isdigit():
            spans.setdefault(file, []).append(int(line))
    return ", ".join(f"{f}:{min(ls)}" + (f"-{max(ls)}" if max(ls) != min(ls) else "")
                     for f, ls in spans.items())


def _nvcc(spec: str | None) -> str:
    return f" (nvcc{spec})" if spec else ""
