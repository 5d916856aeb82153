"""One offline acceptance run of gpuenv on this machine's NVIDIA GPUs (issue 25).

    python benchmarks/gpu_check.py [--python PATH] [--out DIR] [--arch X.Y[,X.Y]] [--time-limit S]
    python benchmarks/gpu_check.py --prepare DIR [--python-versions 3.10,3.12]
    nox -s gpu-check -- [the same options]

Each step is a check with a name, what was expected, what was seen and a
verdict: pass, fail, or skip with the reason it could not be made here.

1. ``gpuenv probe --json`` against ``nvidia-smi``: every GPU's name, compute
   capability and memory (within MEMORY_TOLERANCE_MIB), the driver, the CUDA
   version the driver supports.
2. ``gpuenv plan --json`` of every recipe in envs/: its arch list is exactly
   the GPUs' distinct compute capabilities (a blocked plan is reported).
3. With a CUDA torch on this machine (``--python PATH``, else the first Python
   found with one): tests/data/cuda_ext built for the GPUs' archs only through
   gpuenv's builder (pyproject-hooks, no isolation, that interpreter), its
   kernels run on every GPU against torch's result, its ``.so`` read for
   exactly those sm (gpuenv's fatbin reader; cuobjdump as a cross-check), a
   kernel compiled at run time by ``torch.utils.cpp_extension.load`` under
   gpuenv's runtime ``.pth``, and ``gpuenv doctor`` on the env (0 failures).
   The torch env is never changed: the builds land in a scratch venv that
   sees the env's packages through a ``.pth`` file.

What cannot run here (no GPU, no nvidia-smi, no torch, no matching nvcc) is
skipped with its reason. Every subprocess has a timeout and the whole run a
time limit. The report (report.json, report.txt, logs/) goes to --out
(default benchmarks/gpu/DATE-HOST under the current directory); the table
is printed too. Exit 0 when every check that could run passed, 1 otherwise,
2 for bad arguments. benchmarks/gpu/README.md says how to run it offline and
read the report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# Stdlib only, so importable before gpuenv is known to be (the script's folder is sys.path[0]).
from gpu_check_tools import (
    FAIL,
    PASS,
    SKIP,
    Check,
    Checks,
    Deadline,
    OutOfTime,
    call,
    capability_key,
    gpuenv_command,
    short,
)

REPO = Path(__file__).resolve().parents[1]
#: nvidia-smi prints MiB; gpuenv floors NVML's bytes to MiB: the two may differ by one.
MEMORY_TOLERANCE_MIB = 1
TIME_LIMIT = 480
SMI_FIELDS = ("index", "name", "compute_cap", "memory.total", "driver_version")
REPORT_SCHEMA = 1


# -- the machine: gpuenv probe against nvidia-smi ---------------------------------------------


@dataclass
class SmiGpu:
    index: int
    name: str
    capability: str | None
    memory_mib: int | None
    driver: str


@dataclass
class Machine:
    """What the probe and nvidia-smi said; ``archs`` the GPUs' distinct capabilities."""

    probe: dict[str, Any] | None = None
    smi: list[SmiGpu] | None = None
    smi_cuda: str | None = None
    #: Why nvidia-smi gave nothing to compare with, when it did not.
    smi_missing: str | None = None
    archs: list[str] = field(default_factory=list)
    archs_from: str = ""

    @property
    def gpu_count(self) -> int:
        """The physical GPUs nvidia-smi lists, else those the probe saw (MIG devices counted once)."""
        if self.smi:
            return len(self.smi)
        return len({g["index"] for g in (self.probe or {}).get("gpus", [])})


def check_machine(checks: Checks) -> Machine:
    machine = Machine()
    machine.probe = _probe(checks)
    _nvidia_smi(checks, machine)
    _compare_gpus(checks, machine)
    smi_archs = [g.capability for g in machine.smi or [] if g.capability]
    probe_archs = [g["compute_capability"] for g in (machine.probe or {}).get("gpus", [])]
    if smi_archs and len(smi_archs) == len(machine.smi or []):
        machine.archs, machine.archs_from = sorted(set(smi_archs), key=capability_key), "nvidia-smi"
    elif probe_archs:
        machine.archs, machine.archs_from = sorted(set(probe_archs), key=capability_key), "gpuenv probe"
    return machine


def _probe(checks: Checks) -> dict[str, Any] | None:
    done = checks.run("probe", gpuenv_command("probe", "--json"), timeout=120, log="probe.json")
    if done is None:
        return None
    try:
        data: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        data = {}
    if done.returncode != 0 or not isinstance(data.get("gpus"), list):
        checks.add("probe", "exit 0 and the hardware JSON", f"exit {done.returncode}", FAIL,
                   short(done.stderr or done.stdout, 300), done.seconds)
        return None
    gpus = ", ".join(f"[{g['index']}] {g['name']} {g['compute_capability']}" for g in data["gpus"])
    gpus = gpus or "no GPU"
    toolkits = ", ".join(f"nvcc {t['version']}" for t in data.get("toolkits", [])) or "no toolkit"
    checks.add("probe", "exit 0 and the hardware JSON",
               f"driver {data.get('driver_version') or '-'}; {gpus}; {toolkits}", PASS, seconds=done.seconds)
    return data


def _nvidia_smi(checks: Checks, machine: Machine) -> None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        machine.smi_missing = "no nvidia-smi on PATH (no NVIDIA driver on this machine?)"
        return
    fields = list(SMI_FIELDS)
    done = checks.quiet([smi, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"], 60,
                        log="nvidia-smi-query.txt")
    if done is not None and done.returncode != 0 and "compute_cap" in done.stdout + done.stderr:
        fields.remove("compute_cap")  # drivers before 510 do not know the field
        done = checks.quiet([smi, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"], 60,
                            log="nvidia-smi-query.txt")
    if done is None or done.returncode != 0:
        what = "timed out" if done is None else f"exit {done.returncode}: {short(done.stdout + done.stderr)}"
        machine.smi_missing = f"nvidia-smi failed ({what})"
        return
    machine.smi = [_smi_gpu(dict(zip(fields, (v.strip() for v in line.split(","))))) for line in
                   done.stdout.splitlines() if line.strip()]
    header = checks.quiet([smi], 60, log="nvidia-smi.txt")
    match = re.search(r"CUDA Version:\s*([0-9]+\.[0-9]+)", header.stdout if header else "")
    machine.smi_cuda = match.group(1) if match else None


def _smi_gpu(row: dict[str, str]) -> SmiGpu:
    memory = row.get("memory.total", "")
    capability = row.get("compute_cap")
    return SmiGpu(int(row["index"]), row.get("name", ""),
                  capability if capability and re.fullmatch(r"\d+\.\d+", capability) else None,
                  int(float(memory)) if re.fullmatch(r"[0-9.]+", memory) else None,
                  row.get("driver_version", ""))


def _compare_gpus(checks: Checks, machine: Machine) -> None:
    names = ["probe: GPU count", "probe: driver", "probe: CUDA version"]
    if machine.probe is None:
        for name in names:
            checks.add(name, "as nvidia-smi", "-", SKIP, "the probe failed (see 'probe')")
        return
    if machine.smi is None:
        for name in names:
            checks.add(name, "as nvidia-smi", "-", SKIP, machine.smi_missing or "")
        return
    probe = machine.probe
    by_index: dict[int, list[dict[str, Any]]] = {}
    for gpu in probe["gpus"]:
        by_index.setdefault(int(gpu["index"]), []).append(gpu)
    checks.compare("probe: GPU count", str(len(machine.smi)), str(len(by_index)))
    for smi in machine.smi:
        _compare_gpu(checks, smi, by_index.get(smi.index, []))
    drivers = sorted({g.driver for g in machine.smi})
    checks.compare("probe: driver", ", ".join(drivers), str(probe.get("driver_version")))
    if machine.smi_cuda is None:
        checks.add("probe: CUDA version", "nvidia-smi's 'CUDA Version'",
                   str(probe.get("cuda_driver_version")), SKIP, "nvidia-smi printed no 'CUDA Version'")
    else:
        checks.compare("probe: CUDA version", machine.smi_cuda, str(probe.get("cuda_driver_version")))


def _compare_gpu(checks: Checks, smi: SmiGpu, probed: list[dict[str, Any]]) -> None:
    name = f"probe: GPU {smi.index}"
    if not probed:
        checks.add(name, f"{smi.name} (nvidia-smi)", "not in the probe", FAIL, "gpuenv did not see this GPU")
        return
    mig = len(probed) > 1 or " MIG " in f" {probed[0]['name']} "
    capabilities = sorted({g["compute_capability"] for g in probed})
    if smi.capability is None:
        checks.add(f"{name} compute capability", "nvidia-smi's compute_cap", ", ".join(capabilities), SKIP,
                   "this nvidia-smi does not print compute_cap")
    else:
        checks.compare(f"{name} compute capability", smi.capability, ", ".join(capabilities))
    if mig:
        why = (f"GPU {smi.index} is in MIG mode: gpuenv reports its {len(probed)} MIG device(s), each with "
               "its own name and memory")
        checks.add(f"{name} name", smi.name, probed[0]["name"], SKIP, why)
        checks.add(f"{name} memory", f"{smi.memory_mib} MiB", f"{probed[0]['memory_total_mib']} MiB", SKIP,
                   why)
        return
    checks.compare(f"{name} name", smi.name, probed[0]["name"])
    seen = int(probed[0]["memory_total_mib"])
    if smi.memory_mib is None:
        checks.add(f"{name} memory", "nvidia-smi's memory.total", f"{seen} MiB", SKIP,
                   "nvidia-smi printed no memory.total")
        return
    ok = abs(seen - smi.memory_mib) <= MEMORY_TOLERANCE_MIB
    checks.add(f"{name} memory", f"{smi.memory_mib} MiB (within {MEMORY_TOLERANCE_MIB} MiB)", f"{seen} MiB",
               PASS if ok else FAIL, "" if ok else f"differs by {seen - smi.memory_mib} MiB")


# -- the plans of the shipped recipes ---------------------------------------------------------


def check_plans(checks: Checks, machine: Machine) -> dict[str, Any] | None:
    """Plan every recipe in envs/; returns the default recipe's plan (its runtime env is used later)."""
    default: dict[str, Any] | None = None
    expected = machine.archs
    for recipe in sorted((REPO / "envs").glob("*.toml")):
        name = f"plan {recipe.relative_to(REPO)}: arch list"
        done = checks.run(name, gpuenv_command("plan", "-r", str(recipe), "--json", "--no-cache"), timeout=60,
                          log=f"plan-{recipe.stem}.json")
        if done is None:
            continue
        try:
            plan: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            plan = {}
        if done.returncode not in (0, 3) or not isinstance(plan.get("arch_list"), list):
            checks.add(name, "exit 0 (or 3, blocked) and the plan JSON", f"exit {done.returncode}", FAIL,
                       short(done.stderr or done.stdout, 300), done.seconds)
            continue
        if recipe.stem == "default":
            default = plan
        blockers = "; ".join(b.get("message", "") for b in plan.get("blockers", []))
        seen = f"{plan['arch_list']} ({plan.get('variant')}, torch {plan.get('torch_version')})"
        seen += f"; blocked: {blockers}" if blockers else ""
        if not expected:
            checks.add(name, "the GPUs' compute capabilities", seen, SKIP,
                       f"no GPU to compare with ({machine.smi_missing or 'nvidia-smi lists none'})",
                       done.seconds)
            continue
        plan_archs = sorted(plan["arch_list"], key=capability_key)
        checks.add(name, f"{expected} ({machine.archs_from})", seen, PASS if plan_archs == expected else FAIL,
                   "" if plan_archs == expected else "the arch list is not the GPUs' capabilities",
                   done.seconds)
    return default


# -- the run ----------------------------------------------------------------------------------


def gpuenv_commit() -> dict[str, Any]:
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        return {"commit": None, "dirty": None}
    head = call([git, "-C", str(REPO), "rev-parse", "HEAD"], timeout=20)
    status = call([git, "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], timeout=20)
    return {"commit": head.stdout.strip() if head.returncode == 0 else None,
            "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def default_out_dir(now: datetime) -> Path:
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()) or "host"
    return Path("benchmarks") / "gpu" / f"{now:%Y-%m-%d}-{host}"


def machine_facts(machine: Machine) -> dict[str, Any]:
    probe = machine.probe or {}
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "driver": probe.get("driver_version"),
        "cuda_driver": probe.get("cuda_driver_version"),
        "gpus": [{"index": g.index, "name": g.name, "compute_capability": g.capability,
                  "memory_total_mib": g.memory_mib} for g in machine.smi or []]
        or [{k: g[k] for k in ("index", "name", "compute_capability", "memory_total_mib")}
            for g in probe.get("gpus", [])],
        "toolkits": [t.get("home") or t.get("nvcc") for t in probe.get("toolkits", [])],
        "archs": machine.archs,
    }


def table(checks: Sequence[Check]) -> str:
    """The report as text: one row per check (long cells cut; report.json has them whole)."""
    rows = [("check", "expected", "seen", "verdict")]
    for c in checks:
        verdict = c.verdict.upper() if c.verdict == FAIL else c.verdict
        reason = short(c.reason, 120, keep="start")
        rows.append((c.name, short(c.expected, 48, keep="start"), short(c.seen, 60, keep="start"),
                     verdict + (f": {reason}" if reason else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(line.rstrip() for line in lines)


def summary(checks: Sequence[Check]) -> dict[str, int]:
    return {verdict: sum(c.verdict == verdict for c in checks) for verdict in (PASS, FAIL, SKIP)}


def run_checks(args: argparse.Namespace) -> int:
    started = datetime.now(timezone.utc)
    out = Path(args.out) if args.out else default_out_dir(started)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    checks = Checks(Deadline(args.time_limit), out / "logs")
    from gpu_check_build import ExtensionSteps
    from gpu_check_cuda import Context, CudaSteps, TorchEnv

    machine = Machine()
    torch_env: TorchEnv | None = None
    try:
        machine = check_machine(checks)
        default_plan = check_plans(checks, machine)
        with tempfile.TemporaryDirectory(prefix="gpuenv-gpu-check-") as scratch:
            context = Context(checks, Path(scratch), machine.probe, archs=args.arch or machine.archs,
                              gpu_count=machine.gpu_count, archs_given=bool(args.arch),
                              runtime_plan=dict((default_plan or {}).get("runtime_env", {})))
            torch_env = CudaSteps(context, ExtensionSteps).run(args.python)
    except OutOfTime as exc:
        checks.add(exc.name, "-", "-", FAIL, f"not run: the time limit ({args.time_limit} s) was spent")
    except KeyboardInterrupt:
        checks.add("interrupted", "-", "-", FAIL,
                   "stopped by Ctrl-C: the checks after the last row did not run")
    elapsed = (datetime.now(timezone.utc) - started).total_seconds()
    counts = summary(checks.checks)
    exit_code = 1 if counts[FAIL] else 0
    report = {
        "schema": REPORT_SCHEMA,
        "date": started.isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
        "machine": machine_facts(machine),
        "gpuenv": {**gpuenv_commit(), "python": sys.executable},
        "torch_env": torch_env.describe() if torch_env is not None else None,
        "memory_tolerance_mib": MEMORY_TOLERANCE_MIB,
        "checks": [asdict(c) for c in checks.checks],
        "summary": counts,
        "exit_code": exit_code,
    }
    text = table(checks.checks)
    foot = (f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped in {elapsed:.0f} s; "
            f"report: {out / 'report.json'}")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.txt").write_text(text + "\n\n" + foot + "\n", encoding="utf-8")
    print(text + "\n\n" + foot)
    return exit_code


# -- preparing a small offline venv -----------------------------------------------------------


def run_prepare(args: argparse.Namespace) -> int:
    """Download the wheels a small venv with gpuenv and nox needs, for each Python version asked."""
    requirements = offline_requirements()
    dest = Path(args.prepare)
    dest.mkdir(parents=True, exist_ok=True)
    for version in args.python_versions:
        print(f"wheels for Python {version}: {' '.join(requirements)}", flush=True)
        done = call([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dest),
                     "--only-binary=:all:", "--python-version", version, *requirements], timeout=600)
        if done.returncode != 0:
            print(f"error: pip download for Python {version} failed:\n{short(done.stderr, 2000)}",
                  file=sys.stderr)
            print("hint: run --prepare on a machine whose pip reaches a package index", file=sys.stderr)
            return 1
    size = sum(f.stat().st_size for f in dest.iterdir() if f.is_file()) / 2**20
    print(f"\n{len(list(dest.glob('*.whl')))} wheels, {size:.1f} MiB in {dest}. On the GPU machine, from "
          f"the repository's root:\n\n"
          f"  python3 -m venv /tmp/gpuenv-check\n"
          f"  /tmp/gpuenv-check/bin/pip install --no-index --find-links {dest} -e . nox\n"
          f"  /tmp/gpuenv-check/bin/nox -s gpu-check            # -- --python PATH: the Python with torch\n")
    return 0


def offline_requirements() -> list[str]:
    """gpuenv's dependencies, its build backend (for `pip install -e .`) and nox, from pyproject.toml."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    nox = [r for r in data["project"]["optional-dependencies"]["frontends"] if r.startswith("nox")]
    return [*data["project"]["dependencies"], *data["build-system"]["requires"], *nox]


# -- the command ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpu_check.py", description="Check gpuenv on this machine's GPUs, offline (issue 25).",
        epilog="exit 0: every check that could run passed; 1: a check failed; 2: bad arguments",
    )
    parser.add_argument("--python", metavar="PATH",
                        help="the Python whose torch to build and run with (default: the first Python "
                        "found with a CUDA torch: $VIRTUAL_ENV, $CONDA_PREFIX, python3/python on PATH, …)")
    parser.add_argument("--out", metavar="DIR",
                        help="where the report goes (default: benchmarks/gpu/DATE-HOST)")
    parser.add_argument("--arch", metavar="X.Y[,X.Y]", type=arch_list,
                        help="build for these compute capabilities instead of the GPUs' (on a GPU-less node "
                        "the build and .so checks run, the kernels do not)")
    parser.add_argument("--time-limit", metavar="S", type=float, default=TIME_LIMIT,
                        help=f"stop starting steps after S seconds (default {TIME_LIMIT})")
    parser.add_argument("--prepare", metavar="DIR",
                        help="download the wheels of a small offline venv (gpuenv's dependencies, nox) to "
                        "DIR and exit; needs a package index")
    parser.add_argument("--python-versions", metavar="X.Y,…", type=lambda s: s.split(","),
                        default=["3.9", "3.10", "3.11", "3.12", "3.13"],
                        help="the Pythons --prepare downloads for (default: 3.9 to 3.13)")
    args = parser.parse_args(argv)
    if args.python is not None:
        python = shutil.which(args.python) or args.python
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            parser.exit(2, f"error: --python {args.python}: no such executable\n"
                        "hint: name the interpreter of the env that holds torch, e.g. "
                        "/opt/conda/bin/python\n")
        args.python = os.path.abspath(python)
    return args


def arch_list(text: str) -> list[str]:
    archs = [a.strip() for a in text.split(",") if a.strip()]
    if not archs or not all(re.fullmatch(r"\d{1,2}\.\d", a) for a in archs):
        raise argparse.ArgumentTypeError(f"{text!r}: expected compute capabilities such as 9.0 or 8.0,9.0")
    return sorted(set(archs), key=capability_key)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare:
        return run_prepare(args)
    missing = missing_modules()
    if missing:
        print(f"error: {sys.executable} cannot import {', '.join(missing)}: the check runs gpuenv with it",
              file=sys.stderr)
        print("hint: run it in the venv made from the --prepare wheels (benchmarks/gpu/README.md), "
              "or pip install -e . first", file=sys.stderr)
        return 2
    return run_checks(args)


def missing_modules() -> list[str]:
    import importlib.util

    modules = ("gpuenv", "packaging", "pynvml", "pyproject_hooks")
    return [m for m in modules if importlib.util.find_spec(m) is None]


if __name__ == "__main__":
    sys.exit(main())
