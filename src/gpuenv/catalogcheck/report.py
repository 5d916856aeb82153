"""The check's result as Markdown: the disagreements first, then every row, what was not checked,
where each version's files came from, and what the build files say in full."""

from __future__ import annotations

from collections import Counter

from gpuenv.catalogcheck.check import Checked, CheckResult
from gpuenv.catalogcheck.compare import VERDICTS, Row
from gpuenv.plan.buildfiles.facts import BuildFacts

_HEADER = ("extension", "version", "fact", "catalog says", "source says", "verdict", "where")


def render_markdown(result: CheckResult, *, command: str) -> str:
    counts = Counter(r.verdict for r in result.rows)
    lines = [
        "# Knowledge check: the extension catalog against the packages' own build files",
        "",
        f"Run on {result.date} with `{command}`.",
        "The catalog is `src/gpuenv/plan/data/extensions.toml`; each fact was derived from the build files "
        "(read, never run) of the versions listed under \"The versions read\".",
        "",
        f"The sdists came from the {len(result.indexes)} indexes pip is configured with (each checked "
        "against the sha256 its index gives); a tree given with `--source` was read as it is.",
        "",
        "**" + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + "**"
        + f" in {len(result.checked)} versions of {len({c.extension for c in result.checked})} extensions"
        + (f"; {len(result.not_checked)} not checked." if result.not_checked else "."),
        "",
    ]
    disagreements = result.disagreements
    if disagreements:
        lines += ["## Disagreements", "", *_table(disagreements), ""]
    if result.not_checked:
        lines += ["## Not checked", ""]
        lines += [f"- **{n.extension}**: {_cell(n.reason)}" for n in result.not_checked]
        lines.append("")
    lines += ["## Every fact", "", *_table(result.rows), ""]
    lines += ["## The versions read", "",
              "| extension | version | why | from | files read |", "|---|---|---|---|---|"]
    lines += [f"| {c.extension} | {_cell(c.version)} | {_cell(c.why)} | {_cell(c.origin)} | "
              f"{_cell(', '.join(c.facts.files))} |" for c in result.checked]
    lines += ["", "## What the build files say", ""]
    for checked in result.checked:
        lines += _details(checked)
    return "\n".join(lines).rstrip() + "\n"


def _table(rows: list[Row]) -> list[str]:
    out = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for r in rows:
        verdict = f"**{r.verdict}**" if r.verdict == "DISAGREE" else r.verdict
        cells = (r.extension, r.version, r.fact, r.catalog, r.source, verdict, r.where)
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return out


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _details(checked: Checked) -> list[str]:
    f: BuildFacts = checked.facts
    out = [f"### {checked.extension} {checked.version}", ""]
    knob = f.arch_knob
    if knob.name:
        shown = f"`{knob.name}` ({knob.format or 'format unrecognised'})"
    else:
        shown = "none: fixed -gencode flags" if knob.recognised else "unrecognised"
    out.append(f"- arch knob: {shown}" + (f", {knob.note}" if knob.note else "")
               + (f" ({knob.where})" if knob.where else ""))
    for d in knob.defaults:
        out.append(f"  - default `{d.value}`" + _nvcc(d.nvcc) + f" ({d.where})")
    for c in knob.choices:
        out.append(f"  - choice `{c.value}`" + _nvcc(c.nvcc) + f" ({c.where})")
    for g in f.gencodes:
        needs = f", needs {' or '.join(g.needs)}" if g.needs else ""
        knobbed = f", when the knob holds {g.knob_choice}" if g.knob_choice else ""
        out.append(f"- -gencode {g.label}" + _nvcc(g.nvcc) + knobbed + needs + f" ({g.where})")
    out += [f"- -gencode built at run time ({w})" for w in f.computed_gencodes]
    out += [f"- `-std=c++{s.std}` to {s.compiler} ({s.where})" for s in f.std_flags]
    out += [f"- refuses nvcc older than {m.version} ({m.where})" for m in f.min_nvcc]
    out += [f"- nvcc must equal torch's CUDA {t.level} ({t.where})" for t in f.toolkit_match]
    out.append(f"- ninja: {f.ninja.text}" + (f" ({f.ninja.where})" if f.ninja.where else ""))
    for gate in f.gpu_gates:
        overrides = ", ".join(f"{c.name} {c.describe()}" for c in gate.overrides) or "nothing"
        out.append(f"- compiles CUDA only when torch sees a GPU, or {overrides} ({gate.where})")
    if f.options:
        out.append("- setup.py options: " + ", ".join(
            o.option + (f" ({'/'.join(o.env)})" if o.env else "") for o in f.options))
    seen: dict[str, list[str]] = {}
    for check in f.env:
        seen.setdefault(check.name, [])
        text = f"{check.describe()} ({check.where})"
        if text not in seen[check.name]:
            seen[check.name].append(text)
    if seen:
        out.append("- environment variables read:")
        out += [f"  - `{name}`: " + "; ".join(texts) for name, texts in seen.items()]
    out += [f"- {note}" for note in f.notes]
    return [*out, ""]


def _nvcc(spec: str | None) -> str:
    if spec is None:
        return " (nvcc condition unrecognised)"
    if spec == "never":
        return " (never: its conditions cannot all hold)"
    return f" with nvcc{spec}" if spec else ""
