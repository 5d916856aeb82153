"""gpuenv's benchmarks: what it saves, side by side with what users do today.

    python benchmarks/run.py [--repeat N] [--only NAME,...] [--json FILE] [--workdir DIR]

Each comparison runs its two sides alternately (A B A B A B) in this one
process, prints the medians and their ratio next to the target with PASS or
MISS, and the same as JSON. The machine is shared and noisy: read the ratios,
not the absolute times. The script reports, it does not assert: it exits 0 on
a MISS and 1 only when a side fails to run. benchmarks/README.md says what
each comparison measures and how.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench_arch import compare_arch
from bench_core import COMPARISONS, Bench, BenchError, Result, mem_available_mib, remove
from bench_setups import compare_floor, compare_uv, compare_uvstale, compare_warm_and_pip
from bench_shared import compare_shared
from bench_steady import compare_memory, compare_noop, compare_plan

# -- the report ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "gpuenv", "probe", "--json"], capture_output=True, text=True,
                          check=False)
    probed = json.loads(done.stdout) if done.returncode == 0 else {}
    return {"cpus": os.cpu_count(), "memory_total_mib": probed.get("memory_total_mib"),
            "memory_available_mib": round(mem_available_mib()), "gpus": len(probed.get("gpus") or []),
            "nvcc": [t.get("version") for t in probed.get("toolkits") or []],
            "python": platform.python_version(), "platform": platform.platform()}


def table(results: Sequence[Result], repeat: int) -> str:
    header = ("comparison", "baseline", "median", "gpuenv", "median", "result", "target", "")
    rows = [header]
    for r in results:
        base = (r.baseline.label, r.baseline.shown()) if r.baseline else ("-", "-")
        rows.append((r.name, *base, r.gpuenv.label, r.gpuenv.shown(), r.value, r.target,
                     "PASS" if r.passed else "MISS"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"medians of {repeat} alternated runs per side (plan: at least 5); wall clock seconds")
    for r in results:
        lines.extend(f"- {r.name}: {note}" for note in r.notes)
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side, alternated (default: 3)")
    parser.add_argument("--only", default=",".join(COMPARISONS),
                        help=f"comma-separated comparisons to run (default: all: {','.join(COMPARISONS)})")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gpuenv-bench",
                        help="recipes, envs and caches; caches are kept between runs (default: %(default)s)")
    parser.add_argument("--torch-index", default="config",
                        help="passed to gpuenv setup (default: config, the installer's own sources)")
    args = parser.parse_args(argv)
    only = tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = [n for n in only if n not in COMPARISONS]
    if unknown or args.repeat < 1:
        parser.error(f"unknown comparison {', '.join(unknown)}" if unknown else "--repeat must be at least 1")
    args.only = only
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args.workdir.absolute(), args.repeat, args.torch_index, args.only)
    bench.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs: list[tuple[str, Callable[[], list[Result]]]] = [
        ("arch", lambda: [compare_arch(bench)]),
        ("warm,pip", lambda: compare_warm_and_pip(bench)),
        ("uv", lambda: compare_uv(bench)),
        ("floor", lambda: [compare_floor(bench)]),
        ("uvstale", lambda: [compare_uvstale(bench)]),
        ("noop", lambda: [compare_noop(bench)]),
        ("plan", lambda: [compare_plan(bench)]),
        ("memory", lambda: [compare_memory(bench)]),
        ("shared", lambda: [compare_shared(bench)]),
    ]
    results: list[Result] = []
    failures: dict[str, str] = {}
    for names, compare in runs:
        if not set(names.split(",")) & set(bench.only):
            continue
        print(f"== {names}", flush=True)
        try:
            results.extend(compare())
        except (BenchError, subprocess.CalledProcessError, OSError) as exc:
            # One comparison that cannot run must not cost the others (the full run is an hour).
            failures[names] = str(exc)
            print(f"error: {names}: {exc}", file=sys.stderr, flush=True)
    remove(bench.path("warm-venv"))  # venvs are ~1 GB each; the workdir keeps recipes and caches
    text = table(results, bench.repeat)
    print()
    print(text)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "repeat": bench.repeat,
        "total_seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "comparisons": [r.to_json() for r in results],
        "failures": failures,
    }
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
