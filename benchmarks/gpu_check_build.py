"""The GPU check's extension steps: tests/data/cuda_ext built for the GPUs' archs through gpuenv's builder
in a scratch venv over the torch env, its .so read for exactly those sm, its kernels run against torch,
and a kernel compiled at run time under gpuenv's runtime .pth.

``python gpu_check_build.py --build-wheel JSON`` is the build itself (gpuenv.setup.builder.build_wheel
with an installer that installs nothing): gpu_check.py runs it as a subprocess with a timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_check_cuda import CUDA_EXT, EXT_NAME, NAMES, Built, Context, TorchEnv
from gpu_check_tools import FAIL, MARK, PASS, SKIP, Done, capability_key, short, sm_names

#: Added to the scratch copy of cuda_ext: the legacy backend with setuptools alone. Without a
#: pyproject.toml gpuenv's builder asks for setuptools and wheel, as pip does; setuptools >= 70.1
#: builds wheels itself and older ones ask for wheel through the backend, so nothing the build
#: needs goes unasked, and an env without the wheel package builds offline.
EXT_PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta:__legacy__"
"""
#: The .pth in the scratch venv naming the torch env's site directories.
PARENT_PTH = "_gpu_check_torch_env.pth"
#: A build that runs past this is killed (a one-arch build of cuda_ext: 1-2 min on 2 CPUs).
BUILD_TIMEOUT = 420

#: Runs the built extension's kernels on every GPU and compares them with torch's own arithmetic.
KERNEL_SCRIPT = r"""
import json, sys, torch
import gpuenv_test_cuda_ext as ext
out = {"module": ext.__file__, "arch_list": ext.arch_list(), "devices": []}
for i in range(torch.cuda.device_count()):
    with torch.cuda.device(i):
        g = torch.Generator(device="cuda").manual_seed(25)
        x = torch.randn(1 << 20, device="cuda", generator=g)
        y = x.clone()
        ext.scale_(y, 2.5)
        ext.add_scalar_(y, 1.25)
        torch.cuda.synchronize()
        ref = x * 2.5 + 1.25
        out["devices"].append({"device": i, "name": torch.cuda.get_device_name(i),
                               "equal": bool(torch.equal(y, ref)),
                               "max_abs_diff": float((y - ref).abs().max())})
print("@@gpu-check@@" + json.dumps(out))
"""

#: Compiles kernels.cu when it runs, with only what the runtime .pth put in os.environ, then runs it.
JIT_SCRIPT = r"""
import ctypes, json, os, sys
seen = {k: os.environ.get(k) for k in ("CUDA_HOME", "TORCH_CUDA_ARCH_LIST", "MAX_JOBS")}
import torch, torch.utils.cpp_extension as ce
out = {"env": seen, "ninja": ce.is_ninja_available()}
if out["ninja"]:
    source, build, run = sys.argv[1], sys.argv[2], sys.argv[3] == "run"
    ce.load(name="gpu_check_jit", sources=[source], build_directory=build, is_python_module=False,
            verbose=True)
    out["so"] = os.path.join(build, "gpu_check_jit.so")
    lib = ctypes.CDLL(out["so"])
    lib.gpuenv_test_arch_list.restype = ctypes.c_char_p
    out["arch_list"] = lib.gpuenv_test_arch_list().decode()
    out["devices"] = []
    for name in ("gpuenv_test_scale", "gpuenv_test_add_scalar"):
        getattr(lib, name).restype = ctypes.c_char_p
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_longlong, ctypes.c_float]
    for i in range(torch.cuda.device_count() if run else 0):
        with torch.cuda.device(i):
            x = torch.randn(1 << 20, device="cuda", generator=torch.Generator(device="cuda").manual_seed(25))
            y = x.clone()
            errors = [lib.gpuenv_test_scale(y.data_ptr(), y.numel(), 2.5),
                      lib.gpuenv_test_add_scalar(y.data_ptr(), y.numel(), 1.25)]
            torch.cuda.synchronize()
            ref = x * 2.5 + 1.25
            out["devices"].append({"device": i, "errors": [e.decode() for e in errors if e],
                                   "equal": bool(torch.equal(y, ref)),
                                   "max_abs_diff": float((y - ref).abs().max())})
print("@@gpu-check@@" + json.dumps(out))
"""



SITE_SCRIPT = 'import json, sysconfig; print("@@gpu-check@@" + json.dumps(sysconfig.get_path("platlib")))'


@dataclass
class Scratch:
    path: Path
    python: Path
    site: Path


class ExtensionSteps:
    """The rows "cuda_ext: …" and "runtime .pth: …" of one run."""

    def __init__(self, ctx: Context, env: TorchEnv, toolkit: Any) -> None:
        self.ctx = ctx
        self.checks = ctx.checks
        self.env = env
        self.toolkit = toolkit
        self.sass = set(sm_names(ctx.archs))
        #: nvcc's __CUDA_ARCH_LIST__ for these archs ("900" for 9.0), what arch_list() returns.
        self.arch_macro = ",".join(str(major * 100 + minor * 10)
                                   for major, minor in map(capability_key, ctx.archs))
        self.build_env = {"TORCH_CUDA_ARCH_LIST": ";".join(ctx.archs), "CUDA_HOME": toolkit.root,
                          "MAX_JOBS": ctx.runtime_plan.get("MAX_JOBS") or str(os.cpu_count() or 1)}

    def skip(self, keys: Sequence[str], reason: str) -> None:
        for key in keys:
            self.checks.add(NAMES[key], "-", "-", SKIP, reason)

    def run(self) -> Built | None:
        scratch = self.scratch_env()
        if scratch is None:
            self.skip(["fatbin", "cuobjdump", "kernel", "jit", "jit kernel"],
                      "no scratch env (see 'cuda_ext: build')")
            return None
        source = self.ctx.scratch / "cuda_ext"
        shutil.copytree(CUDA_EXT, source,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "*.so"))
        (source / "pyproject.toml").write_text(EXT_PYPROJECT, encoding="utf-8")
        so = None
        if not self.env.facts.get("python_h", True):
            # The run-time compile below builds kernels.cu alone, which needs no Python header.
            self.skip(["build"], f"no Python.h for {self.env.python} (its -dev package): a Python extension "
                      "cannot be built against it")
        else:
            so = self.build(scratch, source)
        if so is None:
            self.skip(["fatbin", "cuobjdump", "kernel"], "the build did not finish (see 'cuda_ext: build')")
        else:
            self.check_fatbin(so)
            self.check_cuobjdump(so)
            self.check_kernels(scratch)
        self.check_runtime_build(scratch, source / "csrc" / "kernels.cu")
        return Built(scratch.path, source) if so is not None else None

    # -- the scratch venv ---------------------------------------------------------------------

    def scratch_env(self) -> Scratch | None:
        """A venv of the torch env's interpreter that sees the env's packages through a .pth file."""
        path = self.ctx.scratch / "env"
        done = self.checks.quiet([self.env.python, "-m", "venv", "--without-pip", str(path)], 120,
                                 log="scratch-env.log", name=NAMES["build"])
        python = path / "bin" / "python"
        site = None
        if done is not None and done.returncode == 0:
            asked = self.checks.quiet([str(python), "-c", SITE_SCRIPT], 60, log="scratch-env.log",
                                      name=NAMES["build"])
            answer = asked.answer() if asked is not None else None
            site = Path(json.loads(answer)) if answer else None
        if site is None:
            self.checks.add(NAMES["build"], f"a scratch venv made by {self.env.python}", "-", FAIL,
                            f"'{self.env.python} -m venv --without-pip' failed: "
                            f"{short((done.stderr if done else 'timed out') or '')}", log="scratch-env.log")
            return None
        site.mkdir(parents=True, exist_ok=True)
        lines = "".join(f"{directory}\n" for directory in self.env.facts["site_dirs"])
        (site / PARENT_PTH).write_text(lines, encoding="utf-8")
        return Scratch(path, python, site)

    # -- the build ----------------------------------------------------------------------------

    def build(self, scratch: Scratch, source: Path) -> Path | None:
        """Build the wheel through gpuenv's builder, unpack it into the scratch venv; its .so, or None."""
        name = NAMES["build"]
        values = " ".join(f"{k}={v}" for k, v in self.build_env.items())
        expected = f"a wheel, built by gpuenv's builder in {self.env.python} (no isolation) with {values}"
        request = {"venv": str(scratch.path), "source": str(source), "out": str(self.ctx.scratch / "wheels"),
                   "log": str(self.checks.logs / "build.log"), "env": self.build_env}
        done = self.checks.run(name, [sys.executable, __file__, "--build-wheel", json.dumps(request)],
                               timeout=BUILD_TIMEOUT, log="build-driver.log", env=self.env.environ(),
                               cwd=self.ctx.scratch)
        if done is None:
            return None
        answer = json.loads(done.answer() or "{}")
        if "missing" in answer:
            self.checks.add(name, expected, "-", SKIP, f"the env lacks {', '.join(answer['missing'])}, which "
                            "the build needs and nothing installs offline", done.seconds, "build.log")
            return None
        if "wheel" not in answer:
            self.checks.add(name, expected, f"exit {done.returncode}", FAIL,
                            short(answer.get("error") or done.stderr or done.stdout, 600), done.seconds,
                            "build.log")
            return None
        wheel = Path(answer["wheel"])
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(scratch.site)
        sos = sorted((scratch.site / EXT_NAME).glob("_C*.so"))
        verdict, reason = (PASS, "") if sos else (FAIL, f"the wheel holds no {EXT_NAME}/_C*.so")
        self.checks.add(name, expected, wheel.name, verdict, reason, done.seconds, "build.log")
        return sos[0] if sos else None

    # -- the shared object --------------------------------------------------------------------

    def expected_code(self) -> str:
        return f"{', '.join(sorted(self.sass))} only (SASS; no PTX, no LTO IR)"

    def read_code(self, so: Path) -> tuple[bool, str, str]:
        """(exactly the expected SASS?, what the .so holds, why not) by gpuenv's fatbin reader."""
        from gpuenv.probe.binaries import BinaryFormatError, read_cuda_code

        try:
            code = read_cuda_code(so)
        except BinaryFormatError as exc:
            return False, "-", exc.problem
        seen = (f"SASS {', '.join(sorted(code.sass)) or '-'}; PTX {', '.join(sorted(code.ptx)) or '-'}; "
                f"LTO {', '.join(sorted(code.lto)) or '-'}")
        ok = set(code.sass) == self.sass and not code.ptx and not code.lto
        return ok, seen, "" if ok else "the .so holds other GPU code"

    def check_fatbin(self, so: Path) -> None:
        ok, seen, reason = self.read_code(so)
        self.checks.add(NAMES["fatbin"], self.expected_code(), seen, PASS if ok else FAIL, reason)

    def check_cuobjdump(self, so: Path) -> None:
        from gpuenv.errors import GpuenvError
        from gpuenv.probe.binaries import find_cuobjdump, list_elf

        name = NAMES["cuobjdump"]
        tool = find_cuobjdump([*self.env.facts["site_dirs"], Path(self.toolkit.root) / "bin"])
        if tool is None:
            self.checks.add(name, self.expected_code(), "-", SKIP,
                            "no cuobjdump in the toolkit, on PATH or in the env "
                            "(nvidia-cuda-cuobjdump, triton)")
            return
        try:
            listed = list_elf(so, tool, runner=self.timed_runner("cuobjdump.log"))
        except GpuenvError as exc:
            self.checks.add(name, self.expected_code(), "-", FAIL, short(str(exc)), log="cuobjdump.log")
            return
        ok = set(listed) == self.sass
        self.checks.add(name, f"{', '.join(sorted(self.sass))} ({tool} --list-elf)",
                        ", ".join(sorted(listed)), PASS if ok else FAIL, "" if ok else "other cubins",
                        log="cuobjdump.log")

    def timed_runner(self, log: str) -> Any:
        """A gpuenv runner (cmd, cwd, extra_environ) -> output, through the check's timeout."""
        from gpuenv.errors import CommandError

        def run(cmd: Sequence[str], cwd: str | None = None,
                extra_environ: Mapping[str, str] | None = None) -> str:
            done = self.checks.quiet(cmd, 60, log=log, cwd=cwd, env={**os.environ, **(extra_environ or {})})
            if done is None:
                raise CommandError(list(cmd), -9, message=f"timed out: {' '.join(cmd)}")
            if done.returncode != 0:
                raise CommandError(list(cmd), done.returncode, tail=short(done.stdout + done.stderr, 1000))
            return done.stdout + done.stderr

        return run

    # -- running the kernels --------------------------------------------------------------------

    def gpu_missing(self) -> str | None:
        if not self.ctx.gpu_count:
            return f"no GPU here (built for --arch {','.join(self.ctx.archs)})"
        if not (self.env.torch or {}).get("available"):
            return "torch.cuda.is_available() is False in this env (see 'torch: GPUs')"
        return None

    def check_kernels(self, scratch: Scratch) -> None:
        name = NAMES["kernel"]
        missing = self.gpu_missing()
        if missing is not None:
            self.checks.add(name, "-", "-", SKIP, missing)
            return
        done = self.checks.run(name, [str(scratch.python), "-c", KERNEL_SCRIPT], timeout=180,
                               log="kernels.log", env=self.env.environ(), cwd=self.ctx.scratch)
        if done is not None:
            self.kernel_verdict(name, done, "kernels.log")

    def kernel_verdict(self, name: str, done: Done, log: str) -> None:
        expected = (f"on each of {self.ctx.gpu_count} GPU(s): scale_(2.5), add_scalar_(1.25) of 2^20 floats "
                    f"== torch's x * 2.5 + 1.25; arch_list() {self.arch_macro}")
        answer = json.loads(done.answer() or "null")
        if answer is None:
            self.checks.add(name, expected, f"exit {done.returncode}", FAIL,
                            short(done.stderr or done.stdout, 600), done.seconds, log)
            return
        devices = answer.get("devices", [])
        seen = "; ".join(f"GPU {d['device']}: {'equal' if d['equal'] else 'DIFFERENT'} (max |diff| "
                         f"{d['max_abs_diff']:g}){' ' + ', '.join(d['errors']) if d.get('errors') else ''}"
                         for d in devices) + f"; arch_list() {answer.get('arch_list')}"
        ok = (len(devices) >= 1 and all(d["equal"] and not d.get("errors") for d in devices)
              and answer.get("arch_list") == self.arch_macro)
        self.checks.add(name, expected, seen, PASS if ok else FAIL,
                        "" if ok else "the kernels' results or archs differ", done.seconds, log)

    # -- a kernel compiled at run time ----------------------------------------------------------

    def check_runtime_build(self, scratch: Scratch, source: Path) -> None:
        """cpp_extension.load in the scratch venv, where only gpuenv's runtime .pth sets the variables."""
        from gpuenv.setup.runtime import RUNTIME_PTH, write_runtime_env

        name = NAMES["jit"]
        runtime = {**self.ctx.runtime_plan, **self.build_env}
        write_runtime_env(scratch.site, runtime)
        values = " ".join(f"{k}={v}" for k, v in sorted(runtime.items()))
        expected = f"{values} from {RUNTIME_PTH}; the .so: {self.expected_code()}"
        build = self.ctx.scratch / "jit-build"
        build.mkdir(exist_ok=True)
        run_it = "run" if self.gpu_missing() is None else "compile"
        done = self.checks.run(name, [str(scratch.python), "-c", JIT_SCRIPT, str(source), str(build), run_it],
                               timeout=300, log="runtime-build.log", env=self.env.environ(),
                               cwd=self.ctx.scratch)
        if done is None:
            self.skip(["jit kernel"], "the run-time compile did not finish")
            return
        answer = json.loads(done.answer() or "null")
        if answer is None or not answer.get("ninja", True):
            reason = ("no ninja in the env or on PATH: torch.utils.cpp_extension.load needs it"
                      if answer is not None else short(done.stderr or done.stdout, 600))
            self.checks.add(name, expected, f"exit {done.returncode}", SKIP if answer else FAIL, reason,
                            done.seconds, "runtime-build.log")
            self.skip(["jit kernel"], "nothing was compiled at run time")
            return
        got = {k: v for k, v in answer["env"].items() if v is not None}
        wanted = {k: runtime[k] for k in ("CUDA_HOME", "TORCH_CUDA_ARCH_LIST", "MAX_JOBS") if k in runtime}
        env_ok = got == wanted
        code_ok, code, why = self.read_code(Path(answer["so"]))
        seen = (" ".join(f"{k}={v}" for k, v in sorted(got.items())) + f"; the .so: {code}; arch_list() "
                f"{answer.get('arch_list')}")
        ok = env_ok and code_ok and answer.get("arch_list") == self.arch_macro
        reason = "the variables differ" if not env_ok else why or ("" if ok else "arch_list() differs")
        self.checks.add(name, expected, seen, PASS if ok else FAIL, reason, done.seconds, "runtime-build.log")
        if run_it == "run":
            self.kernel_verdict(NAMES["jit kernel"], done, "runtime-build.log")
        else:
            self.skip(["jit kernel"], self.gpu_missing() or "")


# -- the build, run as a subprocess -----------------------------------------------------------


def build_main(request: Mapping[str, Any]) -> int:
    """Build the wheel with gpuenv's builder; print {"wheel"}, {"missing"} or {"error"} after MARK."""
    from gpuenv.env.targetenv import TargetEnv
    from gpuenv.errors import BuildError, GpuenvError, StepError
    from gpuenv.runner import SubprocessRunner
    from gpuenv.setup.builder import build_wheel
    from gpuenv.setup.installer import NO_OPTIONS, Installer, InstallOptions

    class NotOffline(StepError):
        def __init__(self, requirements: Sequence[str]) -> None:
            super().__init__(f"would install {', '.join(requirements)}: this check installs nothing")
            self.requirements = list(requirements)

    class NoInstaller(Installer):
        """Installs nothing: the check runs offline and never changes the torch env."""

        name = "none"

        def commands(self, env: TargetEnv, requirements: Sequence[str],
                     options: InstallOptions = NO_OPTIONS) -> list[list[str]]:
            raise NotOffline(requirements)

        def uninstall_commands(self, env: TargetEnv, names: Sequence[str]) -> list[list[str]]:
            raise NotOffline([f"(uninstall) {name}" for name in names])

    runner = SubprocessRunner()
    log = Path(request["log"])
    try:
        wheel = build_wheel(Path(request["source"]), env=TargetEnv.at(request["venv"]),
                            installer=NoInstaller(runner), runner=runner, build_env=request["env"],
                            out_dir=Path(request["out"]), name=EXT_NAME, log_path=log)
    except BuildError as exc:
        if isinstance(exc.__cause__, NotOffline):
            answer: dict[str, Any] = {"missing": exc.__cause__.requirements}
        else:
            answer = {"error": f"{exc.problem}: {exc.tail}"}
    except GpuenvError as exc:
        answer = {"error": str(exc)}
    else:
        answer = {"wheel": str(wheel)}
    print(MARK + json.dumps(answer), flush=True)
    return 0 if "wheel" in answer else 1


if __name__ == "__main__":
    if sys.argv[1:2] != ["--build-wheel"] or len(sys.argv) != 3:
        sys.exit("usage: gpu_check_build.py --build-wheel JSON (gpu_check.py runs it)")
    sys.exit(build_main(json.loads(sys.argv[2])))
