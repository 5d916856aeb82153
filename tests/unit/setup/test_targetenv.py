"""The target env: never taking over a directory, and reading its interpreter's answers."""

from __future__ import annotations

import json
import os
import sys
import venv
from pathlib import Path

import pytest

from gpuenv.env import targetenv
from gpuenv.env.distinfo import installed_on_disk
from gpuenv.env.envqueries import INSTALLED_SCRIPT
from gpuenv.env.targetenv import TargetEnv, TorchInfo
from gpuenv.errors import StepError
from gpuenv.runner import ANSWER_MARK, SubprocessRunner
from tests.fakes import FakeRunner


def test_a_directory_that_is_not_a_venv_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    runner = FakeRunner()
    with pytest.raises(StepError, match="not a virtual environment") as info:
        TargetEnv.ensure(tmp_path, runner)
    assert info.value.hint is not None and "--venv" in info.value.hint
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert runner.calls == []


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "venv").write_text("")
    with pytest.raises(StepError):
        TargetEnv.ensure(tmp_path / "venv", FakeRunner())


def test_an_existing_venv_is_reused(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=False)
    runner = FakeRunner()
    env, created = TargetEnv.ensure(tmp_path / "venv", runner)
    assert not created and runner.calls == []
    assert env.python == tmp_path / "venv" / "bin" / "python"


def test_a_missing_env_is_created_with_the_given_python(tmp_path: Path) -> None:
    runner = FakeRunner()
    _, created = TargetEnv.ensure(tmp_path / "new", runner, python="/usr/bin/python3.12")
    assert created
    assert [c.cmd for c in runner.calls] == [["/usr/bin/python3.12", "-m", "venv", str(tmp_path / "new")]]


def test_a_missing_env_is_created_by_the_installers_command(tmp_path: Path) -> None:
    runner = FakeRunner()
    command = ["/bin/uv", "venv", "--python", "/usr/bin/python3", str(tmp_path / "new")]
    _, created = TargetEnv.ensure(tmp_path / "new", runner, command=command)
    assert created and [c.cmd for c in runner.calls] == [command]


def test_the_envs_facts_come_from_one_interpreter_without_importing_torch(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=False)
    env = TargetEnv(tmp_path / "venv")
    calls: list[list[str]] = []
    real = SubprocessRunner()

    def runner(cmd: object, cwd: str | None = None, extra_environ: object = None) -> str:
        calls.append(list(cmd))  # type: ignore[call-overload]
        return real(cmd, cwd=cwd)  # type: ignore[arg-type]

    assert env.facts(runner) is None  # no torch here: an answer, not an error
    assert "pip" not in env.installed(runner) and not env.has_pip()  # made without pip
    assert env.interpreter(runner).python_tag == f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert len(calls) == 1, "torch, the installed distributions and the interpreter: one interpreter run"


def answering(data: object) -> FakeRunner:
    noise = "UserWarning: Failed to initialize NumPy\n"
    return FakeRunner(answer=lambda cmd: f"{noise}{ANSWER_MARK}{json.dumps(data)}\n")


def test_torch_info_is_read_from_the_envs_answer() -> None:
    env = TargetEnv("/e")
    runner = answering({"version": "2.14.1+cu130", "cuda": "13.0", "cxx11_abi": True,
                        "arch_list": ["sm_75", "sm_120"]})
    info = env.torch_info(runner)
    assert info == TorchInfo("2.14.1+cu130", "13.0", True, ("sm_75", "sm_120"))
    assert info.variant == "cu130" and info.requirement == "torch==2.14.1+cu130"
    assert runner.calls[0].cmd[:2] == ["/e/bin/python", "-c"]
    assert env.torch_info(answering(None)) is None


@pytest.mark.parametrize(("cuda", "variant"), [(None, "cpu"), ("12.1", "cu121"), ("11.8", "cu118"),
                                               ("13.0", "cu130")])
def test_variant_of_torch(cuda: str | None, variant: str) -> None:
    assert TorchInfo("2.5.0", cuda, True, ()).variant == variant


def test_installed_names_are_canonical() -> None:
    installed = TargetEnv("/e").installed(answering({"Flash_Attn": "2.8.3", "torch": "2.13.0+cpu"}))
    assert installed == {"flash-attn": "2.8.3", "torch": "2.13.0+cpu"}


def _asked(env: TargetEnv) -> dict[str, str]:
    """What the env's own interpreter says is installed (importlib.metadata)."""
    return targetenv._canonical(env.query(SubprocessRunner(), INSTALLED_SCRIPT))


def _distribution(directory: Path, name: str, version: str, kind: str = "dist-info") -> None:
    headers = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: not-a-header\n"
    if kind == "egg-info-file":
        (directory / f"{name}-{version}.egg-info").write_text(headers)
        return
    meta = directory / f"{name}-{version}.{kind}"
    meta.mkdir(parents=True)
    (meta / ("METADATA" if kind == "dist-info" else "PKG-INFO")).write_text(headers)


def test_what_is_installed_is_read_from_the_files_as_the_interpreter_finds_it(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=False)
    env = TargetEnv(tmp_path / "venv")
    (site,) = (tmp_path / "venv").glob("lib/*/site-packages")
    _distribution(site, "Flash_Attn", "2.8.3")
    _distribution(site, "legacy", "0.1", "egg-info")
    _distribution(site, "older", "1.0", "egg-info-file")
    _distribution(site, "shadowed", "1.0")
    (tmp_path / "src").mkdir()
    _distribution(tmp_path / "src", "mine", "0.0.1", "egg-info")  # an editable install's path entry
    _distribution(tmp_path / "src", "shadowed", "2.0")  # site-packages comes first on sys.path
    (site / "__editable__.mine.pth").write_text(f"# a comment\n{tmp_path / 'src'}\n{tmp_path / 'absent'}\n")
    (site / "zz.pth").write_text("import os\n")

    on_disk = installed_on_disk(env.path)
    assert on_disk == _asked(env)
    assert on_disk == {"flash-attn": "2.8.3", "legacy": "0.1", "older": "1.0", "shadowed": "1.0",
                       "mine": "0.0.1"}
    runner = FakeRunner()
    assert env.installed(runner) == on_disk and runner.calls == [], "no interpreter started"


def test_where_the_files_do_not_answer_the_interpreter_is_asked(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=False, system_site_packages=True)
    assert installed_on_disk(tmp_path / "venv") is None, "it also sees the system's site-packages"
    runner = answering({"torch": "2.13.0+cpu"})
    assert TargetEnv(tmp_path / "venv").installed(runner) == {"torch": "2.13.0+cpu"}
    assert len(runner.calls) == 1
    venv.create(tmp_path / "egg", with_pip=False)
    (site,) = (tmp_path / "egg").glob("lib/*/site-packages")
    (tmp_path / "old.egg").mkdir()
    (site / "easy-install.pth").write_text(f"{tmp_path / 'old.egg'}\n")
    assert installed_on_disk(tmp_path / "egg") is None, "an egg on the path: the interpreter reads it"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_pth_file_that_is_a_fifo_leaves_the_answer_to_the_interpreter_at_once(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=False)
    (site,) = (tmp_path / "venv").glob("lib/*/site-packages")
    os.mkfifo(site / "odd.pth")  # read_text would wait for a writer forever
    assert installed_on_disk(tmp_path / "venv") is None


def test_an_interpreter_without_an_answer_is_an_error() -> None:
    with pytest.raises(StepError, match="no answer"):
        TargetEnv("/e").installed(FakeRunner(answer=lambda cmd: "Segmentation fault\n"))


def _venv_with_modules(root: Path, modules: dict[str, str]) -> TargetEnv:
    venv.create(root, with_pip=False)
    env = TargetEnv(root)
    runner = SubprocessRunner()
    for name, code in modules.items():
        (env.site_packages(runner) / f"{name}.py").write_text(code)
    return env


def test_the_check_imports_each_module_in_one_interpreter_and_reports_each_failure(tmp_path: Path) -> None:
    env = _venv_with_modules(tmp_path / "venv", {
        "good_ext": "VALUE = 1\n",
        "broken_ext": "raise ImportError('undefined symbol: _ZN3c104cuda20CUDACachingAllocator')\n",
    })
    runner = SubprocessRunner()
    found = env.check(runner, ["good_ext", "broken_ext", "missing_ext"])
    assert found.torch is None  # no torch in this venv, and that is an answer, not an error
    assert set(found.failures) == {"broken_ext", "missing_ext"}
    assert "undefined symbol: _ZN3c104cuda20CUDACachingAllocator" in found.failures["broken_ext"]
    assert "No module named 'missing_ext'" in found.failures["missing_ext"]
    assert "pip" not in found.installed  # made without pip: the list is the env's, not gpuenv's


def test_a_module_that_kills_the_interpreter_is_named(tmp_path: Path) -> None:
    env = _venv_with_modules(tmp_path / "venv", {"fine": "", "crashing_ext": "import os\nos.abort()\n"})
    with pytest.raises(StepError, match="died importing crashing_ext"):
        env.check(SubprocessRunner(), ["fine", "crashing_ext"])


def _torch_on_disk(root: Path, *, version: str, cuda: str | None, hip: str | None,
                   installer: str) -> TargetEnv:
    """A venv whose torch is the few files gpuenv's questions read: version.py, the module, its dist-info."""
    venv.create(root, with_pip=False)
    env = TargetEnv(root)
    site = env.site_packages(SubprocessRunner())
    (site / "torch").mkdir()
    (site / "torch" / "version.py").write_text(f"__version__ = {version!r}\ncuda = {cuda!r}\nhip = {hip!r}\n")
    (site / "torch" / "__init__.py").write_text(
        "import types\nfrom torch import version\n__version__ = version.__version__\n"
        "cuda = types.SimpleNamespace(get_arch_list=lambda: [])\n"
        "_C = types.SimpleNamespace(_GLIBCXX_USE_CXX11_ABI=True)\n")
    dist = site / f"torch-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
    (dist / "INSTALLER").write_text(f"{installer}\n")
    return env


def test_a_rocm_torch_and_a_conda_torch_are_told_from_a_cpu_build_and_a_wheel(tmp_path: Path) -> None:
    runner = SubprocessRunner()
    rocm = _torch_on_disk(tmp_path / "rocm", version="2.4.1+rocm6.0", cuda=None, hip="6.0.32830",
                          installer="pip").torch_info(runner)
    assert rocm is not None and rocm.hip == "6.0.32830" and rocm.cuda is None
    assert rocm.build == "a ROCm build (HIP 6.0.32830)" and rocm.installer == "pip"
    conda = _torch_on_disk(tmp_path / "conda", version="2.5.1", cuda="12.6", hip=None,
                           installer="conda").torch_info(runner)
    assert conda is not None and conda.hip is None and conda.installer == "conda"
    assert conda.build == "a CUDA 12.6 build"
    files = TargetEnv(tmp_path / "rocm").facts(runner)  # read from the files, without importing torch
    assert files is not None and files.hip == "6.0.32830"
