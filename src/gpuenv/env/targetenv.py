"""The target virtual environment: create or reuse it, and ask its interpreter what it holds.

Every question goes to the env's own interpreter through the runner (a short
script that prints one JSON line after a marker), never to the interpreter
gpuenv runs in: the env may be another Python version, and only it knows which
torch landed in it. One exception: what is installed is read from the env's
``*.dist-info`` / ``*.egg-info`` files where they alone answer it (an env that
sees no system site-packages), as the interpreter would, without starting it:
the no-op check of a re-run is made of little else.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from gpuenv.env.distinfo import installed_on_disk
from gpuenv.env.envanswers import (
    AnswerError,
    answer_field,
    answer_text,
    check_startup_files,
)
from gpuenv.env.envqueries import (
    FACTS_SCRIPT,
    IMPORTING_MARK,
    INSTALLED_SCRIPT,
    INTERPRETER_SCRIPT,
    TORCH_SCRIPT,
    VERIFY_SCRIPT,
)
from gpuenv.errors import CommandError, StepError
from gpuenv.inputs import UnreadableInput, parse_json
from gpuenv.runner import ANSWER_MARK, Runner, bounded, env_query_timeout, import_timeout


@dataclass(frozen=True)
class TorchInfo:
    """What torch the env's interpreter imports."""

    #: ``torch.__version__`` with its local tag, e.g. "2.13.0+cpu".
    version: str
    #: ``torch.version.cuda``, e.g. "13.0"; None for a CPU build.
    cuda: str | None
    #: ``torch._C._GLIBCXX_USE_CXX11_ABI``.
    cxx11_abi: bool
    #: ``torch.cuda.get_arch_list()``; empty without a GPU on torch ≤ 2.12.
    arch_list: tuple[str, ...]
    #: The installed distribution's version, which installers compare: "2.14.1" for the
    #: cu130 wheel of PyPI whose ``torch.__version__`` is "2.14.1+cu130"; "" if unknown.
    distribution: str = ""
    #: The directory of the torch package ("…/site-packages/torch"); "" if unknown.
    path: str = ""
    #: ``torch.version.hip`` ("6.0.32830"): a ROCm build, for AMD GPUs; None for CUDA and CPU builds.
    hip: str | None = None
    #: Who installed it, from its dist-info's INSTALLER ("pip", "uv", "conda"); "" if unknown.
    installer: str = ""

    @property
    def variant(self) -> str:
        """"cpu" or "cu130"-style, derived from :attr:`cuda`."""
        if self.cuda is None:
            return "cpu"
        major, _, minor = self.cuda.partition(".")
        return f"cu{major}{minor.split('.')[0]}"

    @property
    def build(self) -> str:
        """"a CUDA 13.0 build", "a CPU build", "a ROCm build (HIP 6.0.32830)" (no CUDA, for AMD GPUs)."""
        if self.hip:
            return f"a ROCm build (HIP {self.hip})"
        return "a CPU build" if self.cuda is None else f"a CUDA {self.cuda} build"

    @property
    def requirement(self) -> str:
        """A pin that keeps exactly this torch, by its distribution version ("torch==2.13.0+cpu",
        "torch==2.14.1"): an installer matches ``==2.14.1+cu130`` against "2.14.1" as a mismatch."""
        return f"torch=={self.distribution or self.version}"


@dataclass(frozen=True)
class Interpreter:
    """Facts about the env's Python that wheels and markers depend on."""

    version: str
    #: "cp311".
    python_tag: str
    #: "cp311", or "cp313t" for a free-threaded build.
    abi_tag: str
    #: "linux_x86_64".
    platform_tag: str
    site_packages: Path
    #: PEP 508 marker environment, as ``packaging.markers.default_environment()`` in the env.
    markers: dict[str, str]
    #: ``sys.prefix``: the env the interpreter installs into.
    prefix: Path | None = None
    #: Whether it runs in a virtual environment (``sys.prefix != sys.base_prefix``).
    in_venv: bool = True
    #: The PEP 668 marker of a Python its distribution manages (``EXTERNALLY-MANAGED``), if it has one.
    externally_managed: Path | None = None
    #: Whether pip is importable there.
    has_pip: bool = False


@dataclass(frozen=True)
class EnvCheck:
    """What one run of the verify script found in the env."""

    torch: TorchInfo | None
    #: Module → the end of the traceback of its failed import.
    failures: dict[str, str]
    #: Canonical distribution name → version.
    installed: dict[str, str]


class BrokenTorchError(StepError):
    """torch is installed in the env but does not import (an interrupted install, a deleted file)."""

    def __init__(self, path: Path, tail: str) -> None:
        self.path = path
        self.tail = tail
        super().__init__(
            f"torch is installed in {path} but does not import:\n{tail}",
            hint="rerun 'gpuenv setup': its base step reinstalls a torch that does not import",
        )


def _torch_info(data: Any) -> TorchInfo | None:
    if data is None:
        return None
    archs = answer_field(data, "arch_list")
    if not isinstance(answer_field(data, "cxx11_abi"), bool) or not isinstance(archs, list) \
            or not all(isinstance(a, str) for a in archs):
        raise AnswerError("torch facts of the wrong types", data)
    distribution = data.get("distribution") or ""
    return TorchInfo(
        version=answer_text(data, "version"),
        cuda=answer_text(data, "cuda", optional=True),
        cxx11_abi=data["cxx11_abi"],
        arch_list=tuple(archs),
        distribution=distribution if isinstance(distribution, str) else "",
        path=_text_or_empty(data.get("path")),
        hip=_text_or_empty(data.get("hip"))[:100] or None,
        installer=_text_or_empty(data.get("installer"))[:100],
    )


def _interpreter(data: Any) -> Interpreter:
    markers = answer_field(data, "markers")
    if not isinstance(markers, dict):
        raise AnswerError("markers that are not a table", data)
    purelib = answer_text(data, "purelib")
    if "\0" in purelib or not purelib:
        raise AnswerError("no site-packages path", data)
    return Interpreter(
        version=answer_text(data, "version"),
        python_tag=answer_text(data, "python_tag"),
        abi_tag=answer_text(data, "abi_tag"),
        platform_tag=answer_text(data, "platform_tag"),
        site_packages=Path(purelib),
        markers={str(k): str(v) for k, v in markers.items()},
        prefix=Path(data["prefix"]) if isinstance(data.get("prefix"), str) and data["prefix"] else None,
        in_venv=data.get("in_venv", True) is not False,
        externally_managed=_marker(data),
        has_pip=data.get("has_pip") is True,
    )


def _marker(data: Any) -> Path | None:
    """The EXTERNALLY-MANAGED file that applies: there, and the interpreter is not in a venv."""
    path = data.get("externally_managed")
    if not isinstance(path, str) or not path or "\0" in path or data.get("in_venv", True) is not False:
        return None
    return Path(path) if Path(path).is_file() else None


def _text_or_empty(value: Any) -> str:
    return value if isinstance(value, str) and "\0" not in value else ""


def _canonical(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        raise AnswerError("distributions that are not a table", data)
    return {canonicalize_name(str(name)): str(version) for name, version in data.items()}


def _quiet_answers(runner: Runner) -> Runner:
    """``runner`` with its live-line callback (a progress line) blind to the query's own markers."""
    on_line = getattr(runner, "on_line", None)
    if on_line is None:
        return runner
    quiet = copy.copy(runner)
    quiet.on_line = lambda line: None if line.startswith((ANSWER_MARK, IMPORTING_MARK)) else on_line(line)  # type: ignore[attr-defined]
    return quiet


class TargetEnv:
    """A virtual environment gpuenv installs into and builds with."""

    def __init__(self, path: Path | str, python: Path | str | None = None) -> None:
        self.path = Path(path).absolute()
        #: The interpreter, where it is not ``bin/python`` of a venv at ``path`` (a conda env's, a
        #: container's system Python): the env gpuenv adopts is that interpreter's ``sys.prefix``.
        self._python = Path(python).absolute() if python is not None else None
        self._interpreter: Interpreter | None = None
        #: What is installed, as last asked; None after an install changed it.
        self._installed: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"TargetEnv({str(self.path)!r})"

    @property
    def bin_dir(self) -> Path:
        if self._python is not None:
            return self._python.parent
        return self.path / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        """The env's interpreter (not resolved: the symlink is what makes it the env's)."""
        return self._python or self.bin_dir / ("python.exe" if os.name == "nt" else "python")

    @property
    def is_venv(self) -> bool:
        """Whether it is a virtual environment (a ``pyvenv.cfg``), not a conda env or a system prefix."""
        return (self.path / "pyvenv.cfg").is_file()

    @classmethod
    def at(cls, path: Path | str, python: Path | str | None = None) -> TargetEnv:
        """The env at ``path``, whether or not it exists yet (nothing is touched: for --dry-run)."""
        return cls(path, python)

    def exists(self) -> bool:
        return self.is_venv or (self._python is not None and self._python.exists())

    def has_pip(self) -> bool:
        """Whether pip is installed in the env (one that uv made has none)."""
        lib = self.path / ("Lib" if os.name == "nt" else "lib")
        if any(lib.glob("*/site-packages/pip/__init__.py")) or (lib / "site-packages" / "pip").is_dir():
            return True
        known = self._interpreter
        return known is not None and (known.has_pip or (known.site_packages / "pip").is_dir())

    @classmethod
    def ensure(
        cls, path: Path | str, runner: Runner, *, python: str = sys.executable,
        command: Sequence[str] | None = None,
    ) -> tuple[TargetEnv, bool]:
        """Reuse the venv at ``path`` or create it; True when it was created.

        ``command`` creates it (the installer's, e.g. ``uv venv``); by default
        ``python -m venv``, which puts pip in it.

        A path that exists and is neither a venv nor an empty directory is an
        error: gpuenv never deletes or overwrites what it did not make.
        """
        env = cls(path)
        if (env.path / "pyvenv.cfg").is_file():
            if not env.python.exists():
                raise StepError(
                    f"{env.path} has a pyvenv.cfg but no {env.python}: a broken virtual environment",
                    hint="recreate it yourself, or pass another --venv path",
                )
            return env, False
        if env.path.exists() and (not env.path.is_dir() or any(env.path.iterdir())):
            raise StepError(
                f"{env.path} exists and is not a virtual environment (it has no pyvenv.cfg); "
                "gpuenv will not write into it",
                hint="pass another --venv path, or remove this one yourself if it is disposable",
            )
        env._create(runner, python, command or [python, "-m", "venv", str(env.path)])
        return env, True

    def _create(self, runner: Runner, python: str, command: Sequence[str]) -> None:
        try:
            runner(command)
        except CommandError as exc:
            hint = None
            if "ensurepip" in exc.tail:
                hint = "this Python has no ensurepip: install its venv package (e.g. python3-venv)"
            raise StepError(
                f"creating the virtual environment {self.path} with {python} failed:\n{exc.tail}",
                hint=hint,
            ) from exc

    # -- questions to the env's interpreter -------------------------------------------

    def query(self, runner: Runner, script: str, args: Sequence[str] = ()) -> Any:
        """Run ``script`` in the env's interpreter and return the JSON it printed after the marker."""
        check_startup_files(self.path)
        # Importing torch (and the extensions named in args) takes long on a cold file system;
        # a question about what is installed does not.
        imports = bool(args) or "import torch" in script
        if imports and self._interpreter is None and callable(getattr(runner, "with_timeout", None)):
            self.interpreter(runner)  # a python that hangs is found in seconds, not after the import's limit
        ask = bounded(_quiet_answers(runner), import_timeout() if imports else env_query_timeout())
        output = ask([str(self.python), "-c", script, *args], cwd=str(self.path))
        for line in reversed(output.splitlines()):
            if line.startswith(ANSWER_MARK):
                try:
                    return parse_json(line[len(ANSWER_MARK):])
                except UnreadableInput as exc:
                    raise StepError(f"{self.python} answered gpuenv's query with {exc.problem}") from None
        raise StepError(f"{self.python} printed no answer to gpuenv's query:\n{output[-2000:]}")

    def torch_info(self, runner: Runner) -> TorchInfo | None:
        """The torch the env imports, or None when torch is not installed there."""
        try:
            data = self.query(runner, TORCH_SCRIPT)
        except CommandError as exc:
            raise BrokenTorchError(self.path, exc.tail) from exc
        return _torch_info(data)

    def check(self, runner: Runner, modules: Sequence[str]) -> EnvCheck:
        """torch's facts, the import of each of ``modules`` and what is installed, in one interpreter.

        An import that fails is reported in :attr:`EnvCheck.failures`; one that
        kills the interpreter (a segfault in a native module) raises StepError
        naming that module.
        """
        try:
            data = self.query(runner, VERIFY_SCRIPT, modules)
        except CommandError as exc:
            importing = [line[len(IMPORTING_MARK):] for line in exc.tail.splitlines()
                         if line.startswith(IMPORTING_MARK)]
            doing = f"importing {importing[-1]}" if importing else "importing torch"
            raise StepError(f"the interpreter of {self.path} died {doing}:\n{exc.tail}") from exc
        self._installed = _canonical(answer_field(data, "installed"))
        failures = answer_field(data, "failures")
        if not isinstance(failures, dict):
            raise AnswerError("import failures that are not a table", data)
        return EnvCheck(
            torch=_torch_info(answer_field(data, "torch")),
            failures={str(k): str(v) for k, v in failures.items()},
            installed=dict(self._installed),
        )

    def installed(self, runner: Runner) -> dict[str, str]:
        """Canonical distribution name → version of everything installed in the env.

        Asked once and kept until :meth:`changed` (every install through an
        :class:`~gpuenv.setup.installer.Installer` calls it).
        """
        if self._installed is None:
            on_disk = installed_on_disk(self.path)
            if on_disk is None:
                on_disk = _canonical(self.query(runner, INSTALLED_SCRIPT))
            self._installed = on_disk
        return dict(self._installed)

    def changed(self) -> None:
        """Something was installed or removed: what :meth:`installed` knew is stale."""
        self._installed = None

    def facts(self, runner: Runner) -> TorchInfo | None:
        """The env's torch, installed distributions and interpreter, in one interpreter, torch not imported.

        torch's version, CUDA release and C++11 ABI are read from its files;
        its arch list stays empty (verify, which imports torch, learns it).
        Where the files do not say (a torch without ``version.py`` or
        ``lib/libc10.so``), torch is imported after all. None: no torch.
        """
        data = self.query(runner, FACTS_SCRIPT)
        self._installed = _canonical(answer_field(data, "installed"))
        if self._interpreter is None:
            self._interpreter = _interpreter(answer_field(data, "interpreter"))
        if answer_field(data, "torch") == "unknown":
            return self.torch_info(runner)
        info = _torch_info(data["torch"])
        # What installers compare is the distribution's version ("2.14.1" for PyPI's cu130 wheel).
        return None if info is None else replace(info, distribution=self._installed.get("torch", ""))

    def interpreter(self, runner: Runner) -> Interpreter:
        """The env's Python version, wheel tags, site-packages and marker environment (asked once)."""
        if self._interpreter is None:
            self._interpreter = _interpreter(self.query(runner, INTERPRETER_SCRIPT))
        return self._interpreter

    def python_tag(self, runner: Runner) -> str:
        return self.interpreter(runner).python_tag

    def platform_tag(self, runner: Runner) -> str:
        return self.interpreter(runner).platform_tag

    def site_packages(self, runner: Runner) -> Path:
        return self.interpreter(runner).site_packages
