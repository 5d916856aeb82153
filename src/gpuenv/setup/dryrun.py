"""What ``gpuenv setup --dry-run`` swaps into the real steps: the env as it will be, installer, reporter.

A dry run runs the steps of :mod:`gpuenv.setup.run` themselves, with a
:class:`~gpuenv.runner.RecordingRunner` (commands recorded, questions asked for
real) and the three stand-ins here:

- :class:`PlannedEnv`: the target env, answering from what it holds on disk
  until a recorded command changes it (or makes it), and from then on as the
  plan says it will be: what the recorded installs put in, and the torch the
  plan expects to land;
- :class:`RecordingInstaller`: the chosen installer's own commands, recorded,
  with the constraints file they read written out as a line of shell, and
  what they install told to the :class:`PlannedEnv`;
- :class:`RecordingReporter`: the steps' titles and words, among the commands.

What a dry run cannot know (an sdist's sha256 before it is downloaded, the
wheel a build makes) is a placeholder (:func:`gpuenv.runner.unknown`); a
printed line that holds one says so.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from gpuenv.env.targetenv import Interpreter, TargetEnv, TorchInfo
from gpuenv.plan.envplan import Plan
from gpuenv.runner import RecordingRunner, Runner, unknown
from gpuenv.setup.installer import NO_OPTIONS, Installer, InstallOptions, constraints_file


def expected_torch(plan: Plan) -> TorchInfo | None:
    """The torch the plan expects its base install to land (None where the plan does not say)."""
    build = plan.torch_build
    if build is None:
        return None
    # The C++11 ABI and the arch list are read from the torch that lands; a dry run uses neither.
    return TorchInfo(version=build, cuda=plan.cuda, cxx11_abi=True, arch_list=(), distribution=build)


class PlannedEnv(TargetEnv):
    """The target env of a dry run: as it is on disk until a recorded command changes it, then as planned.

    ``made_with``: the interpreter a recorded command makes the env with (it does not exist yet);
    ``expected``: the torch the plan expects to land; ``seeds_pip``: whether the command that
    makes it puts pip in (``python -m venv`` does, ``uv venv`` does not).
    """

    def __init__(self, path: Path | str, python: Path | str | None = None, *, made_with: str | None = None,
                 expected: TorchInfo | None = None, seeds_pip: bool = True) -> None:
        super().__init__(path, python)
        self.made_with = made_with
        self.expected = expected
        self.seeds_pip = seeds_pip
        #: Canonical name → the version a recorded install puts in (a placeholder where it resolves
        #: one), or None for one a recorded uninstall takes out.
        self.changes: dict[str, str | None] = {}
        #: Whether torch was answered as the plan expects it rather than read from the env.
        self.torch_expected = False
        self._made: Interpreter | None = None

    @property
    def planned(self) -> bool:
        """Whether a recorded command made or changed it: answers come from the plan from now on."""
        return self.made_with is not None or bool(self.changes)

    def on_disk(self) -> bool:
        """Whether the env is there now (the dry run makes nothing)."""
        return super().exists()

    def exists(self) -> bool:
        return self.on_disk() or self.made_with is not None

    def has_pip(self) -> bool:
        if "pip" in self.changes:
            return self.changes["pip"] is not None
        if not self.on_disk() and self.made_with is not None:
            return self.seeds_pip
        return super().has_pip()

    def installed(self, runner: Runner) -> dict[str, str]:
        found = super().installed(runner) if self.on_disk() else {}
        for name, version in self.changes.items():
            if version is None:
                found.pop(name, None)
            else:
                found[name] = version
        return found

    def interpreter(self, runner: Runner) -> Interpreter:
        if self.on_disk() or self.made_with is None:
            return super().interpreter(runner)
        if self._made is None:
            # The interpreter it is made with answers: the same Python, tags and markers, in this env.
            made_with = Path(self.made_with)
            base = TargetEnv(made_with.parent.parent, python=made_with).interpreter(runner)
            self._made = replace(base, site_packages=_venv_site_packages(self.path, base), prefix=self.path,
                                 in_venv=True, externally_managed=None, has_pip=self.seeds_pip)
        return self._made

    def facts(self, runner: Runner) -> TorchInfo | None:
        if self._torch_planned():
            self.torch_expected = True
            return self.expected
        return super().facts(runner)

    def torch_info(self, runner: Runner) -> TorchInfo | None:
        if self._torch_planned():
            self.torch_expected = True
            return self.expected
        return super().torch_info(runner)

    def _torch_planned(self) -> bool:
        return self.expected is not None and self.changes.get("torch") is not None

    def record_install(self, requirements: Sequence[str]) -> None:
        """What a recorded install puts in: an exact pin's version, a wheel's, else a placeholder."""
        for text in requirements:
            named = _name_and_version(text)
            if named is None:
                continue
            name, version = named
            if name == "torch" and self.expected is not None:
                version = self.expected.distribution
            self.changes[name] = version
        self.changed()

    def record_uninstall(self, names: Sequence[str]) -> None:
        for name in names:
            self.changes[canonicalize_name(name)] = None
        self.changed()


def _venv_site_packages(venv: Path, interpreter: Interpreter) -> Path:
    """Where a virtual environment of ``interpreter`` keeps its packages (as ``venv`` lays it out)."""
    if os.name == "nt":
        return venv / "Lib" / "site-packages"
    major_minor = ".".join(interpreter.version.split(".")[:2])
    threaded = "t" if interpreter.abi_tag.endswith("t") else ""
    return venv / "lib" / f"python{major_minor}{threaded}" / "site-packages"


def _name_and_version(text: str) -> tuple[str, str] | None:
    """The distribution an install argument names, and its version where the argument fixes it."""
    if text.endswith(".whl"):
        try:
            name, version, _, _ = parse_wheel_filename(Path(text).name)
        except InvalidWheelFilename:
            return None  # a wheel a dry run did not build: it names nothing yet
        return str(name), str(version)
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return None  # "-e", a path: what they install is read from them when they are there
    name = canonicalize_name(req.name)
    pins = [s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
    return name, pins[0] if len(pins) == 1 and not req.url else unknown(f"the {name} the install resolves")


class RecordingInstaller(Installer):
    """The installer of a dry run: ``inner``'s commands, recorded rather than run.

    Each install records the constraints file its commands read (as the line of
    shell that writes it), then the commands themselves, and tells a
    :class:`PlannedEnv` what they put in, so the steps after it are decided on
    the env as the real run would leave it.
    """

    def __init__(self, inner: Installer, recorder: RecordingRunner) -> None:
        super().__init__(inner.runner)
        self.inner = inner
        self.recorder = recorder
        self.name = inner.name
        self.pins = inner.pins
        self.break_system_packages = inner.break_system_packages

    def adopting(self, pins: Sequence[str], *, break_system_packages: bool = False) -> Installer:
        clone = copy.copy(self)
        clone.inner = self.inner.adopting(pins, break_system_packages=break_system_packages)
        clone.pins, clone.break_system_packages = clone.inner.pins, break_system_packages
        return clone

    def install(self, env: TargetEnv, requirements: Sequence[str],
                options: InstallOptions = NO_OPTIONS) -> None:
        if not requirements:
            return
        options = self.pinned(options)
        if options.constraints:
            self.recorder.write_file(constraints_file(options.constraints), options.constraints)
        for cmd in self.commands(env, requirements, options):
            self.runner(cmd, extra_environ=self.environ())
        if isinstance(env, PlannedEnv):
            # pip installs with the env's own pip: its first command put pip in where it lacked it.
            seeded = ["pip"] if self.name == "pip" and not env.has_pip() else []
            env.record_install([*requirements, *seeded])

    def uninstall(self, env: TargetEnv, names: Sequence[str]) -> None:
        if not names:
            return
        for cmd in self.uninstall_commands(env, names):
            self.runner(cmd, extra_environ=self.environ())
        if isinstance(env, PlannedEnv):
            env.record_uninstall(names)

    def commands(self, env: TargetEnv, requirements: Sequence[str],
                 options: InstallOptions = NO_OPTIONS) -> list[list[str]]:
        return self.inner.commands(env, requirements, options)

    def uninstall_commands(self, env: TargetEnv, names: Sequence[str]) -> list[list[str]]:
        return self.inner.uninstall_commands(env, names)

    def environ(self) -> dict[str, str]:
        return self.inner.environ()

    def venv_command(self, path: Path, python: str) -> list[str]:
        return self.inner.venv_command(path, python)

    def seeds_pip(self) -> bool:
        """Whether the env it makes holds pip (``python -m venv`` seeds it, ``uv venv`` does not)."""
        return self.inner.venv_command(Path("venv"), "python")[1:3] == ["-m", "venv"]


class RecordingReporter:
    """The reporter of a dry run: each step's title and words become ``#`` lines among its commands."""

    def __init__(self, recorder: RecordingRunner) -> None:
        self.recorder = recorder

    def step(self, text: str) -> None:
        self.recorder.note(text)

    def status(self, text: str) -> None:
        pass  # progress of work that does not happen

    def done(self, text: str) -> None:
        self.recorder.note(text)


def planned(env: TargetEnv | None) -> bool:
    """Whether ``env`` is a dry run's, changed or made by a recorded command."""
    return isinstance(env, PlannedEnv) and env.planned


def torch_expected(env: TargetEnv | None) -> bool:
    """Whether the torch of ``env`` is the one the plan expects, not one read from the env (a dry run)."""
    return isinstance(env, PlannedEnv) and env.torch_expected
