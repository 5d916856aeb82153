"""Envs gpuenv did not create: which env a command works on, what it pins, PEP 668, and the rollback.

Directories shaped like a venv, a conda env or a system prefix stand for the
real thing; an installer fake that adds and removes ``*.dist-info`` folders
stands for pip and uv where the rollback's decisions are under test. The
slow tier (tests/integration/test_adopt_slow.py) does it all with real envs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from gpuenv.env.pipconfig import PipSources
from gpuenv.env.targetenv import Interpreter, TargetEnv
from gpuenv.errors import CommandError, InputError, StepError
from gpuenv.runner import SubprocessRunner
from gpuenv.setup.adopt import (
    BREAK_SYSTEM_PACKAGES,
    ExternallyManagedError,
    adopted_work_dir,
    check_externally_managed,
    find_target,
    made_by_gpuenv,
    pins,
)
from gpuenv.setup.installer import (
    NO_OPTIONS,
    InstallOptions,
    PinConflictError,
    PipInstaller,
    UvInstaller,
)
from gpuenv.setup.rollback import JOURNAL, finished, record, restore, unfinished
from tests.fakes import FakeInstaller, FakeRunner, clean_env

RUN = SubprocessRunner()


def venv_like(root: Path, *, marks: Sequence[str] = ()) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to(sys.executable)
    (root / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    (root / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    for mark in marks:
        (root / mark).mkdir() if mark.startswith(".") else (root / mark).write_text("{}")
    return root


# -- which env ------------------------------------------------------------------------------------


def test_a_path_that_does_not_exist_is_a_new_env_of_gpuenvs_own(tmp_path: Path) -> None:
    target = find_target(venv=tmp_path / "new", python=None, existing=False, runner=RUN)
    assert target.new and not target.adopted and target.python is None


@pytest.mark.parametrize(("marks", "adopted"), [
    ((), True), ((".gpuenv",), False), (("gpuenv-state.json",), False),
])
def test_a_venv_gpuenv_did_not_make_is_adopted(tmp_path: Path, marks: tuple[str, ...], adopted: bool) -> None:
    venv = venv_like(tmp_path / "venv", marks=marks)
    assert made_by_gpuenv(venv) is not adopted
    target = find_target(venv=venv, python=None, existing=False, runner=RUN)
    assert target.adopted is adopted and target.env.is_venv and target.python is None


def test_a_conda_env_or_a_prefix_is_adopted_with_its_interpreter(tmp_path: Path) -> None:
    conda = tmp_path / "envs" / "ml"
    (conda / "bin").mkdir(parents=True)
    (conda / "bin" / "python").symlink_to(sys.executable)
    (conda / "conda-meta").mkdir()
    target = find_target(venv=conda, python=None, existing=False, runner=RUN)
    assert target.adopted and not target.env.is_venv
    assert target.python == conda / "bin" / "python" and target.env.bin_dir == conda / "bin"


def test_an_interpreter_is_adopted_with_the_env_it_installs_into() -> None:
    target = find_target(venv=None, python=Path(sys.executable), existing=False, runner=RUN)
    assert target.path == Path(sys.prefix)
    assert target.adopted, "the tests' own venv was not made by gpuenv"
    # "use = existing" without --python / --venv: the Python gpuenv runs in.
    assert find_target(venv=None, python=None, existing=True, runner=RUN).path == Path(sys.prefix)


def test_no_interpreter_or_two_names_for_the_env_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no interpreter there") as caught:
        find_target(venv=None, python=tmp_path / "python", existing=False, runner=RUN)
    assert caught.value.exit_code == 2
    text = tmp_path / "python"
    text.write_text("not a python")
    text.chmod(0o755)
    with pytest.raises(InputError, match="does not run as a Python interpreter"):
        find_target(venv=None, python=text, existing=False, runner=RUN)
    with pytest.raises(InputError, match="give one of them"):
        find_target(venv=tmp_path, python=Path(sys.executable), existing=False, runner=RUN)


def test_gpuenvs_files_for_an_adopted_env_stay_out_of_it(tmp_path: Path) -> None:
    work = adopted_work_dir(Path("/opt/conda"), {"HOME": str(tmp_path)})
    assert work.parent == tmp_path / ".cache" / "gpuenv" / "adopted" and work.name.startswith("conda-")
    assert adopted_work_dir(Path("/opt/conda"), {"HOME": str(tmp_path)}) == work
    assert adopted_work_dir(Path("/usr"), {"HOME": str(tmp_path)}) != work


# -- what an adopted env keeps -----------------------------------------------------------------------


def test_torch_its_companions_and_the_nvidia_wheels_are_pinned() -> None:
    installed = {"torch": "2.5.0a0+872d972e41.nv24.08", "torchvision": "0.20.0a0", "numpy": "1.26.4",
                 "nvidia-cublas-cu12": "12.6.1.4", "triton": "3.0.0", "apex": "0.1", "odd": "not a version"}
    assert pins(installed) == ("nvidia-cublas-cu12==12.6.1.4", "torch==2.5.0a0+872d972e41.nv24.08",
                               "torchvision==0.20.0a0", "triton==3.0.0")


def test_every_install_of_an_adopting_installer_keeps_the_pins(tmp_path: Path) -> None:
    env = TargetEnv(tmp_path / "env")
    kept = ("torch==2.5.0a0+872d972e41.nv24.08",)
    pip = PipInstaller(FakeRunner()).adopting(kept, break_system_packages=True)
    (cmd,) = pip.commands(env, ["ninja"], InstallOptions(constraints=["torch==2.5.0"]))
    assert BREAK_SYSTEM_PACKAGES in cmd and cmd[-1] == "ninja"
    constraints = Path(cmd[cmd.index("--constraint") + 1])
    assert pip.pinned(InstallOptions(constraints=["torch==2.5.0", "six"])).constraints == (*kept, "six")
    uv = UvInstaller(FakeRunner(), uv="/bin/uv", sources=PipSources(), environ={}).adopting(kept)
    (uv_cmd,) = uv.commands(env, ["ninja"])
    assert str(constraints.parent) in " ".join(uv_cmd) and BREAK_SYSTEM_PACKAGES not in uv_cmd
    assert pip.uninstall_commands(env, ["ninja"])[0][-3:] == ["--yes", BREAK_SYSTEM_PACKAGES, "ninja"]
    assert uv.uninstall_commands(env, ["ninja"])[0][:3] == ["/bin/uv", "pip", "uninstall"]


PIP_CONFLICT = """\
ERROR: Cannot install my-ext==1.0 because these package versions have conflicting dependencies.

The conflict is caused by:
    my-ext 1.0 depends on torch==2.4.0
    The user requested (constraint) torch==2.5.0a0+872d972e41.nv24.08
ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""


def test_an_install_that_would_need_another_torch_names_the_conflict(tmp_path: Path) -> None:
    def refuse(cmd: list[str]) -> str:
        raise CommandError(cmd, 1, tail=PIP_CONFLICT)

    installer = PipInstaller(FakeRunner(answer=refuse)).adopting(("torch==2.5.0a0+872d972e41.nv24.08",))
    with pytest.raises(PinConflictError) as caught:
        installer.install(TargetEnv(tmp_path), ["my-ext==1.0"])
    assert "torch==2.5.0a0+872d972e41.nv24.08 is pinned" in str(caught.value)
    assert caught.value.hint and "never replaces the torch" in caught.value.hint
    plain = PipInstaller(FakeRunner(answer=refuse))
    with pytest.raises(CommandError):
        plain.install(TargetEnv(tmp_path), ["my-ext==1.0"])


# -- PEP 668 ---------------------------------------------------------------------------------------------


def interpreter(marker: Path | None) -> Interpreter:
    return Interpreter("3.11.2", "cp311", "cp311", "linux_x86_64", Path("/usr/lib/python3/dist-packages"), {},
                       prefix=Path("/usr"), in_venv=False, externally_managed=marker)


def test_an_externally_managed_python_is_refused_unless_the_installers_override_is_given() -> None:
    env = TargetEnv("/usr", python="/usr/bin/python3")
    marker = Path("/usr/lib/python3.11/EXTERNALLY-MANAGED")
    with pytest.raises(ExternallyManagedError) as caught:
        check_externally_managed(env, interpreter(marker), allowed=False)
    assert caught.value.exit_code == 2 and "PEP 668" in str(caught.value)
    assert "--break-system-packages, pip's and uv's own override" in (caught.value.hint or "")
    check_externally_managed(env, interpreter(marker), allowed=True)
    check_externally_managed(env, interpreter(None), allowed=False)


MANAGED = Path("/usr/bin/python3")


@pytest.mark.skipif(not list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED")) or not MANAGED.exists(),
                    reason="no externally managed system Python here")
def test_the_systems_own_python_is_seen_as_externally_managed(tmp_path: Path) -> None:
    found = TargetEnv("/usr", python=MANAGED).interpreter(RUN)
    assert found.externally_managed is not None and not found.in_venv
    recipe = tmp_path / "r.toml"
    recipe.write_text('[torch]\nversion = "2.13.0"\n')
    args = ["setup", "-r", str(recipe), "--python", str(MANAGED), "--torch-index", "config"]
    environ = clean_env(keep_offline=False, XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "gpuenv", *args], capture_output=True, text=True,
                          env=environ, check=False)
    assert done.returncode == 2, done.stderr
    assert not (tmp_path / "cache").exists(), "refused before anything is written, its logs included"
    assert "is externally managed (PEP 668" in done.stderr and "--break-system-packages" in done.stderr
    assert "Traceback" not in done.stderr


# -- the rollback -------------------------------------------------------------------------------------


class DistInfoInstaller(FakeInstaller):
    """Installs and uninstalls by writing and removing ``*.dist-info`` folders in the env's site-packages."""

    def __init__(self, site: Path) -> None:
        super().__init__()
        self.site = site
        self.done: list[str] = []

    def install(self, env: TargetEnv, requirements: Sequence[str],
                options: InstallOptions = NO_OPTIONS) -> None:
        for text in requirements:
            name, _, version = text.partition("==")
            add(self.site, name, version)
            self.done.append(f"install {text}")
        env.changed()

    def uninstall(self, env: TargetEnv, names: Sequence[str]) -> None:
        for name in names:
            for info in self.site.glob(f"{name.replace('-', '_')}-*.dist-info"):
                for file in info.iterdir():
                    file.unlink()
                info.rmdir()
            self.done.append(f"uninstall {name}")
        env.changed()


def add(site: Path, name: str, version: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_a_failed_setup_removes_what_it_installed_and_puts_back_what_it_replaced(tmp_path: Path) -> None:
    venv = venv_like(tmp_path / "venv")
    site = venv / "lib" / "python3.11" / "site-packages"
    for name, version in (("torch", "2.13.0+cpu"), ("setuptools", "65.5.0"), ("six", "1.16.0")):
        add(site, name, version)
    env, work, installer = TargetEnv(venv), tmp_path / "work", DistInfoInstaller(site)
    snapshot = record(env, FakeRunner(), work)
    assert (work / JOURNAL).is_file() and snapshot.installed["setuptools"] == "65.5.0"
    # What a setup did before it failed: added ninja, upgraded setuptools, removed six.
    add(site, "ninja", "1.13.2")
    installer.uninstall(env, ["setuptools", "six"])
    add(site, "setuptools", "80.0.0")
    installer.done.clear()
    said = restore(env, FakeRunner(), installer, snapshot)
    assert installer.done == ["uninstall ninja", "uninstall setuptools", "install setuptools==65.5.0",
                              "install six==1.16.0"]
    assert said == ["removed ninja 1.13.2, setuptools 80.0.0", "put back setuptools==65.5.0, six==1.16.0"]
    assert env.installed(FakeRunner()) == {"torch": "2.13.0+cpu", "setuptools": "65.5.0", "six": "1.16.0"}
    assert restore(env, FakeRunner(), installer, snapshot) == ["nothing had changed"]


def test_what_cannot_be_put_back_is_said_and_the_journal_stays(tmp_path: Path) -> None:
    venv = venv_like(tmp_path / "venv")
    site = venv / "lib" / "python3.11" / "site-packages"
    add(site, "six", "1.16.0")
    env, work = TargetEnv(venv), tmp_path / "work"
    snapshot = record(env, FakeRunner(), work)
    DistInfoInstaller(site).uninstall(env, ["six"])

    class Offline(DistInfoInstaller):
        def install(self, env: TargetEnv, requirements: Sequence[str],
                    options: InstallOptions = NO_OPTIONS) -> None:
            raise StepError("no index answers")

    with pytest.raises(StepError, match=r"six==1\.16\.0 could not be installed again"):
        restore(env, FakeRunner(), Offline(site), snapshot)
    assert (work / JOURNAL).is_file()


def test_the_journal_of_a_killed_setup_is_found_and_one_still_running_is_not_touched(tmp_path: Path) -> None:
    venv = venv_like(tmp_path / "venv")
    work = tmp_path / "work"
    assert unfinished(work) is None
    record(TargetEnv(venv), FakeRunner(), work)
    mine = unfinished(work)
    assert mine is not None and mine.pid == os.getpid()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        text = (work / JOURNAL).read_text().replace(f'"pid": {os.getpid()}', f'"pid": {running.pid}')
        (work / JOURNAL).write_text(text)
        with pytest.raises(StepError, match=f"another gpuenv setup \\(pid {running.pid}\\)"):
            unfinished(work)
    finally:
        running.kill()
        running.wait()
    assert unfinished(work) is not None, "a setup that died left its journal: the next one restores it"
    finished(work)
    assert unfinished(work) is None
    (work / JOURNAL).write_text("{not json")
    with pytest.raises(StepError, match="cannot be read"):
        unfinished(work)
