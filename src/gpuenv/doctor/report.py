"""The doctor's report: each finding a :class:`Check` with a verdict, the :class:`Report`, its text.

Every check module builds :class:`Check` objects; the front ends print the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gpuenv.errors import EXIT_OK, EXIT_STEP_FAILED
from gpuenv.printable import printable

#: "skip": the check was not made; its detail says why (never "ok" for what was not checked).
Verdict = Literal["ok", "warn", "fail", "skip"]


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
        # One line each, whatever the env, the lock or the runtime .pth put in them (printable).
        lines.append(f"{check.verdict:<4} {printable(check.name)} {printable(check.detail)}")
        if check.fix:
            lines.append(f"     fix: {printable(check.fix)}")
    failed, warned = len(report.failures), len(report.warnings)
    skipped = sum(c.verdict == "skip" for c in report.checks)
    plural = "s" if warned != 1 else ""
    lines.append(f"{printable(str(report.venv))}: {failed} failed, {warned} warning{plural}"
                 + (f", {skipped} skipped" if skipped else ""))
    return "\n".join(lines)
