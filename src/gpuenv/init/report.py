"""What ``gpuenv init`` read, in words: one line per file (its role and why), where each requirement
went, the conflicts, what ``gpuenv plan`` will stop on, and the rest worth knowing; every line escaped
(:func:`gpuenv.printable.printable`): the repository controls the names and lines printed."""

from __future__ import annotations

from gpuenv.init.reposcan import RepoScan
from gpuenv.printable import printable

PLACES = {
    "torch": "[torch] version/cuda",
    "paired": "[torch] packages",
    "extension": "[[extensions]]",
    "local-extension": "[[extensions]] (a local folder)",
    "repo": "[repo] (the repository itself)",
    "package": "[packages]",
    "python": "[env] python",
    "unplaced": "not placed",
    "left": "left out",
}
_ROLES = {
    "install": "installed",
    "per-cuda": "installed (torch stack)",
    "extra": "an extra, not installed",
    "conda": "conda",
    "lock": "left out",
    "frozen-other-tool": "left out",
    "dev": "left out",
    "test": "left out",
    "docs": "left out",
    "demo": "left out",
    "tool": "left out",
    "subproject": "left out",
    "other-platform": "left out",
    "unreadable": "not read",
}


def scan_lines(scan: RepoScan) -> list[str]:
    lines: list[str] = []
    if scan.files:
        lines.append("files")
        width = min(48, max(len(a.path) for a in scan.files))
        for account in scan.files:
            state = _ROLES.get(account.role, "left out")
            if account.role == "conda":
                state = "conda (read)" if account.used else "conda (checked)"
            elif account.role not in ("install", "per-cuda") and account.used:
                state = "installed (included)"
            elif account.role == "per-cuda" and not account.used:
                state = "left out"
            lines.append(f"  {account.path:<{width}}  {account.role}: {state}: {account.why}")
    if scan.findings:
        lines.append("found")
        for f in scan.findings:
            note = f" ({f.note})" if f.note else ""
            lines.append(f"  {f.origin}: {f.text} -> {PLACES[f.place]}{note}")
    if scan.torch_version or scan.cuda:
        what = f"torch{scan.torch_version or ''}" + (
            f", {scan.cuda} (from {scan.cuda_origin})" if scan.cuda else ""
        )
        lines.append(f"torch: {what}")
    if scan.conflicts:
        lines.append("conflicts (the first source named wins)")
        lines += [f"  {c}" for c in scan.conflicts]
    if scan.blockers:
        lines.append("to fix first ('gpuenv plan' stops on these)")
        lines += [f"  {b}" for b in scan.blockers]
    if scan.notes:
        lines.append("notes")
        lines += [f"  {n}" for n in scan.notes]
    # One line each, whatever the repository's file names and lines hold.
    return [printable(line) for line in lines]
