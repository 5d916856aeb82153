"""Build a wheel without isolation, in the target env's interpreter, through pyproject-hooks.

The backend runs in the env that holds the torch the extension must be built
against, so setup.py scripts that ``import torch`` see it. Build requirements
are installed into that env first, never torch itself (a torch pin keeps the
installer from replacing it). Every way a build can fail becomes one
:class:`~gpuenv.errors.BuildError` in one place (:func:`_build_errors`), with
the log's last lines and a hint for the known failure messages.

With a :class:`~gpuenv.runner.RecordingRunner` (``--dry-run``) the same build
is recorded: the installs of its requirements, and each backend hook as the
command that calls it in the env's interpreter with the build environment,
as pyproject-hooks would (:class:`RecordedHooks`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pyproject_hooks import BackendUnavailable, BuildBackendHookCaller, HookMissing

from gpuenv.env.targetenv import TargetEnv
from gpuenv.errors import BuildError, CommandError, StepError
from gpuenv.hints import hint_for
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.runner import (
    TAIL_LINES,
    LineCallback,
    RecordingRunner,
    Runner,
    SubprocessRunner,
    is_unknown,
    perform,
    unknown,
)
from gpuenv.setup.installer import Installer, InstallOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: What pip uses for a source tree without a [build-system] table (PEP 517/518).
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
LEGACY_REQUIRES = ("setuptools>=40.8.0", "wheel")

ConfigSettings = Mapping[str, "str | list[str]"]
PhaseCallback = Callable[[str], None]

#: The most of a build log read back for the hint (the messages are near the end).
_LOG_READ_LIMIT = 8 << 20


@dataclass(frozen=True)
class BuildSystem:
    requires: tuple[str, ...]
    backend: str
    backend_path: tuple[str, ...] | None = None
    #: True when the source declares no backend and the setuptools legacy one is used.
    legacy: bool = False


def read_build_system(source_dir: Path) -> BuildSystem:
    """The [build-system] of ``source_dir``'s pyproject.toml, or the setuptools legacy backend."""
    pyproject = source_dir / "pyproject.toml"
    table: object = None
    if pyproject.is_file():
        try:
            table = tomllib.loads(read_input(pyproject)).get("build-system")
        except UnreadableInput as exc:
            raise StepError(f"{pyproject}: {exc.problem}") from None
        except tomllib.TOMLDecodeError as exc:
            raise StepError(f"{pyproject}: invalid TOML: {exc}") from None
    if not isinstance(table, dict):
        return BuildSystem(LEGACY_REQUIRES, LEGACY_BACKEND, legacy=True)
    requires = table.get("requires", list(LEGACY_REQUIRES))
    backend = table.get("build-backend")
    backend_path = table.get("backend-path")
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise StepError(f"{pyproject}: build-system.requires must be a list of strings")
    if backend is None:
        return BuildSystem(tuple(requires), LEGACY_BACKEND, legacy=True)
    return BuildSystem(
        tuple(requires),
        str(backend),
        tuple(str(p) for p in backend_path) if isinstance(backend_path, list) else None,
    )


def requirements_to_install(
    requirements: Sequence[str], installed: Mapping[str, str], markers: Mapping[str, str]
) -> list[str]:
    """``requirements`` minus torch, minus those the env's markers exclude, minus those already met."""
    missing: list[str] = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise StepError(f"invalid build requirement {text!r}: {exc}") from None
        if canonicalize_name(req.name) == "torch":
            continue
        if req.marker is not None and not req.marker.evaluate(dict(markers)):
            continue
        version = installed.get(canonicalize_name(req.name))
        met = version is not None and _contains(req, version)
        if met and not req.url and not req.extras:
            continue
        if text not in missing:
            missing.append(text)
    return missing


def _contains(req: Requirement, version: str) -> bool:
    """Whether ``version`` meets ``req``. One a dry run cannot know yet (what a recorded install resolves
    to) is taken to meet it: the install asked for that distribution a moment ago."""
    if is_unknown(version):
        return True
    try:
        return req.specifier.contains(version, prereleases=True)
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return False


def install_build_requirements(
    env: TargetEnv,
    requirements: Sequence[str],
    *,
    installer: Installer,
    runner: Runner,
    on_install: Callable[[list[str]], None] | None = None,
) -> list[str]:
    """Install what of ``requirements`` the env lacks, keeping its torch; returns what was installed.

    ``on_install`` is told what will be installed, before it is.
    """
    if not requirements:
        return []
    installed = env.installed(runner)
    missing = requirements_to_install(requirements, installed, env.interpreter(runner).markers)
    if missing:
        if on_install is not None:
            on_install(missing)
        pin = [f"torch=={installed['torch']}"] if "torch" in installed else []
        installer.install(env, missing, InstallOptions(constraints=pin))
    return missing


def build_environ(env: TargetEnv, build_env: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
    """The variables a build runs with, layered on ``base`` (the runner's environment).

    The env's bin directory leads PATH (its python, and the ninja torch looks
    for there), then ``$CUDA_HOME/bin`` (the nvcc of the planned toolkit).
    """
    environ = dict(build_env)
    front = [str(env.bin_dir)]
    if environ.get("CUDA_HOME"):
        front.append(str(Path(environ["CUDA_HOME"]) / "bin"))
    environ["PATH"] = os.pathsep.join([*front, environ.get("PATH") or base.get("PATH", os.defpath)])
    if env.is_venv or not env.exists():  # a conda env or a system prefix is no virtual environment
        environ["VIRTUAL_ENV"] = str(env.path)
    # Nested installer calls of a setup.py must not isolate either. pip reads its
    # --no-* options from the environment inverted: "0" turns isolation off.
    environ.setdefault("PIP_NO_BUILD_ISOLATION", "0")
    environ.setdefault("UV_NO_BUILD_ISOLATION", "1")
    return environ


# -- progress --------------------------------------------------------------------------

_COMPILER = re.compile(r"(?:^|[-/])(?:gcc|g\+\+|c\+\+|cc|clang\+\+|clang|nvcc)(?:-[\d.]+)?$")
_NINJA = re.compile(r"^\s*\[(\d+)/(\d+)\]\s+(.*)$")
_SOURCE_SUFFIXES = (".cu", ".cpp", ".cc", ".cxx", ".c")


def compiler_step(line: str) -> str | None:
    """A short description of a compiler or linker command line ("[3/10] compiling foo.cu"), else None."""
    progress = ""
    ninja = _NINJA.match(line)
    if ninja:
        progress, line = f"[{ninja.group(1)}/{ninja.group(2)}] ", ninja.group(3)
    tokens = line.split()
    if not tokens or not _COMPILER.search(tokens[0]):
        return None
    sources = [t for t in tokens[1:] if t.endswith(_SOURCE_SUFFIXES) and not t.startswith("-")]
    if sources:
        return f"{progress}compiling {os.path.basename(sources[-1])}"
    if "-o" in tokens[:-1]:
        return f"{progress}linking {os.path.basename(tokens[tokens.index('-o') + 1])}"
    return None


class _Phases:
    """The current build phase, reported to ``on_phase``; compiler lines while compiling."""

    def __init__(self, on_phase: PhaseCallback | None, on_line: LineCallback | None) -> None:
        self.on_phase = on_phase
        self.on_line = on_line
        self.current = "starting"

    def enter(self, phase: str) -> None:
        self.current = phase
        if self.on_phase is not None:
            self.on_phase(phase)

    def line(self, line: str) -> None:
        if self.on_line is not None:
            self.on_line(line)
        if self.on_phase is not None and self.current == "compiling":
            step = compiler_step(line)
            if step is not None:
                self.on_phase(step)


class BackendHooks(Protocol):
    """The two hooks setup calls (pyproject-hooks' :class:`BuildBackendHookCaller` has them)."""

    def get_requires_for_build_wheel(self, config_settings: Any = None) -> Any: ...

    def build_wheel(self, wheel_directory: str, config_settings: Any = None,
                    metadata_directory: str | None = None) -> Any: ...


class RecordedHooks:
    """The backend's hooks as a dry run records them: each becomes the command that calls it in the
    env's interpreter, in the source tree, with the build environment, as pyproject-hooks' in-process
    script calls it (the backend imported by name, its ``backend-path`` first on ``sys.path``, the
    tree itself not on it); it returns what a dry run can say of the answer."""

    def __init__(self, source_dir: Path, system: BuildSystem, *, runner: Runner, environ: Mapping[str, str],
                 python: Path, name: str) -> None:
        self.source_dir = source_dir
        self.system = system
        self.runner = runner
        self.environ = dict(environ)
        self.python = python
        self.name = name

    def get_requires_for_build_wheel(self, config_settings: Any = None) -> list[str]:
        self._call('getattr(backend, "get_requires_for_build_wheel", lambda settings: [])', config_settings)
        return []  # what it asks for is installed when the real run gets here

    def build_wheel(self, wheel_directory: str, config_settings: Any = None,
                    metadata_directory: str | None = None) -> str:
        self._call("backend.build_wheel", wheel_directory, config_settings)
        return unknown(f"the {self.name} wheel it builds")

    def _call(self, hook: str, *args: Any) -> None:
        self.runner([str(self.python), "-c", backend_call(self.system, self.source_dir, hook, args)],
                    str(self.source_dir), self.environ)


def backend_call(system: BuildSystem, source_dir: Path, hook: str, args: Sequence[Any]) -> str:
    """Python code that calls ``hook`` of the backend of ``system`` with ``args`` and prints its answer."""
    module, _, attribute = system.backend.partition(":")
    path = [str(source_dir / p) for p in system.backend_path or ()]
    code = [f"import sys; sys.path[0:1] = {json.dumps(path)}"]
    if attribute:
        first, *rest = attribute.split(".")
        code.append(f"from {module} import {first} as backend")
        code += [f"backend = backend.{r}" for r in rest]
    else:
        code.append(f"import {module} as backend")
    code.append(f"print({hook}({', '.join(json.dumps(a if a is not None else {}) for a in args)}))")
    return "; ".join(code)


class _HookRunner:
    """pyproject-hooks' runner: our runner with the build environment layered on."""

    def __init__(self, runner: Runner, environ: Mapping[str, str]) -> None:
        self.runner = runner
        self.environ = environ

    def __call__(
        self, cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
    ) -> None:
        self.runner(cmd, cwd, {**self.environ, **(extra_environ or {})})


# -- the build -------------------------------------------------------------------------


def build_wheel(
    source_dir: Path,
    *,
    read_from: Path | None = None,
    fetched: bool = True,
    env: TargetEnv,
    installer: Installer,
    runner: SubprocessRunner,
    build_env: Mapping[str, str],
    out_dir: Path,
    extra_requires: Sequence[str] = (),
    name: str,
    log_path: Path,
    on_phase: PhaseCallback | None = None,
    config_settings: ConfigSettings | None = None,
) -> Path:
    """Build ``source_dir`` into a wheel in ``out_dir`` with the env's interpreter; returns its path.

    All output (installs and the backend's) is appended to ``log_path``; the
    runner's own line callback still sees every line. ``read_from``: where the
    tree's build files are read, when not in ``source_dir`` (a dry run's local
    tree, which it does not copy); ``fetched`` False: nowhere yet (a source a
    dry run does not download).
    """
    source_dir = Path(source_dir).absolute()
    phases = _Phases(on_phase, runner.on_line)
    build_runner = runner.with_log(log_path, on_line=phases.line)
    offset = log_path.stat().st_size if log_path.exists() else 0
    settings = dict(config_settings or {})
    with _build_errors(name, log_path, offset, phases), _backend_warnings(log_path):
        system = _build_system(read_from or source_dir if fetched else None, build_runner)
        build_installer = installer.with_runner(build_runner)

        def install(requirements: Sequence[str]) -> None:
            install_build_requirements(
                env, requirements, installer=build_installer, runner=build_runner,
                on_install=lambda _: phases.enter("installing build requirements"),
            )

        phases.enter("checking build requirements")
        install([*system.requires, *extra_requires])
        environ = build_environ(env, build_env, build_runner.environ({}))
        hooks: BackendHooks
        if isinstance(build_runner, RecordingRunner):
            hooks = RecordedHooks(source_dir, system, runner=build_runner, environ=environ, python=env.python,
                                  name=name)
        else:
            hooks = BuildBackendHookCaller(
                str(source_dir),
                system.backend,
                list(system.backend_path) if system.backend_path else None,
                runner=_HookRunner(build_runner, environ),
                python_executable=str(env.python),
            )
        phases.enter("getting build requirements")
        install(hooks.get_requires_for_build_wheel(settings))
        phases.enter("compiling")
        perform(build_runner, "", lambda: out_dir.mkdir(parents=True, exist_ok=True), lambda: None)
        filename = hooks.build_wheel(str(out_dir.absolute()), settings)
    return out_dir / str(filename)


def _build_system(tree: Path | None, runner: Runner) -> BuildSystem:
    """The tree's [build-system]; of a tree a dry run has not fetched (None), what it can say of it."""
    if tree is not None:
        return read_build_system(tree)
    if isinstance(runner, RecordingRunner):
        runner.note("the build requirements and the backend its pyproject.toml names (the setuptools "
                    "legacy backend without one) are read once it is fetched; what the env lacks of them "
                    "is installed first")
    return BuildSystem((), unknown("the build backend it names"))


@contextmanager
def _backend_warnings(log_path: Path) -> Iterator[None]:
    """pyproject-hooks re-raises the backend's warnings in this process: send them to the log instead."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            if caught:
                with open(log_path, "a", encoding="utf-8") as log:
                    log.writelines(f"warning from the build backend: {w.message}\n" for w in caught)


@contextmanager
def _build_errors(name: str, log_path: Path, offset: int, phases: _Phases) -> Iterator[None]:
    """Turn every failure of a build into one BuildError with the log's tail and a hint."""
    try:
        yield
    except BuildError:
        raise
    except BackendUnavailable as exc:
        problem = f"its build backend {exc.backend_name or ''} cannot be imported in the target env"
        raise _build_error(name, log_path, offset, problem, exc.traceback) from exc
    except HookMissing as exc:
        problem = f"its build backend has no {exc.hook_name} hook"
        raise _build_error(name, log_path, offset, problem, "") from exc
    except CommandError as exc:
        problem = f"{phases.current} failed (exit code {exc.returncode})"
        raise _build_error(name, log_path, offset, problem, exc.tail) from exc
    except StepError as exc:
        raise _build_error(name, log_path, offset, exc.message, "", exc.hint) from exc


def _build_error(
    name: str, log_path: Path, offset: int, problem: str, tail: str, hint: str | None = None
) -> BuildError:
    log = _read_log(log_path, offset)
    tail_lines = (tail or log).rstrip().splitlines()[-TAIL_LINES:]
    return BuildError(
        name, log_path, problem, tail="\n".join(tail_lines), hint=hint or hint_for(log) or hint_for(tail)
    )


def _read_log(log_path: Path, offset: int) -> str:
    """What this build wrote to the log (at most its last few MB)."""
    try:
        with open(log_path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(offset, size - _LOG_READ_LIMIT))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
