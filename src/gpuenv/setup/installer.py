"""pip and uv behind one interface, and the preflight check of the indexes they will use.

:class:`PipInstaller` runs the target env's own pip, so the user's pip
configuration (indexes, find-links, constraints, certificates) applies as it
would by hand. uv does not read pip's configuration, so :class:`UvInstaller`
reads it (:mod:`gpuenv.env.pipconfig`: pip's files plus the ``PIP_*`` variables) and
passes the same sources explicitly: with ``--installer uv`` packages come from where pip would
take them. Each installer also makes the target env (``python -m venv``, or
``uv venv``: seconds faster, as it seeds no pip), and :func:`choose_installer`
picks uv where it is available (``--installer auto``, the default).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

from packaging.utils import canonicalize_name

from gpuenv.env.pipconfig import PipSources, pip_config, pip_sources
from gpuenv.env.targetenv import TargetEnv
from gpuenv.errors import CommandError, IndexUnreachableError, InputError, StepError
from gpuenv.inputs import UnreadableInput, read_input
from gpuenv.runner import Runner

#: The public PyTorch index; ``{variant}`` is "cpu", "cu121", ….
PYTORCH_INDEX = "https://download.pytorch.org/whl/{variant}"

MIRROR_HINT = (
    "point gpuenv at a mirror with --torch-index URL_TEMPLATE or the GPUENV_TORCH_INDEX variable "
    "(both replace {variant} by the variant, e.g. https://MIRROR/whl/{variant}), "
    "or pass --torch-index config to install torch from the sources your installer is configured with"
)


# -- the interface ---------------------------------------------------------------------


@dataclass(frozen=True)
class InstallOptions:
    """Where one install takes packages from and how: both installers take these, each in its spelling.

    One value instead of the same eight keywords repeated on :meth:`Installer.install`,
    :meth:`Installer.commands` and each installer's ``commands``: a new option is added once.
    """

    index_url: str | None = None
    extra_index_urls: Sequence[str] = ()
    #: Requirement lines such as "torch==2.13.0+cpu", passed to the installer as a constraints file.
    constraints: Sequence[str] = ()
    find_links: Sequence[str] = ()
    no_deps: bool = False
    no_build_isolation: bool = False
    upgrade: bool = False
    force_reinstall: bool = False

    def __post_init__(self) -> None:
        # Frozen all the way down: a caller's list is copied, so changing it later changes nothing here.
        for name in ("extra_index_urls", "constraints", "find_links"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


#: An install with none of the options: the installer's configured sources, its default flags.
NO_OPTIONS = InstallOptions()


class Installer(ABC):
    """Installs requirements into a :class:`TargetEnv` through a runner."""

    #: "pip" or "uv" (the class says it; an installer standing in for another, its own).
    name: str

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        #: Constraint lines every install keeps (an adopted env's torch and its companions).
        self.pins: tuple[str, ...] = ()
        #: Pass the installer's own PEP 668 override (the user asked for it).
        self.break_system_packages = False

    def with_runner(self, runner: Runner) -> Installer:
        """The same installer, running its commands through ``runner`` (e.g. into a build's log)."""
        clone = copy.copy(self)
        clone.runner = runner
        return clone

    def adopting(self, pins: Sequence[str], *, break_system_packages: bool = False) -> Installer:
        """The same installer for an env gpuenv did not create: every install keeps ``pins``."""
        clone = copy.copy(self)
        clone.pins = tuple(pins)
        clone.break_system_packages = break_system_packages
        return clone

    def pinned(self, options: InstallOptions) -> InstallOptions:
        """``options`` with the pins added to its constraints."""
        if not self.pins:
            return options
        constraints = _unique([*self.pins, *(c for c in options.constraints
                                             if _pin_name(c) not in {_pin_name(p) for p in self.pins})])
        return replace(options, constraints=constraints)

    def install(
        self,
        env: TargetEnv,
        requirements: Sequence[str],
        options: InstallOptions = NO_OPTIONS,
    ) -> None:
        """Install ``requirements`` with ``options`` (where from, which flags)."""
        if not requirements:
            return
        options = self.pinned(options)
        if options.constraints:
            write_constraints(options.constraints)
        try:
            for cmd in self.commands(env, requirements, options):
                self.runner(cmd, extra_environ={**self.environ(), **self.progress_environ(env)})
        except CommandError as exc:
            conflict = _pin_conflict(exc.tail, self.pins)
            if conflict is None:
                raise
            raise PinConflictError(requirements, conflict, env.path, exc.tail) from exc
        finally:
            env.changed()

    def uninstall(self, env: TargetEnv, names: Sequence[str]) -> None:
        """Remove the distributions ``names`` from the env."""
        if names:
            for cmd in self.uninstall_commands(env, names):
                self.runner(cmd, extra_environ=self.environ())
            env.changed()

    @abstractmethod
    def uninstall_commands(self, env: TargetEnv, names: Sequence[str]) -> list[list[str]]:
        """The command lines :meth:`uninstall` runs."""

    @abstractmethod
    def commands(
        self,
        env: TargetEnv,
        requirements: Sequence[str],
        options: InstallOptions = NO_OPTIONS,
    ) -> list[list[str]]:
        """The command lines :meth:`install` runs, in order, without running them."""

    def environ(self) -> dict[str, str]:
        """Variables layered on the runner's environment for this installer's commands."""
        return {}

    def progress_environ(self, env: TargetEnv) -> dict[str, str]:
        """Variables that make the installer print its progress as lines (none by default)."""
        return {}

    def venv_command(self, path: Path, python: str) -> list[str]:
        """The command that creates a virtual environment at ``path`` for the interpreter ``python``."""
        return [python, "-m", "venv", str(path)]


class PinConflictError(StepError):
    """An install into an adopted env would need another version of what it pins (its torch…)."""

    def __init__(self, requirements: Sequence[str], conflict: str, env: Path, tail: str) -> None:
        self.requirements = tuple(requirements)
        self.conflict = conflict
        super().__init__(
            f"installing {' '.join(requirements)} into {env} would replace what gpuenv keeps there as it is "
            f"({conflict}):\n{tail}",
            hint="gpuenv never replaces the torch of an env it did not create (nor torchvision, torchaudio, "
            "triton, the NVIDIA wheels): choose a release of the extension built for that torch, or set up "
            "an env of gpuenv's own")


def _pin_name(line: str) -> str:
    return canonicalize_name(re.split(r"[=<>!~ ;\[]", line.strip(), maxsplit=1)[0])


_RESOLUTION_FAILED = re.compile(r"ResolutionImpossible|conflict|No solution found|unsatisfiable", re.I)


def _pin_conflict(tail: str, pins: Sequence[str]) -> str | None:
    """The pinned requirement an installer's resolution failure names, if it failed on one."""
    if not pins or not _RESOLUTION_FAILED.search(tail):
        return None
    for pin in pins:
        name = _pin_name(pin)
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", tail.replace("_", "-"), re.I):
            return f"{pin} is pinned"
    return None


def constraints_file(constraints: Sequence[str]) -> Path:
    """Where the constraints file for these lines lives (named by its content, so commands are stable)."""
    text = "".join(f"{line}\n" for line in constraints)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return temp_folder() / f"gpuenv-constraints-{digest}.txt"


def temp_folder() -> Path:
    """Python's temporary folder, as :func:`tempfile.gettempdir` finds it (``TMPDIR``, ``TEMP``, ``TMP``,
    then ``/tmp``…: the first this process may write), without the file gettempdir writes into each
    candidate to try it: a dry run names the constraints file and writes nothing."""
    if tempfile.tempdir is not None:
        return Path(tempfile.tempdir)
    named = [os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")]
    for folder in (*named, "/tmp", "/var/tmp", "/usr/tmp"):
        if folder and os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK):
            return Path(os.path.abspath(folder))
    return Path(tempfile.gettempdir())


def write_constraints(constraints: Sequence[str]) -> Path:
    """Write the constraints file atomically (concurrent runs write the same bytes)."""
    path = constraints_file(constraints)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".gpuenv-constraints-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(f"{line}\n" for line in constraints)
    os.replace(tmp, path)
    return path


def _source_options(
    index_url: str | None,
    extra_index_urls: Iterable[str],
    find_links: Iterable[str],
    constraint_files: Iterable[str],
) -> list[str]:
    args: list[str] = []
    if index_url:
        args += ["--index-url", index_url]
    for url in _unique(extra_index_urls):
        args += ["--extra-index-url", url]
    for link in _unique(find_links):
        args += ["--find-links", link]
    for path in _unique(constraint_files):
        args += ["--constraint", path]
    return args


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _flags(options: InstallOptions, *, force_reinstall: str) -> list[str]:
    """Installer flags; ``force_reinstall`` is the installer's own spelling of it."""
    return (
        (["--upgrade"] if options.upgrade else [])
        + ([force_reinstall] if options.force_reinstall else [])
        + (["--no-deps"] if options.no_deps else [])
        + (["--no-build-isolation"] if options.no_build_isolation else [])
    )


# -- pip -------------------------------------------------------------------------------


class PipInstaller(Installer):
    """``<env python> -m pip install …``: the env's pip with the user's pip configuration."""

    name = "pip"

    def commands(
        self,
        env: TargetEnv,
        requirements: Sequence[str],
        options: InstallOptions = NO_OPTIONS,
    ) -> list[list[str]]:
        options = self.pinned(options)
        files = [str(constraints_file(options.constraints))] if options.constraints else []
        args = [str(env.python), "-m", "pip", "install"]
        args += _flags(options, force_reinstall="--force-reinstall")
        args += ["--break-system-packages"] if self.break_system_packages else []
        args += _source_options(options.index_url, options.extra_index_urls, options.find_links, files)
        # An env uv made has no pip: the interpreter's own ensurepip puts it in, offline.
        lacks_pip = env.exists() and not env.has_pip()
        seed = [[str(env.python), "-m", "ensurepip", "--default-pip"]] if lacks_pip else []
        return [*seed, args + list(requirements)]

    def uninstall_commands(self, env: TargetEnv, names: Sequence[str]) -> list[list[str]]:
        flag = ["--break-system-packages"] if self.break_system_packages else []
        return [[str(env.python), "-m", "pip", "uninstall", "--yes", *flag, *names]]

    def progress_environ(self, env: TargetEnv) -> dict[str, str]:
        # Through a pipe pip shows no download progress; `--progress-bar raw` (pip >= 24.1)
        # prints "Progress N of M" lines. An older pip rejects the choice, so ask the env's pip.
        return {"PIP_PROGRESS_BAR": "raw"} if pip_prints_raw_progress(env) else {}


def pip_prints_raw_progress(env: TargetEnv) -> bool:
    """Whether the env's pip has ``--progress-bar raw`` (read from its source: no subprocess)."""
    for site in (*env.path.glob("lib/python*/site-packages"), env.path / "Lib" / "site-packages"):
        try:
            text = read_input(site / "pip" / "_internal" / "cli" / "progress_bars.py")
        except UnreadableInput:
            continue
        return "_raw_progress_bar" in text
    return False


# -- uv --------------------------------------------------------------------------------


def find_uv() -> Path:
    """The uv binary: next to this interpreter, on PATH, or from the ``uv`` package."""
    exe = "uv.exe" if os.name == "nt" else "uv"
    beside = Path(sys.executable).parent / exe
    if beside.is_file():
        return beside
    on_path = shutil.which("uv")
    if on_path:
        return Path(on_path)
    try:
        return Path(importlib.import_module("uv").find_uv_bin())
    except (ImportError, FileNotFoundError, AttributeError):
        pass
    raise StepError(
        f"uv was not found: not next to {sys.executable}, not on PATH, and the uv package is not installed",
        hint=f"install it with '{sys.executable} -m pip install uv', or use --installer pip",
    )


class UvInstaller(Installer):
    """``uv pip install --python <env python> …`` with pip's package sources passed explicitly."""

    name = "uv"

    def __init__(
        self,
        runner: Runner,
        *,
        uv: Path | str | None = None,
        sources: PipSources | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(runner)
        self.uv = Path(uv) if uv is not None else find_uv()
        self._sources = sources
        self._environ = dict(os.environ if environ is None else environ)

    def sources(self, env: TargetEnv) -> PipSources:
        """pip's configuration on this machine, read once: as the env's pip reads it, else as gpuenv's."""
        if self._sources is None:
            prefix = env.path if env.has_pip() else Path(sys.prefix)
            self._sources = pip_sources(pip_config(prefix, self._environ))
        return self._sources

    def environ(self) -> dict[str, str]:
        cert = self._sources.cert if self._sources is not None else None
        if cert and "SSL_CERT_FILE" not in self._environ:
            return {"SSL_CERT_FILE": cert}
        return {}

    def commands(
        self,
        env: TargetEnv,
        requirements: Sequence[str],
        options: InstallOptions = NO_OPTIONS,
    ) -> list[list[str]]:
        options = self.pinned(options)
        pip = self.sources(env)
        index = options.index_url or pip.index_url
        extras = _unique([*pip.extra_index_urls, *options.extra_index_urls])
        ours = [str(constraints_file(options.constraints))] if options.constraints else []
        files = [*pip.constraints, *ours]
        args = [str(self.uv), "pip", "install", "--python", str(env.python)]
        args += _flags(options, force_reinstall="--reinstall")
        args += ["--break-system-packages"] if self.break_system_packages else []
        if pip.no_index:
            args.append("--no-index")
        args += _source_options(index, extras, [*pip.find_links, *options.find_links], files)
        if extras and not pip.no_index:
            # uv takes each package from the first index that has it; pip takes the best
            # version from all of them.
            args += ["--index-strategy", "unsafe-best-match"]
        return [args + list(requirements)]

    def uninstall_commands(self, env: TargetEnv, names: Sequence[str]) -> list[list[str]]:
        flag = ["--break-system-packages"] if self.break_system_packages else []
        return [[str(self.uv), "pip", "uninstall", "--python", str(env.python), *flag, *names]]

    def venv_command(self, path: Path, python: str) -> list[str]:
        # No sources needed: without --seed, uv venv fetches nothing. The interpreter is
        # named, so uv neither looks for another one nor downloads a Python. The directory
        # may exist: setup's log goes to VENV/.gpuenv before the env is made (ensure() has
        # refused anything else already there).
        return [str(self.uv), "venv", "--quiet", "--no-python-downloads", "--allow-existing",
                "--python", python, str(path)]


#: What --installer accepts; "auto" is uv where it is available, else pip.
INSTALLERS = ("auto", "pip", "uv")


def choose_installer(name: str, runner: Runner) -> tuple[Installer, str | None]:
    """The installer ``name`` stands for, and a note when "auto" had to fall back to pip."""
    if name == "auto":
        try:
            return UvInstaller(runner), None
        except StepError:
            return PipInstaller(runner), (
                "installing with pip: uv was not found (pip install 'gpuenv[uv]' for faster setups)")
    return make_installer(name, runner), None


def make_installer(name: str, runner: Runner) -> Installer:
    """"auto", "pip" or "uv"."""
    if name == "pip":
        return PipInstaller(runner)
    if name == "uv":
        return UvInstaller(runner)
    if name == "auto":
        return choose_installer(name, runner)[0]
    raise InputError(f"unknown installer {name!r}: choose auto, pip or uv", hint="e.g. --installer uv")


# -- preflight -------------------------------------------------------------------------


def preflight(urls: Sequence[str], *, timeout: float = 5.0, project: str | None = None) -> None:
    """Check that every index in ``urls`` answers within ``timeout`` seconds.

    With ``project`` (e.g. "torch") the project's page below each index is
    asked for, which a mirror that serves the index root but not torch fails.
    All URLs are checked at once; the first one that fails, in the given
    order, raises :class:`IndexUnreachableError` with the mirror hint.
    """
    results: dict[str, str | None] = {}

    def check(url: str) -> None:
        results[url] = _check_index(url, timeout, project)

    threads = [threading.Thread(target=check, args=(url,), daemon=True) for url in urls]
    for thread in threads:
        thread.start()
    # Name resolution is not bound by the socket timeout: the deadline is.
    deadline = time.monotonic() + timeout + 1.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for url in urls:
        problem = results.get(url, f"no answer within {timeout:g} s")
        if problem is not None:
            raise IndexUnreachableError(url, problem, hint=MIRROR_HINT)


def _check_index(url: str, timeout: float, project: str | None) -> str | None:
    target = url.rstrip("/") + f"/{project}/" if project else url
    from urllib.request import url2pathname

    parsed = urlparse(target)
    if parsed.scheme in ("http", "https"):
        return _check_http(target, timeout, project)
    if parsed.scheme == "file" or not parsed.scheme or len(parsed.scheme) == 1:
        path = Path(url2pathname(parsed.path)) if parsed.scheme == "file" else Path(target)
        return None if path.is_dir() else f"{path} is not a directory"
    return f"unsupported URL scheme {parsed.scheme!r}"


def _check_http(target: str, timeout: float, project: str | None) -> str | None:
    # Here, not at the top: ssl and urllib are a tenth of a no-op run's imports, and it asks no index.
    import ssl
    import urllib.error
    import urllib.request

    from gpuenv.probe.indexhttp import describe, ssl_context

    request = urllib.request.Request(target, headers={"User-Agent": "gpuenv-preflight"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ssl_context()):
            return None
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and project:
            return f"it answers but has no {project}/ page (HTTP 404 for {target})"
        return f"HTTP {exc.code} {exc.reason} for {target}"
    except urllib.error.URLError as exc:
        return describe(exc.reason, target, timeout)
    except (OSError, ssl.SSLError) as exc:
        return describe(exc, target, timeout)
