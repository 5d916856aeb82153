"""The GPU check's torch steps: find the Python with torch, build tests/data/cuda_ext for the GPUs' archs
through gpuenv's builder, run its kernels, compile one at run time under gpuenv's runtime .pth, and
run gpuenv doctor.

The torch env is never changed. Everything is built into a scratch venv made by the env's own
interpreter (``python -m venv --without-pip``) whose site-packages holds a ``.pth`` file naming the
env's site directories, so it sees the env's torch, setuptools and ninja; the extension's wheel,
gpuenv's runtime ``.pth`` and the compiled kernels go there.

Run as a script (``python gpu_check_cuda.py --build-wheel …``) it is the build: gpu_check.py starts
it as a subprocess so the build, like every command of the check, has a timeout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gpu_check_tools import FAIL, PASS, SKIP, Checks, call, gpuenv_command, short

REPO = Path(__file__).resolve().parents[1]
CUDA_EXT = REPO / "tests" / "data" / "cuda_ext"
EXT_NAME = "gpuenv_test_cuda_ext"
#: The variables that would decide a build or a run-time compile if inherited from the caller.
BUILD_VARIABLES = ("CUDA_HOME", "CUDA_PATH", "TORCH_CUDA_ARCH_LIST", "MAX_JOBS", "GPUENV_RUNTIME_ENV",
                   "TORCH_EXTENSIONS_DIR", "PYTHONHOME")
NAMES = {
    "env": "torch env",
    "gpus": "torch: GPUs",
    "build": "cuda_ext: build",
    "fatbin": "cuda_ext: .so archs (fatbin)",
    "cuobjdump": "cuda_ext: .so archs (cuobjdump)",
    "kernel": "cuda_ext: kernels vs torch",
    "jit": "runtime .pth: cpp_extension.load",
    "jit kernel": "runtime .pth: kernel vs torch",
    "doctor env": "doctor: torch env",
    "doctor scratch": "doctor: scratch env",
}

#: Which Python has torch, cheaply: torch's version.py is read, torch is not imported.
FIND_SCRIPT = r"""
import importlib.util, json, os, re, sys
found = None
spec = importlib.util.find_spec("torch")
if spec is not None and spec.origin:
    found = {"version": None, "cuda": None}
    try:
        text = open(os.path.join(os.path.dirname(spec.origin), "version.py")).read()
    except OSError:
        text = ""
    for key in ("version", "cuda"):
        name = "__version__" if key == "version" else "cuda"
        m = re.search(r"^" + name + r"\s*(?::[^=\n]*)?=\s*['\"]([^'\"]*)['\"]", text, re.M)
        found[key] = m.group(1) if m else None
print("@@gpu-check@@" + json.dumps({"prefix": sys.prefix, "executable": sys.executable, "torch": found}))
"""

#: What the chosen Python holds: its site directories, and torch's build and view of the GPUs.
FACTS_SCRIPT = r"""
import json, os, sys, sysconfig
stdlib = [os.path.realpath(sysconfig.get_path(k)) for k in ("stdlib", "platstdlib")]
def is_site(p):
    real = os.path.realpath(p)
    if "site-packages" in real or "dist-packages" in real:
        return True
    return not any(real == s or real.startswith(s + os.sep) for s in stdlib)
facts = {"executable": sys.executable, "prefix": sys.prefix, "python": "%d.%d.%d" % sys.version_info[:3],
         "scripts": sysconfig.get_path("scripts"),
         "python_h": os.path.isfile(os.path.join(sysconfig.get_path("include"), "Python.h")),
         "site_dirs": [os.path.abspath(p) for p in sys.path if p and os.path.isdir(p) and is_site(p)]}
try:
    from importlib.metadata import version
    facts["setuptools"] = version("setuptools")
except Exception:
    facts["setuptools"] = None
import importlib.util
try:
    import torch
except Exception as exc:
    if importlib.util.find_spec("torch") is not None:
        facts["torch_error"] = "%s: %s" % (type(exc).__name__, exc)
else:
    t = {"version": torch.__version__, "cuda": torch.version.cuda, "devices": [], "arch_list": []}
    try:
        t["available"] = bool(torch.cuda.is_available())
    except Exception as exc:
        t["available"], t["error"] = False, str(exc)
    if t["available"]:
        for i in range(torch.cuda.device_count()):
            t["devices"].append({"name": torch.cuda.get_device_name(i),
                                 "capability": "%d.%d" % torch.cuda.get_device_capability(i)})
    try:
        t["arch_list"] = list(torch.cuda.get_arch_list())
    except Exception:
        pass
    facts["torch"] = t
print("@@gpu-check@@" + json.dumps(facts))
"""

@dataclass
class TorchEnv:
    """The Python the torch steps use, how it was chosen, and what it holds."""

    python: str
    how: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def torch(self) -> dict[str, Any] | None:
        torch: dict[str, Any] | None = self.facts.get("torch")
        return torch

    @property
    def cuda(self) -> str | None:
        return (self.torch or {}).get("cuda")

    def describe(self) -> dict[str, Any]:
        return {"python": self.python, "chosen": self.how, "prefix": self.facts.get("prefix"),
                "python_version": self.facts.get("python"), "torch": self.torch,
                "torch_error": self.facts.get("torch_error"), "setuptools": self.facts.get("setuptools")}

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a command in this env: its scripts (ninja) first on PATH, no build variables."""
        base = os.environ if base is None else base
        env = {k: v for k, v in base.items() if k not in BUILD_VARIABLES}
        scripts = self.facts.get("scripts")
        if scripts:
            env["PATH"] = os.pathsep.join([scripts, env.get("PATH", os.defpath)])
        return env


# -- finding the Python with torch ------------------------------------------------------------


def python_candidates(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(path, where it was found) of the Pythons that may hold torch, in the order they are tried."""
    found: list[tuple[str, str]] = []
    for variable in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        if environ.get(variable):
            found.append((os.path.join(environ[variable], "bin", "python"), f"${variable}"))
    for directory in environ.get("PATH", "").split(os.pathsep):
        for name in ("python3", "python"):
            found.append((os.path.join(directory or ".", name), f"{name} on PATH"))
    found += [("/opt/conda/bin/python", "conda's default prefix"), ("/usr/local/bin/python3", "/usr/local"),
              ("/usr/bin/python3", "the system's"),
              (str(REPO / ".venv" / "bin" / "python"), "this repo's .venv")]
    seen: set[str] = set()
    unique = []
    for path, how in found:
        key = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if key not in seen and os.path.isfile(path) and os.access(path, os.X_OK):
            seen.add(key)
            unique.append((path, how))
    return unique


def find_torch_python(candidates: Sequence[tuple[str, str]], timeout: float = 30
                      ) -> tuple[tuple[str, str, dict[str, Any]] | None, list[str]]:
    """The first candidate with a CUDA torch (else the first with any torch), and what each one held."""
    tried: list[str] = []
    first_any: tuple[str, str, dict[str, Any]] | None = None
    prefixes: set[str] = set()
    for path, how in candidates:
        done = call([path, "-c", FIND_SCRIPT], timeout=timeout)
        answer = done.answer()
        if answer is None:
            tried.append(f"{path}: {'timed out' if done.timed_out else 'did not run'}")
            continue
        data: dict[str, Any] = json.loads(answer)
        if data["prefix"] in prefixes:
            continue
        prefixes.add(data["prefix"])
        torch = data["torch"]
        if torch is None:
            tried.append(f"{path}: no torch")
            continue
        build = f"CUDA {torch['cuda']}" if torch["cuda"] else "CPU"
        tried.append(f"{path}: torch {torch['version']} ({build})")
        if torch["cuda"]:
            return (path, how, data), tried
        first_any = first_any or (path, how, data)
    return first_any, tried


# -- the steps --------------------------------------------------------------------------------

#: The rows of the extension's steps, in order (gpu_check_build.py makes them).
BUILD_KEYS = ("build", "fatbin", "cuobjdump", "kernel", "jit", "jit kernel")


@dataclass
class Context:
    """What the torch steps need to know about the machine and the run."""

    checks: Checks
    scratch: Path
    #: `gpuenv probe --json`, or None when the probe failed.
    probe: Mapping[str, Any] | None
    #: The archs to build for: --arch, else the GPUs' distinct compute capabilities.
    archs: list[str]
    #: How many GPUs nvidia-smi (or the probe) listed; 0: no GPU here.
    gpu_count: int
    #: --arch was given: the doctor checks against those archs where there is no GPU.
    archs_given: bool = False
    #: The default recipe's plan's runtime_env (what gpuenv's runtime .pth would set).
    runtime_plan: dict[str, str] = field(default_factory=dict)


@dataclass
class Built:
    """The scratch venv holding the built extension, and the source it was built from."""

    path: Path
    source: Path


class BuildRun(Protocol):
    def run(self) -> Built | None: ...


#: Makes the build's rows for (context, torch env, toolkit).
BuildSteps = Callable[["Context", "TorchEnv", Any], BuildRun]


class CudaSteps:
    """The torch steps of one run, each a check (skipped with its reason when it cannot run)."""

    def __init__(self, context: Context, build: BuildSteps) -> None:
        self.ctx = context
        self.checks = context.checks
        #: The extension's build and runtime rows (gpu_check_build.ExtensionSteps), given by the
        #: caller: this module stays below the one that builds.
        self.build = build

    def skip(self, keys: Sequence[str], reason: str) -> None:
        for key in keys:
            self.checks.add(NAMES[key], "-", "-", SKIP, reason)

    def run(self, python: str | None) -> TorchEnv | None:
        env = self.choose(python)
        if env is None or env.torch is None:
            why = "no torch env (see 'torch env')" if env is None else f"no torch in {env.python}"
            if env is not None and "torch_error" in env.facts:
                why = "torch does not import (see 'torch env')"
            self.skip([k for k in NAMES if k != "env"], why)
            return env
        self.check_gpus(env)
        reason = self.blocker(env)
        built = None
        if reason is not None:
            self.skip(BUILD_KEYS, reason)
        else:
            built = self.build(self.ctx, env, self.toolkit(env)).run()
        self.doctor_env(env)
        if built is None:
            self.skip(["doctor scratch"], "no scratch env with the built extension (see 'cuda_ext: build')")
        else:
            self.doctor(NAMES["doctor scratch"], built.path, env, extension=built.source)
        return env

    # -- the env ------------------------------------------------------------------------------

    def choose(self, python: str | None) -> TorchEnv | None:
        name = NAMES["env"]
        expected = "a Python with a CUDA torch" + (" (--python)" if python else " (searched)")
        tried: list[str] = []
        if python is not None:
            path, how = python, "--python"
        else:
            found, tried = find_torch_python(python_candidates(os.environ))
            if found is None:
                self.checks.add(name, expected, "none", SKIP,
                                "no Python with torch found: " + ("; ".join(tried) or "no Python at all")
                                + "; name one with --python PATH")
                return None
            path, how = found[0], found[1]
        done = self.checks.quiet([path, "-c", FACTS_SCRIPT], 240, log="torch-env.log", name=name,
                                 cwd=self.ctx.scratch)
        answer = done.answer() if done is not None else None
        if answer is None:
            what = "timed out" if done is None else f"exit {done.returncode}: {short(done.stderr)}"
            self.checks.add(name, expected, path, FAIL, f"its interpreter did not answer ({what})",
                            log="torch-env.log")
            return None
        env = TorchEnv(path, how if python else f"found: {how}", json.loads(answer))
        torch = env.torch
        seen = f"{path} ({env.how}): "
        seen += f"torch {torch['version']}, CUDA {torch['cuda']}" if torch else "no torch"
        if "torch_error" in env.facts:
            self.checks.add(name, expected, f"{path} ({env.how}): torch does not import", FAIL,
                            short(env.facts["torch_error"]),
                            log="torch-env.log")
        elif torch is None:
            self.checks.add(name, expected, seen, SKIP, f"no torch in {path}: the torch steps are skipped")
        elif not torch["cuda"]:
            self.checks.add(name, expected, seen + " (a CPU build)", SKIP,
                            "torch is a CPU build: the CUDA steps need a CUDA torch"
                            + (f" (also tried: {'; '.join(tried)})" if tried else ""))
        else:
            also = f"also tried: {'; '.join(tried)}" if len(tried) > 1 else ""
            self.checks.add(name, expected, seen, PASS, also)
        return env

    def check_gpus(self, env: TorchEnv) -> None:
        name, torch = NAMES["gpus"], env.torch or {}
        if not torch.get("cuda"):
            self.checks.add(name, "-", "-", SKIP, "torch is a CPU build")
            return
        if not self.ctx.gpu_count:
            self.checks.add(name, "-", f"is_available() {torch.get('available')}", SKIP,
                            "no GPU on this machine")
            return
        archs = self.ctx.archs
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = torch.get("devices", [])
        caps = sorted({d["capability"] for d in devices})
        count_ok = len(devices) == self.ctx.gpu_count or (visible is not None and len(devices) > 0)
        ok = bool(torch.get("available")) and count_ok and set(caps) <= set(archs) and bool(caps)
        expected = f"is_available(), {self.ctx.gpu_count} device(s) of capability {archs}"
        expected += f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
        seen = f"is_available() {torch.get('available')}, {len(devices)} device(s) of capability {caps}"
        reason = "" if ok else short(torch.get("error") or "torch does not see the GPUs nvidia-smi lists")
        self.checks.add(name, expected, seen, PASS if ok else FAIL, reason)

    def toolkit(self, env: TorchEnv) -> Any:
        """The probed toolkit gpuenv would build for this torch's CUDA with (as the planner picks it)."""
        from gpuenv.plan.hardware import hardware_from_json
        from gpuenv.plan.toolkitchoice import toolkit_on_disk

        if self.ctx.probe is None or not env.cuda:
            return None
        toolkits = list(hardware_from_json(self.ctx.probe, origin="gpuenv probe --json").toolkits)
        return toolkit_on_disk(toolkits, env.cuda, minor_may_differ=True, warnings=[])

    def blocker(self, env: TorchEnv) -> str | None:
        """Why the extension steps cannot run here, or None."""
        if not env.cuda:
            version = (env.torch or {}).get("version")
            return f"torch {version} is a CPU build: the CUDA steps need a CUDA torch"
        if not self.ctx.archs:
            return "no GPU detected and no --arch: no arch to build for"
        if self.ctx.probe is None:
            return "the probe failed: no toolkit known (see 'probe')"
        if self.toolkit(env) is None:
            found = ", ".join(f"nvcc {t['version']}" for t in self.ctx.probe.get("toolkits", [])) or "none"
            major = env.cuda.split(".")[0]
            return f"no nvcc of CUDA {major}.x for torch's CUDA {env.cuda} (the probe found: {found})"
        if not env.facts.get("setuptools"):
            return f"no setuptools in {env.python}: the build and torch.utils.cpp_extension need it"
        return None

    # -- gpuenv doctor --------------------------------------------------------------------------

    def doctor_env(self, env: TorchEnv) -> None:
        """gpuenv doctor on the torch env itself, where `--venv PREFIX` reaches this interpreter."""
        prefix = Path(env.facts["prefix"])
        python = prefix / "bin" / "python"
        if not python.exists() or os.path.realpath(python) != os.path.realpath(env.facts["executable"]):
            self.checks.add(NAMES["doctor env"], "0 failures", "-", SKIP,
                            f"gpuenv doctor --venv DIR runs DIR/bin/python, and {python} is not "
                            f"{env.facts['executable']}: doctor checks the scratch env over it instead")
            return
        self.doctor(NAMES["doctor env"], prefix, env)

    def doctor(self, name: str, venv: Path, env: TorchEnv, *, extension: Path | None = None) -> None:
        recipe = self.ctx.scratch / f"doctor-{'scratch' if extension else 'env'}.toml"
        body = '[torch]\nversion = ">=1.0"\n'
        if extension is not None:
            # By name: doctor matches a bare path by its folder's name ("cuda-ext"), not its metadata's.
            body += (f'\n[[extensions]]\nrequirement = "{EXT_NAME} @ {extension.as_uri()}"\n'
                     f'import = "{EXT_NAME}"\n')
        recipe.write_text(body, encoding="utf-8")
        described = self.ctx.archs_given and not self.ctx.gpu_count
        hardware = ["--arch", ",".join(self.ctx.archs)] if described else []
        log = f"doctor-{'scratch' if extension else 'env'}.json"
        command = gpuenv_command("doctor", "--venv", str(venv), "-r", str(recipe), "--json", *hardware)
        done = self.checks.run(name, command, timeout=240, log=log, cwd=self.ctx.scratch)
        if done is None:
            return
        try:
            report = json.loads(done.stdout)
            verdicts = [(c["verdict"], c["name"], c["detail"]) for c in report["checks"]]
        except (ValueError, KeyError, TypeError):
            self.checks.add(name, "0 failures", f"exit {done.returncode}, no report", FAIL,
                            short(done.stderr or done.stdout), done.seconds, log)
            return
        counts = ", ".join(f"{sum(v == kind for v, _, _ in verdicts)} {kind}"
                           for kind in ("ok", "warn", "skip", "fail"))
        failed = [f"{n}: {d}" for v, n, d in verdicts if v == "fail"]
        warned = [n for v, n, _ in verdicts if v == "warn"]
        seen = counts + (f"; warn: {', '.join(warned)}" if warned else "")
        ok = done.returncode == 0 and not failed
        expected = "0 failures" + (f" (--arch {','.join(self.ctx.archs)})" if hardware else "")
        reason = "" if ok else short("; ".join(failed) or done.stderr, 400)
        self.checks.add(name, expected, seen, PASS if ok else FAIL, reason, done.seconds, log)
