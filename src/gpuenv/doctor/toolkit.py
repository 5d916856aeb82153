"""The doctor's toolkit checks: the nvcc that would build for this torch, the one setup built with, and
what kernels compiled at run time get (the env's runtime .pth)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from gpuenv.doctor.report import Check
from gpuenv.env.targetenv import TorchInfo
from gpuenv.plan import knowledge
from gpuenv.plan.hardware import Hardware, Toolkit
from gpuenv.setup.runtime import RUNTIME_PTH


def toolkit_check(torch: TorchInfo, hardware: Hardware, *, exact_for: Sequence[str] = ()) -> Check | None:
    """The nvcc that would build extensions for this torch (``exact_for``: those needing major.minor)."""
    if torch.cuda is None:
        return Check("toolkit", "ok", f"not needed: torch is {torch.build}, its extensions build without"
                     " CUDA")
    want = knowledge.version_tuple(torch.cuda)[:2]
    exact = [t for t in hardware.toolkits if t.version_tuple == want]
    if exact:
        return Check("toolkit", "ok", f"{_nvcc(exact[0])} matches torch's CUDA {torch.cuda}")
    if not hardware.toolkits:
        return Check("toolkit", "warn", f"none found: installed extensions still run, but none can be "
                     f"built here for torch's CUDA {torch.cuda}", fix=_toolkit_fix(torch))
    same_major = [t for t in hardware.toolkits if t.version_tuple[0] == want[0]]
    if same_major and not exact_for:
        return Check("toolkit", "warn", f"{_nvcc(same_major[0])} vs torch's CUDA {torch.cuda}: the minors "
                     "differ (torch only warns)", fix=_toolkit_fix(torch))
    if same_major:
        return Check("toolkit", "fail", f"{_nvcc(same_major[0])}, but {', '.join(exact_for)} need(s) nvcc "
                     f"{torch.cuda} exactly", fix=_toolkit_fix(torch, exact=True))
    found = hardware.toolkits[0]
    return Check(
        "toolkit", "fail",
        f"{_nvcc(found)} cannot build for torch's CUDA {torch.cuda}: builds stop with 'The detected CUDA "
        f"version ({found.version}) mismatches the version that was used to compile PyTorch ({torch.cuda})'",
        fix=_toolkit_fix(torch) + f", or use the torch build for your toolkit: 'gpuenv setup --cuda "
        f"{found.version}'",
    )


def _toolkit_fix(torch: TorchInfo, *, exact: bool = False) -> str:
    cuda = torch.cuda or ""
    wanted = cuda if exact else f"{cuda} (or another {cuda.split('.')[0]}.x)"
    return f"install the CUDA {wanted} toolkit and point CUDA_HOME at its root"


def _nvcc(toolkit: Toolkit) -> str:
    return f"nvcc {toolkit.version} at {toolkit.nvcc}"


def built_with_check(venv: Path) -> Check | None:
    """The toolkit setup built this env's CUDA extensions with, as its state file records it."""
    from gpuenv.setup.context import load_state

    record = load_state(venv).get("toolkit")
    if not isinstance(record, dict) or not record.get("home"):
        return None
    nvcc = f"nvcc {record.get('release') or record.get('version')}"
    origin = "CUDA {} from PyPI, in gpuenv's toolkit cache".format(record.get("version")) \
        if record.get("source") == "pypi" else "the toolkit"
    detail = f"the CUDA extensions were built with {origin} at {record['home']} ({nvcc})"
    if Path(str(record["home"]), "bin", "nvcc").exists():
        return Check("built with", "ok", detail)
    return Check("built with", "ok",
                 f"{detail}; it is gone since (pruned?): a rebuild takes the plan's toolkit")


def runtime_check(runtime: Mapping[str, str] | None, torch: TorchInfo, *, ours: bool = True) -> Check:
    """What kernels compiled while the env runs (cpp_extension.load, DeepSpeed ops) will build with.

    ``ours``: gpuenv made the env; into one it did not, setup writes no ``.pth`` but prints the exports.
    """
    name = "runtime builds"
    if runtime is None:
        if torch.cuda is None:
            return Check(name, "ok", "a CPU torch: kernels compiled at run time build for the CPU")
        fix = ("run 'gpuenv setup' to write it" if ours else
               "gpuenv writes no .pth into an env it did not create: export the CUDA_HOME, "
               "TORCH_CUDA_ARCH_LIST and MAX_JOBS that 'gpuenv setup' prints at its 'runtime builds' step "
               "where the env runs, or let gpuenv make an env of its own")
        return Check(name, "warn", f"no {RUNTIME_PTH} in the env: code that compiles CUDA kernels when it "
                     "runs guesses CUDA_HOME (often /usr/local) and the archs", fix=fix)
    values = " ".join(f"{k}={v}" for k, v in sorted(runtime.items()))
    home = runtime.get("CUDA_HOME")
    if home is not None and not Path(home, "bin", "nvcc").exists():
        return Check(name, "fail", f"{values}: but {home}/bin/nvcc does not exist",
                     fix="run 'gpuenv setup' again to point it at a toolkit on this machine")
    return Check(name, "ok", f"kernels compiled at run time get {values} ({RUNTIME_PTH})")
