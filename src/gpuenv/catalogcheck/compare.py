"""The catalog's facts against the build files': one row per fact, with a verdict and where it was read.

:func:`versions_to_check` picks the versions worth reading (the newest, and both
sides of every edge of a version range the catalog names); :func:`compare`
sets a version's :class:`~gpuenv.catalogcheck.facts.BuildFacts` against the
catalog's entry for it (read through :mod:`~gpuenv.catalogcheck.catalogview`,
the one adapter to the catalog's schema). Each fact is evaluated for the build
the plan makes: Linux, CUDA, no GPU visible while building, the variables and
options the catalog sets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from gpuenv.catalogcheck.catalogview import MISSING, CatalogView, catalog_view
from gpuenv.catalogcheck.conditions import Context, Versioned
from gpuenv.catalogcheck.envreads import EnvCheck
from gpuenv.catalogcheck.facts import BuildFacts, Gencode

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


def versions_to_check(ranges: Sequence[str], available: Iterable[str]) -> list[tuple[str, str]]:
    """(version, why) for the newest release and, for every range, the versions on both sides of each edge."""
    ordered = sorted({v for v in available if _release(v)}, key=Version)
    if not ordered:
        return []
    picked: dict[str, list[str]] = {ordered[-1]: ["newest"]}
    for text in ranges:
        try:
            spec = SpecifierSet(text)
        except InvalidSpecifier:
            continue
        if not text:
            continue
        for older, newer in zip(ordered, ordered[1:]):
            inside_older = spec.contains(older, prereleases=True)
            if inside_older == spec.contains(newer, prereleases=True):
                continue
            picked.setdefault(older, []).append(f"last {'in' if inside_older else 'before'} {text}")
            picked.setdefault(newer, []).append(f"first {'after' if inside_older else 'in'} {text}")
    return [(v, "; ".join(picked[v])) for v in sorted(picked, key=Version, reverse=True)]


def _release(text: str) -> bool:
    try:
        return not Version(text).is_prerelease
    except InvalidVersion:
        return False


def compare(name: str, version: str | None, facts: BuildFacts, label: str | None = None) -> list[Row]:
    """Rows for every fact of ``facts`` against the catalog's entry for ``name`` ``version``."""
    view = catalog_view(name, version)
    shown = label or version or "?"
    if not view.known:
        return [Row(name, shown, "catalog entry", "no table describes this version", "-",
                    "not in catalog", "-")]
    rows = _Rows(name, shown, view, facts)
    rows.arch()
    rows.fixed_archs()
    rows.min_nvcc()
    rows.cxx_std()
    rows.switches()
    rows.env()
    rows.jobs()
    rows.gpu()
    rows.toolkit()
    rows.options()
    return rows.rows


class _Rows:
    def __init__(self, name: str, version: str, view: CatalogView, facts: BuildFacts) -> None:
        self.name, self.version, self.view, self.facts = name, version, view, facts
        self.rows: list[Row] = []
        knob = {view.arch_knob: "80" if view.arch_format == "nodot" else "8.0"} if view.arch_knob else {}
        self.planned_env = {**view.env, **view.cuda_env, **view.force_build, **knob}
        options = view.build_options if view.build_options is not MISSING else ()
        #: The build the plan makes: no GPU visible, the catalog's variables and options.
        self.ctx = Context(env=self.planned_env, options=frozenset(options), gpu=False)  # type: ignore[arg-type]

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
            source_choices = sorted({c.value for c in knob.choices}, key=_arch_key)
            shown = ", ".join(c.value + (f" (nvcc{c.nvcc})" if c.nvcc else "") for c in knob.choices) or "any"
            verdict: Verdict = "agree" if set(source_choices) == set(view.arch_choices) else "DISAGREE"
            self.add("arch choices", ", ".join(view.arch_choices) or "any", shown, verdict,
                     _lines(c.where for c in knob.choices))

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
        for nvcc in self._nvcc_samples(planned):
            ctx = self._at(nvcc)
            definite = {g.label for g in planned if g.condition.value(ctx) is True}
            possible = {g.label for g in planned if g.condition.value(ctx) is not False}
            expected = set(view.fixed_archs_for(nvcc))
            if not (expected <= possible and definite <= expected):
                differences.append((nvcc, expected - possible, definite - expected))
            elif possible != definite:
                unsure = True
        verdict: Verdict = "DISAGREE" if differences else "unrecognised" if unsure else "agree"
        if differences:
            source += " — " + _describe_differences(differences)
        self.add("fixed archs", catalog, source, verdict, where)

    def _at(self, nvcc: str) -> Context:
        c = self.ctx
        return Context(Version(nvcc), c.torch, c.knob, c.env, c.options, c.gpu)

    def _nvcc_samples(self, gencodes: list[Gencode]) -> list[str]:
        bounds: set[Version] = {Version("11.0"), Version("12.0"), Version("13.0")}
        for g in gencodes:
            bounds |= {a.version for a in g.condition.atoms()
                       if isinstance(a, Versioned) and a.axis == "nvcc"}
        for f in self.view.fixed_archs:
            bounds |= {Version(s.version) for s in _spec(f.nvcc)}
        samples: set[Version] = set()
        for b in bounds:
            major, minor = (*b.release, 0)[:2]
            samples |= {b, Version(f"{major}.{minor - 1}") if minor else Version(f"{major - 1}.9")}
        floor = max([Version(m) for m in (self._min_nvcc(), self.view.min_nvcc) if m] or [Version("11.0")])
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
        if catalog is MISSING:
            self.add("C++ standard", "(no cxx_std in the catalog)", source,
                     "not in catalog" if value else "agree", where)
            return
        verdict: Verdict = "agree" if catalog == value else "DISAGREE"
        self.add("C++ standard", f"c++{catalog}" if catalog else "not fixed", source, verdict, where)

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
            source += " — differs for " + ", ".join(f'"{v}"' for v in dict.fromkeys(wrong))
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
            shown += f" — never reads {', '.join(unknown)}"
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
        if not options and (catalog is MISSING or not catalog):
            return
        shown = ", ".join(o.option + (f" ({'/'.join(o.env)})" if o.env else "") for o in options) or "none"
        where = _lines(o.where for o in options)
        if catalog is MISSING:
            self.add("build options", "(no build_options in the catalog)", shown, "not in catalog", where)
            return
        assert isinstance(catalog, tuple)
        read = {o.option for o in options}
        unknown = [o for o in catalog if o not in read]
        verdict: Verdict = "DISAGREE" if unknown else "agree"
        if unknown:
            shown += f" — never reads {', '.join(unknown)}"
        self.add("build options", ", ".join(catalog) or "none", shown, verdict, where)


def _describe(checks: tuple[EnvCheck, ...]) -> str:
    tests = list(dict.fromkeys(c.describe() for c in checks if c.test != "value")) or ["its value, as it is"]
    return " / ".join(tests)


def _describe_differences(differences: list[tuple[str, set[str], set[str]]]) -> str:
    groups: list[tuple[list[str], set[str], set[str]]] = []
    for nvcc, missing, extra in differences:
        if groups and groups[-1][1] == missing and groups[-1][2] == extra:
            groups[-1][0].append(nvcc)
        else:
            groups.append(([nvcc], missing, extra))
    parts = []
    for versions, missing, extra in groups:
        span = versions[0] if len(versions) == 1 else f"{versions[0]} to {versions[-1]}"
        said = []
        if missing:
            said.append("catalog has " + " ".join(sorted(missing, key=_arch_key)) + " that it does not build")
        if extra:
            said.append("it builds " + " ".join(sorted(extra, key=_arch_key)) + " the catalog lacks")
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
